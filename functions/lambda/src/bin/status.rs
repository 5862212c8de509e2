//! Lambda entry point of the status function: Step Functions execution status
//! changes in; runs stopped, timed out or failed recorded so, and whatever of them
//! still runs stopped (see `updraft_functions::stop`); and every minute, the
//! reconciler's pass over the runs in flight (`updraft_functions::reconcile`).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use updraft_aws::config::{dynamodb_client, sdk_config};
use updraft_functions::launch::AwsRuns;
use updraft_functions::reconcile;
use updraft_functions::stop::StatusServices;

fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let sdk = sdk_config(None, None).await;
        let services = &StatusServices {
            runs: AwsRuns::from_env(&sdk, dynamodb_client(&sdk), "status")?,
            lambda: aws_sdk_lambda::Client::new(&sdk),
            node_function: updraft_functions::required_env("UPDRAFT_NODE_FUNCTION", "status")?,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dead_letter_queue_url: updraft_functions::required_env("UPDRAFT_EVENTS_DLQ", "status")?,
        };
        run(service_fn(move |event: LambdaEvent<Value>| async move {
            let answer = if reconcile::is_reconcile_event(&event.payload) {
                let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
                reconcile::reconcile(services, now_ms).await
            } else {
                updraft_functions::stop::handle_status_event(services, &event.payload).await
            };
            answer.map_err(Error::from)
        }))
        .await
    })
}
