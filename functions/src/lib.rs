//! Updraft's control plane on AWS: adapters for DynamoDB, S3, Batch, Step
//! Functions and EventBridge, and one thin Lambda binary per function. So far:
//! turning API requests into calls on `core` and `core`'s answers into HTTP
//! responses, and task data in S3 (used by `updraft exec`).

pub mod api;
pub mod health;
pub mod placeholder;
pub mod s3;
pub mod sdk_error;
