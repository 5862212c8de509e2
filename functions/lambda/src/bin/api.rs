//! Lambda entry point of the api function: API Gateway proxy events in; the
//! registry in the stack's table and bucket, versions' job definitions and
//! state machines in Batch and Step Functions (see `updraft_functions::api`).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use updraft_aws::config::{dynamodb_client, s3_client, sdk_config};
use updraft_aws::registry::DynamoRegistry;
use updraft_aws::runs::{DynamoCache, ValuesBucket};
use updraft_functions::api::{self, Api, ApiConfig};
use updraft_functions::launch::{AwsRuns, JobLogs};
use updraft_functions::provision::{AwsProvisioner, JobRoleSettings, ScheduleSettings};

fn main() -> Result<(), Error> {
    // JSON lines when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT).
    lambda_runtime::tracing::init_default_subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = ApiConfig::from_env()?;
        let sdk = sdk_config(None, None).await;
        let (batch, sfn) = (aws_sdk_batch::Client::new(&sdk), aws_sdk_sfn::Client::new(&sdk));
        let schedules = ScheduleSettings {
            client: aws_sdk_scheduler::Client::new(&sdk),
            target_arn: config.schedule_target.clone(),
            role_arn: config.scheduler_role.clone(),
            dead_letter_arn: config.schedule_dead_letters.clone(),
        };
        let provisioner = AwsProvisioner::new(
            batch.clone(),
            sfn,
            &config.state_machine_role,
            config.state_machine_arn_prefix(),
            schedules,
            JobRoleSettings { client: aws_sdk_iam::Client::new(&sdk), boundary_arn: config.job_role_boundary.clone() },
        );
        let dynamo = dynamodb_client(&sdk);
        let registry = DynamoRegistry::new(dynamo.clone(), s3_client(&sdk), &config.table, &config.bucket);
        let runs = AwsRuns {
            dynamo,
            sfn: aws_sdk_sfn::Client::new(&sdk),
            batch,
            table: config.table.clone(),
            name_prefix: config.cloud.jobs.name_prefix.clone(),
            state_machine_arn_prefix: config.state_machine_arn_prefix(),
            logs: Some(JobLogs {
                client: aws_sdk_cloudwatchlogs::Client::new(&sdk),
                group: config.cloud.jobs.log_group.clone(),
            }),
            values: Some(ValuesBucket { s3: s3_client(&sdk), bucket: config.bucket.clone() }),
        };
        let cache = DynamoCache::new(runs.dynamo.clone(), &config.table);
        let api = &Api { registry, provisioner, runs, cache, cloud: config.cloud, run_data_days: config.run_data_days };
        run(service_fn(move |event: LambdaEvent<Value>| async move {
            api::respond(api, &event.payload).await.map_err(Error::from)
        }))
        .await
    })
}
