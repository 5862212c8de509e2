//! Building the SDK configuration and clients at the edge (a binary's `main`
//! or a command); logic takes them as arguments and never builds one.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};

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

/// Emulators serve buckets on one host, so with a custom endpoint S3 uses path-style addressing.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// DynamoDB with more patience for throttling than the SDK's default three
/// attempts: a registration or a node step that gives up early fails a run.
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(6);
    let dynamo = aws_sdk_dynamodb::config::Builder::from(config).retry_config(retry).build();
    aws_sdk_dynamodb::Client::from_conf(dynamo)
}
