//! A deployed stack's job queues and what their compute environments run on,
//! read from AWS so that tasks can be checked against them
//! (`updraft validate --stack`) with `updraft_core::compute::route`.

use crate::sdk_error::describe;
use aws_config::SdkConfig;
use aws_sdk_batch::types::{CeType, CrType};
use updraft_core::compute::{Platform, Queue, Queues};

/// The stack's `CpuJobQueueArn` and `GpuJobQueueArn` outputs, each with the
/// platforms of the compute environments it feeds.
pub async fn of_stack(config: &SdkConfig, stack: &str) -> Result<Queues, String> {
    let outputs = crate::deploy::stack_outputs(config, stack).await?;
    let cpu = outputs
        .get("CpuJobQueueArn")
        .ok_or_else(|| format!("stack {stack} has no CpuJobQueueArn output; is it an Updraft stack?"))?;
    let batch = aws_sdk_batch::Client::new(config);
    let cpu = queue(&batch, cpu).await?;
    let gpu = match outputs.get("GpuJobQueueArn") {
        Some(arn) => Some(queue(&batch, arn).await?),
        None => None,
    };
    Ok(Queues { cpu, gpu })
}

async fn queue(batch: &aws_sdk_batch::Client, arn: &str) -> Result<Queue, String> {
    let found = batch
        .describe_job_queues()
        .job_queues(arn)
        .send()
        .await
        .map_err(|e| format!("cannot read job queue {arn}: {}", describe(&e)))?;
    let queue = found.job_queues().first().ok_or_else(|| format!("job queue {arn} does not exist"))?;
    let environments: Vec<String> =
        queue.compute_environment_order().iter().filter_map(|o| o.compute_environment().map(str::to_string)).collect();
    let mut platforms = Vec::new();
    if !environments.is_empty() {
        let described = batch
            .describe_compute_environments()
            .set_compute_environments(Some(environments))
            .send()
            .await
            .map_err(|e| format!("cannot read the compute environments of {arn}: {}", describe(&e)))?;
        for environment in described.compute_environments() {
            let platform = match (environment.r#type(), environment.compute_resources().and_then(|r| r.r#type())) {
                // Unmanaged environments are EC2 instances their owner runs.
                (Some(CeType::Unmanaged), _) => Platform::Ec2,
                (_, Some(CrType::Fargate | CrType::FargateSpot)) => Platform::Fargate,
                _ => Platform::Ec2,
            };
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
    }
    Ok(Queue { arn: arn.to_string(), platforms })
}
