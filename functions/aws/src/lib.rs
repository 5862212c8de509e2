//! Updraft's adapters to the outside world, shared by the `updraft` binary and
//! the Lambda functions; no Lambda runtime in here, so the binary shipped into
//! every task image stays small.
//!
//! - `files`: user and task files opened without trusting them, and their content digests;
//! - `s3`, `data`: task data in S3 (digests computed while streaming, directories as prefixes);
//! - `sdk_error`: every SDK failure as one line, and whether a retry can help;
//! - `config`: the `SdkConfig` and clients, built at the edge and passed in;
//! - `api_client`: SigV4-signed requests to Updraft's HTTPS API (the CLI's remote commands);
//! - `meter`: what an invocation uses (request units, requests, billed time), for a run's cost;
//! - `dynamo`: consistent batched reads of the stack's table;
//! - `registry`: registered entities in the stack's DynamoDB table (docs/storage.md);
//! - `runs`: a cloud run's node state (the node protocol's `RunStore`) and the cache in DynamoDB;
//! - `deploy`, `queues`: the stack through CloudFormation, and its Batch queues.

pub mod api_client;
pub mod config;
pub mod data;
pub mod deploy;
pub mod dynamo;
pub mod files;
pub mod meter;
pub mod queues;
pub mod registry;
pub mod runs;
pub mod s3;
pub mod sdk_error;
