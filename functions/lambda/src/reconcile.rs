//! The reconciler (the status function, every minute on the stack's schedule
//! rule): for each run in flight — one Query of a sparse index, so an idle stack
//! costs one read a minute — it asks Step Functions and Batch what the run's
//! records do not say, and repairs through the handlers the lost events would
//! have reached (`updraft_core::execution::reconcile`):
//! an ended execution whose status event was lost is handled as that event;
//! a job that ended in Batch with its end never processed is reported to the
//! node function as its "Job State Change" event; a node claimed without a job for
//! longer than the claim's lease is armed again with its token. Each repair is one
//! of the protocol's idempotent events, so a repair that races the real event
//! changes nothing.

use crate::stop::{StatusServices, execution_arn, handle_status_event, invoke_node_function};
use serde_json::{Value, json};
use updraft_aws::runs::{DynamoRun, InFlight, list_in_flight};
use updraft_aws::sdk_error::port_error;
use updraft_core::execution::reconcile::{Engine, NodeRecord, Repair, jobs_to_check, repairs};
use updraft_core::execution::stop::StopCause;
use updraft_core::ports::PortError;

/// DescribeJobs takes at most this many ids.
const DESCRIBE_JOBS_BATCH: usize = 100;

/// Whether an event is the reconciler's tick (an EventBridge scheduled rule's).
pub fn is_reconcile_event(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// A job's description as Batch's "Job State Change" event carries it (the fields
/// the node function reads).
fn job_event(job: &aws_sdk_batch::types::JobDetail) -> Value {
    let mut detail = json!({
        "jobId": job.job_id(),
        "jobName": job.job_name(),
        "status": job.status().map(|s| s.as_str()),
        "statusReason": job.status_reason(),
        "parameters": job.parameters(),
        "container": {
            "exitCode": job.container().and_then(|c| c.exit_code()),
            "logStreamName": job.container().and_then(|c| c.log_stream_name()),
        },
        "attempts": job.attempts().iter().map(|_| json!({})).collect::<Vec<_>>(),
    });
    if let Some(index) = job.array_properties().and_then(|a| a.index()) {
        detail["arrayProperties"] = json!({"index": index});
    }
    json!({"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": detail})
}

async fn engine_of(services: &StatusServices, run: &InFlight) -> Result<(Engine, Value), PortError> {
    let arn = execution_arn(&services.runs, &run.workflow, &run.execution.name);
    match services.runs.sfn.describe_execution().execution_arn(&arn).send().await {
        Ok(found) => {
            let status = found.status().as_str().to_string();
            // The status event the reconciler stands in for, if the execution ended.
            let event = json!({
                "detail-type": "Step Functions Execution Status Change",
                "source": "aws.states",
                "detail": {"executionArn": arn, "name": run.execution.name, "status": status,
                           "input": found.input(), "error": found.error(), "cause": found.cause()},
            });
            let engine = if status == "RUNNING" || status == "PENDING_REDRIVE" {
                Engine::Running
            } else {
                Engine::Ended(status)
            };
            Ok((engine, event))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => {
            Ok((Engine::Missing, Value::Null))
        }
        Err(e) => Err(port_error(&format!("describing {arn}"), &e)),
    }
}

/// The ids among `jobs` that Batch says have ended.
async fn ended_jobs(
    services: &StatusServices,
    jobs: &[String],
) -> Result<Vec<aws_sdk_batch::types::JobDetail>, PortError> {
    let mut ended = Vec::new();
    for chunk in jobs.chunks(DESCRIBE_JOBS_BATCH) {
        let described = services
            .runs
            .batch
            .describe_jobs()
            .set_jobs(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| port_error("describing jobs", &e))?;
        ended.extend(
            described
                .jobs()
                .iter()
                .filter(|j| matches!(j.status().map(|s| s.as_str()), Some("SUCCEEDED" | "FAILED")))
                .cloned(),
        );
    }
    Ok(ended)
}

/// Reconciles one run in flight; the repairs made.
async fn reconcile_run(services: &StatusServices, run: &InFlight, now_ms: u64) -> Result<Vec<Repair>, String> {
    let name = &run.execution.name;
    let (engine, status_event) = engine_of(services, run).await.map_err(|e| format!("run {name}: {e}"))?;
    let store = DynamoRun::new(services.runs.dynamo.clone(), &services.runs.table, &run.execution);
    let nodes: Vec<NodeRecord> = if engine == Engine::Running {
        store
            .node_states()
            .await
            .map_err(|e| format!("run {name}: {e}"))?
            .into_iter()
            .map(|(node, slot)| NodeRecord {
                is_child: slot.job.as_deref() == Some(crate::node::child_name(name, &node).as_str()),
                job: slot.job,
                claimed_at: slot.claimed_at,
                token: slot.token,
                ended: slot.end.is_some(),
                settled: slot.settled,
                node,
            })
            .collect()
    } else {
        Vec::new()
    };
    let described = ended_jobs(services, &jobs_to_check(&nodes)).await.map_err(|e| format!("run {name}: {e}"))?;
    let ended: Vec<String> = described.iter().filter_map(|j| j.job_id().map(str::to_string)).collect();
    let found = repairs(&engine, run.created_ms, &nodes, &ended, now_ms);
    for repair in &found {
        match repair {
            Repair::EngineEnded(_) => {
                handle_status_event(services, &status_event).await?;
            }
            Repair::NeverStarted => {
                let cause = StopCause::Failed {
                    code: "NeverStarted".into(),
                    message: "the run was recorded but its execution never started (the launch did not finish); \
                              launch it again"
                        .into(),
                };
                crate::stop::stop(&services.runs, &run.execution, &cause)
                    .await
                    .map_err(|e| format!("run {name}: {e}"))?;
            }
            Repair::JobEnded { job, .. } => {
                let detail = described.iter().find(|j| j.job_id() == Some(job.as_str())).expect("a described job");
                invoke_node_function(services, &job_event(detail)).await.map_err(|e| format!("run {name}: {e}"))?;
            }
            Repair::Rearm { node, token } | Repair::Settle { node, token } => {
                let w = &run.workflow;
                let arm = json!({
                    "action": "arm", "execution": name, "node": node, "token": token,
                    "workflow": {"project": w.project, "domain": w.domain, "name": w.name, "version": w.version},
                });
                invoke_node_function(services, &arm).await.map_err(|e| format!("run {name}: {e}"))?;
            }
        }
    }
    Ok(found)
}

/// One pass over every run in flight. A run whose repair fails does not stop the
/// others; the pass fails at the end (and is retried) if any did.
pub async fn reconcile(services: &StatusServices, now_ms: u64) -> Result<Value, String> {
    let runs = list_in_flight(&services.runs.dynamo, &services.runs.table).await.map_err(|e| e.to_string())?;
    let mut repaired = Vec::new();
    let mut failures = Vec::new();
    for run in &runs {
        match reconcile_run(services, run, now_ms).await {
            Ok(found) if !found.is_empty() => {
                tracing::info!(run = run.execution.name, repairs = ?found, "reconciled");
                repaired.push(json!({"run": run.execution.name, "repairs": format!("{found:?}")}));
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} of {} runs could not be reconciled: {}",
            failures.len(),
            runs.len(),
            failures.join("; ")
        ));
    }
    Ok(json!({"runs_in_flight": runs.len(), "repaired": repaired}))
}
