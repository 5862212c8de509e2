//! The node protocol of a cloud run (docs/cloud-execution.md): what the node
//! function does when Step Functions arms a node and when a node's job ends.
//! Pure decisions over ports, so the protocol is tested here with in-memory
//! ports and runs unchanged in the Lambda over DynamoDB, Batch and Step Functions.
//!
//! A node starts when it is armed (its state holds a task token) and its last
//! upstream node has ended, whichever comes second; a conditional claim makes
//! exactly one caller start it. Its inputs come from the same node rules as a
//! local run's (`execution::node`), its cache key is the same (`cache_key`), and a
//! verified cache hit ends it at once without a job. When a node ends, its token
//! is answered and each downstream node learns that this upstream node ended.
//!
//! Every event is delivered at least once and any invocation can die between two
//! writes, so no step trusts an earlier one to have finished: each event
//! *converges* the node from what the store holds (`NodeSlot`). A node that ended
//! but is not `settled` has its token answered and its downstream told again
//! (answers and edge marks are idempotent); a node claimed but never started is
//! started again once the claim's lease has run out; a step that cannot tell
//! whether a live invocation holds the node answers `Transient`, so the event
//! comes back later. The state table is in docs/cloud-execution.md.

use super::failure::FailureCode;
use super::node::{self, NodeFailure, Outputs};
use super::resolve::Values;
use crate::cache_key;
use crate::ports::{BlobStore, CacheStore, PortError, holds_all};
use crate::proto::core::{
    CompiledWorkflow, FailurePolicy, Literal, MapNode, Node, NodePhase, TaskTemplate, node::Target,
};
use std::collections::BTreeMap;
use std::future::Future;

/// How long a claim keeps its node: past it, the claimer is taken to be dead.
/// The node function's invocations end within 60 s (its timeout), so a claim
/// older than 90 s has no live holder, and starting the node again is safe.
pub const CLAIM_LEASE_MS: u64 = 90_000;

/// Cache entries a gather writes between two looks at the time it has left (100
/// BatchWriteItem requests).
pub const GATHER_CHUNK: usize = 2_500;

/// Where a map's gather starts in this invocation ([`Steps::map_gathered`]).
pub struct Gathering<'t> {
    /// Cache entries of the items that ran that earlier invocations wrote.
    pub written: usize,
    /// Whether the invocation may go on (a look at its deadline).
    pub time_left: &'t (dyn Fn() -> bool + Send + Sync),
}

/// What one invocation's part of a gather did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gathered {
    /// The map's end is recorded (by this gather or, first, another).
    Ended,
    /// Its time ran out with this many cache entries written: a follow-up goes on.
    OutOfTime { written: usize },
}

/// How a node ended, as the run store keeps it (the outputs are read with `values`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEnd {
    pub phase: NodePhase,
    pub failure: Option<NodeFailure>,
}

/// One node's coordination state in a run, as the run store holds it. A node
/// nothing has written yet (not armed, no upstream ended) has the default slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSlot {
    /// Upstream nodes that have ended (each counted once, however often told).
    pub ended_upstream: Vec<String>,
    /// The task token of the node's state, once armed.
    pub token: Option<String>,
    /// Whether an upstream node failed or was skipped: the node will be skipped.
    pub skip: bool,
    /// When its start was claimed (epoch milliseconds), if it was.
    pub claimed_at: Option<u64>,
    /// The job (Batch job id, child run name) its start submitted, once recorded.
    pub job: Option<String>,
    /// How it ended, once recorded.
    pub end: Option<RecordedEnd>,
    /// Whether everything its end implies is done and marked so (`RunStore::settled`).
    /// A node whose settle tells downstream nodes is not marked: it is settled once
    /// each of them has moved on with its end ([`moved_on`], [`NodeEnd::downstream`]).
    pub settled: bool,
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeEnd {
    pub phase: NodePhase,
    pub outputs: Outputs,
    pub failure: Option<NodeFailure>,
    /// Attempts its job made (0: no job ran).
    pub attempts: u32,
    /// Where the last attempt's log is (empty: no job ran).
    pub log_uri: String,
    /// The task's cache key (empty when it is not cached): the same as a local run's.
    /// Recorded for a cacheable task that ran and failed too, so its record says it
    /// missed the cache rather than that it has none.
    pub cache_key: String,
    /// A branch node: the id of the case's node it ran (empty for other nodes).
    pub branch_taken: String,
    /// A map node's items, once it has gathered them.
    pub items: Option<MapItems>,
    /// What its job's attempts used of Batch (cost::attempt_usage).
    pub batch: crate::proto::core::RunUsage,
    /// Each attempt of its job: when it waited, ran and ended, and how it failed.
    pub attempt_records: Vec<crate::proto::core::AttemptRecord>,
    /// How many downstream nodes its settle tells (0: none, or an end that fails the
    /// run). Recorded with the end: once each holds this node among its ended
    /// upstream nodes, the end is settled without a write of its own, since its token
    /// is answered before the first of them is told.
    pub downstream: u32,
}

/// How a map node's items ended: run here, reused or recovered, all count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapItems {
    pub done: u32,
    pub failed: u32,
    pub total: u32,
}

impl MapItems {
    fn of(items: &[node::ItemResult]) -> MapItems {
        let failed = items.iter().filter(|i| matches!(i, node::ItemResult::Failed(_))).count() as u32;
        MapItems { done: items.len() as u32 - failed, failed, total: items.len() as u32 }
    }
}

/// How a node's job ended, as its executor reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    pub result: Result<Outputs, NodeFailure>,
    pub attempts: u32,
    pub log_uri: String,
    /// What the attempts used of Batch, as billed (zero where not known).
    pub batch: crate::proto::core::RunUsage,
    /// Each attempt, as Batch describes the job (empty where there is no job).
    pub attempt_records: Vec<crate::proto::core::AttemptRecord>,
}

impl NodeEnd {
    /// A node whose job was submitted as its run ended (a stop between the node's
    /// claim and the job's record): the job is stopped, the node ABORTED.
    pub fn stopped_after_its_run() -> NodeEnd {
        let message = "stopped: the run had ended when its job was submitted";
        NodeEnd { phase: NodePhase::Aborted, ..NodeEnd::failed(NodeFailure::new(FailureCode::Aborted, message)) }
    }

    fn ok(phase: NodePhase, outputs: Outputs) -> NodeEnd {
        NodeEnd { phase, outputs, ..NodeEnd::default() }
    }

    pub(crate) fn failed(failure: NodeFailure) -> NodeEnd {
        NodeEnd { phase: NodePhase::Failed, failure: Some(failure), ..NodeEnd::default() }
    }

    fn skipped() -> NodeEnd {
        NodeEnd { phase: NodePhase::Skipped, ..NodeEnd::default() }
    }

    /// A map node's end over its items' results.
    fn of_map(
        phase: NodePhase,
        items: &[node::ItemResult],
        output_names: &[String],
        min_success_ratio: f64,
    ) -> NodeEnd {
        let end = match node::map_outcome(items, output_names, min_success_ratio) {
            Ok(outputs) => NodeEnd::ok(phase, outputs),
            Err(failure) => NodeEnd::failed(failure),
        };
        NodeEnd { items: Some(MapItems::of(items)), ..end }
    }

    /// What the run store keeps of it in the slot.
    pub fn recorded(&self) -> RecordedEnd {
        RecordedEnd { phase: self.phase, failure: self.failure.clone() }
    }
}

/// The answer to a claim of a node's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller starts the node.
    Won,
    /// Another caller holds a fresh claim, or the node has a job or an end already.
    Held,
    /// The run has ended (failed, aborted, timed out): nothing starts any more.
    RunEnded,
}

/// The per-run state of the protocol. Every method is one conditional or
/// idempotent write (or a read), so concurrent and repeated calls are safe: the
/// same call made twice leaves the store as once.
pub trait RunStore: Send + Sync {
    /// Stores `node`'s token; the slot after the write. Arming again stores the new token.
    fn arm(&self, node: &str, token: &str) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// `upstream` (one of the `upstream_total` upstream nodes of `node`) ended (`failed`:
    /// failed or was skipped); the slot after the write. Each edge counts once, however
    /// often told. The first write of a node's item may be this one or its arm.
    fn upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        upstream_total: u32,
    ) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// [`arm`](RunStore::arm) of a node that is ready once armed — one without upstream
    /// nodes, or one whose arm also tells it `told` (its only upstream node, which
    /// ended; whether it failed), as [`upstream_ended`](RunStore::upstream_ended) would
    /// — that claims its start in the same atomic write when [`claim`](RunStore::claim)
    /// would win: one write for the usual arm of a root or chained node. The slot after
    /// (when it claimed: what the write set), and whether it claimed.
    fn arm_claiming(
        &self,
        node: &str,
        token: &str,
        told: Option<(&str, bool)>,
        now: u64,
        stale_before: u64,
    ) -> impl Future<Output = Result<(NodeSlot, bool), PortError>> + Send;
    /// [`upstream_ended`](RunStore::upstream_ended) for `upstream`, `node`'s only upstream
    /// node, that claims `node`'s start in the same atomic write when `node` is armed
    /// and [`claim`](RunStore::claim) would win: one write for the usual step of a chain.
    /// The slot after (when it claimed: what the write set), and whether it claimed.
    fn only_upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        now: u64,
        stale_before: u64,
    ) -> impl Future<Output = Result<(NodeSlot, bool), PortError>> + Send;
    /// The slot as it is.
    fn slot(&self, node: &str) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// Claims the start of `node` at `now` (epoch ms). `Won` while the run is
    /// RUNNING, the node has neither a job nor an end, and it is unclaimed or its
    /// claim was made before `stale_before`; the run's phase is checked in the same
    /// atomic write.
    fn claim(&self, node: &str, now: u64, stale_before: u64) -> impl Future<Output = Result<Claim, PortError>> + Send;
    /// Gives back the claim made at `claimed_at` of a start that failed before it could
    /// submit anything: unless another claim, a job or an end came since, `node` is
    /// unclaimed. Best effort: a claim not given back runs out with its lease.
    fn release(&self, node: &str, claimed_at: u64) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Takes the lease of gathering the items of `node` (a map whose job ended) at `now`
    /// (epoch ms): `true` while the node has no end and no gather leased since
    /// `stale_before` but the one taken at `ours` (a follow-up takes its predecessor's
    /// lease over). Two deliveries of a map's end then gather its items once.
    fn lease_gather(
        &self,
        node: &str,
        now: u64,
        stale_before: u64,
        ours: Option<u64>,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Gives back the gather lease taken at `leased_at` (its gather failed); a lease
    /// taken since is kept. Best effort: a lease not given back runs out.
    fn release_gather(&self, node: &str, leased_at: u64) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Records the job a claimed start submitted; a job recorded before is kept.
    fn started(&self, node: &str, job: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Whether the run is still RUNNING, read consistently (after [`started`](RunStore::started):
    /// a stop that ended the run before this read lists the job that write recorded, or
    /// this read sees the stop).
    fn run_running(&self) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Records how `node` ended unless it had ended already; the slot after,
    /// holding the end that was recorded first, and whether this call recorded it.
    fn end(&self, node: &str, end: &NodeEnd) -> impl Future<Output = Result<(NodeSlot, bool), PortError>> + Send;
    /// Everything `node`'s end implies is done.
    fn settled(&self, node: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// A node failed while the run lets independent nodes finish: the run will end FAILED.
    fn node_failed(&self, node: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Ends a RUNNING run FAILED with `failure`; a run that has ended is left as it is.
    fn fail_run(&self, failure: &NodeFailure) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The run's inputs and the outputs of those of `nodes` that ended (`None`:
    /// of every node). A node reads only its upstream nodes' outputs, so what
    /// one node reads does not grow with the run's size.
    fn values(&self, nodes: Option<&[String]>) -> impl Future<Output = Result<RunValues, PortError>> + Send;
}

/// Whether an end counts as failed for the downstream nodes it tells: they are skipped.
fn ends_failed(phase: NodePhase) -> bool {
    matches!(phase, NodePhase::Failed | NodePhase::Skipped)
}

/// The nodes of `workflow` in its order.
fn nodes_of(workflow: &CompiledWorkflow) -> &[crate::proto::core::Node] {
    workflow.template.as_ref().map(|t| t.nodes.as_slice()).unwrap_or_default()
}

/// The node that node `id` follows in its Step Functions branch
/// (`state_machine::definition`): its only upstream node, when `id` is the first node
/// (in the workflow's order) whose only upstream node that is. Step Functions arms
/// `id` once that node's state succeeded, so `id`'s arm also tells it that node ended:
/// a chain's step costs no write of its own.
pub fn chained_after<'w>(workflow: &'w CompiledWorkflow, id: &str) -> Option<&'w str> {
    let node = nodes_of(workflow).iter().find(|n| n.id == id)?;
    let [upstream] = node.upstream_node_ids.as_slice() else { return None };
    (chained_child(workflow, upstream) == Some(id)).then_some(upstream.as_str())
}

/// The node chained after node `id` ([`chained_after`]), if any.
pub fn chained_child<'w>(workflow: &'w CompiledWorkflow, id: &str) -> Option<&'w str> {
    nodes_of(workflow)
        .iter()
        .find(|n| matches!(n.upstream_node_ids.as_slice(), [only] if only == id))
        .map(|n| n.id.as_str())
}

/// Whether a downstream node's slot shows that `upstream`'s end reached it and did
/// all it had to there: it holds the edge, and it has a job or an end, or cannot start
/// yet (not armed, or another upstream node still runs: that one's end or its arm
/// starts it). A child claimed without a job, or ready and unclaimed, has not moved
/// on: its start may have died, and telling it again converges it. An ended node is
/// settled when each downstream node it tells has moved on (the node function's
/// redeliveries and the reconciler read it so).
pub fn moved_on(child: &NodeSlot, upstream: &str, upstream_total: u32) -> bool {
    let startable = child.token.is_some() && child.ended_upstream.len() as u32 >= upstream_total;
    child.ended_upstream.iter().any(|u| u == upstream) && (child.job.is_some() || child.end.is_some() || !startable)
}

/// The nodes whose outputs node `id` of `workflow` may bind (its upstream
/// nodes), and `id` itself when `with_itself`.
fn reads_of(workflow: &CompiledWorkflow, id: &str, with_itself: bool) -> Vec<String> {
    let nodes = workflow.template.as_ref().map(|t| t.nodes.as_slice()).unwrap_or_default();
    let mut reads = nodes.iter().find(|n| n.id == id).map(|n| n.upstream_node_ids.clone()).unwrap_or_default();
    if with_itself {
        reads.push(id.to_string());
    }
    reads
}

/// A run's values, for resolving bindings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunValues {
    pub inputs: Outputs,
    pub outputs: BTreeMap<String, Outputs>,
}

impl Values for RunValues {
    fn workflow_input(&self, name: &str) -> Option<&Literal> {
        self.inputs.get(name)
    }
    fn node_output(&self, node_id: &str, var: &str) -> Option<&Literal> {
        self.outputs.get(node_id)?.get(var)
    }
}

/// Starts task jobs (Batch).
pub trait Jobs: Send + Sync {
    /// Submits one job of `task` for `node` with `inputs`; its id. When it ends, the
    /// adapter calls [`Steps::job_ended`] with the outputs or the failure.
    fn submit(
        &self,
        node: &str,
        task: &TaskTemplate,
        inputs: &Outputs,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// The most items one map submission can take (AWS Batch: 10,000 children in an
    /// array job); `None` when there is no limit. A map over more fails its node at
    /// start, saying so, instead of a refused submission that no retry can help.
    fn max_map_items(&self) -> Option<usize> {
        None
    }
    /// Submits the items of a map node that have to run (the others were reused
    /// from the cache), at most `concurrency` at once when it is set (Batch: one
    /// array job, its children striding over the items when there are more items
    /// than children); its id. When every item has ended, the adapter calls
    /// [`Steps::map_reported`] with the result of each item it ran, under that
    /// item's index.
    fn submit_map(
        &self,
        node: &str,
        task: &TaskTemplate,
        items: &[ItemToRun<'_>],
        concurrency: Option<usize>,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// Starts a child run of a subworkflow node (its closure entry) with its inputs;
    /// when the child ends, the adapter calls [`Steps::job_reported`] with the
    /// subworkflow's outputs or its failure.
    fn start_subworkflow(
        &self,
        node: &str,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// The results of the items map node `node` of run `run` (one of this
    /// workflow's project and domain: a run being recovered) ran, by item index;
    /// empty when it ran none. Only its succeeded items are used.
    fn map_results(
        &self,
        run: &str,
        node: &str,
    ) -> impl Future<Output = Result<Vec<(usize, node::ItemResult)>, PortError>> + Send {
        let _ = (run, node);
        async { Ok(Vec::new()) }
    }
    /// Stops what `job` (a job or a child run `node` started) runs; one that has
    /// ended is not an error.
    fn cancel(&self, node: &str, job: &str, reason: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// One item of a map node that has to run: its index among the map's items
/// (where its result goes) and its inputs.
#[derive(Debug, Clone, Copy)]
pub struct ItemToRun<'a> {
    pub index: usize,
    pub inputs: &'a Outputs,
}

/// How many cache entries' blobs are checked at once: each check is a round
/// trip (S3 HeadObject), and a map may have thousands of hits.
const VERIFY_IN_FLIGHT: usize = 32;

/// What a node runs.
enum Invocation<'w> {
    /// A task on its inputs (a branch: its chosen case's task).
    Task(&'w TaskTemplate, Outputs),
    /// A task on each item of a map node.
    Map(&'w TaskTemplate, &'w MapNode, Vec<Outputs>),
    /// A subworkflow (from the closure) on its inputs.
    Workflow(&'w CompiledWorkflow, Outputs),
}

/// Answers the task tokens of node states (Step Functions).
pub trait Tokens: Send + Sync {
    /// The node's state succeeds (its node ended: succeeded, cached, skipped, or failed
    /// under the policy that lets independent nodes finish).
    fn succeed(&self, token: &str, node: &str, phase: NodePhase) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The node's state fails, which fails the run at once.
    fn fail(&self, token: &str, failure: &NodeFailure) -> impl Future<Output = Result<(), PortError>> + Send;
}

fn output_names(task: &TaskTemplate) -> Vec<String> {
    task.interface.clone().unwrap_or_default().outputs.iter().map(|v| v.name.clone()).collect()
}

/// The id of the case's node that branch node `id` runs on these values; `None`
/// for a node that is not a branch (it runs as itself), or a branch that takes no case.
fn branch_taken(workflow: &CompiledWorkflow, id: &str, values: &RunValues) -> Option<String> {
    chosen_node(workflow, id, values).ok().filter(|chosen| chosen.id != id).map(|chosen| chosen.id.clone())
}

/// Node `id` of `workflow`, or the case it runs on these values if it is a branch
/// (a branch runs its chosen case as the node itself).
fn chosen_node<'w>(workflow: &'w CompiledWorkflow, id: &str, values: &RunValues) -> Result<&'w Node, NodeFailure> {
    let nodes = workflow.template.as_ref().map(|t| t.nodes.as_slice()).unwrap_or_default();
    let target = nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| NodeFailure::new(FailureCode::BadJob, format!("the workflow has no node {id}")))?;
    match &target.target {
        Some(Target::Branch(branch)) => node::choose_branch(branch, values),
        _ => Ok(target),
    }
}

/// What node `id` of `workflow` runs on, resolved from a run's values as the node's
/// start resolves them (a task's defaults filled in; a branch: its case's; a map: its
/// lists, before they are split into items); `None` where they cannot be resolved
/// (an upstream node has not ended, or ended without the value).
pub fn resolved_inputs(workflow: &CompiledWorkflow, id: &str, values: &RunValues) -> Option<Outputs> {
    match invocation_in(workflow, id, values).ok()?? {
        Invocation::Task(_, inputs) | Invocation::Workflow(_, inputs) => Some(inputs),
        Invocation::Map(task, _, _) => {
            node::task_inputs(task, &chosen_node(workflow, id, values).ok()?.inputs, values).ok()
        }
    }
}

/// What node `id` of `workflow` runs on these values (a branch: its chosen case),
/// or why it cannot run; `None` for a node that runs nothing.
fn invocation_in<'w>(
    workflow: &'w CompiledWorkflow,
    id: &str,
    values: &RunValues,
) -> Result<Option<Invocation<'w>>, NodeFailure> {
    let bad = |message: String| NodeFailure::new(FailureCode::BadJob, message);
    let chosen = chosen_node(workflow, id, values)?;
    let task_of = |task_id: Option<&crate::proto::core::Identifier>| {
        task_id
            .and_then(|id| {
                workflow
                    .tasks
                    .iter()
                    .find(|t| t.id.as_ref().is_some_and(|t| t.name == id.name && t.version == id.version))
            })
            .ok_or_else(|| bad(format!("node {id}: its task is not in the workflow's closure")))
    };
    match &chosen.target {
        Some(Target::Task(task_node)) => {
            let task = task_of(task_node.task_id.as_ref())?;
            Ok(Some(Invocation::Task(task, node::task_inputs(task, &chosen.inputs, values)?)))
        }
        Some(Target::Map(map_node)) => {
            let task = task_of(map_node.task_id.as_ref())?;
            let inputs = node::task_inputs(task, &chosen.inputs, values)?;
            Ok(Some(Invocation::Map(task, map_node, node::map_items(map_node, &inputs)?)))
        }
        Some(Target::Workflow(workflow_node)) => {
            let wanted = workflow_node.workflow_id.clone().unwrap_or_default();
            let sub = workflow
                .subworkflows
                .iter()
                .find(|w| {
                    w.template
                        .as_ref()
                        .and_then(|t| t.id.as_ref())
                        .is_some_and(|i| i.name == wanted.name && i.version == wanted.version)
                })
                .ok_or_else(|| bad(format!("node {id}: its subworkflow is not in the workflow's closure")))?;
            let template = sub.template.clone().unwrap_or_default();
            Ok(Some(Invocation::Workflow(sub, node::workflow_inputs(&template, &chosen.inputs, values)?)))
        }
        _ => Ok(None),
    }
}

/// Whether two invocations do the same work: the same task (or subworkflow) by
/// name, on the same resolved inputs (a map: the same items). Versions may differ:
/// a recovery under a fixed version keeps what already succeeded.
fn same_work(ours: &Invocation<'_>, theirs: &Invocation<'_>) -> bool {
    let name = |task: &TaskTemplate| task.id.as_ref().map(|i| i.name.clone());
    let workflow_name = |w: &CompiledWorkflow| w.template.as_ref().and_then(|t| t.id.as_ref()).map(|i| i.name.clone());
    match (ours, theirs) {
        (Invocation::Task(a, x), Invocation::Task(b, y)) => name(a) == name(b) && x == y,
        (Invocation::Map(a, _, x), Invocation::Map(b, _, y)) => name(a) == name(b) && x == y,
        (Invocation::Workflow(a, x), Invocation::Workflow(b, y)) => workflow_name(a) == workflow_name(b) && x == y,
        _ => false,
    }
}

/// The run a RECOVER run recovers: its workflow version (the closure it ran) and
/// its records. A node that succeeded there on the same work ends RECOVERED here.
#[derive(Clone, Copy)]
pub struct Recovering<'a, S> {
    /// The recovered run's name (its project and domain are this run's).
    pub run: &'a str,
    pub workflow: &'a CompiledWorkflow,
    pub store: &'a S,
}

/// The protocol for one run of one workflow (its closure).
pub struct Steps<'a, S, C, B, J, T> {
    pub workflow: &'a CompiledWorkflow,
    pub store: &'a S,
    pub cache: &'a C,
    pub blobs: &'a B,
    pub jobs: &'a J,
    pub tokens: &'a T,
    /// Run every task and replace its cache entry (`overwrite_cache` at launch).
    pub overwrite_cache: bool,
    /// The invocation's clock (epoch ms), read once at the edge: claims are
    /// stamped with it and leases measured against it (tests drive it by hand).
    pub now_ms: u64,
    /// The run this one recovers, if it is a recovery.
    pub recovering: Option<Recovering<'a, S>>,
}

impl<S: RunStore, C: CacheStore, B: BlobStore, J: Jobs, T: Tokens> Steps<'_, S, C, B, J, T> {
    fn node(&self, id: &str) -> Result<&Node, PortError> {
        let template = self.workflow.template.as_ref();
        template
            .and_then(|t| t.nodes.iter().find(|n| n.id == id))
            .ok_or_else(|| PortError::Invalid(format!("the workflow has no node {id}")))
    }

    /// Claims made before this are past their lease: their holders are taken to be dead.
    fn stale_before(&self) -> u64 {
        self.now_ms.saturating_sub(CLAIM_LEASE_MS)
    }

    /// How many upstream nodes node `id` waits for.
    fn upstream_count(&self, id: &str) -> u32 {
        self.node(id).map_or(0, |n| n.upstream_node_ids.len() as u32)
    }

    fn downstream(&self, id: &str) -> Vec<String> {
        let nodes = nodes_of(self.workflow);
        nodes.iter().filter(|n| n.upstream_node_ids.iter().any(|u| u == id)).map(|n| n.id.clone()).collect()
    }

    fn fail_immediately(&self) -> bool {
        let policy = self.workflow.template.as_ref().map(|t| t.failure_policy).unwrap_or_default();
        policy == FailurePolicy::FailImmediately as i32
    }

    /// A node's state armed it with `token`: starts it if its upstream nodes have
    /// all ended, or finishes what its end left undone.
    pub async fn arm(&self, node: &str, token: &str) -> Result<(), PortError> {
        let told = match chained_after(self.workflow, node) {
            // Step Functions arms a chained node once its upstream node's state succeeded,
            // which its settle answered after recording its end: the arm tells that end.
            Some(upstream) => match self.store.slot(upstream).await?.end {
                Some(end) => Some((upstream, ends_failed(end.phase))),
                None => {
                    return Err(PortError::Transient(format!(
                        "node {node} is armed after {upstream}, whose end is not recorded yet"
                    )));
                }
            },
            None => None,
        };
        let todo = if told.is_some() || self.node(node)?.upstream_node_ids.is_empty() {
            match self.store.arm_claiming(node, token, told, self.now_ms, self.stale_before()).await? {
                (slot, true) => Todo::Claimed(node.to_string(), slot),
                (slot, false) => Todo::Node(node.to_string(), slot),
            }
        } else {
            Todo::Node(node.to_string(), self.store.arm(node, token).await?)
        };
        self.converge(vec![todo]).await
    }

    /// Whether a job-end event is about the job this node's start submitted. An event
    /// naming another job — forged, or of a submission that lost to the recorded one —
    /// must end nothing. Before the job is recorded (the start died between submitting
    /// and recording it) the node has no job to compare with, and its own is taken.
    pub async fn is_its_job(&self, node: &str, job: &str) -> Result<bool, PortError> {
        self.node(node)?;
        let slot = self.store.slot(node).await?;
        Ok(!job.is_empty() && slot.job.as_deref().is_none_or(|recorded| recorded == job))
    }

    /// A node's job ended with its outputs or its failure (after Batch's retries).
    pub async fn job_ended(&self, node: &str, result: Result<Outputs, NodeFailure>) -> Result<(), PortError> {
        let report = JobReport {
            result,
            attempts: 1,
            log_uri: String::new(),
            batch: Default::default(),
            attempt_records: Vec::new(),
        };
        self.job_reported(node, report).await
    }

    /// A node's job ended, with its attempts and log location.
    /// Delivered again, the end is worked out again and loses to the recorded one
    /// (`record_end`); what that end left undone is finished.
    pub async fn job_reported(&self, node: &str, report: JobReport) -> Result<(), PortError> {
        self.node(node)?;
        let mut end = match report.result {
            Ok(outputs) => NodeEnd::ok(NodePhase::Succeeded, outputs),
            Err(failure) => NodeEnd::failed(failure),
        };
        let values = self.store.values(Some(&reads_of(self.workflow, node, false))).await?;
        end.branch_taken = branch_taken(self.workflow, node, &values).unwrap_or_default();
        if let Ok(Some(Invocation::Task(task, inputs))) = self.invocation(node, &values)
            && let Some(key) = cache_key::for_task(task, &inputs)
        {
            if end.phase == NodePhase::Succeeded {
                // A lost cache entry costs a rerun later, not this run.
                let _ = self.cache.put_for(&key, &task.id.clone().unwrap_or_default(), &end.outputs).await;
            }
            end.cache_key = key;
        }
        (end.attempts, end.log_uri, end.batch) = (report.attempts, report.log_uri, report.batch);
        end.attempt_records = report.attempt_records;
        self.record_end(node, &end).await
    }

    /// Whether this invocation gathers the items of `node`, a map whose job ended. A
    /// gather reads every item's result and writes each item's cache entry, so two
    /// deliveries of the job's end — Batch's event and the reconciler's stand-in for it,
    /// racing while a wide map gathers — must not both do it: the first takes a lease
    /// (the claim's, past the function's timeout) and the other returns at once. If the
    /// holder dies, the reconciler reports the end again once the lease has run out. An
    /// end recorded already is converged from, as any redelivered end is. A follow-up of
    /// a gather out of time takes over the lease its predecessor took at `leased_at`.
    pub async fn gathers(&self, node: &str, leased_at: Option<u64>) -> Result<bool, PortError> {
        self.node(node)?;
        if self.store.lease_gather(node, self.now_ms, self.stale_before(), leased_at).await? {
            return Ok(true);
        }
        let slot = self.store.slot(node).await?;
        if slot.end.is_some() {
            self.converge(vec![Todo::Node(node.to_string(), slot)]).await?;
        }
        Ok(false)
    }

    /// A gather that failed gives its lease back, so that the retry of its event gathers
    /// at once rather than after the lease.
    pub async fn gather_failed(&self, node: &str) {
        let _ = self.store.release_gather(node, self.now_ms).await;
    }

    /// Every item of a map node that ran ended (after Batch's retries of each):
    /// `ran` holds their results by item index. The items that did not run were
    /// verified cache hits at start; they are read again (an entry evicted during
    /// the run fails its item, naming it, rather than inventing its outputs).
    pub async fn map_reported(
        &self,
        node: &str,
        ran: Vec<(usize, node::ItemResult)>,
        attempts: u32,
        log_uri: String,
        batch: crate::proto::core::RunUsage,
    ) -> Result<(), PortError> {
        let whole = Gathering { written: 0, time_left: &|| true };
        self.map_gathered(node, ran, attempts, log_uri, batch, whole).await.map(|_| ())
    }

    /// [`map_reported`](Steps::map_reported) over a gather's invocations: the cache
    /// entries of the items that ran are written [`GATHER_CHUNK`] at a time from
    /// `gathering.written` on, and once this invocation has written one chunk and has
    /// no time left it stops, saying how far it got, for a follow-up to go on from
    /// there (`ran` must be the same, in the same order, in each: item results as
    /// stored). A map of any width so never meets the function's timeout.
    pub async fn map_gathered(
        &self,
        node: &str,
        ran: Vec<(usize, node::ItemResult)>,
        attempts: u32,
        log_uri: String,
        batch: crate::proto::core::RunUsage,
        gathering: Gathering<'_>,
    ) -> Result<Gathered, PortError> {
        self.node(node)?;
        let values = self.store.values(Some(&reads_of(self.workflow, node, false))).await?;
        let mut end = match self.invocation(node, &values) {
            Ok(Some(Invocation::Map(task, map_node, inputs))) => {
                let mut results: Vec<Option<node::ItemResult>> = vec![None; inputs.len()];
                // Each item's outputs are cached as a local run caches them, under the item's key.
                let mut entries = Vec::new();
                for (index, result) in ran {
                    if let (Some(key), node::ItemResult::Succeeded(outputs)) =
                        (inputs.get(index).and_then(|item| cache_key::for_task(task, item)), &result)
                    {
                        entries.push((key, outputs.clone()));
                    }
                    if let Some(slot) = results.get_mut(index) {
                        *slot = Some(result);
                    }
                }
                let task_id = task.id.clone().unwrap_or_default();
                let mut written = gathering.written.min(entries.len());
                for (first, chunk) in entries.chunks(GATHER_CHUNK).enumerate().map(|(i, c)| (i * GATHER_CHUNK, c)) {
                    if first + chunk.len() <= written {
                        continue;
                    }
                    if written > gathering.written && !(gathering.time_left)() {
                        return Ok(Gathered::OutOfTime { written });
                    }
                    // Lost entries cost a rerun later, not this run.
                    let _ = self.cache.put_many_for(&chunk[written - first..], &task_id).await;
                    written = first + chunk.len();
                }
                // Items of a recovered run that succeeded there, then the cache's verified hits.
                for (index, outputs) in self.recovered_items(node, &values).await? {
                    if let Some(slot @ None) = results.get_mut(index) {
                        *slot = Some(node::ItemResult::Succeeded(outputs));
                    }
                }
                let reused: Vec<usize> = (0..inputs.len()).filter(|&i| results[i].is_none()).collect();
                let reused_inputs: Vec<&Outputs> = reused.iter().map(|&i| &inputs[i]).collect();
                let hits = self.cached_items(task, &reused_inputs).await?;
                for (index, hit) in reused.into_iter().zip(hits) {
                    results[index] = Some(match hit {
                        Some(outputs) => node::ItemResult::Succeeded(outputs),
                        None => node::ItemResult::Failed(NodeFailure::new(
                            FailureCode::DataError,
                            format!(
                                "item {index} was reused from the cache when the map started, and its entry or \
                                 one of its blobs is gone now (evicted during the run): run the map again"
                            ),
                        )),
                    });
                }
                let items: Vec<node::ItemResult> = results.into_iter().flatten().collect();
                NodeEnd::of_map(NodePhase::Succeeded, &items, &output_names(task), map_node.min_success_ratio)
            }
            Ok(_) => NodeEnd::failed(NodeFailure::new(FailureCode::BadJob, format!("node {node} is not a map node"))),
            Err(failure) => NodeEnd::failed(failure),
        };
        (end.attempts, end.log_uri, end.batch) = (attempts, log_uri, batch);
        self.record_end(node, &end).await.map(|_| Gathered::Ended)
    }

    /// Records `node`'s end (the first recorded end wins: a repeat gets the recorded
    /// one back) and settles it.
    async fn record_end(&self, node: &str, end: &NodeEnd) -> Result<(), PortError> {
        let todo = self.end(node, end.clone()).await?;
        self.converge(vec![todo]).await
    }

    /// Records `id`'s end (the first recorded end wins) with the count of downstream
    /// nodes its settle will tell: what to converge next (an end this call recorded
    /// is settled at once; one recorded before may be settled already).
    async fn end(&self, id: &str, mut end: NodeEnd) -> Result<Todo, PortError> {
        end.downstream = if self.fails_run(&end.recorded()).is_some() { 0 } else { self.downstream(id).len() as u32 };
        Ok(match self.store.end(id, &end).await? {
            (slot, true) => Todo::Ended(id.to_string(), slot),
            (slot, false) => Todo::Node(id.to_string(), slot),
        })
    }

    /// The downstream nodes `id`'s settle tells, with their slots, when each has moved on
    /// with its end ([`moved_on`]): then its token was answered too (it is answered
    /// first), and settling again would only answer it again. `None` when one has not,
    /// or `id` is settled by a mark. Read for an end recorded before (a redelivery, an
    /// arm after the end), so reads only.
    async fn moved_on_children(
        &self,
        id: &str,
        end: &RecordedEnd,
    ) -> Result<Option<Vec<(String, NodeSlot)>>, PortError> {
        let children = self.downstream(id);
        if children.is_empty() || self.fails_run(end).is_some() {
            return Ok(None);
        }
        let mut slots = Vec::new();
        for child in children {
            let slot = self.store.slot(&child).await?;
            if !moved_on(&slot, id, self.upstream_count(&child)) {
                return Ok(None);
            }
            slots.push((child, slot));
        }
        Ok(Some(slots))
    }

    /// The failure that fails the whole run now: a failed node of a fail-fast run.
    fn fails_run<'e>(&self, end: &'e RecordedEnd) -> Option<&'e NodeFailure> {
        match &end.failure {
            Some(failure) if end.phase == NodePhase::Failed && self.fail_immediately() => Some(failure),
            _ => None,
        }
    }

    /// What a node runs (a branch: its chosen case), or why it cannot run.
    fn invocation(&self, id: &str, values: &RunValues) -> Result<Option<Invocation<'_>>, NodeFailure> {
        invocation_in(self.workflow, id, values)
    }

    /// Brings every node in the list, and those their ends make ready, to where
    /// the store says it should be: an ended node is settled, a ready one started.
    /// A loop, not recursion: a chain of cache hits is not a deep stack.
    async fn converge(&self, mut todo: Vec<Todo>) -> Result<(), PortError> {
        // Nodes walked through as settled by their downstream nodes: a diamond is walked once.
        let mut walked = std::collections::HashSet::new();
        while let Some(next) = todo.pop() {
            let (id, slot) = match next {
                Todo::Node(id, slot) => (id, slot),
                Todo::Ended(id, slot) => {
                    self.settle(&id, &slot, &mut todo).await?;
                    continue;
                }
                Todo::Claimed(id, slot) => {
                    self.start_claimed(&id, &slot, &mut todo).await?;
                    continue;
                }
                Todo::MarkSettled(id) => {
                    self.store.settled(&id).await?;
                    continue;
                }
            };
            if slot.settled {
                continue;
            }
            if let Some(end) = &slot.end {
                match self.moved_on_children(&id, end).await? {
                    // Settled: what may be left undone is further down (a crash there), so
                    // its downstream nodes converge in turn, reading until the unsettled.
                    Some(children) => {
                        let unwalked = children.into_iter().filter(|(child, _)| walked.insert(child.clone()));
                        todo.extend(unwalked.map(|(child, slot)| Todo::Node(child, slot)));
                    }
                    None => self.settle(&id, &slot, &mut todo).await?,
                }
                continue;
            }
            let pending = self.upstream_count(&id).saturating_sub(slot.ended_upstream.len() as u32);
            if pending > 0 || slot.token.is_none() || slot.job.is_some() {
                continue; // not ready yet, or its job runs and its end will come
            }
            match self.store.claim(&id, self.now_ms, self.stale_before()).await? {
                Claim::RunEnded => continue,
                Claim::Held => {
                    // A fresh claim without a job: its holder is starting it, or died
                    // doing so. Come back later: after the lease the node is ours.
                    let slot = self.store.slot(&id).await?;
                    if slot.end.is_none() && slot.job.is_none() && slot.claimed_at.is_some() {
                        return Err(PortError::Transient(format!(
                            "node {id} is being started by another call (claimed at {} ms); \
                             retry after its lease of {CLAIM_LEASE_MS} ms",
                            slot.claimed_at.unwrap_or_default()
                        )));
                    }
                    todo.push(Todo::Node(id, slot));
                }
                Claim::Won => self.start_claimed(&id, &slot, &mut todo).await?,
            }
        }
        Ok(())
    }

    /// Starts a node whose start this call claimed: skipped (an upstream failed), ended
    /// at once (a verified cache hit, a start that cannot be made), or its job submitted
    /// and recorded.
    async fn start_claimed(&self, id: &str, slot: &NodeSlot, todo: &mut Vec<Todo>) -> Result<(), PortError> {
        let mut submitting = false;
        let started = match slot.skip {
            true => Started::Ended(Box::new(NodeEnd::skipped())),
            false => match self.start(id, &mut submitting).await {
                Ok(started) => started,
                // Failed before any job could have been submitted (a throttled read, say): the
                // claim is given back, so the retry starts it at once instead of after the lease.
                // (A submission that failed may have been taken: its claim runs out instead.)
                Err(e) => {
                    if !submitting {
                        let _ = self.store.release(id, self.now_ms).await;
                    }
                    return Err(e);
                }
            },
        };
        match started {
            Started::Ended(end) => todo.push(self.end(id, *end).await?),
            Started::Job(job) => {
                self.store.started(id, &job).await?;
                // A stop between the claim and this record missed the job: stop it here.
                if !self.store.run_running().await? {
                    let end = NodeEnd::stopped_after_its_run();
                    let reason = end.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
                    self.jobs.cancel(id, &job, &reason).await?;
                    self.end(id, end).await?;
                }
            }
        }
        Ok(())
    }

    /// Starts one claimed node: it ended at once (a cache hit, a failure to
    /// start), or its job runs. `submitting` is set just before a job submission,
    /// which is not idempotent (a child run's start is: it is named for its node).
    async fn start(&self, id: &str, submitting: &mut bool) -> Result<Started, PortError> {
        let values = self.store.values(Some(&reads_of(self.workflow, id, false))).await?;
        let invocation = self.invocation(id, &values);
        if let Ok(Some(ours)) = &invocation
            && let Some(end) = self.recovered(id, ours).await?
        {
            return Ok(Started::Ended(Box::new(end)));
        }
        match invocation {
            Ok(Some(Invocation::Task(task, inputs))) => {
                if let Some(key) = cache_key::for_task(task, &inputs)
                    && let Some(outputs) = self.cached(&key).await?
                {
                    let mut end = NodeEnd::ok(NodePhase::Cached, outputs);
                    end.cache_key = key;
                    end.branch_taken = branch_taken(self.workflow, id, &values).unwrap_or_default();
                    return Ok(Started::Ended(Box::new(end)));
                }
                *submitting = true;
                Ok(Started::Job(self.jobs.submit(id, task, &inputs).await?))
            }
            Ok(Some(Invocation::Map(task, map_node, items))) => {
                // Items are reused one by one, from a recovered run, then from the cache: only the misses run.
                let mut recovered = self.recovered_items(id, &values).await?;
                let all: Vec<&Outputs> = items.iter().collect();
                let mut hits = self.cached_items(task, &all).await?;
                let mut from_recovery = 0;
                for (index, hit) in hits.iter_mut().enumerate() {
                    if let Some(outputs) = recovered.remove(&index) {
                        (*hit, from_recovery) = (Some(outputs), from_recovery + 1);
                    }
                }
                let misses: Vec<ItemToRun<'_>> = hits
                    .iter()
                    .enumerate()
                    .filter(|(_, hit)| hit.is_none())
                    .map(|(index, _)| ItemToRun { index, inputs: &items[index] })
                    .collect();
                if let Some(max) = self.jobs.max_map_items()
                    && misses.len() > max
                {
                    let message = format!(
                        "map node {id} has {} items to run ({} of {} reused from the cache); a map runs at most \
                         {max} items here (its start and its gather each happen within one invocation): give it \
                         fewer items, e.g. map over chunks of the list",
                        misses.len(),
                        items.len() - misses.len(),
                        items.len()
                    );
                    return Ok(Started::Ended(Box::new(NodeEnd::failed(NodeFailure::new(
                        FailureCode::MapInputs,
                        message,
                    )))));
                }
                if !misses.is_empty() {
                    let concurrency = (map_node.concurrency > 0).then_some(map_node.concurrency as usize);
                    *submitting = true;
                    return Ok(Started::Job(self.jobs.submit_map(id, task, &misses, concurrency).await?));
                }
                // Every item a verified hit (or no item at all): no job starts.
                let hits: Vec<node::ItemResult> = hits.into_iter().flatten().map(node::ItemResult::Succeeded).collect();
                let phase = match (items.is_empty(), from_recovery > 0) {
                    (true, _) => NodePhase::Succeeded,
                    (false, true) => NodePhase::Recovered,
                    (false, false) => NodePhase::Cached,
                };
                Ok(Started::Ended(Box::new(NodeEnd::of_map(
                    phase,
                    &hits,
                    &output_names(task),
                    map_node.min_success_ratio,
                ))))
            }
            Ok(Some(Invocation::Workflow(sub, inputs))) => {
                // A child run of the subworkflow's own state machine; its end completes this node.
                Ok(Started::Job(self.jobs.start_subworkflow(id, sub, &inputs, self.overwrite_cache).await?))
            }
            Ok(None) => {
                let message = format!("node {id} runs nothing (no task, map or subworkflow)");
                Ok(Started::Ended(Box::new(NodeEnd::failed(NodeFailure::new(FailureCode::BadJob, message)))))
            }
            Err(failure) => Ok(Started::Ended(Box::new(NodeEnd::failed(failure)))),
        }
    }

    /// A recovery's end of node `id`: RECOVERED with the outputs the recovered run
    /// recorded, when the node succeeded there (or was itself cached or recovered)
    /// on the same work; `None` otherwise, and the node runs.
    async fn recovered(&self, id: &str, ours: &Invocation<'_>) -> Result<Option<NodeEnd>, PortError> {
        let Some(source) = &self.recovering else { return Ok(None) };
        let ended = match source.store.slot(id).await {
            Ok(slot) => slot.end,
            Err(PortError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let Some(end) = ended else { return Ok(None) };
        if !matches!(end.phase, NodePhase::Succeeded | NodePhase::Cached | NodePhase::Recovered) {
            return Ok(None);
        }
        let values = source.store.values(Some(&reads_of(source.workflow, id, true))).await?;
        let Ok(Some(theirs)) = invocation_in(source.workflow, id, &values) else { return Ok(None) };
        if !same_work(ours, &theirs) {
            return Ok(None);
        }
        let outputs = values.outputs.get(id).cloned().unwrap_or_default();
        Ok(Some(NodeEnd::ok(NodePhase::Recovered, outputs)))
    }

    /// The items map node `id` ran in the recovered run that succeeded there, by
    /// item index, when it maps the same task over the same items there; empty
    /// otherwise (and when this run recovers none).
    async fn recovered_items(&self, id: &str, values: &RunValues) -> Result<BTreeMap<usize, Outputs>, PortError> {
        let Some(source) = &self.recovering else { return Ok(BTreeMap::new()) };
        let Ok(Some(ours)) = self.invocation(id, values) else { return Ok(BTreeMap::new()) };
        let theirs_values = source.store.values(Some(&reads_of(source.workflow, id, false))).await?;
        let Ok(Some(theirs)) = invocation_in(source.workflow, id, &theirs_values) else { return Ok(BTreeMap::new()) };
        if !matches!(ours, Invocation::Map(..)) || !same_work(&ours, &theirs) {
            return Ok(BTreeMap::new());
        }
        let results = self.jobs.map_results(source.run, id).await?;
        Ok(results
            .into_iter()
            .filter_map(|(index, result)| match result {
                node::ItemResult::Succeeded(outputs) => Some((index, outputs)),
                node::ItemResult::Failed(_) => None,
            })
            .collect())
    }

    /// A verified cache hit: the entry, if every blob it names is still there.
    async fn cached(&self, key: &str) -> Result<Option<Outputs>, PortError> {
        if self.overwrite_cache {
            return Ok(None);
        }
        match self.cache.get(key).await? {
            Some(outputs) if holds_all(self.blobs, &outputs).await => Ok(Some(outputs)),
            _ => Ok(None),
        }
    }

    /// The verified cache hit of each item (`None`: not cacheable, no entry, or a
    /// blob of it gone), read in one batch and checked [`VERIFY_IN_FLIGHT`] at a time.
    async fn cached_items(&self, task: &TaskTemplate, items: &[&Outputs]) -> Result<Vec<Option<Outputs>>, PortError> {
        use futures_util::stream::{self, StreamExt};
        let keys: Vec<Option<String>> = items.iter().map(|item| cache_key::for_task(task, item)).collect();
        let present: Vec<String> = keys.iter().flatten().cloned().collect();
        if self.overwrite_cache || present.is_empty() {
            return Ok(vec![None; items.len()]);
        }
        let mut entries = self.cache.get_many(&present).await?.into_iter();
        let entries: Vec<Option<Outputs>> =
            keys.iter().map(|key| key.as_ref().and_then(|_| entries.next().flatten())).collect();
        let blobs = self.blobs;
        Ok(stream::iter(entries)
            .map(|entry| async move {
                match entry {
                    Some(outputs) if holds_all(blobs, &outputs).await => Some(outputs),
                    _ => None,
                }
            })
            .buffered(VERIFY_IN_FLIGHT)
            .collect()
            .await)
    }

    /// Does what an ended node's end implies, each part idempotent so a repeat
    /// after a crash is harmless: a failure that fails the run is recorded on the
    /// run first (no claim can start anything after it), the token is answered,
    /// then each downstream node is told (and a chain's next node claimed in the same
    /// write). A node with no downstream node to tell is marked settled; one with
    /// downstream nodes is settled once each has moved on with its end ([`moved_on`];
    /// the reconciler reads the same), and is never marked, so a redelivered event
    /// still reaches a child whose start was lost.
    async fn settle(&self, id: &str, slot: &NodeSlot, todo: &mut Vec<Todo>) -> Result<(), PortError> {
        let Some(end) = &slot.end else { return Ok(()) };
        let failed = ends_failed(end.phase);
        let fails_run = self.fails_run(end);
        match fails_run {
            Some(failure) => self.store.fail_run(failure).await?,
            None if end.phase == NodePhase::Failed => self.store.node_failed(id).await?,
            None => {}
        }
        // Without a token nobody waits for the node (an end reported before its arm):
        // arming it later settles it.
        let Some(token) = &slot.token else { return Ok(()) };
        match fails_run {
            // The run fails now; Step Functions cancels every waiting node.
            Some(failure) => {
                self.tokens.fail(token, failure).await?;
                todo.push(Todo::MarkSettled(id.to_string()));
            }
            None => {
                // The token first: a node whose downstream nodes all hold its end is settled.
                self.tokens.succeed(token, id, end.phase).await?;
                let children = self.downstream(id);
                if children.is_empty() {
                    todo.push(Todo::MarkSettled(id.to_string()));
                }
                // The node chained after this one is told by its own arm, which the answer brings.
                let chained = chained_child(self.workflow, id);
                for child in children.into_iter().filter(|child| Some(child.as_str()) != chained) {
                    // Another node whose only upstream node this is: told and claimed in one write.
                    let told = if self.upstream_count(&child) == 1 {
                        self.store.only_upstream_ended(&child, id, failed, self.now_ms, self.stale_before()).await?
                    } else {
                        (self.store.upstream_ended(&child, id, failed, self.upstream_count(&child)).await?, false)
                    };
                    todo.push(match told {
                        (child_slot, true) => Todo::Claimed(child, child_slot),
                        (child_slot, false) => Todo::Node(child, child_slot),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Work left in one convergence.
enum Todo {
    /// Bring this node to where its slot says it should be.
    Node(String, NodeSlot),
    /// This call recorded this node's end: settle it.
    Ended(String, NodeSlot),
    /// This call claimed this node's start (with the write that armed it or told it
    /// its upstream node ended): start it.
    Claimed(String, NodeSlot),
    /// Everything this node's end implies is done (a node with no downstream node to tell).
    MarkSettled(String),
}

/// What starting a claimed node did.
enum Started {
    /// It ended at once: a verified cache hit, a skip, a failure to start.
    Ended(Box<NodeEnd>),
    /// Its job (or child run) runs: the id to record.
    Job(String),
}

#[cfg(test)]
mod tests;
