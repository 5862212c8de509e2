//! Stopping cloud runs on AWS: the ports of `updraft_core::execution::stop` (the
//! run in DynamoDB, its Step Functions execution, its Batch jobs and child runs),
//! used by the API's abort and by the status function, which consumes Step
//! Functions' execution status events so that a run stopped, timed out or failed
//! at the execution level is recorded so, with nothing of it left running.

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

impl AwsStopper<'_> {
    fn execution_arn(&self) -> String {
        let prefix = self.runs.state_machine_arn_prefix.replacen(":stateMachine:", ":execution:", 1);
        let machine = state_machine_name(&self.runs.name_prefix, &self.workflow);
        format!("{prefix}{machine}:{}", self.execution.name)
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
    let run = DynamoRun::new(runs.dynamo.clone(), &runs.table, execution);
    let Some(workflow) = run.workflow().await? else { return Ok(None) };
    let stopper = AwsStopper { runs, execution, workflow };
    stop_run(&run, &stopper, cause).await.map(Some)
}

/// What a Step Functions "Execution Status Change" event asks of the status
/// function: the run and why it stopped; `None`: nothing to do (a run that is
/// still going or succeeded, or an execution that is not a run's).
pub fn parse_status_event(event: &Value) -> Result<Option<(ExecutionId, StopCause)>, String> {
    if event.get("detail-type").and_then(Value::as_str) != Some("Step Functions Execution Status Change") {
        return Err("the status function takes Step Functions Execution Status Change events".into());
    }
    let detail = &event["detail"];
    let text = |name: &str| detail.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
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
            StopCause::TimedOut { message: "the run's execution ran past its state machine's TimeoutSeconds".into() }
        }
        "FAILED" => StopCause::Failed {
            code: if error.is_empty() { "States.Runtime".into() } else { error },
            message: if cause.is_empty() { "the run's execution failed".into() } else { cause },
        },
        _ => return Ok(None),
    };
    Ok(Some((execution, stop)))
}

/// The status function: records the stop and stops what still runs. An error
/// that a retry may cure is returned (Lambda retries, then the events DLQ).
pub async fn handle_status_event(runs: &AwsRuns, event: &Value) -> Result<Value, String> {
    let Some((execution, cause)) = parse_status_event(event)? else {
        return Ok(serde_json::json!({"ignored": "not a stop of an Updraft run"}));
    };
    match stop(runs, &execution, &cause).await {
        Ok(Some(stopped)) => Ok(serde_json::json!({
            "execution": execution.name,
            "phase": updraft_aws::runs::stored_phase(stopped.phase),
            "stopped_nodes": stopped.stopped,
        })),
        Ok(None) => Ok(serde_json::json!({"ignored": format!("no run {} is recorded", execution.name)})),
        Err(e) => Err(format!("stopping run {}: {e}", execution.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use updraft_core::proto::core::WorkflowPhase;

    fn event(status: &str, input: Value) -> Value {
        json!({
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "detail": {
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
        let (execution, cause) = parse_status_event(&event("ABORTED", input.clone())).unwrap().unwrap();
        assert_eq!(execution, id);
        assert_eq!(cause.phase(), WorkflowPhase::WorkflowAborted);
        let (_, timed_out) = parse_status_event(&event("TIMED_OUT", input.clone())).unwrap().unwrap();
        assert_eq!(timed_out.phase(), WorkflowPhase::WorkflowTimedOut);
        let (_, failed) = parse_status_event(&event("FAILED", input.clone())).unwrap().unwrap();
        assert_eq!(failed, StopCause::Failed { code: "States.Runtime".into(), message: "bad path".into() });
        assert_eq!(parse_status_event(&event("SUCCEEDED", input.clone())).unwrap(), None);
        assert_eq!(parse_status_event(&event("RUNNING", input)).unwrap(), None);
    }

    #[test]
    fn executions_that_are_not_runs_and_other_events_are_told_apart() {
        assert_eq!(parse_status_event(&event("ABORTED", json!({}))).unwrap(), None);
        let err = parse_status_event(&json!({"detail-type": "Batch Job State Change"})).unwrap_err();
        assert!(err.contains("Execution Status Change"), "{err}");
    }
}
