//! The reconciler (the status function, every minute on the stack's schedule
//! rule): for each run in flight — one Query of a sparse index, so an idle stack
//! costs one read a minute — it asks Step Functions and Batch what the run's
//! records do not say, and repairs through the handlers the lost events would
//! have reached (`updraft_core::execution::reconcile`):
//! an ended execution whose status event was lost is handled as that event;
//! a job that ended in Batch with its end never processed is reported to the
//! node function as its "Job State Change" event; a node claimed without a job for
//! longer than the claim's lease, or ended but not settled, is armed again with
//! its token; and the events dead-letter queue is drained through the handlers
//! its events missed. Each repair is one
//! of the protocol's idempotent events, so a repair that races the real event
//! changes nothing.

use crate::stop::{StatusServices, execution_arn, handle_status_event, invoke_node_function};
use aws_sdk_sqs::types::MessageSystemAttributeName;
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
        "jobQueue": job.job_queue(),
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

/// Most dead letters one pass handles (one ReceiveMessage).
const DEAD_LETTERS_PER_PASS: i32 = 10;

/// Passes a dead letter may fail before it is dropped.
const MAX_DEAD_LETTER_RECEIVES: u32 = 5;

/// Handles again, through the handler it missed, each event of one receive from
/// the events dead-letter queue — an execution's status change here, anything else
/// (a job's end, a child run's end) by the node function, waiting for its answer —
/// and deletes it once handled. One that fails again stays, visible again after the
/// queue's visibility timeout, for the next pass. Every handler is idempotent, so an
/// event whose effect another repair already made changes nothing. How many were
/// handled, and the failures.
async fn drain_dead_letters(services: &StatusServices) -> Result<(usize, Vec<String>), String> {
    let queue = &services.dead_letter_queue_url;
    let received = services
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(DEAD_LETTERS_PER_PASS)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(|e| port_error("reading the events dead-letter queue", &e).to_string())?;
    let (mut handled, mut failures) = (0, Vec::new());
    for message in received.messages() {
        let event: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
        let outcome = if event.is_null() || is_reconcile_event(&event) {
            // Not an event, or a pass of this reconciler that failed: nothing to redo (this pass is one).
            Ok(())
        } else if event.get("detail-type").and_then(Value::as_str) == Some(crate::stop::STATUS_CHANGE) {
            handle_status_event(services, &event).await.map(|_| ())
        } else {
            crate::stop::invoke_node_function_and_wait(services, &event).await
        };
        let receives: u32 = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        // An event that fails every pass is not retried forever: what it would have
        // repaired, the reconciler's own comparisons repair.
        let outcome = match outcome {
            Err(e) if receives >= MAX_DEAD_LETTER_RECEIVES => {
                tracing::warn!(receives, error = e, "a dead letter failed every time; dropped");
                Ok(())
            }
            other => other,
        };
        match outcome {
            Ok(()) => {
                let receipt = message.receipt_handle().unwrap_or_default();
                services
                    .sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| port_error("deleting a handled dead letter", &e).to_string())?;
                handled += 1;
            }
            Err(e) => failures.push(format!("dead letter {}: {e}", message.message_id().unwrap_or_default())),
        }
    }
    Ok((handled, failures))
}

/// One pass over every run in flight, after draining the events dead-letter queue
/// (only while runs are in flight: an idle stack costs one Query a pass). A run
/// whose repair fails does not stop the others; the pass fails at the end (and is
/// retried) if any did.
pub async fn reconcile(services: &StatusServices, now_ms: u64) -> Result<Value, String> {
    let runs = list_in_flight(&services.runs.dynamo, &services.runs.table).await.map_err(|e| e.to_string())?;
    let mut repaired = Vec::new();
    let mut failures = Vec::new();
    let mut dead_letters = 0;
    if !runs.is_empty() {
        // A dead letter that fails again waits for the next pass; it does not fail this one
        // (a failed pass is retried whole, and would end in the dead-letter queue itself).
        match drain_dead_letters(services).await {
            Ok((handled, failed)) => {
                dead_letters = handled;
                for failure in failed {
                    tracing::warn!(error = failure, "a dead letter failed again");
                }
            }
            Err(e) => tracing::warn!(error = e, "the events dead-letter queue could not be read"),
        }
    }
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
            "{} repairs failed ({} runs in flight): {}",
            failures.len(),
            runs.len(),
            failures.join("; ")
        ));
    }
    Ok(json!({"runs_in_flight": runs.len(), "repaired": repaired, "dead_letters_handled": dead_letters}))
}
