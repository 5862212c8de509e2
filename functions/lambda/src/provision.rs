//! The `Provisioner` port on AWS: Batch job definitions and Step Functions
//! state machines, created once per version. Only the api function creates
//! them, so the Step Functions SDK lives here, not in `updraft-aws` (which the
//! `updraft` binary in every task image links).

use aws_sdk_batch::types::{
    AssignPublicIp, ContainerProperties, EvaluateOnExit, FargatePlatformConfiguration, JobDefinitionType, KeyValuePair,
    LogConfiguration, LogDriver, NetworkConfiguration, PlatformCapability, ResourceRequirement, ResourceType,
    RetryAction, RetryStrategy, Secret,
};
use aws_sdk_sfn::types::StateMachineType;
use serde_json::Value;
use updraft_aws::sdk_error::port_error;
use updraft_core::ports::{PortError, Provisioner};

pub struct AwsProvisioner {
    batch: aws_sdk_batch::Client,
    sfn: aws_sdk_sfn::Client,
    /// The role every state machine runs as (the stack's StateMachineRole).
    state_machine_role: String,
    /// `arn:<partition>:states:<region>:<account>:stateMachine:`.
    state_machine_arn_prefix: String,
}

impl AwsProvisioner {
    pub fn new(
        batch: aws_sdk_batch::Client,
        sfn: aws_sdk_sfn::Client,
        state_machine_role: impl Into<String>,
        state_machine_arn_prefix: impl Into<String>,
    ) -> Self {
        AwsProvisioner {
            batch,
            sfn,
            state_machine_role: state_machine_role.into(),
            state_machine_arn_prefix: state_machine_arn_prefix.into(),
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn pairs(value: &Value, key_name: &str, value_name: &str) -> Vec<(String, String)> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((text(p, key_name)?.to_string(), text(p, value_name)?.to_string())))
        .collect()
}

/// The request `core::job_definition` describes, in the SDK's types.
fn container_properties(c: &Value) -> ContainerProperties {
    let strings = |key: &str| -> Vec<String> {
        c[key].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
    };
    let mut builder = ContainerProperties::builder()
        .set_image(text(c, "image").map(str::to_string))
        .set_command(Some(strings("command")))
        .set_job_role_arn(text(c, "jobRoleArn").map(str::to_string))
        .set_execution_role_arn(text(c, "executionRoleArn").map(str::to_string));
    for (kind, value) in pairs(&c["resourceRequirements"], "type", "value") {
        builder = builder.resource_requirements(
            ResourceRequirement::builder().r#type(ResourceType::from(kind.as_str())).value(value).build(),
        );
    }
    for (name, value) in pairs(&c["environment"], "name", "value") {
        builder = builder.environment(KeyValuePair::builder().name(name).value(value).build());
    }
    for (name, from) in pairs(&c["secrets"], "name", "valueFrom") {
        builder = builder.secrets(Secret::builder().name(name).value_from(from).build());
    }
    if let Some(log) = c.get("logConfiguration") {
        let mut config =
            LogConfiguration::builder().log_driver(LogDriver::from(text(log, "logDriver").unwrap_or("awslogs")));
        for (k, v) in log["options"].as_object().into_iter().flatten() {
            config = config.options(k, v.as_str().unwrap_or_default());
        }
        builder = builder.log_configuration(config.build());
    }
    if let Some(fargate) = c.get("fargatePlatformConfiguration") {
        builder = builder.fargate_platform_configuration(
            FargatePlatformConfiguration::builder()
                .set_platform_version(text(fargate, "platformVersion").map(str::to_string))
                .build(),
        );
    }
    if let Some(network) = c.get("networkConfiguration") {
        let ip = text(network, "assignPublicIp").map(AssignPublicIp::from);
        builder = builder.network_configuration(NetworkConfiguration::builder().set_assign_public_ip(ip).build());
    }
    builder.build()
}

fn retry_strategy(r: &Value) -> RetryStrategy {
    let rules = r["evaluateOnExit"].as_array().into_iter().flatten().map(|rule| {
        EvaluateOnExit::builder()
            .set_on_exit_code(text(rule, "onExitCode").map(str::to_string))
            .set_on_status_reason(text(rule, "onStatusReason").map(str::to_string))
            .set_on_reason(text(rule, "onReason").map(str::to_string))
            .action(RetryAction::from(text(rule, "action").unwrap_or("EXIT")))
            .build()
    });
    RetryStrategy::builder()
        .set_attempts(r["attempts"].as_i64().map(|a| a as i32))
        .set_evaluate_on_exit(Some(rules.collect()))
        .build()
}

impl Provisioner for AwsProvisioner {
    async fn ensure_job_definition(&self, name: &str, body: &Value) -> Result<String, PortError> {
        let existing = self
            .batch
            .describe_job_definitions()
            .job_definition_name(name)
            .status("ACTIVE")
            .send()
            .await
            .map_err(|e| port_error("reading job definitions", &e))?;
        if let Some(arn) =
            existing.job_definitions().iter().max_by_key(|d| d.revision()).and_then(|d| d.job_definition_arn())
        {
            return Ok(arn.to_string());
        }
        let mut request = self
            .batch
            .register_job_definition()
            .job_definition_name(name)
            .r#type(JobDefinitionType::from(text(body, "type").unwrap_or("container")))
            .container_properties(container_properties(&body["containerProperties"]))
            .retry_strategy(retry_strategy(&body["retryStrategy"]))
            .propagate_tags(body["propagateTags"].as_bool().unwrap_or(true));
        for capability in body["platformCapabilities"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            request = request.platform_capabilities(PlatformCapability::from(capability));
        }
        for (k, v) in body["tags"].as_object().into_iter().flatten() {
            request = request.tags(k, v.as_str().unwrap_or_default());
        }
        if let Some(seconds) = body["timeout"]["attemptDurationSeconds"].as_i64() {
            request = request
                .timeout(aws_sdk_batch::types::JobTimeout::builder().attempt_duration_seconds(seconds as i32).build());
        }
        let registered =
            request.send().await.map_err(|e| port_error(&format!("registering job definition {name}"), &e))?;
        Ok(registered.job_definition_arn().unwrap_or_default().to_string())
    }

    async fn ensure_state_machine(&self, name: &str, definition: &Value) -> Result<String, PortError> {
        let created = self
            .sfn
            .create_state_machine()
            .name(name)
            .definition(definition.to_string())
            .role_arn(&self.state_machine_role)
            .r#type(StateMachineType::Standard)
            .send()
            .await;
        let error = match created {
            Ok(created) => return Ok(created.state_machine_arn().to_string()),
            Err(e) => e,
        };
        if !error.as_service_error().is_some_and(|s| s.is_state_machine_already_exists()) {
            return Err(port_error(&format!("creating state machine {name}"), &error));
        }
        // Created before (by an earlier registration of this version): keep it if it is the same.
        let arn = format!("{}{name}", self.state_machine_arn_prefix);
        let described = self
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .map_err(|e| port_error(&format!("reading state machine {name}"), &e))?;
        let same = serde_json::from_str::<Value>(described.definition()).is_ok_and(|d| d == *definition);
        if !same {
            return Err(PortError::Conflict(format!(
                "state machine {name} exists with another definition (the stack's settings changed since this \
                 version was registered): register a new version"
            )));
        }
        Ok(arn)
    }
}
