//! The `Runs` port on AWS: a launch records the run in the metadata table
//! (inputs, one node item per node with its upstream count) and then starts the
//! workflow version's state machine with the run's name as the execution name;
//! a GET answers from the table alone, never from Step Functions.

use serde_json::Value;
use updraft_aws::registry::timestamp;
use updraft_aws::runs::{DynamoRun, Launch, ValuesBucket, list_runs, list_ticks, phase_of_stored, record_tick};
use updraft_aws::sdk_error::port_error;
use updraft_core::cost::{self, PriceTable};
use updraft_core::execution::node::Outputs;
use updraft_core::execution::stop::{StopCause, Stopped};
use updraft_core::ports::{LaunchOrigin, LogPage, Page, PageRequest, PortError, RunFilter, Runs};
use updraft_core::proto::Timestamp;
use updraft_core::proto::api::ScheduleTick;
use updraft_core::proto::core::{
    AttemptRecord, CacheStatus, CompiledWorkflow, Execution, ExecutionError, ExecutionId, Identifier, LaunchMode,
    LiteralMap, NodeExecution, NodeExecutionId, NodePhase, ResourceType, RunUsage, WorkflowPhase,
};
use updraft_core::state_machine::state_machine_name;

pub struct AwsRuns {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// Terminates the jobs of runs that are stopped.
    pub batch: aws_sdk_batch::Client,
    pub table: String,
    pub name_prefix: String,
    /// `arn:<partition>:states:<region>:<account>:stateMachine:`.
    pub state_machine_arn_prefix: String,
    /// Reads tasks' logs (the api function's; `None` elsewhere), with the map
    /// manifests in `values`' bucket, which say which array child ran an item.
    pub logs: Option<JobLogs>,
    /// Where run inputs and node outputs too large for their records are kept
    /// (the api and node functions'; without it a run's inputs must fit its record).
    pub values: Option<ValuesBucket>,
}

/// Where tasks' logs are: CloudWatch Logs, the stack's job log group.
pub struct JobLogs {
    pub client: aws_sdk_cloudwatchlogs::Client,
    pub group: String,
}

fn between(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<updraft_core::proto::Duration> {
    let (from, to) = (from?, to?);
    let nanos = (to.seconds - from.seconds) as i128 * 1_000_000_000 + (to.nanos - from.nanos) as i128;
    let nanos = nanos.max(0);
    Some(updraft_core::proto::Duration {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    })
}

fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn literals(record: &Value, key: &str) -> Option<LiteralMap> {
    serde_json::from_str(text(record, key)).ok()
}

/// The IDL's view of a stored run.
fn execution_of(id: &ExecutionId, record: &Value) -> Execution {
    let phase = phase_of_stored(text(record, "run_phase"));
    let error = serde_json::from_str::<Value>(text(record, "run_error")).ok().filter(|e| !e.is_null()).map(|e| {
        ExecutionError {
            code: text(&e, "Error").to_string(),
            message: text(&e, "Cause").to_string(),
            ..Default::default()
        }
    });
    let created = timestamp(text(record, "created_at"));
    let ended = timestamp(text(record, "ended_at"));
    Execution {
        id: Some(id.clone()),
        workflow_id: Some(Identifier {
            resource_type: ResourceType::Workflow as i32,
            project: id.project.clone(),
            domain: id.domain.clone(),
            name: text(record, "workflow_name").into(),
            version: text(record, "workflow_version").into(),
        }),
        inputs: literals(record, "run_inputs"),
        phase: phase as i32,
        created_at: created,
        started_at: created,
        updated_at: ended,
        duration: between(created, ended),
        error,
        mode: LaunchMode::from_str_name(text(record, "launch_mode")).unwrap_or_default() as i32,
        launch_plan_id: (!text(record, "plan_name").is_empty()).then(|| Identifier {
            resource_type: ResourceType::LaunchPlan as i32,
            project: id.project.clone(),
            domain: id.domain.clone(),
            name: text(record, "plan_name").into(),
            version: text(record, "plan_version").into(),
        }),
        principal: text(record, "principal").into(),
        scheduled_at: timestamp(text(record, "scheduled_at")),
        recovered_from: text(record, "recovered_from").into(),
        ..Default::default()
    }
}

/// A node's record; in a run that has ended, a node that never started was skipped
/// (a local run records those SKIPPED too).
fn node_of(id: &ExecutionId, record: &Value, run_ended: bool) -> NodeExecution {
    let waiting = if run_ended { NodePhase::Skipped } else { NodePhase::Queued };
    let phase = NodePhase::from_str_name(text(record, "node_phase")).unwrap_or(waiting);
    let error = (!text(record, "failure_code").is_empty()).then(|| ExecutionError {
        code: text(record, "failure_code").into(),
        message: text(record, "failure_message").into(),
        node_id: text(record, "node").into(),
        log_uri: text(record, "log_uri").into(),
        ..Default::default()
    });
    let (started, ended) = (timestamp(text(record, "started_at")), timestamp(text(record, "ended_at")));
    let count = |name: &str| record.get(name).and_then(Value::as_u64).unwrap_or(0) as u32;
    // A cacheable task records its key whether it hit, ran and filled the cache, or failed.
    let cache_key = text(record, "cache_key");
    let cache_status = match phase {
        NodePhase::Cached => CacheStatus::CacheHit,
        _ if cache_key.is_empty() => CacheStatus::CacheDisabled,
        NodePhase::Succeeded => CacheStatus::CachePopulated,
        _ => CacheStatus::CacheMiss,
    };
    let attempt_records = serde_json::from_str(text(record, "attempt_records")).unwrap_or_default();
    NodeExecution {
        id: Some(NodeExecutionId { execution_id: Some(id.clone()), node_id: text(record, "node").into() }),
        phase: phase as i32,
        started_at: started,
        updated_at: ended,
        duration: between(started, ended),
        cache_status: cache_status as i32,
        cache_key: cache_key.into(),
        branch_taken: text(record, "branch_taken").into(),
        attempt_records,
        outputs: literals(record, "node_outputs"),
        attempts: count("node_attempts"),
        items_done: count("items_done"),
        items_failed: count("items_failed"),
        items_total: count("items_total"),
        error,
        ..Default::default()
    }
}

/// What a run's item (its execution's or a node's) recorded of its usage: the
/// node function's metered invocations and a job's attempts (docs/cost.md).
fn recorded_usage(record: &Value) -> RunUsage {
    let number = |name: &str| record.get(name).and_then(Value::as_f64).unwrap_or(0.0);
    RunUsage {
        lambda_invocations: number("u_invocations") as u64,
        lambda_gb_seconds: number("u_lambda_gb_s"),
        dynamodb_read_units: number("u_ddb_reads") as u64,
        dynamodb_write_units: number("u_ddb_writes") as u64,
        s3_read_requests: number("u_s3_reads") as u64,
        s3_write_requests: number("u_s3_writes") as u64,
        batch_vcpu_seconds: number("u_vcpu_s"),
        batch_gb_seconds: number("u_gb_s"),
        batch_gpu_seconds: number("u_gpu_s"),
        batch_attempts: number("u_attempts") as u32,
        ..RunUsage::default()
    }
}

impl AwsRuns {
    /// The state transitions Step Functions bills a run's execution for: one per
    /// state entered, counted in its history (a run that ended has a complete one).
    async fn state_transitions(&self, workflow: &Identifier, name: &str) -> Result<u64, PortError> {
        let arn = crate::stop::execution_arn(self, workflow, name);
        let mut pages = self.sfn.get_execution_history().execution_arn(&arn).max_results(1000).into_paginator().send();
        let mut entered = 0;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // Its execution is gone (Step Functions keeps an ended one for 90 days): unknown, not an error.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => return Ok(0),
                Err(e) => return Err(port_error("reading a run's history", &e)),
            };
            entered += page.events().iter().filter(|e| e.r#type().as_str().ends_with("StateEntered")).count() as u64;
        }
        Ok(entered)
    }

    /// The record of run `execution`, with the bucket its large values are kept in.
    pub(crate) fn run_store(&self, execution: &ExecutionId) -> DynamoRun {
        let run = DynamoRun::new(self.dynamo.clone(), &self.table, execution);
        match &self.values {
            Some(values) => run.with_values_bucket(values.clone()),
            None => run,
        }
    }

    /// The runs of the stack whose table, name prefix and state machine ARN
    /// prefix the template sets on `function`'s variables.
    pub fn from_env(
        sdk: &updraft_aws::config::SdkConfig,
        dynamo: aws_sdk_dynamodb::Client,
        function: &str,
    ) -> Result<AwsRuns, String> {
        let required = |name: &str| crate::required_env(name, function);
        Ok(AwsRuns {
            dynamo,
            sfn: aws_sdk_sfn::Client::new(sdk),
            batch: aws_sdk_batch::Client::new(sdk),
            table: required("UPDRAFT_TABLE")?,
            name_prefix: required("UPDRAFT_NAME_PREFIX")?,
            state_machine_arn_prefix: required("UPDRAFT_STATE_MACHINE_PREFIX")?,
            logs: None,
            values: None,
        })
    }

    /// The log stream of a node's job (or of its array job's `child`): the one its
    /// end recorded (`log_uri` `cloudwatch:<group>:<stream>`), else, while it runs,
    /// Batch's description of its job (the stream exists once the container
    /// starts); `None` before that.
    async fn log_stream(
        &self,
        node: &Value,
        child: Option<usize>,
        group: &str,
    ) -> Result<Option<(String, String)>, PortError> {
        let recorded = text(node, "log_uri").strip_prefix("cloudwatch:").and_then(|r| r.split_once(':'));
        if let (Some((group, stream)), None) = (recorded, child) {
            return Ok(Some((group.to_string(), stream.to_string())));
        }
        let job = match (text(node, "job_id"), child) {
            ("", _) => return Ok(None),
            // An array job's child is `<parent id>:<index>`.
            (job, Some(child)) => format!("{job}:{child}"),
            (job, None) => job.to_string(),
        };
        let described = self
            .batch
            .describe_jobs()
            .jobs(&job)
            .send()
            .await
            .map_err(|e| port_error("describing a node's job", &e))?;
        let stream = described
            .jobs()
            .first()
            .and_then(|j| j.container())
            .and_then(|c| c.log_stream_name())
            .filter(|s| !s.is_empty());
        Ok(stream.map(|s| (group.to_string(), s.to_string())))
    }

    /// Records a run and starts its version's state machine with `input` (a
    /// subworkflow's run carries its parent there). A run of that name exists:
    /// `Conflict`, and nothing starts.
    pub async fn start(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
        origin: &LaunchOrigin,
        input: &Value,
    ) -> Result<(), PortError> {
        let id = self.record(execution, workflow, inputs, overwrite_cache, origin).await?;
        self.start_execution(&id, execution, input).await
    }

    /// [`start`](AwsRuns::start) for a run that may have been started before by a
    /// call that died between its two writes (a subworkflow's child run, started
    /// again by a redelivered event): the record written before is kept, and the
    /// execution is started unless it exists. Idempotent.
    pub async fn ensure_started(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
        input: &Value,
    ) -> Result<(), PortError> {
        let id = workflow.template.as_ref().and_then(|t| t.id.clone()).unwrap_or_default();
        let origin = LaunchOrigin { mode: LaunchMode::ChildWorkflow, ..Default::default() };
        match self.record(execution, workflow, inputs, overwrite_cache, &origin).await {
            Ok(_) | Err(PortError::Conflict(_)) => self.start_execution(&id, execution, input).await,
            Err(e) => Err(e),
        }
    }

    /// Writes the run's record (its inputs; its nodes' items come with their first
    /// writes); `Conflict` when one of that
    /// name exists. The workflow version it runs.
    async fn record(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
        origin: &LaunchOrigin,
    ) -> Result<Identifier, PortError> {
        let template = workflow.template.clone().unwrap_or_default();
        let id = template.id.clone().unwrap_or_default();
        let run = self.run_store(execution);
        run.create(&Launch { workflow: &id, inputs, overwrite_cache, origin }).await?;
        Ok(id)
    }

    /// Starts the state machine of `workflow` as `execution`. Step Functions
    /// answers a running execution of that name and input with itself; one that
    /// has ended (`ExecutionAlreadyExists`) was started before, which is all we want.
    async fn start_execution(
        &self,
        workflow: &Identifier,
        execution: &ExecutionId,
        input: &Value,
    ) -> Result<(), PortError> {
        let machine = format!("{}{}", self.state_machine_arn_prefix, state_machine_name(&self.name_prefix, workflow));
        // The status function finds the run of an execution's status event by this.
        let mut input = input.clone();
        input["run"] = serde_json::json!({"project": execution.project, "domain": execution.domain});
        match self
            .sfn
            .start_execution()
            .state_machine_arn(&machine)
            .name(&execution.name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => Ok(()),
            Err(e) => Err(port_error(&format!("starting {machine}"), &e)),
        }
    }
}

impl Runs for AwsRuns {
    async fn launch(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
        origin: &LaunchOrigin,
    ) -> Result<bool, PortError> {
        let none = serde_json::json!({});
        match self.start(execution, workflow, inputs, overwrite_cache, origin, &none).await {
            Ok(()) => Ok(true),
            Err(PortError::Conflict(message)) => {
                // The same launch again (a retried request or tick): the same run, started
                // now if the call that recorded it died before starting it.
                let id = workflow.template.as_ref().and_then(|t| t.id.clone()).unwrap_or_default();
                let run = self.run_store(execution);
                let same = run.launched().await?.is_some_and(|(recorded, recorded_inputs)| {
                    recorded.name == id.name && recorded.version == id.version && recorded_inputs == *inputs
                });
                if !same {
                    return Err(PortError::Conflict(message));
                }
                self.start_execution(&id, execution, &none).await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        project: &str,
        domain: &str,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Page<Execution>, PortError> {
        let (runs, next_token) = list_runs(&self.dynamo, &self.table, project, domain, filter, page).await?;
        let items = runs
            .iter()
            .map(|(name, record)| {
                let id = ExecutionId { project: project.into(), domain: domain.into(), name: name.clone() };
                execution_of(&id, record)
            })
            .collect();
        Ok(Page { items, next_token })
    }

    async fn record_tick(&self, plan: &Identifier, tick: &ScheduleTick) -> Result<(), PortError> {
        record_tick(&self.dynamo, &self.table, plan, tick).await
    }

    async fn ticks(&self, plan: &Identifier, page: &PageRequest) -> Result<Page<ScheduleTick>, PortError> {
        let (items, next_token) = list_ticks(&self.dynamo, &self.table, plan, page).await?;
        Ok(Page { items, next_token })
    }

    async fn abort(&self, execution: &ExecutionId, by: &str, reason: &str) -> Result<Option<Stopped>, PortError> {
        let cause = StopCause::Aborted { by: by.to_string(), reason: reason.to_string() };
        crate::stop::stop(self, execution, &cause).await
    }

    async fn node_log(
        &self,
        execution: &ExecutionId,
        node: &str,
        item: Option<usize>,
        attempt: Option<u32>,
        token: &str,
        limit: usize,
    ) -> Result<Option<LogPage>, PortError> {
        let (Some(logs), Some(values)) = (&self.logs, &self.values) else {
            return Err(PortError::Invalid("this function reads no logs".into()));
        };
        let run = self.run_store(execution);
        // A node's stream and the run's phase: no value of the run is read.
        let Some((record, nodes)) = run.record_without_values().await? else { return Ok(None) };
        let Some(found) = nodes.iter().find(|n| text(n, "node") == node) else { return Ok(None) };
        let ended = !text(found, "node_phase").is_empty() || text(&record, "run_phase") != "RUNNING";
        // A map's items run on the array job's children; the manifest says which child ran an
        // item (a child that strides over several items writes them to its stream in turn).
        let child = match item {
            None => None,
            Some(item) => {
                let prefix = crate::node::items_prefix_of(&values.bucket, execution, node);
                let Some(manifest) = crate::node::read_manifest(&values.s3, &prefix).await? else {
                    return Ok(Some(LogPage { ended, ..LogPage::default() }));
                };
                let (child, _) = manifest.child_of(item).ok_or_else(|| {
                    PortError::NotFound(format!(
                        "item {item} of node {node} did not run in run {}: its outputs were reused (from the \
                         cache, or from the run it recovers), so its log is the run's that computed them",
                        execution.name
                    ))
                })?;
                // One child is no array job: the job's own stream holds its items.
                (manifest.children > 1).then_some(child)
            }
        };
        let chosen = match (attempt, item) {
            (None, _) => None,
            (Some(_), Some(_)) => {
                return Err(PortError::Invalid(
                    "a map item's log is its child's last attempt: ask for the item without an attempt".into(),
                ));
            }
            (Some(attempt), None) => {
                let records: Vec<AttemptRecord> =
                    serde_json::from_str(text(found, "attempt_records")).unwrap_or_default();
                let record = records.iter().find(|r| r.attempt == attempt).ok_or_else(|| {
                    PortError::NotFound(format!(
                        "node {node} of run {} has no attempt {attempt} on record (it made {})",
                        execution.name,
                        records.len()
                    ))
                })?;
                let recorded = record.log_uri.strip_prefix("cloudwatch:").and_then(|r| r.split_once(':'));
                match recorded {
                    Some((group, stream)) => Some((group.to_string(), stream.to_string())),
                    None => return Ok(Some(LogPage { ended, ..LogPage::default() })),
                }
            }
        };
        let stream = match chosen {
            Some(chosen) => Some(chosen),
            None => self.log_stream(found, child, &logs.group).await?,
        };
        let Some((group, stream)) = stream else {
            return Ok(Some(LogPage { ended, ..LogPage::default() }));
        };
        let mut request = logs
            .client
            .get_log_events()
            .log_group_name(&group)
            .log_stream_name(&stream)
            .start_from_head(true)
            .limit(limit.clamp(1, 10_000) as i32);
        if !token.is_empty() {
            request = request.next_token(token);
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            // A stream Batch named but the container has not written to yet.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(Some(LogPage { stream, ended, next_token: token.to_string(), ..LogPage::default() }));
            }
            Err(e) => return Err(port_error("reading a node's log", &e)),
        };
        let events = answer
            .events()
            .iter()
            .map(|e| (e.timestamp().unwrap_or_default(), e.message().unwrap_or_default().to_string()))
            .collect();
        let next_token = answer.next_forward_token().unwrap_or(token).to_string();
        Ok(Some(LogPage { events, next_token, stream, ended }))
    }

    async fn ended_node(&self, execution: &ExecutionId, node: &str) -> Result<Option<NodeExecution>, PortError> {
        // One GetItem (and its kept outputs), not the run's every record and its history.
        let record = self.run_store(execution).node_record(node).await?;
        Ok(record.filter(|r| !text(r, "node_phase").is_empty()).map(|r| node_of(execution, &r, true)))
    }

    async fn get(&self, execution: &ExecutionId) -> Result<Option<(Execution, Vec<NodeExecution>)>, PortError> {
        let run = self.run_store(execution);
        let Some((record, node_records)) = run.record().await? else { return Ok(None) };
        let mut execution = execution_of(execution, &record);
        let ended = execution.phase != WorkflowPhase::WorkflowRunning as i32;
        let id = execution.id.clone().unwrap_or_default();
        let nodes = node_records.iter().map(|n| node_of(&id, n, ended)).collect();
        if ended && let Some(workflow) = &execution.workflow_id {
            let mut usage = RunUsage {
                state_transitions: self.state_transitions(workflow, &id.name).await?,
                ..RunUsage::default()
            };
            for record in std::iter::once(&record).chain(&node_records) {
                cost::add(&mut usage, &recorded_usage(record));
            }
            execution.cost = Some(cost::estimate(&usage, &PriceTable::default()));
        }
        Ok(Some((execution, nodes)))
    }
}
