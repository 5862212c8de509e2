//! Updraft's domain logic: what a spec means, whether it is valid, what it
//! compiles to, and the keys and schedules derived from it.
//!
//! Pure: no I/O and no AWS SDK. Adapters (the CLI's local executor, the Lambda
//! functions) call into this crate and do the I/O themselves.

pub mod cache_key;
pub mod cloud_resources;
pub mod compile;
pub mod compute;
pub mod cost;
pub mod dag;
pub mod diagnostics;
pub mod execution;
pub mod expr;
pub mod job_definition;
pub mod literal;
pub mod ports;
pub mod project_access;
pub mod quantity;
pub mod schedule;
pub mod spec;
pub mod state_machine;
pub mod types;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use updraft_proto as proto;
