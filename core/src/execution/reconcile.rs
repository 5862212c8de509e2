//! The reconciler's decisions: what a run in flight needs when an event about it
//! was lost (docs/cloud-execution.md, "The reconciler"). Nothing here depends on
//! EventBridge delivering every event: the reconciler compares what the run's
//! records say with what the workflow engine and Batch know, and repairs through
//! the same idempotent handlers the events would have reached.

use super::steps::CLAIM_LEASE_MS;

/// A run recorded longer than this without its engine execution was launched by a
/// call that died between its two writes, and nobody repeated the launch.
pub const NEVER_STARTED_AFTER_MS: u64 = 5 * 60 * 1000;

/// What the workflow engine says of a run in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Running,
    /// Ended with this status (SUCCEEDED, FAILED, TIMED_OUT, ABORTED).
    Ended(String),
    /// No execution of the run's name.
    Missing,
}

/// A node of a run in flight, as its record shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeRecord {
    pub node: String,
    /// A Batch job id (a child run's name is not a job: `is_child`).
    pub job: Option<String>,
    pub is_child: bool,
    pub claimed_at: Option<u64>,
    pub token: Option<String>,
    pub ended: bool,
    /// Everything its end implies is done (token answered, downstream told).
    pub settled: bool,
}

/// One repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The engine's execution ended and its status event was lost: handle it now.
    EngineEnded(String),
    /// The run was recorded but its execution never started: end it FAILED.
    NeverStarted,
    /// The node's job ended in Batch, and its end event was lost: report it.
    JobEnded { node: String, job: String },
    /// The node was claimed and no job was recorded within the claim's lease (the
    /// call died between its claim and `SubmitJob`): arm it again with its token,
    /// which takes over the stale claim.
    Rearm { node: String, token: String },
    /// The node's end is recorded but what it implies is not done (the call died
    /// between the end write and answering the token or telling the downstream
    /// nodes, and no retry came): arm it again with its token, which settles it.
    /// Settling is idempotent, so racing a call that is settling it now is harmless.
    Settle { node: String, token: String },
}

/// The Batch jobs whose state the reconciler must look up: the jobs of nodes that have not ended.
pub fn jobs_to_check(nodes: &[NodeRecord]) -> Vec<String> {
    nodes.iter().filter(|n| !n.ended && !n.is_child).filter_map(|n| n.job.clone()).collect()
}

/// The repairs a run in flight needs. `ended_jobs`: the checked jobs that Batch
/// says have ended (SUCCEEDED or FAILED). `now_ms`, `created_ms`: epoch milliseconds.
pub fn repairs(
    engine: &Engine,
    created_ms: u64,
    nodes: &[NodeRecord],
    ended_jobs: &[String],
    now_ms: u64,
) -> Vec<Repair> {
    match engine {
        Engine::Ended(status) => return vec![Repair::EngineEnded(status.clone())],
        Engine::Missing if now_ms.saturating_sub(created_ms) > NEVER_STARTED_AFTER_MS => {
            return vec![Repair::NeverStarted];
        }
        // Just recorded: its launch may still be starting it.
        Engine::Missing => return Vec::new(),
        Engine::Running => {}
    }
    let mut repairs = Vec::new();
    for node in nodes.iter().filter(|n| n.ended && !n.settled) {
        if let Some(token) = &node.token {
            repairs.push(Repair::Settle { node: node.node.clone(), token: token.clone() });
        }
    }
    for node in nodes.iter().filter(|n| !n.ended) {
        match (&node.job, node.claimed_at, &node.token) {
            (Some(job), _, _) if !node.is_child && ended_jobs.contains(job) => {
                repairs.push(Repair::JobEnded { node: node.node.clone(), job: job.clone() });
            }
            (None, Some(claimed), Some(token)) if now_ms.saturating_sub(claimed) > CLAIM_LEASE_MS => {
                repairs.push(Repair::Rearm { node: node.node.clone(), token: token.clone() });
            }
            _ => {}
        }
    }
    repairs
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn node(name: &str) -> NodeRecord {
        NodeRecord { node: name.into(), ..Default::default() }
    }

    #[test]
    fn a_job_that_ended_unreported_is_reported_and_one_still_running_is_not() {
        let nodes = vec![
            NodeRecord { job: Some("j1".into()), claimed_at: Some(NOW - 1000), ..node("a") },
            NodeRecord { job: Some("j2".into()), claimed_at: Some(NOW - 1000), ..node("b") },
            NodeRecord { job: Some("j3".into()), ended: true, ..node("c") },
            NodeRecord { job: Some("run-sub".into()), is_child: true, ..node("sub") },
        ];
        assert_eq!(jobs_to_check(&nodes), ["j1", "j2"], "ended nodes and child runs are not Batch's");
        let found = repairs(&Engine::Running, NOW - 60_000, &nodes, &["j2".into()], NOW);
        assert_eq!(found, [Repair::JobEnded { node: "b".into(), job: "j2".into() }]);
    }

    #[test]
    fn a_claim_without_a_job_past_its_lease_is_armed_again_and_a_fresh_one_is_left_alone() {
        let stale = NodeRecord { claimed_at: Some(NOW - CLAIM_LEASE_MS - 1), token: Some("t".into()), ..node("a") };
        let fresh = NodeRecord { claimed_at: Some(NOW - 1000), token: Some("u".into()), ..node("b") };
        let waiting = NodeRecord { token: Some("v".into()), ..node("c") };
        let found = repairs(&Engine::Running, NOW - 600_000, &[stale, fresh, waiting], &[], NOW);
        assert_eq!(found, [Repair::Rearm { node: "a".into(), token: "t".into() }]);
    }

    #[test]
    fn an_end_recorded_but_not_settled_is_settled_and_a_settled_one_is_left_alone() {
        let unsettled = NodeRecord { job: Some("j1".into()), token: Some("t".into()), ended: true, ..node("a") };
        let settled = NodeRecord { token: Some("u".into()), ended: true, settled: true, ..node("b") };
        let found = repairs(&Engine::Running, NOW - 600_000, &[unsettled, settled], &[], NOW);
        assert_eq!(found, [Repair::Settle { node: "a".into(), token: "t".into() }]);
    }

    #[test]
    fn an_ended_or_missing_execution_decides_for_the_whole_run() {
        let nodes = vec![NodeRecord { job: Some("j1".into()), ..node("a") }];
        assert_eq!(
            repairs(&Engine::Ended("ABORTED".into()), 0, &nodes, &["j1".into()], NOW),
            [Repair::EngineEnded("ABORTED".into())]
        );
        assert_eq!(
            repairs(&Engine::Missing, NOW - NEVER_STARTED_AFTER_MS - 1, &nodes, &[], NOW),
            [Repair::NeverStarted]
        );
        assert!(repairs(&Engine::Missing, NOW - 1000, &nodes, &[], NOW).is_empty(), "its launch may be starting it");
    }
}
