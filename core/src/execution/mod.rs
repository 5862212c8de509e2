//! Execution semantics shared by every executor: resolving a node's inputs,
//! evaluating branch conditions, splitting and gathering map items, retry
//! backoff, which nodes may start, and the task I/O contract. The local
//! executor (`updraft run`) and the cloud path both call these, so a workflow
//! means the same thing on a laptop and on AWS.

pub mod condition;
pub mod contract;
pub mod failure;
pub mod map;
pub mod node;
pub mod parquet;
pub mod reconcile;
pub mod resolve;
pub mod retry;
pub mod scheduler;
pub mod steps;
pub mod stop;

pub use resolve::{ResolveError, Values};
