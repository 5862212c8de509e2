//! Stopping a run from outside its DAG: an abort, the execution's timeout, an
//! execution-level failure, or a fail-fast failure with jobs still running
//! (docs/cloud-execution.md, "Ending a run from outside").
//!
//! The order is what makes it safe under crash-anywhere, at-least-once delivery:
//! 1. the run's end is written first (first end wins), so the node protocol's
//!    claim — which checks the run's phase in the same atomic write — starts
//!    nothing more;
//! 2. the workflow engine's execution is stopped (no more nodes are armed);
//! 3. each node that has a job and no end has its job stopped, and *then* its end
//!    recorded: a crash between the two leaves the node live, so the next
//!    delivery stops the job again.
//!
//! Every step is idempotent: the same stop told twice (the API's abort, then the
//! status event that the engine's stop causes) converges to the same records.

use super::failure::FailureCode;
use super::node::NodeFailure;
use super::steps::NodeEnd;
use crate::ports::PortError;
use crate::proto::core::{NodePhase, WorkflowPhase};
use std::future::Future;

/// Why a run ends other than by its own Finish step.
#[derive(Debug, Clone, PartialEq)]
pub enum StopCause {
    /// Someone asked (`by`: the caller's identity).
    Aborted { by: String, reason: String },
    /// The engine's execution ran past its timeout.
    TimedOut { message: String },
    /// The run failed: an engine-level error, or a node failed and the run fails fast.
    Failed { code: String, message: String },
}

impl StopCause {
    /// The phase the run ends in.
    pub fn phase(&self) -> WorkflowPhase {
        match self {
            StopCause::Aborted { .. } => WorkflowPhase::WorkflowAborted,
            StopCause::TimedOut { .. } => WorkflowPhase::WorkflowTimedOut,
            StopCause::Failed { .. } => WorkflowPhase::WorkflowFailed,
        }
    }

    /// The run's error: (code, message).
    pub fn error(&self) -> (String, String) {
        match self {
            StopCause::Aborted { by, reason } => {
                let reason = if reason.is_empty() { "no reason given" } else { reason.as_str() };
                ("Aborted".into(), format!("aborted by {by}: {reason}"))
            }
            StopCause::TimedOut { message } => ("TimedOut".into(), message.clone()),
            StopCause::Failed { code, message } => (code.clone(), message.clone()),
        }
    }

    /// What `node`, whose job was stopped, records: TIMED_OUT if it is the node
    /// whose time limit failed the run, else ABORTED.
    pub fn node_end_of(&self, node: &str) -> NodeEnd {
        if let StopCause::Failed { code, message } = self
            && code == crate::state_machine::NODE_TIMED_OUT
            && message.starts_with(&format!("node {node} "))
        {
            return NodeEnd {
                phase: NodePhase::TimedOut,
                ..NodeEnd::failed(NodeFailure::new(FailureCode::Timeout, message.clone()))
            };
        }
        self.node_end()
    }

    /// What a node whose job was stopped records.
    pub fn node_end(&self) -> NodeEnd {
        let (_, why) = self.error();
        let message = match self {
            StopCause::Aborted { .. } => format!("stopped: the run was {why}"),
            StopCause::TimedOut { .. } => format!("stopped: the run timed out ({why})"),
            StopCause::Failed { .. } => format!("stopped: the run failed ({why})"),
        };
        NodeEnd { phase: NodePhase::Aborted, ..NodeEnd::failed(NodeFailure::new(FailureCode::Aborted, message)) }
    }
}

/// A node that was started and has not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveJob {
    pub node: String,
    /// What runs it: a Batch job id, or a child run's name.
    pub job: String,
}

/// The run's records a stop reads and writes.
pub trait StoppableRun: Send + Sync {
    /// Ends the run with `cause` if it is RUNNING; the phase that stands after
    /// the write (a run that had ended keeps its phase: the first end wins).
    fn end_run(&self, cause: &StopCause) -> impl Future<Output = Result<WorkflowPhase, PortError>> + Send;
    /// The nodes that have a job recorded and no end.
    fn live_jobs(&self) -> impl Future<Output = Result<Vec<LiveJob>, PortError>> + Send;
    /// Records `node`'s end unless it ended before (the first end wins).
    fn end_node(&self, node: &str, end: &NodeEnd) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What runs a run's parts: the workflow engine and the jobs.
pub trait Stopper: Send + Sync {
    /// Stops the run's engine execution; one that has ended is not an error.
    fn stop_engine(&self, reason: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stops what runs `live` (a Batch job; a child run with everything it
    /// runs); one that has ended is not an error.
    fn stop_job(&self, live: &LiveJob, reason: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    /// The run's phase after the stop: the cause's, or the end it had already.
    pub phase: WorkflowPhase,
    /// The nodes whose jobs were stopped.
    pub stopped: Vec<String>,
}

/// Stops a run (see the module's documentation for the order and why).
/// A run that succeeded has nothing running and is left as it is.
pub async fn stop_run(run: &impl StoppableRun, engine: &impl Stopper, cause: &StopCause) -> Result<Stopped, PortError> {
    let phase = run.end_run(cause).await?;
    if phase == WorkflowPhase::WorkflowSucceeded {
        return Ok(Stopped { phase, stopped: Vec::new() });
    }
    let (_, reason) = cause.error();
    engine.stop_engine(&reason).await?;
    let mut stopped = Vec::new();
    for live in run.live_jobs().await? {
        engine.stop_job(&live, &reason).await?;
        run.end_node(&live.node, &cause.node_end_of(&live.node)).await?;
        stopped.push(live.node);
    }
    Ok(Stopped { phase, stopped })
}

#[cfg(test)]
mod tests;
