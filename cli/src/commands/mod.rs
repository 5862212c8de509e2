pub mod compile;
pub mod deploy;
pub mod exec;
pub mod executions;
pub mod launch;
pub mod registry;
pub mod run;
pub mod validate;
