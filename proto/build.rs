//! Generates the Rust types of the IDL with prost and their canonical proto3 JSON
//! mapping with pbjson. The `.proto` files are parsed by protox, a protobuf compiler
//! written in Rust, so building needs no system `protoc`.

use prost::Message;
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
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    // protox bundles the well-known types (google/protobuf/*.proto) that the IDL imports.
    let descriptors = protox::compile(PROTOS, ["."])?;
    let descriptor_bytes = descriptors.encode_to_vec();
    std::fs::write(out_dir.join("updraft_descriptors.bin"), &descriptor_bytes)?;

    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        // Maps are ordered so that serialised output is deterministic.
        .btree_map(["."])
        .compile_fds(descriptors)?;

    pbjson_build::Builder::new().register_descriptors(&descriptor_bytes)?.btree_map(["."]).build(&[".updraft"])?;
    Ok(())
}
