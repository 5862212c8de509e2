pub mod compile;
pub mod executions;
pub mod run;
pub mod validate;
