//! The IDL of record, generated from `proto/updraft/**/*.proto`.
//!
//! Every message has the canonical proto3 JSON mapping (camelCase field names,
//! enums by name, 64-bit integers as strings, timestamps as RFC 3339), so the JSON
//! that the CLI prints and the HTTPS API speaks is exactly the proto's.

pub mod core {
    include!(concat!(env!("OUT_DIR"), "/updraft.core.rs"));
    include!(concat!(env!("OUT_DIR"), "/updraft.core.serde.rs"));
}

pub mod api {
    include!(concat!(env!("OUT_DIR"), "/updraft.api.rs"));
    include!(concat!(env!("OUT_DIR"), "/updraft.api.serde.rs"));
}

pub use pbjson_types::{Duration, Timestamp};
