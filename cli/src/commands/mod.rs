pub mod compile;
pub mod validate;
