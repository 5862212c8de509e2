//! The stop protocol against an in-memory run and engine that can crash after
//! any number of operations: every crash, followed by a redelivery, converges.

use super::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Crashes (a `Transient` error) at the `crash_at`-th operation, counting from 1.
#[derive(Default)]
struct Crash {
    done: Mutex<u32>,
    crash_at: Option<u32>,
}

impl Crash {
    fn tick(&self) -> Result<(), PortError> {
        let mut done = self.done.lock().unwrap();
        *done += 1;
        if Some(*done) == self.crash_at {
            return Err(PortError::Transient(format!("crash at operation {done}")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    job: Option<String>,
    end: Option<NodePhase>,
}

struct World {
    crash: Crash,
    phase: Mutex<(WorkflowPhase, Option<(String, String)>)>,
    nodes: Mutex<BTreeMap<String, Node>>,
    engine_stopped: Mutex<u32>,
    /// Jobs still running in the "cloud".
    running: Mutex<Vec<String>>,
}

impl World {
    /// `a` and `b` run jobs, `c` has not started, `d` ended before the stop.
    fn new(crash_at: Option<u32>) -> World {
        let node = |job: Option<&str>, end| Node { job: job.map(Into::into), end };
        World {
            crash: Crash { done: Mutex::new(0), crash_at },
            phase: Mutex::new((WorkflowPhase::WorkflowRunning, None)),
            nodes: Mutex::new(BTreeMap::from([
                ("a".into(), node(Some("job-a"), None)),
                ("b".into(), node(Some("job-b"), None)),
                ("c".into(), node(None, None)),
                ("d".into(), node(Some("job-d"), Some(NodePhase::Succeeded))),
            ])),
            engine_stopped: Mutex::new(0),
            running: Mutex::new(vec!["job-a".into(), "job-b".into()]),
        }
    }

    fn phase(&self) -> WorkflowPhase {
        self.phase.lock().unwrap().0
    }

    fn end_of(&self, node: &str) -> Option<NodePhase> {
        self.nodes.lock().unwrap()[node].end
    }
}

impl StoppableRun for World {
    async fn end_run(&self, cause: &StopCause) -> Result<WorkflowPhase, PortError> {
        self.crash.tick()?;
        let mut phase = self.phase.lock().unwrap();
        if phase.0 == WorkflowPhase::WorkflowRunning {
            *phase = (cause.phase(), Some(cause.error()));
        }
        Ok(phase.0)
    }

    async fn live_jobs(&self) -> Result<Vec<LiveJob>, PortError> {
        let nodes = self.nodes.lock().unwrap();
        Ok(nodes
            .iter()
            .filter(|(_, n)| n.end.is_none())
            .filter_map(|(name, n)| Some(LiveJob { node: name.clone(), job: n.job.clone()? }))
            .collect())
    }

    async fn end_node(&self, node: &str, end: &NodeEnd) -> Result<(), PortError> {
        self.crash.tick()?;
        let mut nodes = self.nodes.lock().unwrap();
        let slot = nodes.get_mut(node).unwrap();
        slot.end.get_or_insert(end.phase);
        Ok(())
    }
}

impl Stopper for World {
    async fn stop_engine(&self, _reason: &str) -> Result<(), PortError> {
        self.crash.tick()?;
        *self.engine_stopped.lock().unwrap() += 1;
        Ok(())
    }

    async fn stop_job(&self, live: &LiveJob, _reason: &str) -> Result<(), PortError> {
        self.crash.tick()?;
        self.running.lock().unwrap().retain(|job| *job != live.job);
        Ok(())
    }
}

fn abort() -> StopCause {
    StopCause::Aborted { by: "arn:aws:iam::1:user/ana".into(), reason: "wrong data".into() }
}

fn run<F: Future>(future: F) -> F::Output {
    crate::ports::memory::block_on(future)
}

/// What a completed stop leaves, whatever happened on the way.
fn assert_stopped(world: &World) {
    assert_eq!(world.phase(), WorkflowPhase::WorkflowAborted);
    assert!(world.running.lock().unwrap().is_empty(), "jobs left running: {:?}", world.running.lock().unwrap());
    assert!(*world.engine_stopped.lock().unwrap() >= 1);
    assert_eq!(world.end_of("a"), Some(NodePhase::Aborted));
    assert_eq!(world.end_of("b"), Some(NodePhase::Aborted));
    // Never started: nothing to stop, and its end is the run's to tell (SKIPPED when shown).
    assert_eq!(world.end_of("c"), None);
    // Ended before the stop: its end stands.
    assert_eq!(world.end_of("d"), Some(NodePhase::Succeeded));
}

#[test]
fn a_stop_ends_the_run_first_then_stops_the_engine_and_every_live_job() {
    let world = World::new(None);
    let stopped = run(stop_run(&world, &world, &abort())).unwrap();
    assert_eq!(stopped, Stopped { phase: WorkflowPhase::WorkflowAborted, stopped: vec!["a".into(), "b".into()] });
    assert_stopped(&world);
    let (code, message) = world.phase.lock().unwrap().1.clone().unwrap();
    assert_eq!(code, "Aborted");
    assert_eq!(message, "aborted by arn:aws:iam::1:user/ana: wrong data");
}

#[test]
fn a_crash_after_any_operation_converges_when_the_stop_is_delivered_again() {
    // 1 end_run + 1 stop_engine + 2 × (stop_job + end_node) = 6 operations.
    for crash_at in 1..=6 {
        let world = World::new(Some(crash_at));
        let first = run(stop_run(&world, &world, &abort()));
        assert!(first.is_err(), "operation {crash_at} should have crashed");
        run(stop_run(&world, &world, &abort())).unwrap_or_else(|e| panic!("redelivery after crash {crash_at}: {e}"));
        assert_stopped(&world);
    }
}

#[test]
fn the_first_end_wins_and_a_later_stop_still_stops_what_runs() {
    let world = World::new(None);
    // The run failed fast (its phase written by the node protocol) with jobs still running.
    *world.phase.lock().unwrap() = (WorkflowPhase::WorkflowFailed, Some(("NonZeroExit".into(), "x".into())));
    let stopped =
        run(stop_run(&world, &world, &StopCause::Failed { code: "States.TaskFailed".into(), message: "y".into() }))
            .unwrap();
    assert_eq!(stopped.phase, WorkflowPhase::WorkflowFailed);
    assert_eq!(world.phase.lock().unwrap().1.as_ref().unwrap().0, "NonZeroExit");
    assert!(world.running.lock().unwrap().is_empty());
    // An abort told afterwards changes nothing recorded.
    let again = run(stop_run(&world, &world, &abort())).unwrap();
    assert_eq!(again, Stopped { phase: WorkflowPhase::WorkflowFailed, stopped: vec![] });
}

#[test]
fn a_run_that_succeeded_is_left_alone() {
    let world = World::new(None);
    *world.phase.lock().unwrap() = (WorkflowPhase::WorkflowSucceeded, None);
    let stopped = run(stop_run(&world, &world, &abort())).unwrap();
    assert_eq!(stopped, Stopped { phase: WorkflowPhase::WorkflowSucceeded, stopped: vec![] });
    assert_eq!(*world.engine_stopped.lock().unwrap(), 0);
    assert_eq!(world.running.lock().unwrap().len(), 2);
}

#[test]
fn stopped_nodes_say_why() {
    let timed_out = StopCause::TimedOut { message: "the execution ran past 3600 s".into() };
    let end = timed_out.node_end();
    assert_eq!(end.phase, NodePhase::Aborted);
    let failure = end.failure.unwrap();
    assert_eq!(failure.code, FailureCode::Aborted);
    assert_eq!(failure.message, "stopped: the run timed out (the execution ran past 3600 s)");
    assert_eq!(timed_out.phase(), WorkflowPhase::WorkflowTimedOut);
    let no_reason = StopCause::Aborted { by: "me".into(), reason: String::new() };
    assert_eq!(no_reason.error().1, "aborted by me: no reason given");
}

#[test]
fn the_node_whose_time_limit_failed_the_run_is_recorded_timed_out_and_the_others_aborted() {
    let cause = StopCause::Failed {
        code: crate::state_machine::NODE_TIMED_OUT.into(),
        message: "node a ran past its time limit of 7500 s".into(),
    };
    let timed_out = cause.node_end_of("a");
    assert_eq!(timed_out.phase, NodePhase::TimedOut);
    assert_eq!(timed_out.failure.unwrap().code, FailureCode::Timeout);
    assert_eq!(cause.node_end_of("ab").phase, NodePhase::Aborted, "only the node the message names");
}
