//! `updraft deploy`: the stack of `infra/template.yaml` through CloudFormation.
//!
//! 1. Every function the template names (`${FunctionCodePrefix}<name>.zip`)
//!    must have a package; nothing is touched before that is checked.
//! 2. The packages go to the code bucket under a prefix derived from their
//!    content, so a changed binary is a changed stack parameter and
//!    CloudFormation updates the function (and an unchanged one is a no-op).
//! 3. On emulators the Batch compute environments are created through the
//!    Batch API, because moto's CloudFormation cannot create a managed one;
//!    the template takes existing environments as parameters (see infra/README.md).
//! 4. Create or update the stack, wait for it, report the failed resources'
//!    reasons or the stack's outputs.
//!
//! The `SdkConfig` comes from the caller; this module never builds one.

use crate::sdk_error::describe;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::error::SdkError;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The template shipped with this binary, so `updraft deploy` works from anywhere.
pub const BUNDLED_TEMPLATE: &str = include_str!("../../../infra/template.yaml");
/// CloudFormation takes at most this many bytes inline; larger templates go through S3.
const MAX_TEMPLATE_BODY: usize = 51_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeEnvironments {
    /// The stack creates them (Fargate for CPU, EC2 GPU instances for GPU).
    Stack,
    /// Created through the Batch API as UNMANAGED environments (emulators).
    Api,
}

pub struct DeployRequest {
    pub stack_name: String,
    pub name_prefix: String,
    pub template: String,
    /// Holds `<name>/bootstrap.zip` (cargo lambda's layout) or `<name>.zip` per function.
    pub packages: PathBuf,
    pub code_bucket: Option<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub cpu_compute_environment: Option<String>,
    pub gpu_compute_environment: Option<String>,
    pub compute_environments: ComputeEnvironments,
    pub parameters: BTreeMap<String, String>,
    pub timeout: Duration,
    pub poll_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackChange {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug)]
pub struct Deployed {
    pub stack_id: String,
    pub status: String,
    pub change: StackChange,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Bad input: nothing was created.
    #[error("{message}\n  hint: {hint}")]
    Input { message: String, hint: String },
    #[error("{action} failed: {message}")]
    Aws { action: &'static str, message: String },
    #[error("stack {stack} ended in {status}{}", reasons.iter().map(|r| format!("\n  {r}")).collect::<String>())]
    StackFailed { stack: String, status: String, reasons: Vec<String> },
    #[error("stack {stack} is still {status} after {waited:?}; it goes on in CloudFormation")]
    TimedOut { stack: String, status: String, waited: Duration },
}

impl DeployError {
    /// Whether the caller did something to fix (exit 2) rather than the cloud failing (exit 1).
    pub fn is_input(&self) -> bool {
        matches!(self, DeployError::Input { .. })
    }
}

/// The function names a template wants packages for, in order of appearance.
pub fn function_names(template: &str) -> Vec<String> {
    const MARK: &str = "${FunctionCodePrefix}";
    let mut names = Vec::new();
    for (at, _) in template.match_indices(MARK) {
        let rest = &template[at + MARK.len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        if !name.is_empty() && rest[name.len()..].starts_with(".zip") && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Finds each function's package; all missing ones are reported at once.
pub fn find_packages(dir: &Path, functions: &[String]) -> Result<BTreeMap<String, PathBuf>, DeployError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for name in functions {
        let candidates = [dir.join(name).join("bootstrap.zip"), dir.join(format!("{name}.zip"))];
        match candidates.iter().find(|p| p.is_file()) {
            Some(path) => {
                found.insert(name.clone(), path.clone());
            }
            None => missing.push(candidates[0].display().to_string()),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    Err(DeployError::Input {
        message: format!("no package for {} function(s): {}", missing.len(), missing.join(", ")),
        hint: "build them with `cargo lambda build --release --arm64 --output-format zip -p updraft-functions` \
               (or point --packages at a directory of <function>.zip files)"
            .into(),
    })
}

/// `functions/<first 16 hex of sha256 over the packages>/`.
pub fn code_prefix(packages: &BTreeMap<String, Vec<u8>>) -> String {
    let mut hasher = Sha256::new();
    for (name, bytes) in packages {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(bytes));
    }
    format!("functions/{}/", &hex::encode(hasher.finalize())[..16])
}

pub async fn deploy(config: &SdkConfig, request: DeployRequest) -> Result<Deployed, DeployError> {
    let functions = function_names(&request.template);
    let package_paths = find_packages(&request.packages, &functions)?;
    let mut packages = BTreeMap::new();
    for (name, path) in &package_paths {
        let bytes = std::fs::read(path).map_err(|e| DeployError::Input {
            message: format!("cannot read {}: {e}", path.display()),
            hint: "check the file's permissions".into(),
        })?;
        packages.insert(name.clone(), bytes);
    }
    if request.compute_environments == ComputeEnvironments::Stack
        && (request.cpu_compute_environment.is_none() || request.gpu_compute_environment.is_none())
        && request.subnets.is_empty()
    {
        return Err(DeployError::Input {
            message: "the stack creates Batch compute environments, which need subnets and security groups".into(),
            hint: "pass --subnet ID and --security-group ID (repeatable), or existing environments with \
                   --cpu-compute-environment / --gpu-compute-environment"
                .into(),
        });
    }

    // A stack that cannot take an update is refused before anything is uploaded or created.
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let existing = current_status(&cfn, &request.stack_name).await?;
    match &existing {
        Some(StackStatus::RollbackComplete) => {
            return Err(DeployError::Input {
                message: format!("stack {} is in ROLLBACK_COMPLETE: its first creation failed", request.stack_name),
                hint: format!(
                    "delete it (aws cloudformation delete-stack --stack-name {}) and deploy again",
                    request.stack_name
                ),
            });
        }
        Some(status) if status.as_str().ends_with("_IN_PROGRESS") => {
            return Err(DeployError::Input {
                message: format!("stack {} is busy ({})", request.stack_name, status.as_str()),
                hint: "wait for the running operation to finish, then deploy again".into(),
            });
        }
        _ => {}
    }

    let s3 = crate::config::s3_client(config);
    let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let bucket = match &request.code_bucket {
        Some(b) => b.clone(),
        None => {
            let sts = aws_sdk_sts::Client::new(config);
            let identity = sts.get_caller_identity().send().await.map_err(failed("sts:GetCallerIdentity"))?;
            format!("{}-deploy-{}-{region}", request.name_prefix, identity.account().unwrap_or_default())
        }
    };
    ensure_bucket(&s3, &bucket, &region).await?;
    let prefix = code_prefix(&packages);
    for (name, bytes) in packages {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("{prefix}{name}.zip"))
            .body(bytes.into())
            .send()
            .await
            .map_err(failed("s3:PutObject"))?;
    }

    let (cpu_environment, gpu_environment) = compute_environments(config, &request).await?;

    let mut parameters: BTreeMap<String, String> = [
        ("NamePrefix", request.name_prefix.clone()),
        ("FunctionCodeBucket", bucket.clone()),
        ("FunctionCodePrefix", prefix),
        ("SubnetIds", request.subnets.join(",")),
        ("SecurityGroupIds", request.security_groups.join(",")),
        ("CpuComputeEnvironmentArn", cpu_environment),
        ("GpuComputeEnvironmentArn", gpu_environment),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    parameters.extend(request.parameters.clone());
    let parameters: Vec<Parameter> =
        parameters.into_iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect();

    let template_url = if request.template.len() > MAX_TEMPLATE_BODY {
        let key = format!("templates/{}.yaml", hex::encode(Sha256::digest(request.template.as_bytes())));
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(request.template.clone().into_bytes().into())
            .send()
            .await
            .map_err(failed("s3:PutObject"))?;
        Some(format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"))
    } else {
        None
    };

    let capabilities = [Capability::CapabilityIam, Capability::CapabilityNamedIam];
    let started = Instant::now();
    let change = match existing {
        None => {
            let mut create = cfn
                .create_stack()
                .stack_name(&request.stack_name)
                .set_parameters(Some(parameters))
                .set_capabilities(Some(capabilities.to_vec()));
            create = match &template_url {
                Some(url) => create.template_url(url),
                None => create.template_body(&request.template),
            };
            create.send().await.map_err(failed("cloudformation:CreateStack"))?;
            StackChange::Created
        }
        Some(_) => {
            let mut update = cfn
                .update_stack()
                .stack_name(&request.stack_name)
                .set_parameters(Some(parameters))
                .set_capabilities(Some(capabilities.to_vec()));
            update = match &template_url {
                Some(url) => update.template_url(url),
                None => update.template_body(&request.template),
            };
            match update.send().await {
                Ok(_) => StackChange::Updated,
                Err(e) if e.message().is_some_and(|m| m.contains("No updates are to be performed")) => {
                    StackChange::Unchanged
                }
                Err(e) => return Err(failed("cloudformation:UpdateStack")(e)),
            }
        }
    };

    wait(&cfn, &request, change, started).await
}

/// The compute environments to pass to the template: given ones, or (API
/// path) UNMANAGED ones found or created through the Batch API.
async fn compute_environments(config: &SdkConfig, request: &DeployRequest) -> Result<(String, String), DeployError> {
    let (cpu, gpu) = (&request.cpu_compute_environment, &request.gpu_compute_environment);
    if request.compute_environments == ComputeEnvironments::Stack || (cpu.is_some() && gpu.is_some()) {
        // Given ones; an empty value makes the stack create that environment.
        return Ok((cpu.clone().unwrap_or_default(), gpu.clone().unwrap_or_default()));
    }
    let batch = aws_sdk_batch::Client::new(config);
    let role = batch_service_role(&aws_sdk_iam::Client::new(config), &request.name_prefix).await?;
    let given_or_created = async |given: &Option<String>, kind: &str| match given {
        Some(arn) => Ok(arn.clone()),
        None => {
            let name = format!("{}-{kind}-api", request.name_prefix);
            unmanaged_compute_environment(&batch, &name, &role).await
        }
    };
    Ok((given_or_created(cpu, "cpu").await?, given_or_created(gpu, "gpu").await?))
}

/// A deployed stack's non-empty outputs by key.
pub async fn stack_outputs(config: &SdkConfig, stack: &str) -> Result<BTreeMap<String, String>, String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| format!("cannot read stack {stack}: {}", describe(&e)))?;
    let outputs = described.stacks().first().map(|s| s.outputs()).unwrap_or_default();
    Ok(outputs
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .filter(|(_, value)| !value.is_empty())
        .collect())
}

/// Polls the stack until it leaves *_IN_PROGRESS; its outputs, or the failed resources' reasons.
async fn wait(
    cfn: &aws_sdk_cloudformation::Client,
    request: &DeployRequest,
    change: StackChange,
    started: Instant,
) -> Result<Deployed, DeployError> {
    loop {
        let stack = cfn
            .describe_stacks()
            .stack_name(&request.stack_name)
            .send()
            .await
            .map_err(failed("cloudformation:DescribeStacks"))?
            .stacks
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| DeployError::Aws {
                action: "cloudformation:DescribeStacks",
                message: format!("stack {} vanished", request.stack_name),
            })?;
        let status = stack.stack_status.clone().map(|s| s.as_str().to_string()).unwrap_or_default();
        if !status.ends_with("_IN_PROGRESS") {
            let succeeded = matches!(status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE")
                || (change == StackChange::Unchanged && status.ends_with("_COMPLETE") && !status.contains("ROLLBACK"));
            if !succeeded {
                let reasons = failure_reasons(cfn, &request.stack_name).await;
                return Err(DeployError::StackFailed { stack: request.stack_name.clone(), status, reasons });
            }
            let outputs = stack
                .outputs
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| Some((o.output_key?, o.output_value.unwrap_or_default())))
                .collect();
            return Ok(Deployed { stack_id: stack.stack_id.unwrap_or_default(), status, change, outputs });
        }
        if started.elapsed() > request.timeout {
            return Err(DeployError::TimedOut { stack: request.stack_name.clone(), status, waited: started.elapsed() });
        }
        tokio::time::sleep(request.poll_every).await;
    }
}

async fn current_status(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Result<Option<StackStatus>, DeployError> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next().and_then(|s| s.stack_status)),
        // CloudFormation answers a missing stack with a ValidationError, not a typed error.
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
        Err(e) => Err(failed("cloudformation:DescribeStacks")(e)),
    }
}

/// `Resource (Type): reason` of every failed resource event, oldest first.
async fn failure_reasons(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Vec<String> {
    let Ok(events) = cfn.describe_stack_events().stack_name(stack).send().await else {
        return vec!["(the stack's events could not be read)".into()];
    };
    let mut reasons: Vec<String> = events
        .stack_events
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.resource_status.as_ref().is_some_and(|s| s.as_str().ends_with("_FAILED")))
        .map(|e| {
            format!(
                "{} ({}): {}",
                e.logical_resource_id.unwrap_or_default(),
                e.resource_type.unwrap_or_default(),
                e.resource_status_reason.unwrap_or_default()
            )
        })
        .collect();
    reasons.reverse();
    reasons
}

async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: &str) -> Result<(), DeployError> {
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create.send().await.map_err(failed("s3:CreateBucket"))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(failed("s3:PutPublicAccessBlock"))?;
    Ok(())
}

/// Maps a failed SDK call to a deploy error naming the action (any client:
/// they share smithy's `SdkError`).
pub fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    action: &'static str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> DeployError {
    move |e| DeployError::Aws { action, message: describe(&e) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_template_names_every_function() {
        assert_eq!(function_names(BUNDLED_TEMPLATE), ["health", "api", "node", "status"]);
    }

    #[test]
    fn missing_packages_are_all_named_before_anything_happens() {
        let dir = std::env::temp_dir().join(format!("updraft-packages-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("health")).unwrap();
        std::fs::write(dir.join("health/bootstrap.zip"), b"zip").unwrap();
        std::fs::write(dir.join("api.zip"), b"zip").unwrap();
        let names: Vec<String> = ["health", "api", "node"].map(String::from).to_vec();
        let err = find_packages(&dir, &names).unwrap_err();
        assert!(err.is_input());
        assert!(err.to_string().contains("no package for 1 function(s)"), "{err}");
        assert!(err.to_string().contains("node/bootstrap.zip"), "{err}");
        let found = find_packages(&dir, &names[..2]).unwrap();
        assert_eq!(found["api"], dir.join("api.zip"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_code_prefix_changes_with_any_package() {
        let a: BTreeMap<String, Vec<u8>> = [("health".to_string(), b"one".to_vec())].into();
        let b: BTreeMap<String, Vec<u8>> = [("health".to_string(), b"two".to_vec())].into();
        assert_ne!(code_prefix(&a), code_prefix(&b));
        assert_eq!(code_prefix(&a), code_prefix(&a.clone()));
        assert!(code_prefix(&a).starts_with("functions/") && code_prefix(&a).ends_with('/'));
    }
}
