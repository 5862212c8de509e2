//! Integration tests of the `updraft` binary: real processes, real files.

mod support;

mod compile;
mod run;
mod validate;
