//! Lambda entry point of the node function: state machines' `{action: arm|finish}`
//! and Batch job state changes in, the node protocol out (see `updraft_functions::node`).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use updraft_aws::config::{dynamodb_client, s3_client, sdk_config};
use updraft_aws::meter::{Meter, metered_dynamodb, metered_s3};
use updraft_aws::registry::DynamoRegistry;
use updraft_aws::runs::ValuesBucket;
use updraft_functions::launch::AwsRuns;
use updraft_functions::node::{self, NodeConfig, NodeServices};

fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = NodeConfig::from_env()?;
        let sdk = sdk_config(None, None).await;
        // Both clients count what each invocation uses, for the run's cost (docs/cost.md).
        let meter = std::sync::Arc::new(Meter::from_env());
        let dynamo = metered_dynamodb(&dynamodb_client(&sdk), &meter);
        let s3 = metered_s3(&s3_client(&sdk), &meter);
        let registry = DynamoRegistry::new(dynamo.clone(), s3.clone(), &config.table, &config.bucket);
        let (batch, sfn) = (aws_sdk_batch::Client::new(&sdk), aws_sdk_sfn::Client::new(&sdk));
        let runs = AwsRuns {
            dynamo: dynamo.clone(),
            sfn: sfn.clone(),
            batch: batch.clone(),
            table: config.table.clone(),
            name_prefix: config.name_prefix.clone(),
            state_machine_arn_prefix: config.state_machine_arn_prefix.clone(),
            logs: None,
            values: Some(ValuesBucket { s3: s3.clone(), bucket: config.bucket.clone() }),
        };
        let services = &NodeServices {
            registry,
            runs,
            dynamo,
            s3,
            batch,
            sfn,
            lambda: aws_sdk_lambda::Client::new(&sdk),
            config,
            meter: Some(meter),
            workflows: Default::default(),
        };
        run(service_fn(move |event: LambdaEvent<Value>| async move {
            // Its error type says whether a retry can help (`Updraft.Transient`).
            node::handle(services, &event.payload, Some(event.context.deadline)).await
        }))
        .await
    })
}
