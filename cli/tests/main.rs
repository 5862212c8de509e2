//! Integration tests of the `updraft` binary: real processes, real files.

mod emulator;
mod support;

mod blob_store;
mod cleanup;
mod cloud_steps;

mod compile;
mod console;
mod exec;
mod gpus;
mod hostile;
mod python;
mod reference;
mod remote;
mod run;
mod schedule;
mod validate;
