//! The protocol against in-memory ports, driven by a simulated clock: Step
//! Functions arms every node at time 0 (in a scrambled order), each job ends
//! after its node's duration, in time order.

use super::*;
use crate::compile::{Options, compile_text};
use crate::literal;
use crate::ports::StoredBlob;
use crate::ports::memory::{MemoryCache, block_on};
use crate::proto::core::literal::Value as LV;
use crate::spec::Format;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Crashes a simulated invocation: after `crash_after` writes (store writes,
/// job submissions, token answers), that write and every call after it fail,
/// until `heal` (the next delivery is a new invocation). One crash per run.
#[derive(Default)]
struct Faults {
    crash_after: Mutex<Option<usize>>,
    writes: AtomicUsize,
    crashed: AtomicBool,
}

impl Faults {
    fn crashing_after(writes: Option<usize>) -> Arc<Faults> {
        Arc::new(Faults { crash_after: Mutex::new(writes), ..Default::default() })
    }

    fn crash() -> PortError {
        PortError::Transient("injected crash".into())
    }

    fn read(&self) -> Result<(), PortError> {
        if self.crashed.load(Ordering::SeqCst) { Err(Faults::crash()) } else { Ok(()) }
    }

    fn write(&self) -> Result<(), PortError> {
        self.read()?;
        let done = self.writes.fetch_add(1, Ordering::SeqCst);
        let mut crash_after = self.crash_after.lock().unwrap();
        if crash_after.is_some_and(|limit| done >= limit) {
            *crash_after = None;
            self.crashed.store(true, Ordering::SeqCst);
            return Err(Faults::crash());
        }
        Ok(())
    }

    fn heal(&self) {
        self.crashed.store(false, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Slots {
    slots: HashMap<String, NodeSlot>,
    ended_edges: HashSet<(String, String)>,
    upstream: HashMap<String, u32>,
    ended: BTreeMap<String, NodeEnd>,
    run_failed: Option<FailureCode>,
    failed_nodes: HashSet<String>,
    /// Ended from outside (an abort) while a start was under way.
    stopped: bool,
    /// An abort lands just before the next job is recorded (after its claim and submission).
    abort_before_record: bool,
    /// The next read of values fails as throttled (and the one after succeeds).
    throttle_next_values: bool,
    /// When each map node's gather was leased.
    gathering: HashMap<String, u64>,
}

/// A run store that keeps its contract with one lock, as DynamoDB's conditional writes do.
struct MemoryRun {
    state: Mutex<Slots>,
    inputs: Outputs,
    faults: Arc<Faults>,
    /// Writes made to the store (each one item, as DynamoDB bills them), crashed ones too.
    store_writes: AtomicUsize,
}

impl MemoryRun {
    fn new(workflow: &CompiledWorkflow, inputs: Outputs) -> MemoryRun {
        MemoryRun::with_faults(workflow, inputs, Arc::default())
    }

    fn with_faults(workflow: &CompiledWorkflow, inputs: Outputs, faults: Arc<Faults>) -> MemoryRun {
        let mut state = Slots::default();
        for node in &workflow.template.as_ref().unwrap().nodes {
            state.slots.insert(node.id.clone(), NodeSlot::default());
            state.upstream.insert(node.id.clone(), node.upstream_node_ids.len() as u32);
        }
        MemoryRun { state: Mutex::new(state), inputs, faults, store_writes: AtomicUsize::new(0) }
    }

    /// `claim`'s decision, under the lock: claims `node` and says so when it would win.
    fn claims(state: &mut Slots, node: &str, now: u64, stale_before: u64) -> bool {
        let slot = state.slots.get_mut(node).unwrap();
        let free = slot.end.is_none() && slot.job.is_none() && slot.claimed_at.is_none_or(|at| at < stale_before);
        if state.run_failed.is_some() || !free {
            return false;
        }
        slot.claimed_at = Some(now);
        true
    }

    /// Records that `upstream` ended for `node`, once per edge: whether this was the first telling.
    fn tells(state: &mut Slots, node: &str, upstream: &str, failed: bool) -> bool {
        let first = state.ended_edges.insert((upstream.to_string(), node.to_string()));
        if first {
            let slot = state.slots.get_mut(node).unwrap();
            slot.ended_upstream.push(upstream.to_string());
            slot.skip |= failed;
        }
        first
    }

    /// The nodes whose end is settled: marked so, or held by each downstream node it tells.
    fn settled_nodes(state: &Slots) -> BTreeSet<String> {
        let told = |node: &String| {
            let children = state.ended_edges.iter().filter(|(from, _)| from == node).map(|(_, to)| to);
            children.filter(|child| moved_on(&state.slots[*child], node, state.upstream[*child])).count() as u32
        };
        let by_edges =
            |node: &String| state.ended.get(node).is_some_and(|e| e.downstream > 0 && told(node) == e.downstream);
        state.slots.iter().filter(|(k, s)| s.settled || by_edges(k)).map(|(k, _)| k.clone()).collect()
    }

    fn phases(&self) -> BTreeMap<String, NodePhase> {
        self.state.lock().unwrap().ended.iter().map(|(k, v)| (k.clone(), v.phase)).collect()
    }
}

impl RunStore for MemoryRun {
    async fn arm(&self, node: &str, token: &str) -> Result<NodeSlot, PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        let slot = state.slots.get_mut(node).unwrap();
        slot.token = Some(token.into());
        Ok(slot.clone())
    }
    async fn upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        upstream_total: u32,
    ) -> Result<NodeSlot, PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        assert_eq!(state.upstream[node], upstream_total);
        MemoryRun::tells(&mut state, node, upstream, failed);
        Ok(state.slots[node].clone())
    }
    async fn arm_claiming(
        &self,
        node: &str,
        token: &str,
        told: Option<(&str, bool)>,
        now: u64,
        stale_before: u64,
    ) -> Result<(NodeSlot, bool), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        assert_eq!(state.upstream[node], u32::from(told.is_some()), "only a root or chained node is armed claiming");
        if let Some((upstream, failed)) = told {
            MemoryRun::tells(&mut state, node, upstream, failed);
        }
        state.slots.get_mut(node).unwrap().token = Some(token.into());
        let claimed = MemoryRun::claims(&mut state, node, now, stale_before);
        Ok((state.slots[node].clone(), claimed))
    }
    async fn only_upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        now: u64,
        stale_before: u64,
    ) -> Result<(NodeSlot, bool), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        assert_eq!(state.upstream[node], 1, "{node} has one upstream node");
        let first_telling = MemoryRun::tells(&mut state, node, upstream, failed);
        // As DynamoDB's condition does: only the first telling of an armed node claims it.
        let armed = state.slots[node].token.is_some();
        let claimed = first_telling && armed && MemoryRun::claims(&mut state, node, now, stale_before);
        Ok((state.slots[node].clone(), claimed))
    }
    async fn slot(&self, node: &str) -> Result<NodeSlot, PortError> {
        self.faults.read()?;
        Ok(self.state.lock().unwrap().slots[node].clone())
    }
    async fn claim(&self, node: &str, now: u64, stale_before: u64) -> Result<Claim, PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        if state.run_failed.is_some() {
            return Ok(Claim::RunEnded);
        }
        Ok(if MemoryRun::claims(&mut state, node, now, stale_before) { Claim::Won } else { Claim::Held })
    }
    async fn release(&self, node: &str, claimed_at: u64) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        let slot = state.slots.get_mut(node).unwrap();
        if slot.claimed_at == Some(claimed_at) && slot.job.is_none() && slot.end.is_none() {
            slot.claimed_at = None;
        }
        Ok(())
    }
    async fn lease_gather(
        &self,
        node: &str,
        now: u64,
        stale_before: u64,
        ours: Option<u64>,
    ) -> Result<bool, PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        let free = state.slots[node].end.is_none()
            && state.gathering.get(node).is_none_or(|&at| at < stale_before || Some(at) == ours);
        if free {
            state.gathering.insert(node.to_string(), now);
        }
        Ok(free)
    }
    async fn release_gather(&self, node: &str, leased_at: u64) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        if state.gathering.get(node) == Some(&leased_at) {
            state.gathering.remove(node);
        }
        Ok(())
    }
    async fn started(&self, node: &str, job: &str) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        // The abort ended the run and listed its jobs: this one was not recorded yet.
        state.stopped |= std::mem::take(&mut state.abort_before_record);
        let slot = state.slots.get_mut(node).unwrap();
        slot.job.get_or_insert_with(|| job.to_string());
        Ok(())
    }
    async fn run_running(&self) -> Result<bool, PortError> {
        self.faults.read()?;
        let state = self.state.lock().unwrap();
        Ok(state.run_failed.is_none() && !state.stopped)
    }
    async fn end(&self, node: &str, end: &NodeEnd) -> Result<(NodeSlot, bool), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        let mut state = self.state.lock().unwrap();
        let first = !state.ended.contains_key(node);
        if first {
            state.ended.insert(node.to_string(), end.clone());
            state.slots.get_mut(node).unwrap().end = Some(end.recorded());
        }
        Ok((state.slots[node].clone(), first))
    }
    async fn settled(&self, node: &str) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        self.state.lock().unwrap().slots.get_mut(node).unwrap().settled = true;
        Ok(())
    }
    async fn node_failed(&self, node: &str) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        self.state.lock().unwrap().failed_nodes.insert(node.to_string());
        Ok(())
    }
    async fn fail_run(&self, failure: &NodeFailure) -> Result<(), PortError> {
        self.store_writes.fetch_add(1, Ordering::SeqCst);
        self.faults.write()?;
        self.state.lock().unwrap().run_failed.get_or_insert(failure.code);
        Ok(())
    }
    async fn values(&self, nodes: Option<&[String]>) -> Result<RunValues, PortError> {
        self.faults.read()?;
        let mut state = self.state.lock().unwrap();
        if std::mem::take(&mut state.throttle_next_values) {
            return Err(PortError::Transient("throttled".into()));
        }
        let wanted = |node: &String| nodes.is_none_or(|nodes| nodes.contains(node));
        let outputs =
            state.ended.iter().filter(|(k, _)| wanted(k)).map(|(k, v)| (k.clone(), v.outputs.clone())).collect();
        Ok(RunValues { inputs: self.inputs.clone(), outputs })
    }
}

/// One map submission: the node and the items submitted as (index, inputs).
type MapSubmission = (String, Vec<(usize, Outputs)>);

/// Jobs that run for their node's duration: `submitted` holds (node, inputs).
#[derive(Default)]
struct RecordedJobs {
    submitted: Mutex<Vec<(String, Outputs)>>,
    maps: Mutex<Vec<MapSubmission>>,
    /// (node, job) of each job stopped by the protocol itself.
    cancelled: Mutex<Vec<(String, String)>>,
    faults: Arc<Faults>,
    /// What `max_map_items` answers (a limit of the adapter's).
    max_map_items: Mutex<Option<usize>>,
    /// What `map_results` answers: the items a recovered run's map ran.
    recovered_run_items: Mutex<Vec<(usize, node::ItemResult)>>,
}

impl Jobs for RecordedJobs {
    fn max_map_items(&self) -> Option<usize> {
        *self.max_map_items.lock().unwrap()
    }
    async fn map_results(&self, run: &str, _node: &str) -> Result<Vec<(usize, node::ItemResult)>, PortError> {
        assert_eq!(run, "source", "the recovered run's results are read");
        Ok(self.recovered_run_items.lock().unwrap().clone())
    }
    async fn submit(&self, node: &str, _task: &TaskTemplate, inputs: &Outputs) -> Result<String, PortError> {
        self.faults.write()?;
        let mut submitted = self.submitted.lock().unwrap();
        submitted.push((node.to_string(), inputs.clone()));
        Ok(format!("job-{}", submitted.len()))
    }
    async fn submit_map(
        &self,
        node: &str,
        _task: &TaskTemplate,
        items: &[ItemToRun<'_>],
        _: Option<usize>,
    ) -> Result<String, PortError> {
        self.faults.write()?;
        let items = items.iter().map(|item| (item.index, item.inputs.clone())).collect();
        self.maps.lock().unwrap().push((node.to_string(), items));
        Ok(format!("map-{node}"))
    }
    async fn start_subworkflow(
        &self,
        node: &str,
        _: &CompiledWorkflow,
        inputs: &Outputs,
        _: bool,
    ) -> Result<String, PortError> {
        self.faults.write()?;
        self.submitted.lock().unwrap().push((node.to_string(), inputs.clone()));
        Ok(format!("child-{node}"))
    }
    async fn cancel(&self, node: &str, job: &str, _reason: &str) -> Result<(), PortError> {
        self.faults.write()?;
        self.cancelled.lock().unwrap().push((node.to_string(), job.to_string()));
        Ok(())
    }
}

/// Answers by token: (token, Ok(phase) | Err(failure code)).
#[derive(Default)]
struct RecordedTokens {
    answers: Mutex<Vec<(String, Result<NodePhase, FailureCode>)>>,
    faults: Arc<Faults>,
}

impl Tokens for RecordedTokens {
    async fn succeed(&self, token: &str, _node: &str, phase: NodePhase) -> Result<(), PortError> {
        self.faults.write()?;
        self.answers.lock().unwrap().push((token.into(), Ok(phase)));
        Ok(())
    }
    async fn fail(&self, token: &str, failure: &NodeFailure) -> Result<(), PortError> {
        self.faults.write()?;
        self.answers.lock().unwrap().push((token.into(), Err(failure.code)));
        Ok(())
    }
}

/// Blobs whose URIs are in `gone` are missing.
#[derive(Default)]
struct Blobs {
    gone: Mutex<HashSet<String>>,
}

impl BlobStore for Blobs {
    async fn put(&self, _: &Path, _: bool) -> Result<StoredBlob, PortError> {
        unreachable!("the node steps store nothing")
    }
    async fn holds(&self, uri: &str, _: &str, _: bool) -> bool {
        !self.gone.lock().unwrap().contains(uri)
    }
}

/// The ports one test's deliveries share: what jobs were submitted, which tokens
/// answered, the cache and the blobs.
#[derive(Default)]
struct Ports {
    jobs: RecordedJobs,
    tokens: RecordedTokens,
    cache: MemoryCache,
    blobs: Blobs,
}

type TestSteps<'a> = Steps<'a, MemoryRun, MemoryCache, Blobs, RecordedJobs, RecordedTokens>;

impl Ports {
    /// The steps of `run` of `workflow` over these ports, at time 0, cache honoured.
    fn steps<'a>(&'a self, workflow: &'a CompiledWorkflow, run: &'a MemoryRun) -> TestSteps<'a> {
        Steps {
            workflow,
            store: run,
            cache: &self.cache,
            blobs: &self.blobs,
            jobs: &self.jobs,
            tokens: &self.tokens,
            overwrite_cache: false,
            now_ms: 0,
            recovering: None,
        }
    }
}

/// A task whose output `y` is `x + 1` (or a file when `file` is set), computed by the simulated job.
const SPEC: &str = r"tasks:
  inc: {image: x, command: [inc], inputs: {x: int}, outputs: {y: int}, cache: {version: '1'}}
  fails: {image: x, command: [fail], inputs: {x: int}, outputs: {y: int}}
";

fn workflow(nodes: &str, policy: &str) -> CompiledWorkflow {
    let spec =
        format!("{SPEC}workflows:\n  w:\n    inputs: {{x: {{type: int, default: 0}}}}\n{policy}    nodes:\n{nodes}");
    let options = Options { version: "v1".into(), ..Default::default() };
    compile_text(&spec, Format::Yaml, &options).unwrap_or_else(|e| panic!("{e}")).closure("w").unwrap()
}

/// What happened in one simulated run.
#[derive(Debug)]
struct Run {
    starts: BTreeMap<String, u64>,
    ends: BTreeMap<String, u64>,
    phases: BTreeMap<String, NodePhase>,
    jobs: usize,
    answers: Vec<(String, Result<NodePhase, FailureCode>)>,
    /// Each ended node's outputs, as later nodes read them.
    outputs: BTreeMap<String, Outputs>,
    /// Each ended node's recorded end.
    recorded: BTreeMap<String, NodeEnd>,
    /// Nodes whose end's effects were all done.
    settled: BTreeSet<String>,
    run_failed: Option<FailureCode>,
    failed_nodes: HashSet<String>,
    /// Store writes, submissions and answers made, crashed calls included.
    writes: usize,
    /// Of those, the writes to the run store.
    store_writes: usize,
    /// Deliveries that failed and were made again.
    redeliveries: usize,
}

/// One event the node function receives.
enum Event {
    Arm(String),
    JobEnded(String, Result<Outputs, NodeFailure>),
}

/// The chained nodes whose state Step Functions enters now: not armed yet, their
/// predecessor's token answered with success.
fn next_in_branches(
    workflow: &CompiledWorkflow,
    tokens: &RecordedTokens,
    armed: &HashSet<String>,
    pending: &[String],
) -> Vec<String> {
    let answers = tokens.answers.lock().unwrap();
    let succeeded =
        |node: &str| answers.iter().any(|(token, answer)| token == &format!("token-{node}") && answer.is_ok());
    let nodes = &workflow.template.as_ref().unwrap().nodes;
    nodes
        .iter()
        .filter(|n| !armed.contains(&n.id) && !pending.contains(&n.id))
        .filter(|n| chained_after(workflow, &n.id).is_some_and(succeeded))
        .map(|n| n.id.clone())
        .collect()
}

/// Runs `workflow` with each node's job taking `durations[node]` time units.
fn simulate(workflow: &CompiledWorkflow, durations: &[(&str, u64)], cache: &MemoryCache, blobs: &Blobs) -> Run {
    simulate_faults(workflow, durations, cache, blobs, None)
}

/// [`simulate`], with the invocation that makes write number `crash_after` (from
/// 0) dying there. A delivery that fails is made again a minute later, as Step
/// Functions' `Retry` and Lambda's async retries do, at most 8 times.
fn simulate_faults(
    workflow: &CompiledWorkflow,
    durations: &[(&str, u64)],
    cache: &MemoryCache,
    blobs: &Blobs,
    crash_after: Option<usize>,
) -> Run {
    let durations: HashMap<&str, u64> = durations.iter().copied().collect();
    let faults = Faults::crashing_after(crash_after);
    let run = MemoryRun::with_faults(workflow, [("x".to_string(), literal::integer(1))].into(), faults.clone());
    let jobs = RecordedJobs { faults: faults.clone(), ..Default::default() };
    let tokens = RecordedTokens { faults: faults.clone(), ..Default::default() };
    // Simulated time units are seconds; redeliveries push the clock on by a minute.
    let mut retry_offset_ms = 0;
    let mut redeliveries = 0;
    let mut deliver = |now: u64, event: &Event| {
        for _ in 0..8 {
            let steps = Steps {
                workflow,
                store: &run,
                cache,
                blobs,
                jobs: &jobs,
                tokens: &tokens,
                overwrite_cache: false,
                now_ms: now * 1000 + retry_offset_ms,
                recovering: None,
            };
            let delivered = match event {
                Event::Arm(node) => block_on(steps.arm(node, &format!("token-{node}"))),
                Event::JobEnded(node, result) => block_on(steps.job_ended(node, result.clone())),
            };
            match delivered {
                Ok(()) => return,
                Err(e) => {
                    assert!(e.is_retryable(), "only transient failures in these runs: {e}");
                    faults.heal();
                    redeliveries += 1;
                    retry_offset_ms += 60_000;
                }
            }
        }
        panic!("an event failed 8 deliveries (crash after write {crash_after:?})");
    };
    let mut starts = BTreeMap::new();
    let mut ends = BTreeMap::new();
    // In flight: (end time, node, result).
    let mut running: Vec<(u64, String, Result<Outputs, NodeFailure>)> = Vec::new();
    let mut seen_jobs = 0;
    let mut now = 0;
    let mut note_new_jobs = |now: u64, running: &mut Vec<_>, starts: &mut BTreeMap<String, u64>| {
        let submitted = jobs.submitted.lock().unwrap();
        for (node, inputs) in submitted.iter().skip(seen_jobs) {
            starts.insert(node.clone(), now);
            let x = match inputs.get("x").and_then(|l| l.value.clone()) {
                Some(LV::Integer(x)) => x,
                _ => 0,
            };
            let result = if node.starts_with("bad") {
                Err(NodeFailure::new(FailureCode::NonZeroExit, "exit 1"))
            } else {
                Ok([("y".to_string(), literal::integer(x + 1))].into())
            };
            running.push((now + durations.get(node.as_str()).copied().unwrap_or(1), node.clone(), result));
        }
        seen_jobs = submitted.len();
    };
    let mut ids: Vec<String> = workflow.template.as_ref().unwrap().nodes.iter().map(|n| n.id.clone()).collect();
    ids.reverse(); // Step Functions arms branches in no particular order
    // Each branch's first node at once; a chained node once its predecessor's token
    // was answered with success (its state succeeded; its branch goes on).
    let mut armed: HashSet<String> = HashSet::new();
    let mut pending: Vec<String> = ids.iter().filter(|id| chained_after(workflow, id).is_none()).cloned().collect();
    loop {
        while let Some(id) = pending.pop() {
            armed.insert(id.clone());
            deliver(now, &Event::Arm(id));
            note_new_jobs(now, &mut running, &mut starts);
            pending.extend(next_in_branches(workflow, &tokens, &armed, &pending));
        }
        running.sort_by_key(|(end, node, _)| (std::cmp::Reverse(*end), std::cmp::Reverse(node.clone())));
        let Some((end, node, result)) = running.pop() else { break };
        now = end;
        ends.insert(node.clone(), now);
        deliver(now, &Event::JobEnded(node, result));
        note_new_jobs(now, &mut running, &mut starts);
        pending.extend(next_in_branches(workflow, &tokens, &armed, &pending));
    }
    let answers = tokens.answers.lock().unwrap().clone();
    let phases = run.phases();
    let state = run.state.lock().unwrap();
    Run {
        starts,
        ends,
        phases,
        jobs: seen_jobs,
        answers,
        outputs: state.ended.iter().map(|(k, v)| (k.clone(), v.outputs.clone())).collect(),
        recorded: state.ended.clone(),
        settled: MemoryRun::settled_nodes(&state),
        run_failed: state.run_failed,
        failed_nodes: state.failed_nodes.clone(),
        writes: faults.writes.load(Ordering::SeqCst),
        store_writes: run.store_writes.load(Ordering::SeqCst),
        redeliveries,
    }
}

const N_SHAPE: &str = r"      a: {task: inc, inputs: {x: $inputs.x}}
      b: {task: inc, inputs: {x: 10}}
      c: {task: inc, inputs: {x: $a.y}}
      d: {task: inc, inputs: {x: $b.y}, after: [a]}
";

#[test]
fn in_an_n_shaped_dag_c_starts_when_a_ends_not_when_b_does() {
    let w = workflow(N_SHAPE, "");
    let run = simulate(&w, &[("a", 1), ("b", 5), ("c", 1), ("d", 1)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.starts["c"], 1, "c waits for a only");
    assert_eq!(run.starts["d"], 5, "d waits for a and b");
    let makespan = run.ends.values().max().copied().unwrap();
    assert_eq!(makespan, 6, "the critical path b→d, not the sum of levels (5 + 1 + 1)");
    assert!(run.phases.values().all(|p| *p == NodePhase::Succeeded), "{:?}", run.phases);
}

#[test]
fn each_token_is_answered_once_and_a_cached_rerun_submits_no_job() {
    let w = workflow(N_SHAPE, "");
    let cache = MemoryCache::default();
    let first = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(first.jobs, 4);
    let mut tokens: Vec<&str> = first.answers.iter().map(|(t, _)| t.as_str()).collect();
    tokens.sort();
    assert_eq!(tokens, ["token-a", "token-b", "token-c", "token-d"]);
    let again = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(again.jobs, 0, "every node a verified cache hit");
    assert!(again.phases.values().all(|p| *p == NodePhase::Cached), "{:?}", again.phases);
    assert_eq!(again.answers.len(), 4);
}

#[test]
fn values_flow_along_the_edges() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n      b: {task: inc, inputs: {x: $a.y}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(40))].into());
    let ports = Ports::default();
    let (steps, jobs) = (ports.steps(&w, &run), &ports.jobs);
    block_on(steps.arm("a", "ta")).unwrap();
    block_on(steps.job_ended("a", Ok([("y".to_string(), literal::integer(41))].into()))).unwrap();
    block_on(steps.arm("b", "tb")).unwrap();
    let submitted = jobs.submitted.lock().unwrap().clone();
    assert_eq!(submitted[1], ("b".to_string(), [("x".to_string(), literal::integer(41))].into()));
}

#[test]
fn a_cache_entry_whose_blob_is_gone_is_a_miss() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let cache = MemoryCache::default();
    simulate(&w, &[], &cache, &Blobs::default());
    // Point the entry at a file that has since disappeared.
    let key = cache_key::for_task(&w.tasks[0], &[("x".to_string(), literal::integer(1))].into()).unwrap();
    let file = Literal {
        value: Some(LV::File(crate::proto::core::Blob {
            uri: "s3://b/gone".into(),
            digest: "sha256:00".into(),
            ..Default::default()
        })),
    };
    block_on(cache.put(&key, &[("y".to_string(), file)].into())).unwrap();
    let blobs = Blobs::default();
    blobs.gone.lock().unwrap().insert("s3://b/gone".into());
    let run = simulate(&w, &[], &cache, &blobs);
    assert_eq!((run.jobs, run.phases["a"]), (1, NodePhase::Succeeded), "rerun, not failed");
}

const FAILING: &str = r"      bad: {task: fails, inputs: {x: $inputs.x}}
      after_bad: {task: inc, inputs: {x: $bad.y}}
      beyond: {task: inc, inputs: {x: $after_bad.y}}
      free: {task: inc, inputs: {x: $inputs.x}}
";

#[test]
fn a_failure_fails_the_run_at_once_by_default() {
    let w = workflow(FAILING, "");
    let run = simulate(&w, &[("free", 3)], &MemoryCache::default(), &Blobs::default());
    assert!(run.answers.contains(&("token-bad".to_string(), Err(FailureCode::NonZeroExit))));
    assert!(!run.phases.contains_key("after_bad"), "nothing downstream starts: {:?}", run.phases);
}

#[test]
fn a_cacheable_task_that_fails_records_the_key_it_missed_and_one_that_is_not_records_none() {
    let nodes =
        "      bad_inc: {task: inc, inputs: {x: $inputs.x}}\n      bad: {task: fails, inputs: {x: $inputs.x}}\n";
    let w = workflow(nodes, "    on_failure: finish_independent\n");
    let run = simulate(&w, &[], &MemoryCache::default(), &Blobs::default());
    assert_eq!((run.phases["bad_inc"], run.phases["bad"]), (NodePhase::Failed, NodePhase::Failed));
    // The console and the API tell a miss (a key, not cached) from a task without a cache (no key).
    assert!(!run.recorded["bad_inc"].cache_key.is_empty(), "{:?}", run.recorded["bad_inc"]);
    assert_eq!(run.recorded["bad"].cache_key, "");
}

#[test]
fn with_fail_after_executable_nodes_complete_independent_nodes_finish_and_descendants_are_skipped() {
    let w = workflow(FAILING, "    on_failure: finish_independent\n");
    let run = simulate(&w, &[("free", 3)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.phases["bad"], NodePhase::Failed);
    assert_eq!(run.phases["after_bad"], NodePhase::Skipped);
    assert_eq!(run.phases["beyond"], NodePhase::Skipped, "skips travel down the graph");
    assert_eq!(run.phases["free"], NodePhase::Succeeded);
    assert_eq!(run.answers.len(), 4, "every token answered, so the Parallel state ends and Finish decides");
    assert_eq!(run.jobs, 2, "no job for skipped nodes");
}

#[test]
fn a_completion_delivered_twice_and_an_arm_after_the_end_change_nothing() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n      b: {task: inc, inputs: {x: $a.y}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    let (steps, jobs, tokens) = (ports.steps(&w, &run), &ports.jobs, &ports.tokens);
    block_on(steps.arm("a", "ta")).unwrap();
    block_on(steps.arm("a", "ta")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "arming twice starts once");
    let done = || Ok([("y".to_string(), literal::integer(2))].into());
    block_on(steps.job_ended("a", done())).unwrap();
    // b follows a in its branch: Step Functions arms it once a's token is answered.
    assert!(block_on(steps.arm("b", "tb")).is_ok());
    assert_eq!(jobs.submitted.lock().unwrap().len(), 2, "b starts when armed after a ended");
    block_on(steps.job_ended("a", done())).unwrap();
    assert_eq!(tokens.answers.lock().unwrap().len(), 1, "one answer for two deliveries");
    block_on(steps.arm("a", "ta")).unwrap();
    assert_eq!(
        (tokens.answers.lock().unwrap().len(), jobs.submitted.lock().unwrap().len()),
        (1, 2),
        "an arm after the end"
    );
}

#[test]
fn a_chained_node_armed_before_its_predecessor_ended_is_retried_not_started() {
    // Step Functions arms b only after a's state succeeded; an arm that comes first anyway
    // (a's end not readable yet) is an error its state's Retry brings back.
    let w = workflow(
        "      a: {task: inc, inputs: {x: $inputs.x}}
      b: {task: inc, inputs: {x: $a.y}}
",
        "",
    );
    assert_eq!((chained_after(&w, "b"), chained_child(&w, "a")), (Some("a"), Some("b")));
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    let steps = ports.steps(&w, &run);
    block_on(steps.arm("a", "ta")).unwrap();
    assert!(matches!(block_on(steps.arm("b", "tb")), Err(PortError::Transient(_))));
    assert_eq!(ports.jobs.submitted.lock().unwrap().len(), 1, "only a runs");
}

#[test]
fn a_map_over_more_items_than_a_submission_takes_fails_at_start_saying_so() {
    let w = workflow("      m: {map: {task: inc, over: [x]}, inputs: {x: [1, 2, 3, 4, 5, 6]}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(0))].into());
    let ports = Ports::default();
    *ports.jobs.max_map_items.lock().unwrap() = Some(5);
    block_on(ports.steps(&w, &run).arm("m", "tm")).unwrap();
    assert!(ports.jobs.maps.lock().unwrap().is_empty(), "nothing was submitted");
    assert_eq!(*ports.tokens.answers.lock().unwrap(), [("tm".to_string(), Err(FailureCode::MapInputs))]);
    let slot = block_on(run.slot("m")).unwrap();
    let failure = slot.end.and_then(|e| e.failure).expect("m ended failed");
    assert!(
        failure.message.contains("map node m has 6 items to run (0 of 6 reused from the cache); a map runs at most 5"),
        "{}",
        failure.message
    );
    *ports.jobs.max_map_items.lock().unwrap() = Some(6);
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(0))].into());
    block_on(ports.steps(&w, &run).arm("m", "tm")).unwrap();
    assert_eq!(ports.jobs.maps.lock().unwrap().len(), 1, "at the limit, one submission");
}

#[test]
fn only_the_job_a_node_submitted_can_end_it() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    let steps = ports.steps(&w, &run);
    assert!(block_on(steps.is_its_job("a", "job-9")).unwrap(), "no job recorded yet: the node's own is taken");
    block_on(steps.arm("a", "ta")).unwrap();
    assert!(block_on(steps.is_its_job("a", "job-1")).unwrap(), "the submitted job");
    for other in ["job-9", ""] {
        assert!(!block_on(steps.is_its_job("a", other)).unwrap(), "{other:?} is not a's job");
    }
    assert!(block_on(steps.is_its_job("nope", "job-1")).is_err(), "an unknown node is an error");
}

#[test]
fn a_branch_runs_its_chosen_case_as_the_node() {
    let nodes = r"      pick:
        branch:
          cases:
            - if: $inputs.x > 0
              then: {task: inc, inputs: {x: $inputs.x}}
          else: {task: fails, inputs: {x: 0}}
";
    let w = workflow(nodes, "");
    let cache = MemoryCache::default();
    let run = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(run.phases["pick"], NodePhase::Succeeded, "x = 1 takes the first case, not the failing else");
    assert_eq!(run.recorded["pick"].branch_taken, "pick-case-0", "the record names the case that ran");
    let again = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(again.phases["pick"], NodePhase::Cached);
    assert_eq!(again.recorded["pick"].branch_taken, "pick-case-0", "a hit names it too");
}

#[test]
fn a_map_node_runs_its_items_as_one_submission_and_a_rerun_of_all_hits_starts_none() {
    let nodes = r"      each:
        map: {task: inc, over: [x]}
        inputs: {x: [1, 2, 3]}
";
    let w = workflow(nodes, "");
    // One cache for both runs; each run records its own submissions.
    let ports = Ports::default();
    for (run_name, expect_map) in [("first", true), ("again", false)] {
        let run = MemoryRun::new(&w, Outputs::new());
        let jobs = RecordedJobs::default();
        let steps = Steps { jobs: &jobs, ..ports.steps(&w, &run) };
        block_on(steps.arm("each", "t")).unwrap();
        let maps = jobs.maps.lock().unwrap().clone();
        assert_eq!(maps.len(), usize::from(expect_map), "{run_name}");
        if expect_map {
            assert_eq!(maps[0].1.len(), 3, "one submission of three items");
            let results = (0..3)
                .map(|i| (i, node::ItemResult::Succeeded([("y".to_string(), literal::integer(i as i64 + 2))].into())))
                .collect();
            block_on(steps.map_reported("each", results, 1, String::new(), Default::default())).unwrap();
        }
        let state = run.state.lock().unwrap();
        let end = &state.ended["each"];
        assert_eq!(end.phase, if expect_map { NodePhase::Succeeded } else { NodePhase::Cached }, "{run_name}");
        let expected = literal::list(vec![literal::integer(2), literal::integer(3), literal::integer(4)]);
        assert_eq!(end.outputs["y"], expected, "{run_name}");
    }
}

#[test]
fn a_maps_end_delivered_twice_while_it_gathers_is_gathered_once() {
    let nodes = r"      each:
        map: {task: inc, over: [x]}
        inputs: {x: [1, 2, 3]}
";
    let w = workflow(nodes, "");
    let run = MemoryRun::new(&w, Outputs::new());
    let ports = Ports::default();
    let steps_at = |now_ms| Steps { now_ms, ..ports.steps(&w, &run) };
    block_on(steps_at(1000).arm("each", "t")).unwrap();
    let results = || (0..3).map(|i| inc_result(i, i as i64 + 1)).collect::<Vec<_>>();
    // Batch's event takes the lease; the reconciler's stand-in, a minute into the gather, does not.
    assert!(block_on(steps_at(2000).gathers("each", None)).unwrap());
    let writes = run.store_writes.load(Ordering::SeqCst);
    assert!(!block_on(steps_at(62_000).gathers("each", None)).unwrap(), "the second delivery leaves the gather alone");
    assert_eq!(run.store_writes.load(Ordering::SeqCst), writes + 1, "its one write, the refused lease");
    block_on(steps_at(3000).map_reported("each", results(), 1, String::new(), Default::default())).unwrap();
    assert_eq!(run.phases()["each"], NodePhase::Succeeded);
    assert_eq!(ports.tokens.answers.lock().unwrap().len(), 1, "answered once");
    // Delivered again after the end: nothing is gathered, the recorded end is converged from.
    assert!(!block_on(steps_at(500_000).gathers("each", None)).unwrap(), "an ended map is never gathered again");

    // A gather that failed gives its lease back: the retry of its event gathers at once.
    let (run, ports) = (MemoryRun::new(&w, Outputs::new()), Ports::default());
    let steps_at = |now_ms| Steps { now_ms, ..ports.steps(&w, &run) };
    block_on(steps_at(1000).arm("each", "t2")).unwrap();
    assert!(block_on(steps_at(2000).gathers("each", None)).unwrap());
    block_on(steps_at(2000).gather_failed("each"));
    assert!(block_on(steps_at(3000).gathers("each", None)).unwrap(), "given back");
    // A holder that died: the lease runs out and the next delivery gathers.
    assert!(!block_on(steps_at(3000 + CLAIM_LEASE_MS).gathers("each", None)).unwrap(), "still within the lease");
    assert!(block_on(steps_at(3001 + CLAIM_LEASE_MS).gathers("each", None)).unwrap(), "past the lease");
    // A follow-up takes over the lease its predecessor took; nobody else does.
    let taken = 3001 + CLAIM_LEASE_MS;
    assert!(!block_on(steps_at(taken + 1).gathers("each", Some(taken - 1))).unwrap(), "not its predecessor's");
    assert!(block_on(steps_at(taken + 1).gathers("each", Some(taken))).unwrap(), "taken over");
    assert!(!block_on(steps_at(taken + 2).gathers("each", None)).unwrap(), "held by the follow-up now");
}

#[test]
fn a_gather_out_of_time_stops_after_a_chunk_and_its_follow_ups_go_on_where_it_stopped() {
    let items = 2 * GATHER_CHUNK + 1_000;
    let list = (0..items).map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    let w =
        workflow(&format!("      each:\n        map: {{task: inc, over: [x]}}\n        inputs: {{x: [{list}]}}\n"), "");
    let run = MemoryRun::new(&w, Outputs::new());
    let ports = Ports::default();
    let steps = ports.steps(&w, &run);
    block_on(steps.arm("each", "t")).unwrap();
    let ran = || (0..items).map(|i| inc_result(i, i as i64)).collect::<Vec<_>>();
    let entries = || block_on(ports.cache.entries(&w.tasks[0].id.clone().unwrap())).unwrap().len();
    let out_of_time = |written| Gathering { written, time_left: &|| false };
    let gather = |written| {
        block_on(steps.map_gathered("each", ran(), 1, String::new(), Default::default(), out_of_time(written))).unwrap()
    };
    // No time left: each invocation still writes one chunk, and says where the next goes on.
    assert_eq!(gather(0), Gathered::OutOfTime { written: GATHER_CHUNK });
    assert_eq!((entries(), run.phases().get("each")), (GATHER_CHUNK, None), "one chunk written, no end yet");
    assert_eq!(gather(GATHER_CHUNK), Gathered::OutOfTime { written: 2 * GATHER_CHUNK });
    assert_eq!(entries(), 2 * GATHER_CHUNK);
    assert_eq!(gather(2 * GATHER_CHUNK), Gathered::Ended, "the last chunk, then the end");
    assert_eq!(entries(), items, "every item's entry, each chunk written once");
    let end = run.state.lock().unwrap().ended["each"].clone();
    let expected = literal::list((0..items as i64).map(|x| literal::integer(x + 1)).collect());
    assert_eq!((end.phase, &end.outputs["y"]), (NodePhase::Succeeded, &expected), "every item gathered in order");
    assert_eq!(ports.tokens.answers.lock().unwrap().len(), 1, "answered once, by the last part");
}

/// The outputs `inc` gives item `x` of a map: `y = x + 1`.
fn inc_result(index: usize, x: i64) -> (usize, node::ItemResult) {
    (index, node::ItemResult::Succeeded([("y".to_string(), literal::integer(x + 1))].into()))
}

#[test]
fn a_map_reruns_only_the_items_whose_cache_entries_are_missing() {
    let xs: Vec<i64> = (10..30).collect();
    let list = xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    let w =
        workflow(&format!("      each:\n        map: {{task: inc, over: [x]}}\n        inputs: {{x: [{list}]}}\n"), "");
    let ports = Ports::default();
    let evict = |i: usize| {
        let key = cache_key::for_task(&w.tasks[0], &[("x".to_string(), literal::integer(xs[i]))].into()).unwrap();
        block_on(ports.cache.delete(&key)).unwrap();
    };
    let run_map = |expect_run: &[usize], lose: &[usize]| {
        let run = MemoryRun::new(&w, Outputs::new());
        let jobs = RecordedJobs::default();
        let steps = Steps { jobs: &jobs, ..ports.steps(&w, &run) };
        block_on(steps.arm("each", "t")).unwrap();
        let maps = jobs.maps.lock().unwrap().clone();
        let ran: Vec<usize> =
            maps.first().map(|(_, items)| items.iter().map(|(i, _)| *i).collect()).unwrap_or_default();
        assert_eq!(ran, expect_run, "the items submitted");
        for (index, inputs) in maps.first().map(|(_, items)| items.clone()).unwrap_or_default() {
            assert_eq!(inputs["x"], literal::integer(xs[index]), "item {index} carries its own inputs");
        }
        // Entries evicted while the items run: the items reused at start that lost them fail.
        lose.iter().for_each(|&i| evict(i));
        if !maps.is_empty() {
            let results = ran.iter().map(|&i| inc_result(i, xs[i])).collect();
            block_on(steps.map_reported("each", results, 1, String::new(), Default::default())).unwrap();
        }
        run.state.lock().unwrap().ended["each"].clone()
    };
    let all: Vec<usize> = (0..20).collect();
    let first = run_map(&all, &[]);
    assert_eq!(first.phase, NodePhase::Succeeded);
    let expected = literal::list(xs.iter().map(|x| literal::integer(x + 1)).collect());
    assert_eq!(first.outputs["y"], expected);
    assert_eq!(run_map(&[], &[]).phase, NodePhase::Cached, "every item a hit: no job");
    // Three entries evicted: exactly those three items run, the rest are reused in place.
    [3, 11, 17].into_iter().for_each(evict);
    let rerun = run_map(&[3, 11, 17], &[]);
    assert_eq!((rerun.phase, &rerun.outputs["y"]), (NodePhase::Succeeded, &expected), "gathered in item order");
    // An item reused at start whose entry is evicted before the end fails, named.
    evict(5);
    let lost = run_map(&[5], &[6]);
    let failure = lost.failure.expect("the map failed");
    assert_eq!(failure.code, FailureCode::MapFailed);
    assert!(failure.message.contains("item 6 was reused from the cache"), "{}", failure.message);
}

#[test]
fn overwrite_cache_runs_every_task_even_on_a_hit() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let ports = Ports::default();
    simulate(&w, &[], &ports.cache, &Blobs::default());
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let steps = Steps { overwrite_cache: true, ..ports.steps(&w, &run) };
    block_on(steps.arm("a", "t")).unwrap();
    assert_eq!(ports.jobs.submitted.lock().unwrap().len(), 1, "the entry exists, but overwrite_cache runs the task");
}

/// Runs `w` once without faults, then once per write with the invocation making
/// that write dying there (before it lands) and its event delivered again, and
/// asserts every faulty run converges to the fault-free run's end state.
fn assert_converges_under_every_crash(
    w: &CompiledWorkflow,
    durations: &[(&str, u64)],
    cache: impl Fn() -> MemoryCache,
) {
    let base = simulate(w, durations, &cache(), &Blobs::default());
    assert_eq!(base.redeliveries, 0);
    let ended: BTreeSet<String> = base.phases.keys().cloned().collect();
    assert_eq!(base.settled, ended, "without faults every ended node settles");
    let distinct = |answers: &[(String, Result<NodePhase, FailureCode>)]| -> BTreeSet<String> {
        answers.iter().map(|answer| format!("{answer:?}")).collect()
    };
    let base_answers = distinct(&base.answers);
    for crash_after in 0..base.writes {
        let run = simulate_faults(w, durations, &cache(), &Blobs::default(), Some(crash_after));
        let at = format!("crash at write {crash_after} of {}", base.writes);
        assert!(run.redeliveries >= 1, "{at}: the crash happened and its event came back");
        assert_eq!(run.phases, base.phases, "{at}");
        assert_eq!(run.outputs, base.outputs, "{at}");
        assert_eq!(run.settled, base.settled, "{at}: every end's effects done");
        assert_eq!(run.run_failed, base.run_failed, "{at}");
        assert_eq!(run.failed_nodes, base.failed_nodes, "{at}");
        // A replay may answer a token again (Step Functions then says it is closed), never differently.
        assert_eq!(distinct(&run.answers), base_answers, "{at}");
        // Only a crash between SubmitJob and recording the job id can start a job twice.
        assert!(run.jobs <= base.jobs + 1, "{at}: {} jobs, {} without faults", run.jobs, base.jobs);
    }
}

#[test]
fn a_chain_costs_three_store_writes_a_node_and_a_fan_in_more_an_edge() {
    // Each node: armed and claimed in one write (the rest of a chain told by the arm
    // too: Step Functions arms it after its predecessor), its job recorded, its end;
    // the last one settled by a mark.
    let chain: String = (0..8)
        .map(|i| {
            if i == 0 {
                "      n0: {task: inc, inputs: {x: 1}}\n".to_string()
            } else {
                format!("      n{i}: {{task: inc, inputs: {{x: $n{}.y}}}}\n", i - 1)
            }
        })
        .collect();
    let w = workflow(&chain, "");
    let run = simulate(&w, &[], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.phases.values().filter(|p| **p == NodePhase::Succeeded).count(), 8);
    assert_eq!(run.store_writes, 3 * 8 + 1, "{run:?}");
    // A node with two upstream nodes: its arm, two edges, then its claim, as writes of their own.
    let w = workflow(N_SHAPE, "");
    let run = simulate(&w, &[("a", 1), ("b", 5), ("c", 1), ("d", 1)], &MemoryCache::default(), &Blobs::default());
    let (roots, chained, joined, leaves) = (2, 1, 1, 2);
    assert_eq!(run.store_writes, roots * 3 + chained * 3 + joined * 6 + leaves, "{run:?}");
}

#[test]
fn every_step_converges_after_a_crash_at_any_write() {
    let w = workflow(N_SHAPE, "");
    assert_converges_under_every_crash(&w, &[("a", 1), ("b", 5), ("c", 1), ("d", 1)], MemoryCache::default);
}

#[test]
fn a_chain_of_cache_hits_converges_after_a_crash_at_any_write() {
    let w = workflow(N_SHAPE, "");
    let warm = || {
        let cache = MemoryCache::default();
        let first = simulate(&w, &[], &cache, &Blobs::default());
        assert_eq!(first.jobs, 4);
        cache
    };
    let again = simulate(&w, &[], &warm(), &Blobs::default());
    assert_eq!(again.jobs, 0);
    assert_converges_under_every_crash(&w, &[], warm);
}

#[test]
fn a_fail_fast_failure_converges_after_a_crash_at_any_write() {
    let w = workflow(FAILING, "");
    assert_converges_under_every_crash(&w, &[("free", 3)], MemoryCache::default);
}

#[test]
fn finish_independent_converges_after_a_crash_at_any_write() {
    let w = workflow(FAILING, "    on_failure: finish_independent\n");
    assert_converges_under_every_crash(&w, &[("free", 3)], MemoryCache::default);
}

#[test]
fn a_failed_run_starts_nothing_when_a_running_sibling_ends() {
    let nodes = "      bad: {task: fails, inputs: {x: $inputs.x}}\n      slow: {task: inc, inputs: {x: $inputs.x}}\n\
                 \x20     after_slow: {task: inc, inputs: {x: $slow.y}}\n";
    let w = workflow(nodes, "");
    let run = simulate(&w, &[("bad", 1), ("slow", 3)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.run_failed, Some(FailureCode::NonZeroExit), "the failure ends the run before its token fails");
    assert_eq!(run.phases["slow"], NodePhase::Succeeded, "the sibling's end is recorded as it was");
    assert!(!run.phases.contains_key("after_slow") && !run.starts.contains_key("after_slow"), "{run:?}");
    assert_eq!(run.jobs, 2, "no job after the run failed");
}

#[test]
fn a_failed_node_under_finish_independent_marks_the_run_for_finish_to_fail() {
    let w = workflow(FAILING, "    on_failure: finish_independent\n");
    let run = simulate(&w, &[("free", 3)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.failed_nodes, HashSet::from(["bad".to_string()]), "skipped descendants are not failures");
    assert_eq!(run.run_failed, None, "the run goes on: Finish records FAILED when the independent nodes end");
}

#[test]
fn a_fresh_claim_without_a_job_asks_for_a_later_delivery_and_a_stale_one_is_taken_over() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    let jobs = &ports.jobs;
    let steps_at = |now_ms| Steps { now_ms, ..ports.steps(&w, &run) };
    // Another invocation claimed `a` at t = 1000 and died before SubmitJob.
    assert_eq!(block_on(run.claim("a", 1000, 0)).unwrap(), Claim::Won);
    let early = block_on(steps_at(1000 + CLAIM_LEASE_MS).arm("a", "t"));
    assert!(matches!(early, Err(PortError::Transient(_))), "within the lease: {early:?}");
    assert!(jobs.submitted.lock().unwrap().is_empty());
    block_on(steps_at(1001 + CLAIM_LEASE_MS).arm("a", "t")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "past the lease the node is started");
    assert_eq!(block_on(run.slot("a")).unwrap().job.as_deref(), Some("job-1"), "the job id is kept with the claim");
    block_on(steps_at(10_000_000).arm("a", "t")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "a node with a job is never started again");
}

#[test]
fn a_start_that_fails_before_submitting_gives_its_claim_back_and_one_that_fails_submitting_keeps_it() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    let steps_at = |now_ms| Steps { now_ms, ..ports.steps(&w, &run) };
    // The read of a's inputs is throttled after its arm claimed it: the claim is given back,
    // and the retry a moment later (Step Functions' Retry) starts it, not a lease later.
    run.state.lock().unwrap().throttle_next_values = true;
    assert!(matches!(block_on(steps_at(1000).arm("a", "t")), Err(PortError::Transient(_))));
    assert_eq!(block_on(run.slot("a")).unwrap().claimed_at, None, "the claim was given back");
    block_on(steps_at(6000).arm("a", "t")).unwrap();
    assert_eq!(ports.jobs.submitted.lock().unwrap().len(), 1, "started by the retry");

    // A submission that fails may have been taken (a lost answer): its claim stays for the lease.
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let faults = Faults::crashing_after(Some(1));
    let failing = Ports { jobs: RecordedJobs { faults: faults.clone(), ..Default::default() }, ..Ports::default() };
    let steps = Steps { now_ms: 1000, ..failing.steps(&w, &run) };
    // Write 0 is the arm's claiming write (the store's own counter); 1, the submission, fails.
    faults.writes.store(1, Ordering::SeqCst);
    assert!(block_on(steps.arm("a", "t")).is_err());
    assert_eq!(block_on(run.slot("a")).unwrap().claimed_at, Some(1000), "kept: the job may exist");
}

/// An abort that lands between a node's claim and its job's record lists the run's
/// jobs before this one is recorded, so it cannot stop it: the start, reading the
/// run's phase after its record, stops the job itself and ends the node ABORTED.
#[test]
fn a_job_submitted_as_its_run_is_aborted_is_stopped_by_its_own_start() {
    let workflow = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let run = MemoryRun::new(&workflow, [("x".to_string(), literal::integer(1))].into());
    run.state.lock().unwrap().abort_before_record = true;
    let ports = Ports::default();
    let jobs = &ports.jobs;
    block_on(ports.steps(&workflow, &run).arm("a", "token-a")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "the claim was won and the job submitted");
    assert_eq!(*jobs.cancelled.lock().unwrap(), [("a".to_string(), "job-1".to_string())]);
    let end = run.state.lock().unwrap().ended["a"].clone();
    assert_eq!((end.phase, end.failure.map(|f| f.code)), (NodePhase::Aborted, Some(FailureCode::Aborted)));
    // Without the abort, nothing is stopped.
    let quiet = MemoryRun::new(&workflow, [("x".to_string(), literal::integer(1))].into());
    let ports = Ports::default();
    block_on(ports.steps(&workflow, &quiet).arm("a", "token-a")).unwrap();
    assert!(ports.jobs.cancelled.lock().unwrap().is_empty());
    assert!(quiet.state.lock().unwrap().ended.is_empty(), "its job runs");
}

#[test]
fn a_recovery_completes_what_succeeded_on_the_same_work_and_runs_the_rest() {
    // `fails` is not cacheable: what a recovery keeps, the cache could not have kept.
    let nodes = |a_input: &str| {
        format!("      a: {{task: fails, inputs: {{x: {a_input}}}}}\n      b: {{task: fails, inputs: {{x: $a.y}}}}\n")
    };
    let w = workflow(&nodes("$inputs.x"), "");
    let inputs: Outputs = [("x".to_string(), literal::integer(1))].into();
    let y = |v: i64| -> Outputs { [("y".to_string(), literal::integer(v))].into() };
    // The run that failed: a succeeded (y = 2), then b failed.
    let source = MemoryRun::new(&w, inputs.clone());
    let ports = Ports::default();
    let steps = ports.steps(&w, &source);
    block_on(steps.arm("a", "ta")).unwrap();
    block_on(steps.job_ended("a", Ok(y(2)))).unwrap();
    block_on(steps.arm("b", "tb")).unwrap();
    block_on(steps.job_ended("b", Err(NodeFailure::new(FailureCode::NonZeroExit, "exit 1")))).unwrap();
    let recover = |version: &CompiledWorkflow| {
        let run = MemoryRun::new(version, inputs.clone());
        let jobs = RecordedJobs::default();
        let steps = Steps {
            jobs: &jobs,
            recovering: Some(Recovering { run: "source", workflow: &w, store: &source }),
            ..ports.steps(version, &run)
        };
        block_on(steps.arm("a", "ra")).unwrap();
        // b is armed once a's state succeeded; a that runs again ends later, and b with it.
        if run.state.lock().unwrap().ended.contains_key("a") {
            block_on(steps.arm("b", "rb")).unwrap();
        }
        let submitted = jobs.submitted.lock().unwrap().clone();
        let a = run.state.lock().unwrap().ended.get("a").cloned();
        (submitted, a)
    };
    // The same work: a ends RECOVERED with the recorded outputs, only b runs, on them.
    let (submitted, a) = recover(&w);
    assert_eq!(submitted.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["b"], "a is not run again");
    let a = a.expect("a ended");
    assert_eq!((a.phase, &a.outputs), (NodePhase::Recovered, &y(2)));
    assert_eq!(submitted[0].1["x"], literal::integer(2), "b reads the recovered output");
    // A version whose a runs on other inputs: a is not the same work and runs.
    let (submitted, _) = recover(&workflow(&nodes("5"), ""));
    assert_eq!(submitted.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a"], "b waits for the new a");
}

#[test]
fn a_recovered_map_runs_only_the_items_that_failed_in_the_run_it_recovers() {
    // `fails` is not cacheable: the recovered run's item results are all there is to reuse.
    let w = workflow(
        "      each:\n        map: {task: fails, over: [x], min_success_ratio: 1.0}\n        inputs: {x: [10, 11, 12, 13, 14]}\n",
        "",
    );
    let source = MemoryRun::new(&w, Outputs::new());
    let ports = Ports::default();
    let y = |v: i64| node::ItemResult::Succeeded([("y".to_string(), literal::integer(v))].into());
    let failed = || node::ItemResult::Failed(NodeFailure::new(FailureCode::NonZeroExit, "exit 3"));
    // The recovered run: items 1 and 3 failed, so the map failed.
    let ran = vec![(0, y(11)), (1, failed()), (2, y(13)), (3, failed()), (4, y(15))];
    let steps = ports.steps(&w, &source);
    block_on(steps.arm("each", "t")).unwrap();
    block_on(steps.map_reported("each", ran.clone(), 1, String::new(), Default::default())).unwrap();
    assert_eq!(source.state.lock().unwrap().ended["each"].phase, NodePhase::Failed);
    *ports.jobs.recovered_run_items.lock().unwrap() = ran;
    let recovery = MemoryRun::new(&w, Outputs::new());
    let steps = Steps {
        recovering: Some(Recovering { run: "source", workflow: &w, store: &source }),
        ..ports.steps(&w, &recovery)
    };
    block_on(steps.arm("each", "r")).unwrap();
    let submitted: Vec<usize> = ports.jobs.maps.lock().unwrap()[1].1.iter().map(|(i, _)| *i).collect();
    assert_eq!(submitted, [1, 3], "only the items that failed run again");
    block_on(steps.map_reported("each", vec![(1, y(12)), (3, y(14))], 1, String::new(), Default::default())).unwrap();
    let end = recovery.state.lock().unwrap().ended["each"].clone();
    let expected = literal::list((11..16).map(literal::integer).collect());
    assert_eq!((end.phase, &end.outputs["y"]), (NodePhase::Succeeded, &expected), "the kept items in their places");
}
