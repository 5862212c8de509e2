//! Generates the Rust types of the IDL with prost and their canonical proto3 JSON
//! mapping with pbjson. Needs `protoc` on PATH (or PROTOC set); `.ci/run` installs it.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "updraft/core/identifier.proto",
    "updraft/core/types.proto",
    "updraft/core/literals.proto",
    "updraft/core/tasks.proto",
    "updraft/core/workflow.proto",
    "updraft/core/launch_plan.proto",
    "updraft/core/execution.proto",
    "updraft/api/service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out_dir.join("updraft_descriptors.bin");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptors)
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        // Maps are ordered so that serialised output is deterministic.
        .btree_map(["."])
        .compile_protos(PROTOS, &["."])?;

    let descriptor_bytes = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new().register_descriptors(&descriptor_bytes)?.btree_map(["."]).build(&[".updraft"])?;
    Ok(())
}
