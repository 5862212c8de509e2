//! The embedded default: running workflows on this machine with local
//! processes, a content-addressed cache and an SQLite metadata store.

pub mod blobs;
pub mod cache;
pub mod executor;
pub mod gpus;
pub mod home;
pub mod progress;
pub mod resources;
pub mod runner;
pub mod s3_blobs;
pub mod store;

/// The current time as records store it.
pub fn now() -> updraft_core::proto::Timestamp {
    let t = chrono::Utc::now();
    updraft_core::proto::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}
