//! The local engine: running compiled workflows on this machine with local
//! processes, a content-addressed cache and an SQLite metadata store.
//!
//! It depends on `updraft-core` (the model, the compiler's output, the node
//! protocol's decisions) and `updraft-aws` (S3 for `--blob-store`), never on the
//! command line: `updraft run`, `updraft schedule` and `updraft exec` (which shares
//! the task contract's process and output checks) are its callers
//! (`scripts/check-layers.py` keeps it so).

pub mod blobs;
pub mod cache;
pub mod cleanup;
pub mod embedded_sdk;
pub mod executor;
pub mod gpus;
pub mod home;
pub mod outputs;
pub mod process;
pub mod progress;
pub mod python;
pub mod resources;
pub mod runner;
pub mod s3_blobs;
pub mod store;

/// The current time as records store it.
pub fn now() -> updraft_core::proto::Timestamp {
    let t = chrono::Utc::now();
    updraft_core::proto::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}
