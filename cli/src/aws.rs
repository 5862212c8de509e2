//! Building AWS clients at the edge of the CLI, and the few service calls the
//! deploy path makes outside CloudFormation.

use crate::deploy::DeployError;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use updraft_functions::sdk_error::describe;

/// Credentials, region and endpoint from the usual places (environment,
/// profile, instance role); `--endpoint-url` and `--region` win over them.
/// `AWS_ENDPOINT_URL` alone points every client at an emulator.
pub async fn sdk_config(endpoint_url: Option<&str>, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        // Deploy and exec need one; us-east-1 is what the emulators assume.
        return config.into_builder().region(Region::new("us-east-1")).build();
    }
    config
}

/// Maps a failed SDK call to a deploy error naming the action (any client:
/// they share smithy's `SdkError`).
pub fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    action: &'static str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> DeployError {
    move |e| DeployError::Aws { action, message: describe(&e) }
}

/// Emulators serve buckets on one host, so with a custom endpoint S3 uses path-style addressing.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The role an API-created compute environment names: found or created. It
/// only has to exist (emulators check that); an UNMANAGED environment has no
/// instances for Batch to manage, so the role is given no permissions.
pub async fn batch_service_role(iam: &aws_sdk_iam::Client, prefix: &str) -> Result<String, DeployError> {
    let name = format!("{prefix}-batch-service");
    if let Ok(found) = iam.get_role().role_name(&name).send().await
        && let Some(role) = found.role
    {
        return Ok(role.arn);
    }
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let created = iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust)
        .description("Batch service role of Updraft's API-created compute environments")
        .send()
        .await
        .map_err(failed("iam:CreateRole"))?;
    Ok(created.role.map(|r| r.arn).unwrap_or_default())
}

/// An UNMANAGED compute environment (no VPC, no instances to manage): found or created.
pub async fn unmanaged_compute_environment(
    batch: &aws_sdk_batch::Client,
    name: &str,
    service_role: &str,
) -> Result<String, DeployError> {
    let found = batch
        .describe_compute_environments()
        .compute_environments(name)
        .send()
        .await
        .map_err(failed("batch:DescribeComputeEnvironments"))?;
    if let Some(arn) =
        found.compute_environments.unwrap_or_default().into_iter().find_map(|c| c.compute_environment_arn)
    {
        return Ok(arn);
    }
    let created = batch
        .create_compute_environment()
        .compute_environment_name(name)
        .r#type(aws_sdk_batch::types::CeType::Unmanaged)
        .state(aws_sdk_batch::types::CeState::Enabled)
        .service_role(service_role)
        .send()
        .await
        .map_err(failed("batch:CreateComputeEnvironment"))?;
    Ok(created.compute_environment_arn.unwrap_or_default())
}
