//! The embedded default: running workflows on this machine with local
//! processes, a content-addressed cache and an SQLite metadata store.

pub mod blobs;
pub mod cache;
pub mod executor;
pub mod home;
pub mod progress;
pub mod resources;
pub mod runner;
pub mod s3_blobs;
pub mod store;
