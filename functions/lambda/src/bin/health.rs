//! Lambda entry point of the health function (`provided.al2023`, binary named `bootstrap`).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(updraft_functions::health::respond(&event.payload))
    })))
}
