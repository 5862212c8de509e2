//! The `Provisioner` port on AWS: Batch job definitions and Step Functions
//! state machines, created once per version, and the EventBridge Scheduler
//! schedule of each scheduled launch plan. Only the api function creates them,
//! so the Step Functions and Scheduler SDKs live here, not in `updraft-aws`
//! (which the `updraft` binary in every task image links).

use aws_sdk_batch::types::{
    AssignPublicIp, ContainerProperties, EvaluateOnExit, FargatePlatformConfiguration, JobDefinitionType, KeyValuePair,
    LogConfiguration, LogDriver, NetworkConfiguration, PlatformCapability, ResourceRequirement, ResourceType,
    RetryAction, RetryStrategy, Secret,
};
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use aws_sdk_sfn::types::StateMachineType;
use serde_json::Value;
use updraft_aws::sdk_error::port_error;
use updraft_core::ports::{PortError, Provisioner};
use updraft_core::project_access;
use updraft_core::schedule::{FoundSchedule, ScheduleRequest};

pub struct AwsProvisioner {
    batch: aws_sdk_batch::Client,
    sfn: aws_sdk_sfn::Client,
    /// The role every state machine runs as (the stack's StateMachineRole).
    state_machine_role: String,
    /// `arn:<partition>:states:<region>:<account>:stateMachine:`.
    state_machine_arn_prefix: String,
    schedules: ScheduleSettings,
    job_roles: JobRoleSettings,
}

/// How the projects' job roles are made.
pub struct JobRoleSettings {
    pub client: aws_sdk_iam::Client,
    /// The stack's permissions boundary: what no job role can exceed, whatever its policy says.
    pub boundary_arn: String,
}

/// Where the stack's schedules send their ticks.
pub struct ScheduleSettings {
    pub client: aws_sdk_scheduler::Client,
    /// The function a tick invokes (the api function).
    pub target_arn: String,
    /// The role Scheduler assumes to invoke it (the stack's SchedulerRole).
    pub role_arn: String,
    /// Where Scheduler keeps a tick it could not deliver within its catch-up window.
    pub dead_letter_arn: String,
}

/// Scheduler's most retries of one tick (its maximum); the catch-up window ends them first.
const TICK_RETRIES: i32 = 185;

impl AwsProvisioner {
    pub fn new(
        batch: aws_sdk_batch::Client,
        sfn: aws_sdk_sfn::Client,
        state_machine_role: impl Into<String>,
        state_machine_arn_prefix: impl Into<String>,
        schedules: ScheduleSettings,
        job_roles: JobRoleSettings,
    ) -> Self {
        AwsProvisioner {
            batch,
            sfn,
            state_machine_role: state_machine_role.into(),
            state_machine_arn_prefix: state_machine_arn_prefix.into(),
            schedules,
            job_roles,
        }
    }

    /// The schedule named so, `None` if there is none.
    async fn existing_schedule(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput>, PortError> {
        match self.schedules.client.get_schedule().name(name).send().await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(port_error(&format!("reading schedule {name}"), &e)),
        }
    }
}

/// A rate's start date: the one it has (its phase is the plan's, kept across
/// versions), moved forward by whole periods past now since Scheduler refuses a
/// start date in the past; a new rate starts now.
fn rate_start(existing: Option<&aws_smithy_types::DateTime>, expression: &str) -> aws_smithy_types::DateTime {
    let now = chrono::Utc::now().timestamp();
    let period = rate_seconds(expression).unwrap_or(60);
    let start = existing.map(|d| d.secs()).unwrap_or(now);
    let behind = (now - start).max(0);
    let periods = (behind + period - 1) / period;
    aws_smithy_types::DateTime::from_secs(start + periods * period)
}

/// The period of `rate(N unit)` in seconds.
fn rate_seconds(expression: &str) -> Option<i64> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (value, unit) = inner.split_once(' ')?;
    let unit = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(value.parse::<i64>().ok()? * unit)
}

fn tick_version(input: Option<&str>) -> Option<String> {
    let input: Value = serde_json::from_str(input?).ok()?;
    Some(input.pointer(&format!("/{}/version", updraft_core::schedule::TICK_EVENT))?.as_str()?.to_string())
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
    async fn ensure_job_role(&self, name: &str, policy: &Value) -> Result<String, PortError> {
        let iam = &self.job_roles.client;
        let created = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(project_access::JOB_ROLE_TRUST_POLICY)
            .permissions_boundary(&self.job_roles.boundary_arn)
            .description("Updraft: what one project's tasks may reach in the data bucket")
            .send()
            .await;
        let arn = match created {
            Ok(created) => created.role().map(|r| r.arn().to_string()),
            // Made by an earlier registration (or one racing this one): its policy is put again below.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_already_exists_exception()) => None,
            Err(e) => return Err(port_error(&format!("creating job role {name}"), &e)),
        };
        iam.put_role_policy()
            .role_name(name)
            .policy_name(project_access::JOB_ROLE_POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|e| port_error(&format!("putting the policy of job role {name}"), &e))?;
        Ok(arn.unwrap_or_else(|| name.to_string()))
    }

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

    async fn apply_schedule(&self, schedule: &ScheduleRequest, enabled: bool) -> Result<(), PortError> {
        let name = &schedule.name;
        let existing = self.existing_schedule(name).await?;
        if !enabled {
            // Only the schedule of this version is disabled; its start date and the rest stay.
            let Some(found) = existing.filter(|f| {
                tick_version(f.target().and_then(|t| t.input())).as_deref() == Some(&schedule.plan.version)
            }) else {
                return Ok(());
            };
            let mut update = self
                .schedules
                .client
                .update_schedule()
                .name(name)
                .state(ScheduleState::Disabled)
                .set_schedule_expression(found.schedule_expression().map(str::to_string))
                .set_schedule_expression_timezone(found.schedule_expression_timezone().map(str::to_string))
                .set_flexible_time_window(found.flexible_time_window().cloned())
                .set_target(found.target().cloned());
            if let Some(start) = found.start_date().filter(|_| schedule.is_rate) {
                update = update.start_date(rate_start(Some(start), &schedule.expression));
            }
            update.send().await.map_err(|e| port_error(&format!("disabling schedule {name}"), &e))?;
            return Ok(());
        }
        let settings = &self.schedules;
        let retry = RetryPolicy::builder()
            .maximum_event_age_in_seconds(schedule.catch_up_seconds as i32)
            .maximum_retry_attempts(TICK_RETRIES)
            .build();
        let target = Target::builder()
            .arn(&settings.target_arn)
            .role_arn(&settings.role_arn)
            .input(schedule.input.to_string())
            .retry_policy(retry)
            .dead_letter_config(DeadLetterConfig::builder().arn(&settings.dead_letter_arn).build())
            .build()
            .map_err(|e| PortError::Permanent(format!("the schedule's target: {e}")))?;
        // Ticks fire at their time: a flexible window would move the kickoff time.
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| PortError::Permanent(format!("the schedule's time window: {e}")))?;
        let start =
            schedule.is_rate.then(|| rate_start(existing.as_ref().and_then(|f| f.start_date()), &schedule.expression));
        let description = format!(
            "Updraft launch plan {}/{}/{} version {}",
            schedule.plan.project, schedule.plan.domain, schedule.plan.name, schedule.plan.version
        );
        if existing.is_some() {
            settings
                .client
                .update_schedule()
                .name(name)
                .description(description)
                .schedule_expression(&schedule.expression)
                .schedule_expression_timezone(&schedule.timezone)
                .flexible_time_window(window)
                .target(target)
                .state(ScheduleState::Enabled)
                .set_start_date(start)
                .send()
                .await
                .map_err(|e| port_error(&format!("updating schedule {name}"), &e))?;
            return Ok(());
        }
        let created = settings
            .client
            .create_schedule()
            .name(name)
            .description(description)
            .schedule_expression(&schedule.expression)
            .schedule_expression_timezone(&schedule.timezone)
            .flexible_time_window(window)
            .target(target)
            .state(ScheduleState::Enabled)
            .set_start_date(start)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created meanwhile by a concurrent activation: the request repeated updates it.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => {
                Err(PortError::Transient(format!("schedule {name} was created concurrently; send the request again")))
            }
            Err(e) => Err(port_error(&format!("creating schedule {name}"), &e)),
        }
    }

    async fn find_schedule(&self, name: &str) -> Result<Option<FoundSchedule>, PortError> {
        Ok(self.existing_schedule(name).await?.map(|found| FoundSchedule {
            enabled: found.state() == Some(&ScheduleState::Enabled),
            expression: found.schedule_expression().unwrap_or_default().to_string(),
            timezone: found.schedule_expression_timezone().unwrap_or("UTC").to_string(),
            version: tick_version(found.target().and_then(|t| t.input())).unwrap_or_default(),
        }))
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
