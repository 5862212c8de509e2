//! Stopping cloud runs on AWS: the ports of `updraft_core::execution::stop` (the
//! run in DynamoDB, its Step Functions execution, its Batch jobs and child runs),
//! used by the API's abort and by the status function, which consumes Step
//! Functions' execution status events so that a run stopped, timed out or failed
//! at the execution level is recorded so, with nothing of it left running. A
//! subworkflow's run stopped that way never reaches its "Tell parent" state, so
//! the status function tells the parent node itself (the node function's
//! `child_ended`, the same event that state sends).

use crate::launch::AwsRuns;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use updraft_aws::runs::DynamoRun;
use updraft_aws::sdk_error::port_error;
use updraft_core::execution::stop::{LiveJob, StopCause, Stopped, Stopper, stop_run};
use updraft_core::ports::PortError;
use updraft_core::proto::core::{ExecutionId, Identifier};
use updraft_core::state_machine::state_machine_name;

/// Batch keeps at most this much of a termination reason.
const MAX_REASON: usize = 1024;

/// One run's engine execution and jobs.
struct AwsStopper<'a> {
    runs: &'a AwsRuns,
    execution: &'a ExecutionId,
    workflow: Identifier,
}

/// The ARN of run `name`'s execution of `workflow`'s state machine.
pub fn execution_arn(runs: &AwsRuns, workflow: &Identifier, name: &str) -> String {
    let prefix = runs.state_machine_arn_prefix.replacen(":stateMachine:", ":execution:", 1);
    format!("{prefix}{}:{name}", state_machine_name(&runs.name_prefix, workflow))
}

impl AwsStopper<'_> {
    fn execution_arn(&self) -> String {
        execution_arn(self.runs, &self.workflow, &self.execution.name)
    }
}

impl Stopper for AwsStopper<'_> {
    async fn stop_engine(&self, reason: &str) -> Result<(), PortError> {
        let arn = self.execution_arn();
        let stopped = self.runs.sfn.stop_execution().execution_arn(&arn).cause(clip(reason)).send().await;
        match stopped {
            // Stopping an execution that has ended changes nothing; one never started has nothing to stop.
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => Ok(()),
            Err(e) => Err(port_error(&format!("stopping {arn}"), &e)),
        }
    }

    async fn stop_job(&self, live: &LiveJob, reason: &str) -> Result<(), PortError> {
        // A subworkflow node's job is its child run, recorded by name.
        if live.job == crate::node::child_name(&self.execution.name, &live.node) {
            let child = ExecutionId { name: live.job.clone(), ..self.execution.clone() };
            let cause = StopCause::Aborted {
                by: format!("its parent run {}", self.execution.name),
                reason: reason.to_string(),
            };
            return stop_boxed(self.runs, child, cause).await.map(|_| ());
        }
        // Terminating an array job terminates its children; a job that ended is left as it is.
        self.runs
            .batch
            .terminate_job()
            .job_id(&live.job)
            .reason(clip(reason))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error(&format!("terminating job {} of node {}", live.job, live.node), &e))
    }
}

fn clip(reason: &str) -> String {
    reason.chars().take(MAX_REASON).collect()
}

/// [`stop`] behind a box: a run stops its child runs with it (recursion).
fn stop_boxed(
    runs: &AwsRuns,
    execution: ExecutionId,
    cause: StopCause,
) -> Pin<Box<dyn Future<Output = Result<Option<Stopped>, PortError>> + Send + '_>> {
    Box::pin(async move { stop(runs, &execution, &cause).await })
}

/// Stops `execution` (see `updraft_core::execution::stop`); `None`: no such run.
pub async fn stop(runs: &AwsRuns, execution: &ExecutionId, cause: &StopCause) -> Result<Option<Stopped>, PortError> {
    Ok(stop_with_workflow(runs, execution, cause).await?.map(|(stopped, _)| stopped))
}

/// [`stop`], with the workflow version the run runs (read once, for the stop and the caller).
async fn stop_with_workflow(
    runs: &AwsRuns,
    execution: &ExecutionId,
    cause: &StopCause,
) -> Result<Option<(Stopped, Identifier)>, PortError> {
    let run = DynamoRun::new(runs.dynamo.clone(), &runs.table, execution);
    let Some(workflow) = run.workflow().await? else { return Ok(None) };
    let stopper = AwsStopper { runs, execution, workflow: workflow.clone() };
    Ok(Some((stop_run(&run, &stopper, cause).await?, workflow)))
}

/// A run stopped by a status event.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusStop {
    pub execution: ExecutionId,
    pub cause: StopCause,
    /// A subworkflow's run: its parent node (the `parent` of its input).
    pub parent: Option<Value>,
}

/// The detail type of Step Functions' execution status events.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// What a Step Functions "Execution Status Change" event asks of the status
/// function: the run and why it stopped; `None`: nothing to do (a run that is
/// still going or succeeded, or an execution that is not a run's). Only Step
/// Functions' own events (`source: aws.states`, which no one else can send
/// through EventBridge) about the stack's state machines (ARNs starting with
/// `state_machines`) are taken: the rule filters so too, this holds for a
/// direct invocation.
pub fn parse_status_event(event: &Value, state_machines: &str) -> Result<Option<StatusStop>, String> {
    if event.get("detail-type").and_then(Value::as_str) != Some(STATUS_CHANGE) {
        return Err("the status function takes Step Functions Execution Status Change events".into());
    }
    let source = event.get("source").and_then(Value::as_str).unwrap_or_default();
    if source != "aws.states" {
        return Err(format!("a status change from source {source:.40?}: only aws.states's are taken"));
    }
    let detail = &event["detail"];
    let text = |name: &str| detail.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let machine = text("stateMachineArn");
    if !machine.starts_with(state_machines) {
        return Err(format!("state machine {machine:.200?} is not one of this stack's ({state_machines}*)"));
    }
    // The run's project and domain travel in the execution's input (set at launch).
    let input: Value = serde_json::from_str(&text("input")).unwrap_or(Value::Null);
    let field = |name: &str| input.pointer(&format!("/run/{name}")).and_then(Value::as_str).map(str::to_string);
    let (Some(project), Some(domain)) = (field("project"), field("domain")) else {
        return Ok(None);
    };
    let execution = ExecutionId { project, domain, name: text("name") };
    let (error, cause) = (text("error"), text("cause"));
    let stop = match text("status").as_str() {
        "ABORTED" => StopCause::Aborted {
            by: "Step Functions".into(),
            reason: if cause.is_empty() { "StopExecution was called on the run's execution".into() } else { cause },
        },
        "TIMED_OUT" => {
            StopCause::TimedOut { message: "the run ran past its timeout (its state machine's TimeoutSeconds)".into() }
        }
        "FAILED" => StopCause::Failed {
            code: if error.is_empty() { "States.Runtime".into() } else { error },
            message: if cause.is_empty() { "the run's execution failed".into() } else { cause },
        },
        _ => return Ok(None),
    };
    let parent = input.get("parent").filter(|p| p.is_object()).cloned();
    Ok(Some(StatusStop { execution, cause: stop, parent }))
}

/// The node function's `child_ended` event for a child run that `cause` stopped
/// (`workflow`: the child's), with a failure code of the failure table.
pub fn child_ended_event(stop: &StatusStop, workflow: &Identifier, parent: &Value) -> Value {
    let (code, message) = stop.cause.error();
    let code = match &stop.cause {
        StopCause::Aborted { .. } => "Aborted".to_string(),
        StopCause::TimedOut { .. } => "Timeout".to_string(),
        StopCause::Failed { .. } => code,
    };
    serde_json::json!({
        "action": "child_ended",
        "workflow": {"project": workflow.project, "domain": workflow.domain, "name": workflow.name,
                     "version": workflow.version},
        "execution": stop.execution.name,
        "parent": parent,
        "succeeded": false,
        "error": {"Error": code, "Cause": message},
    })
}

/// What the status function works with.
pub struct StatusServices {
    pub runs: AwsRuns,
    pub lambda: aws_sdk_lambda::Client,
    /// The node function, told when a child run stops.
    pub node_function: String,
    /// The events dead-letter queue the reconciler drains.
    pub sqs: aws_sdk_sqs::Client,
    pub dead_letter_queue_url: String,
}

/// Sends `function` the event `payload`, asynchronously: Lambda retries it, then the
/// function's dead-letter queue keeps it. `what` names the call in errors.
pub(crate) async fn invoke_async(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    payload: &Value,
    what: &str,
) -> Result<(), PortError> {
    lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| port_error(what, &e))
}

/// Sends the node function one of its events, asynchronously ([`invoke_async`]).
pub(crate) async fn invoke_node_function(services: &StatusServices, payload: &Value) -> Result<(), PortError> {
    invoke_async(&services.lambda, &services.node_function, payload, "invoking the node function").await
}

/// Sends the node function one of its events and waits for its answer: `Ok` once
/// the function handled it (the reconciler deletes a drained dead letter only then).
pub(crate) async fn invoke_node_function_and_wait(services: &StatusServices, payload: &Value) -> Result<(), String> {
    let answer = services
        .lambda
        .invoke()
        .function_name(&services.node_function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| port_error("invoking the node function", &e).to_string())?;
    match answer.function_error() {
        None => Ok(()),
        Some(kind) => {
            let body = answer.payload().map(|p| String::from_utf8_lossy(p.as_ref()).into_owned()).unwrap_or_default();
            Err(format!("the node function failed ({kind}): {body}"))
        }
    }
}

/// The status function: records the stop, stops what still runs, and tells a
/// child run's parent node. An error that a retry may cure is returned (Lambda
/// retries, then the events DLQ); every step is idempotent.
pub async fn handle_status_event(services: &StatusServices, event: &Value) -> Result<Value, String> {
    let runs = &services.runs;
    let state_machines = format!("{}{}-", runs.state_machine_arn_prefix, runs.name_prefix);
    let Some(status) = parse_status_event(event, &state_machines)? else {
        return Ok(serde_json::json!({"ignored": "not a stop of an Updraft run"}));
    };
    let name = &status.execution.name;
    let (stopped, workflow) = match stop_with_workflow(&services.runs, &status.execution, &status.cause).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(serde_json::json!({"ignored": format!("no run {name} is recorded")})),
        Err(e) => return Err(format!("stopping run {name}: {e}")),
    };
    if let Some(parent) = &status.parent {
        let payload = child_ended_event(&status, &workflow, parent);
        invoke_node_function(services, &payload).await.map_err(|e| format!("telling the parent of run {name}: {e}"))?;
    }
    Ok(serde_json::json!({
        "execution": name,
        "phase": updraft_aws::runs::stored_phase(stopped.phase),
        "stopped_nodes": stopped.stopped,
        "told_parent": status.parent.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use updraft_core::proto::core::WorkflowPhase;

    /// The stack's state machines (name prefix `u`).
    const MACHINES: &str = "arn:aws:states:us-east-1:1:stateMachine:u-";

    fn event(status: &str, input: Value) -> Value {
        json!({
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "detail": {
                "stateMachineArn": format!("{MACHINES}p-d-wf-v1"),
                "executionArn": "arn:aws:states:us-east-1:1:execution:u-p-d-wf-v1:nightly",
                "name": "nightly", "status": status, "input": input.to_string(),
                "error": if status == "FAILED" { json!("States.Runtime") } else { Value::Null },
                "cause": if status == "FAILED" { json!("bad path") } else { Value::Null },
            }
        })
    }

    #[test]
    fn status_events_become_stops_of_the_run_their_input_names() {
        let input = json!({"run": {"project": "p", "domain": "d"}});
        let id = ExecutionId { project: "p".into(), domain: "d".into(), name: "nightly".into() };
        let aborted = parse_status_event(&event("ABORTED", input.clone()), MACHINES).unwrap().unwrap();
        assert_eq!((&aborted.execution, aborted.parent.as_ref()), (&id, None));
        assert_eq!(aborted.cause.phase(), WorkflowPhase::WorkflowAborted);
        let timed_out = parse_status_event(&event("TIMED_OUT", input.clone()), MACHINES).unwrap().unwrap();
        assert_eq!(timed_out.cause.phase(), WorkflowPhase::WorkflowTimedOut);
        let failed = parse_status_event(&event("FAILED", input.clone()), MACHINES).unwrap().unwrap();
        assert_eq!(failed.cause, StopCause::Failed { code: "States.Runtime".into(), message: "bad path".into() });
        assert_eq!(parse_status_event(&event("SUCCEEDED", input.clone()), MACHINES).unwrap(), None);
        assert_eq!(parse_status_event(&event("RUNNING", input), MACHINES).unwrap(), None);
    }

    #[test]
    fn a_stopped_child_run_tells_its_parent_node_as_its_tell_parent_state_would() {
        let parent = json!({"project": "p", "domain": "d", "execution": "nightly", "workflow": "outer",
                            "version": "v1", "node": "sub"});
        let input = json!({"run": {"project": "p", "domain": "d"}, "parent": parent});
        let stop = parse_status_event(&event("TIMED_OUT", input), MACHINES).unwrap().unwrap();
        assert_eq!(stop.parent.as_ref(), Some(&parent));
        let child = Identifier {
            project: "p".into(),
            domain: "d".into(),
            name: "inner".into(),
            version: "v1".into(),
            ..Default::default()
        };
        let told = child_ended_event(&stop, &child, &parent);
        // The node function reads it as it reads the state's event: the parent node fails with a table code.
        match crate::node::parse_event(&told).unwrap() {
            crate::node::NodeEvent::ChildEnded { run, node, child, succeeded, error } => {
                assert_eq!((run.execution.name.as_str(), node.as_str(), succeeded), ("nightly", "sub", false));
                assert_eq!(child.workflow.name, "inner");
                assert_eq!(error["Error"], "Timeout");
            }
            other => panic!("not a child's end: {other:?}"),
        }
    }

    #[test]
    fn status_events_of_other_sources_or_other_state_machines_are_refused() {
        let input = json!({"run": {"project": "p", "domain": "d"}});
        let mut forged = event("ABORTED", input.clone());
        forged["source"] = json!("my.app");
        assert!(parse_status_event(&forged, MACHINES).unwrap_err().contains("only aws.states's are taken"));
        let mut other = event("ABORTED", input);
        other["detail"]["stateMachineArn"] = json!("arn:aws:states:us-east-1:1:stateMachine:other-stack-wf");
        assert!(parse_status_event(&other, MACHINES).unwrap_err().contains("is not one of this stack's"));
    }

    #[test]
    fn executions_that_are_not_runs_and_other_events_are_told_apart() {
        assert_eq!(parse_status_event(&event("ABORTED", json!({})), MACHINES).unwrap(), None);
        let err = parse_status_event(&json!({"detail-type": "Batch Job State Change"}), MACHINES).unwrap_err();
        assert!(err.contains("Execution Status Change"), "{err}");
    }
}
