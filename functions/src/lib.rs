//! Updraft's control plane on AWS: adapters for DynamoDB, S3, Batch, Step
//! Functions and EventBridge, and one thin Lambda binary per function. This
//! crate holds the parts that do not need the AWS SDK yet: turning API
//! requests into calls on `core` and `core`'s answers into HTTP responses.

pub mod api;
pub mod health;
pub mod placeholder;
