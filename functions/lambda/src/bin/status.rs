//! Lambda entry point of the status function: a placeholder until the control plane (see `placeholder`).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(service_fn(|event: LambdaEvent<Value>| async move {
        updraft_functions::placeholder::respond("status", &event.payload).map_err(Error::from)
    })))
}
