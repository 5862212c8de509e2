//! The local executor: drives a compiled workflow on this machine. Nodes start
//! as soon as their inputs are ready and the resource pool admits them; the
//! semantics (bindings, branches, maps, retries, failure policy, the task
//! contract, cache keys) come from `updraft_core::execution`, the same as in
//! the cloud.

use super::blobs::{BlobStore, Blobs};
use super::cache::LocalCache;
use super::gpus::Gpus;
use super::home::Home;
use super::progress::Progress;
use super::resources::{Capacity, ResourcePool};
use super::s3_blobs::S3BlobStore;
use super::store::{Store, StoreError};
use super::{now, runner};
use crate::outputs::{self, BlobKind, Output};
use crate::process::{self, Attempt, Outcome};
use crate::python::{self, ForkRequest, Forked, WarmTask, WorkerKey, WorkerKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use updraft_aws::s3::{DataError, S3Uri};
use updraft_core::cache_key;
use updraft_core::compile::Compiled;
use updraft_core::execution::contract::{
    self, ENV_ATTEMPT, ENV_CODE_DIR, ENV_EXECUTION_ID, ENV_INPUTS, ENV_NODE_ID, ENV_OUTPUTS_DIR,
};
use updraft_core::execution::failure::FailureCode;
use updraft_core::execution::node::{self as rules, ItemResult, NodeFailure, RetryDecision, RetryPolicy};
use updraft_core::execution::resolve::ValueMap;
use updraft_core::execution::retry::Backoff;
use updraft_core::execution::scheduler::Scheduler;
use updraft_core::literal;
use updraft_core::ports::{BlobStore as _, CacheStore as _, PortError};
use updraft_core::proto::Timestamp;
use updraft_core::proto::core::{
    AttemptDevices, AttemptRecord, Blob, CacheStatus, CompiledWorkflow, Execution, ExecutionError, ExecutionId,
    Identifier, LaunchMode, Literal, LiteralMap, Node, NodeExecution, NodeExecutionId, NodePhase, ResourceType,
    TaskTemplate, WorkflowPhase, node,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Serve hits, store misses.
    Use,
    /// `--no-cache`: neither read nor write.
    Disabled,
    /// `--overwrite-cache`: run everything, replace the entries.
    Overwrite,
}

pub struct RunRequest {
    pub compiled: Compiled,
    pub workflow: String,
    pub inputs: BTreeMap<String, Literal>,
    /// `{{code_dir}}`: the spec file's directory.
    pub code_dir: PathBuf,
    pub cache_mode: CacheMode,
    pub capacity: Capacity,
    pub backoff: Backoff,
    pub show_progress: bool,
    /// Print what tasks write to stdout and stderr as they write it, line by line after the node's path.
    pub show_task_output: bool,
    /// Keep task outputs under this S3 prefix instead of `$UPDRAFT_HOME/blobs`.
    pub blob_store: Option<S3Uri>,
    /// The GPUs tasks may be given; `None` when no task of the workflow asks for one.
    pub gpus: Option<Gpus>,
    /// The warm Python worker that translated a `.py` spec, for this run's Python tasks.
    pub python_worker: Option<(WorkerKey, python::Worker)>,
    /// The execution's name (a scheduler's tick); `None`: a generated one.
    pub name: Option<String>,
    /// A run of the store this one recovers: each of its nodes that succeeded
    /// there on the same inputs ends RECOVERED here without running.
    pub recover: Option<String>,
    /// The launch plan (its name) and the tick this run is, when a scheduler starts it.
    pub scheduled: Option<(String, Timestamp)>,
}

pub struct RunResult {
    pub execution: Execution,
    pub nodes: Vec<NodeExecution>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the local runtime: {0}")]
    Runtime(std::io::Error),
    /// Nothing ran: the blob store cannot be used.
    #[error("the blob store {uri} cannot be used: {source}")]
    BlobStore { uri: String, source: DataError },
}

/// Why a node did not succeed: the code in the shared vocabulary, and the record's error.
#[derive(Debug, Clone)]
struct Failure {
    code: FailureCode,
    error: ExecutionError,
}

impl Failure {
    /// A failure of `node`; the code decides the error's kind and the node's phase.
    fn new(node: &str, code: FailureCode, message: String) -> Failure {
        Failure {
            code,
            error: ExecutionError {
                code: code.as_str().into(),
                message,
                node_id: node.into(),
                kind: code.kind() as i32,
                log_uri: String::new(),
            },
        }
    }

    fn of(node: &str, failure: NodeFailure) -> Failure {
        Failure::new(node, failure.code, failure.message)
    }

    fn aborted(node: &str) -> Failure {
        Failure::new(node, FailureCode::Aborted, "the run was cancelled".into())
    }

    fn phase(&self) -> NodePhase {
        match self.code {
            FailureCode::Aborted => NodePhase::Aborted,
            FailureCode::Timeout => NodePhase::TimedOut,
            _ => NodePhase::Failed,
        }
    }
}

type Outputs = BTreeMap<String, Literal>;
type NodeResult = Result<(Outputs, NodePhase), Failure>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Ctx {
    tasks: HashMap<String, TaskTemplate>,
    workflows: HashMap<String, Arc<CompiledWorkflow>>,
    home: Home,
    blobs: Blobs,
    cache: LocalCache,
    execution: ExecutionId,
    code_dir: String,
    cache_mode: CacheMode,
    pool: Arc<ResourcePool>,
    backoff: Backoff,
    cancel: watch::Receiver<bool>,
    /// Started with the first task process: kills what tasks leave behind if this process dies.
    watchdog: std::sync::OnceLock<Option<runner::Watchdog>>,
    /// Warm workers for Python tasks, stopped with the run.
    python: python::Pool,
    /// Why some Python tasks run in fresh processes, each said once.
    cold_reasons: Mutex<HashSet<String>>,
    recorder: Mutex<Recorder>,
    show_task_output: bool,
    /// The recovered run's nodes that succeeded: node path → (inputs, outputs).
    recovered: HashMap<String, (Outputs, Outputs)>,
}

/// Persists node records and prints progress, in the order events happen.
struct Recorder {
    store: Store,
    progress: Progress,
    nodes: Vec<NodeExecution>,
    positions: HashMap<String, usize>,
    /// GPUs per attempt, by node path, copied into each record of that node.
    devices: HashMap<String, Vec<AttemptDevices>>,
    /// The node each branch ran, by the branch's path, copied into its records.
    branches_taken: HashMap<String, String>,
    /// Each task attempt so far, by node path, copied into each record of that node.
    attempts: HashMap<String, Vec<AttemptRecord>>,
    error: Option<StoreError>,
}

impl Recorder {
    fn record(&mut self, mut node: NodeExecution) {
        let id = node.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default();
        if let Some(devices) = self.devices.get(&id) {
            node.attempt_devices = devices.clone();
        }
        if let Some(taken) = self.branches_taken.get(&id) {
            node.branch_taken = taken.clone();
        }
        if let Some(attempts) = self.attempts.get(&id) {
            node.attempt_records = attempts.clone();
        }
        let seconds = node.duration.map(|d| d.seconds as f64 + d.nanos as f64 / 1e9);
        let phase = NodePhase::try_from(node.phase).unwrap_or_default();
        if phase != NodePhase::Running || seconds.is_none() {
            self.progress.node(&id, phase, seconds, CacheStatus::try_from(node.cache_status).unwrap_or_default());
        }
        let position = *self.positions.entry(id).or_insert_with(|| {
            self.nodes.push(NodeExecution::default());
            self.nodes.len() - 1
        });
        if let Err(e) = self.store.put_node(&node, position) {
            self.error.get_or_insert(e);
        }
        self.nodes[position] = node;
    }

    /// Records an attempt as it starts and again as it ends; a node with a record
    /// (not a map's item) is written again with it, so a running node shows its attempts.
    fn attempt(&mut self, path: &str, attempt: AttemptRecord) {
        let attempts = self.attempts.entry(path.to_string()).or_default();
        match attempts.iter_mut().find(|a| a.attempt == attempt.attempt) {
            Some(known) => *known = attempt,
            None => attempts.push(attempt),
        }
        if let Some(&position) = self.positions.get(path) {
            let mut node = self.nodes[position].clone();
            node.attempt_records = attempts.clone();
            if let Err(e) = self.store.put_node(&node, position) {
                self.error.get_or_insert(e);
            }
            self.nodes[position] = node;
        }
    }
}

impl Ctx {
    fn record(&self, node: NodeExecution) {
        self.recorder.lock().expect("recorder lock").record(node);
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.recorder.lock().expect("recorder lock")
    }

    fn node_record(&self, path: &str) -> NodeExecution {
        NodeExecution {
            id: Some(NodeExecutionId { execution_id: Some(self.execution.clone()), node_id: path.to_string() }),
            started_at: Some(now()),
            ..Default::default()
        }
    }

    /// A RUNNING record of a node about to run with these inputs (not yet stored).
    fn running_record(&self, path: &str, inputs: &Outputs) -> NodeExecution {
        let mut record = self.node_record(path);
        record.phase = NodePhase::Running as i32;
        record.inputs = Some(LiteralMap { values: inputs.clone() });
        record
    }

    /// Says which GPUs an attempt got, in the progress lines and the node's record.
    fn note_devices(&self, path: &str, attempt: u32, gpus: &[String]) {
        let mut recorder = self.progress();
        let plural = if gpus.len() == 1 { "" } else { "s" };
        recorder.progress.message(&format!("{path}: attempt {attempt} on GPU{plural} {}", gpus.join(",")));
        recorder.devices.entry(path.to_string()).or_default().push(AttemptDevices { attempt, gpus: gpus.to_vec() });
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// Runs a workflow to completion (or until Ctrl-C) and returns its records.
pub fn run(home: &Home, request: RunRequest) -> Result<RunResult, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Runtime)?;
    runtime.block_on(run_async(home, request))
}

async fn run_async(home: &Home, request: RunRequest) -> Result<RunResult, RunError> {
    let blobs = match &request.blob_store {
        None => Blobs::Disk(BlobStore::new(home.blobs(), home.tmp())),
        Some(root) => {
            let config = updraft_aws::config::sdk_config(None, None).await;
            let store = S3BlobStore::open(updraft_aws::config::s3_client(&config), root.clone())
                .await
                .map_err(|source| RunError::BlobStore { uri: root.to_string(), source })?;
            Blobs::S3(store)
        }
    };
    let store = Store::open(&home.database())?;
    // Runs whose `updraft run` was killed are closed (ABORTED, with the reason) before this one starts.
    for closed in runner::close_orphans(&store)? {
        eprintln!("warning: execution {closed} was left running by a process that died; marked ABORTED");
    }
    let workflow = request.compiled.workflow(&request.workflow).cloned().expect("the caller checked the workflow");
    let template = workflow.template.clone().unwrap_or_default();
    let mut execution_id = ExecutionId {
        project: request.compiled.project.clone(),
        domain: request.compiled.domain.clone(),
        name: request.name.clone().unwrap_or_else(new_execution_name),
    };
    let started = Instant::now();
    let recovered = match &request.recover {
        Some(source) => recovered_nodes(&store, source)?,
        None => HashMap::new(),
    };
    let mut execution = Execution {
        id: Some(execution_id.clone()),
        workflow_id: template.id.clone(),
        inputs: Some(LiteralMap { values: request.inputs.clone() }),
        phase: WorkflowPhase::WorkflowRunning as i32,
        created_at: Some(now()),
        started_at: Some(now()),
        updated_at: Some(now()),
        principal: std::env::var("USER").unwrap_or_default(),
        mode: match (&request.recover, &request.scheduled) {
            (Some(_), _) => LaunchMode::Recover,
            (None, Some(_)) => LaunchMode::Scheduled,
            (None, None) => LaunchMode::Manual,
        } as i32,
        recovered_from: request.recover.clone().unwrap_or_default(),
        launch_plan_id: request.scheduled.as_ref().map(|(plan, _)| Identifier {
            resource_type: ResourceType::LaunchPlan as i32,
            project: request.compiled.project.clone(),
            domain: request.compiled.domain.clone(),
            name: plan.clone(),
            version: String::new(),
        }),
        scheduled_at: request.scheduled.as_ref().map(|(_, at)| *at),
        ..Default::default()
    };
    // Names carry 32 random bits; a collision is refused by the store and a new name drawn.
    let runner = runner::this_process();
    let mut tries = 0;
    loop {
        match store.create_execution(&execution, Some(&workflow), Some(&runner)) {
            // A generated name that collides is drawn again; a given one is the caller's to keep unique.
            Err(StoreError::NameTaken(_)) if tries < 8 && request.name.is_none() => {
                tries += 1;
                execution_id.name = new_execution_name();
                execution.id = Some(execution_id.clone());
            }
            result => break result?,
        }
    }
    let progress = Progress::new(request.show_progress);
    progress.message(&format!(
        "execution {} of workflow {} ({}/{}); logs under {}",
        execution_id.name,
        request.workflow,
        execution_id.project,
        execution_id.domain,
        home.node_dir(&execution_id.name, "").display()
    ));
    if let Some(gpus) = &request.gpus {
        progress.message(&format!("GPUs: {}", gpus.describe()));
    }

    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut workflows: HashMap<String, Arc<CompiledWorkflow>> = HashMap::new();
    collect_workflows(&request.compiled.workflows, &mut workflows);
    let ctx = Arc::new(Ctx {
        tasks: request
            .compiled
            .tasks
            .iter()
            .map(|t| (t.id.as_ref().map(|i| i.name.clone()).unwrap_or_default(), t.clone()))
            .collect(),
        workflows,
        blobs,
        cache: LocalCache::new(home.cache(), home.tmp()),
        home: home.clone(),
        execution: execution_id.clone(),
        code_dir: request.code_dir.display().to_string(),
        cache_mode: request.cache_mode,
        pool: ResourcePool::new(
            request.capacity,
            request.gpus.iter().flat_map(|g| g.devices.iter().map(|d| d.id.clone())).collect(),
        ),
        backoff: request.backoff,
        cancel: cancel_rx,
        watchdog: std::sync::OnceLock::new(),
        python: python::Pool::new(runner.clone(), request.python_worker, python_sdk(home, &request.compiled)),
        cold_reasons: Mutex::default(),
        recorder: Mutex::new(Recorder {
            store,
            progress,
            nodes: Vec::new(),
            positions: HashMap::new(),
            devices: HashMap::new(),
            branches_taken: HashMap::new(),
            attempts: HashMap::new(),
            error: None,
        }),
        show_task_output: request.show_task_output,
        recovered,
    });

    let run = run_workflow(Arc::clone(&ctx), Arc::new(workflow), request.inputs.clone(), String::new());
    tokio::pin!(run);
    // The workflow's own timeout: past it, the run is stopped as on Ctrl-C and ends TIMED_OUT.
    let timeout = template.timeout.map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
    let deadline = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let mut timed_out = None;
    let result = tokio::select! {
        result = &mut run => result,
        _ = shutdown_signal() => {
            ctx.progress().progress.message("interrupted: stopping running tasks (Ctrl-C again is not needed)");
            let _ = cancel_tx.send(true);
            // Let every node see the cancellation, kill its process group and record itself.
            run.await
        }
        _ = deadline => {
            let limit = updraft_core::quantity::format_duration(timeout.unwrap_or_default());
            ctx.progress().progress.message(&format!("the run ran past its timeout of {limit}: stopping running tasks"));
            timed_out = Some(limit);
            let _ = cancel_tx.send(true);
            run.await
        }
    };

    let elapsed = started.elapsed();
    execution.updated_at = Some(now());
    execution.duration = Some(to_duration(elapsed));
    match result {
        Ok(outputs) => {
            execution.phase = WorkflowPhase::WorkflowSucceeded as i32;
            execution.outputs = Some(LiteralMap { values: outputs });
        }
        Err(failure) => match timed_out {
            Some(limit) => {
                execution.phase = WorkflowPhase::WorkflowTimedOut as i32;
                execution.error = Some(ExecutionError {
                    code: "TimedOut".into(),
                    message: format!("the run ran past its timeout of {limit}"),
                    ..failure.error
                });
            }
            None => {
                execution.phase = match failure.phase() {
                    NodePhase::Aborted => WorkflowPhase::WorkflowAborted,
                    _ => WorkflowPhase::WorkflowFailed,
                } as i32;
                execution.error = Some(failure.error);
            }
        },
    }
    let mut recorder = ctx.recorder.lock().expect("recorder lock");
    recorder.store.put_execution(&execution)?;
    if let Some(e) = recorder.error.take() {
        return Err(e.into());
    }
    Ok(RunResult { execution, nodes: std::mem::take(&mut recorder.nodes) })
}

/// Where script workers start from: the SDK carried in this binary, written under
/// the home once, if any task of the run is a Python script.
fn python_sdk(home: &Home, compiled: &Compiled) -> Option<PathBuf> {
    let scripts = compiled.tasks.iter().any(|t| {
        let argv = t.container.as_ref().map(|c| c.args.as_slice()).unwrap_or_default();
        matches!(python::warm_task(argv), Some((_, WarmTask::Script { .. } | WarmTask::Module { .. })))
    });
    // Without it a script worker needs the SDK installed; if that is missing too, its tasks run fresh.
    scripts.then(|| crate::embedded_sdk::materialized(home.root()).ok()).flatten()
}

fn collect_workflows(list: &[CompiledWorkflow], into: &mut HashMap<String, Arc<CompiledWorkflow>>) {
    for w in list {
        let name = w.template.as_ref().and_then(|t| t.id.as_ref()).map(|i| i.name.clone()).unwrap_or_default();
        into.entry(name).or_insert_with(|| Arc::new(w.clone()));
        collect_workflows(&w.subworkflows, into);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Runs the DAG of one workflow; `prefix` names the enclosing subworkflow node.
fn run_workflow(
    ctx: Arc<Ctx>,
    workflow: Arc<CompiledWorkflow>,
    inputs: Outputs,
    prefix: String,
) -> BoxFuture<Result<Outputs, Failure>> {
    Box::pin(async move {
        let template = workflow.template.clone().unwrap_or_default();
        let mut scheduler = Scheduler::new(&template);
        let mut values = ValueMap { inputs, outputs: HashMap::new() };
        let mut running: JoinSet<(usize, NodeResult)> = JoinSet::new();
        let mut first_failure: Option<Failure> = None;

        loop {
            for index in scheduler.ready() {
                let node = &template.nodes[index];
                let path = format!("{prefix}{}", node.id);
                scheduler.running(index);
                match prepare(&ctx, node, &values, &path) {
                    Ok(future) => {
                        running.spawn(async move { (index, future.await) });
                    }
                    Err(failure) => {
                        let mut record = ctx.node_record(&path);
                        record.phase = failure.phase() as i32;
                        record.error = Some(failure.error.clone());
                        ctx.record(record);
                        scheduler.finished(index, failure.phase());
                        first_failure.get_or_insert(failure);
                    }
                }
            }
            if scheduler.is_finished() {
                break;
            }
            let Some(joined) = running.join_next().await else { break };
            let (index, result) = joined.expect("node tasks do not panic");
            match result {
                Ok((outputs, phase)) => {
                    values.outputs.insert(template.nodes[index].id.clone(), outputs);
                    scheduler.finished(index, phase);
                }
                Err(failure) => {
                    scheduler.finished(index, failure.phase());
                    // An abort caused by a cancel is less informative than a real failure.
                    if first_failure.as_ref().is_none_or(|f| f.phase() == NodePhase::Aborted) {
                        first_failure = Some(failure);
                    }
                }
            }
        }

        for (index, node) in template.nodes.iter().enumerate() {
            if scheduler.phase(index) == NodePhase::Skipped {
                let mut record = ctx.node_record(&format!("{prefix}{}", node.id));
                record.started_at = None;
                record.phase = NodePhase::Skipped as i32;
                ctx.record(record);
            }
        }
        if let Some(failure) = first_failure {
            return Err(failure);
        }
        if ctx.cancelled() {
            return Err(Failure::aborted(prefix.trim_end_matches('/')));
        }
        let mut outputs = Outputs::new();
        for binding in &template.output_bindings {
            let data = binding.binding.clone().unwrap_or_default();
            let value = updraft_core::execution::resolve::resolve(&data, &values)
                .map_err(|e| Failure::new(&prefix, FailureCode::OutputUnavailable, e.to_string()))?;
            outputs.insert(binding.var.clone(), value);
        }
        Ok(outputs)
    })
}

/// Resolves a node's inputs now (its upstream nodes are done) and returns the
/// future that runs it.
fn prepare(ctx: &Arc<Ctx>, node: &Node, values: &ValueMap, path: &str) -> Result<BoxFuture<NodeResult>, Failure> {
    let target = node.target.clone().ok_or_else(|| {
        Failure::new(path, FailureCode::UnknownTarget, "the node has no task, workflow, branch or map".into())
    })?;
    let failed = |e: NodeFailure| Failure::of(path, e);
    match target {
        node::Target::Branch(branch) => {
            let chosen = rules::choose_branch(&branch, values).map_err(failed)?;
            let mut recorder = ctx.progress();
            recorder.progress.message(&format!("{path}: branch takes {}", chosen.id));
            recorder.branches_taken.insert(path.to_string(), chosen.id.clone());
            drop(recorder);
            prepare(ctx, chosen, values, path)
        }
        node::Target::Task(t) => {
            let task = task(ctx, t.task_id.as_ref(), path)?;
            let inputs = rules::task_inputs(&task, &node.inputs, values).map_err(failed)?;
            let ctx = Arc::clone(ctx);
            let path = path.to_string();
            Ok(Box::pin(async move { run_task_node(ctx, task, inputs, path).await }))
        }
        node::Target::Map(m) => {
            let task = task(ctx, m.task_id.as_ref(), path)?;
            let inputs = rules::task_inputs(&task, &node.inputs, values).map_err(failed)?;
            let ctx = Arc::clone(ctx);
            let path = path.to_string();
            Ok(Box::pin(async move { run_map_node(ctx, task, m, inputs, path).await }))
        }
        node::Target::Workflow(w) => {
            let name = w.workflow_id.as_ref().map(|i| i.name.clone()).unwrap_or_default();
            let workflow = ctx.workflows.get(&name).cloned().ok_or_else(|| {
                Failure::new(path, FailureCode::UnknownTarget, format!("workflow {name} is not compiled in"))
            })?;
            let template = workflow.template.clone().unwrap_or_default();
            let inputs = rules::workflow_inputs(&template, &node.inputs, values).map_err(failed)?;
            let ctx = Arc::clone(ctx);
            let path = path.to_string();
            Ok(Box::pin(async move {
                let record = ctx.running_record(&path, &inputs);
                ctx.record(record.clone());
                let started = Instant::now();
                let result = run_workflow(Arc::clone(&ctx), workflow, inputs, format!("{path}/")).await;
                finish_record(&ctx, record, started, &result, 1, CacheStatus::CacheDisabled);
                result.map(|o| (o, NodePhase::Succeeded))
            }))
        }
    }
}

fn task(ctx: &Ctx, id: Option<&Identifier>, path: &str) -> Result<TaskTemplate, Failure> {
    let name = id.map(|i| i.name.as_str()).unwrap_or_default();
    ctx.tasks
        .get(name)
        .cloned()
        .ok_or_else(|| Failure::new(path, FailureCode::UnknownTarget, format!("task {name} is not compiled in")))
}

fn finish_record(
    ctx: &Ctx,
    mut record: NodeExecution,
    started: Instant,
    result: &Result<Outputs, Failure>,
    attempts: u32,
    cache: CacheStatus,
) {
    record.updated_at = Some(now());
    record.duration = Some(to_duration(started.elapsed()));
    record.attempts = attempts;
    record.cache_status = cache as i32;
    match result {
        Ok(outputs) => {
            record.phase = if cache == CacheStatus::CacheHit { NodePhase::Cached } else { NodePhase::Succeeded } as i32;
            record.outputs = Some(LiteralMap { values: outputs.clone() });
        }
        Err(failure) => {
            record.phase = failure.phase() as i32;
            record.error = Some(failure.error.clone());
        }
    }
    ctx.record(record);
}

/// The nodes of `source` (a run in the store) that succeeded, were cached or
/// recovered: node path → (inputs, outputs).
fn recovered_nodes(store: &Store, source: &str) -> Result<HashMap<String, (Outputs, Outputs)>, StoreError> {
    let Some((_, nodes)) = store.get(source)? else { return Ok(HashMap::new()) };
    let kept = [NodePhase::Succeeded, NodePhase::Cached, NodePhase::Recovered].map(|p| p as i32);
    Ok(nodes
        .into_iter()
        .filter(|n| kept.contains(&n.phase))
        .filter_map(|n| {
            let path = n.id?.node_id;
            let values = |map: Option<LiteralMap>| map.map(|m| m.values).unwrap_or_default();
            Some((path, (values(n.inputs), values(n.outputs))))
        })
        .collect())
}

/// A recovery's end of the node at `path`: RECOVERED with the outputs the
/// recovered run recorded, when it succeeded there on the same inputs.
fn recovered(ctx: &Ctx, path: &str, inputs: &Outputs) -> Option<NodeResult> {
    let (_, outputs) = ctx.recovered.get(path).filter(|(theirs, _)| theirs == inputs)?;
    let mut record = ctx.running_record(path, inputs);
    record.phase = NodePhase::Recovered as i32;
    record.updated_at = Some(now());
    record.outputs = Some(LiteralMap { values: outputs.clone() });
    ctx.record(record);
    Some(Ok((outputs.clone(), NodePhase::Recovered)))
}

async fn run_task_node(ctx: Arc<Ctx>, task: TaskTemplate, inputs: Outputs, path: String) -> NodeResult {
    if let Some(result) = recovered(&ctx, &path, &inputs) {
        return result;
    }
    let mut record = ctx.running_record(&path, &inputs);
    let started = Instant::now();
    let key = cache_key_for(&ctx, &task, &inputs);
    record.cache_key = key.clone().unwrap_or_default();
    ctx.record(record.clone());
    let (result, attempts, cache) = run_task(&ctx, &task, &inputs, &path, key.as_deref()).await;
    finish_record(&ctx, record, started, &result, attempts, cache);
    let phase = if cache == CacheStatus::CacheHit { NodePhase::Cached } else { NodePhase::Succeeded };
    result.map(|o| (o, phase))
}

fn cache_key_for(ctx: &Ctx, task: &TaskTemplate, inputs: &Outputs) -> Option<String> {
    (ctx.cache_mode != CacheMode::Disabled).then(|| cache_key::for_task(task, inputs)).flatten()
}

/// Runs a map node: one task run per item, at most `concurrency` at once, each
/// cached on its own.
async fn run_map_node(
    ctx: Arc<Ctx>,
    task: TaskTemplate,
    map_node: updraft_core::proto::core::MapNode,
    inputs: Outputs,
    path: String,
) -> NodeResult {
    if let Some(result) = recovered(&ctx, &path, &inputs) {
        return result;
    }
    let mut record = ctx.running_record(&path, &inputs);
    let started = Instant::now();
    let items = match rules::map_items(&map_node, &inputs) {
        Ok(items) => items,
        Err(e) => {
            let result = Err(Failure::of(&path, e));
            finish_record(&ctx, record, started, &result, 1, CacheStatus::CacheDisabled);
            return result.map(|o| (o, NodePhase::Succeeded));
        }
    };
    let total = items.len();
    record.items_total = total as u32;
    ctx.record(record.clone());

    let limit = if map_node.concurrency == 0 { Semaphore::MAX_PERMITS } else { map_node.concurrency as usize };
    let semaphore = Arc::new(Semaphore::new(limit));
    let mut running = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let (ctx, task, semaphore) = (Arc::clone(&ctx), task.clone(), Arc::clone(&semaphore));
        let item_path = format!("{path}/{i}");
        running.spawn(async move {
            let _permit = semaphore.acquire_owned().await.expect("semaphore open");
            let key = cache_key_for(&ctx, &task, &item);
            let (result, _, cache) = run_task(&ctx, &task, &item, &item_path, key.as_deref()).await;
            (i, result, cache)
        });
    }
    let mut results: Vec<Option<ItemResult>> = vec![None; total];
    let mut done = 0;
    let mut all_hits = total > 0;
    let step = (total / 10).max(1);
    while let Some(joined) = running.join_next().await {
        let (i, result, cache) = joined.expect("map items do not panic");
        all_hits &= cache == CacheStatus::CacheHit;
        results[i] = Some(match result {
            Ok(outputs) => ItemResult::Succeeded(outputs),
            Err(f) => ItemResult::Failed(NodeFailure::new(f.code, f.error.message)),
        });
        done += 1;
        if done % step == 0 || done == total {
            ctx.progress().progress.items(&path, done, total);
        }
    }
    let results: Vec<ItemResult> = results.into_iter().map(|r| r.expect("every item reported")).collect();
    record.items_done = results.iter().filter(|r| matches!(r, ItemResult::Succeeded(_))).count() as u32;
    let output_names: Vec<String> =
        task.interface.clone().unwrap_or_default().outputs.iter().map(|v| v.name.clone()).collect();
    let result =
        rules::map_outcome(&results, &output_names, map_node.min_success_ratio).map_err(|e| Failure::of(&path, e));
    let cache = if all_hits { CacheStatus::CacheHit } else { CacheStatus::CacheDisabled };
    finish_record(&ctx, record, started, &result, 1, cache);
    let phase = if all_hits { NodePhase::Cached } else { NodePhase::Succeeded };
    result.map(|o| (o, phase))
}

/// One task invocation with cache lookup, resources, retries and output
/// collection. Returns the result, the attempts made and the cache status.
async fn run_task(
    ctx: &Arc<Ctx>,
    task: &TaskTemplate,
    inputs: &Outputs,
    path: &str,
    key: Option<&str>,
) -> (Result<Outputs, Failure>, u32, CacheStatus) {
    if ctx.cache_mode == CacheMode::Use
        && let Some(key) = key
        && let Ok(Some(outputs)) = ctx.cache.get(key).await
        && ctx.blobs.hold_all(&outputs).await
    {
        return (Ok(outputs), 0, CacheStatus::CacheHit);
    }
    let requests = task.resources.and_then(|r| r.requests);
    let (cpu, memory) = rules::default_requests(requests);
    let gpus = requests.map_or(0, |r| r.gpu as usize);

    let dir = ctx.home.node_dir(&ctx.execution.name, path);
    let policy = RetryPolicy::for_task(task, ctx.backoff);
    let mut attempt = 1;
    loop {
        // Resources are held per attempt: a retry's backoff holds no CPU, memory or GPU.
        let queued_at = Some(now());
        let permit = ctx.pool.acquire(cpu, memory, gpus).await;
        if !permit.gpus.is_empty() {
            ctx.note_devices(path, attempt, &permit.gpus);
        }
        let mut record = AttemptRecord {
            attempt,
            queued_at,
            started_at: Some(now()),
            log_dir: dir.display().to_string(),
            ..Default::default()
        };
        ctx.progress().attempt(path, record.clone());
        let attempted = run_attempt(ctx, task, inputs, path, &dir, attempt, &permit.gpus).await;
        drop(permit);
        record.ended_at = Some(now());
        if let Err(failure) = &attempted {
            record.failure_code = failure.error.code.clone();
        }
        ctx.progress().attempt(path, record);
        let failure = match attempted {
            Ok(outputs) => {
                let cache = match (key, ctx.cache_mode) {
                    (Some(key), mode) => {
                        let id = task.id.clone().unwrap_or_default();
                        let owner = crate::cache::TaskOwner {
                            project: id.project,
                            domain: id.domain,
                            name: id.name,
                            cache_version: task.cache.as_ref().map(|c| c.version.clone()).unwrap_or_default(),
                        };
                        if let Err(e) = ctx.cache.put_for_task(key, &owner, &outputs).await {
                            ctx.progress().progress.message(&format!("{path}: could not store the cache entry: {e}"));
                        }
                        if mode == CacheMode::Overwrite {
                            CacheStatus::CacheOverwritten
                        } else {
                            CacheStatus::CachePopulated
                        }
                    }
                    (None, _) => CacheStatus::CacheDisabled,
                };
                return (Ok(outputs), attempt, cache);
            }
            Err(failure) => failure,
        };
        let delay = match policy.decide(attempt, failure.code, jitter()) {
            RetryDecision::Retry { after, .. } => after,
            RetryDecision::GiveUp => {
                return (Err(with_attempts(failure, attempt)), attempt, CacheStatus::CacheDisabled);
            }
        };
        attempt += 1;
        ctx.progress().progress.message(&format!(
            "{path}: retrying in {:.1}s (attempt {attempt} of {})",
            delay.as_secs_f64(),
            policy.max_attempts
        ));
        let mut cancel = ctx.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = process::cancelled(&mut cancel) => return (Err(Failure::aborted(path)), attempt - 1, CacheStatus::CacheDisabled),
        }
    }
}

/// The attempt count belongs on the first line of a retried failure, before the stderr tail and log path.
fn with_attempts(mut failure: Failure, attempts: u32) -> Failure {
    if attempts > 1 {
        let message = &failure.error.message;
        let (first, rest) = message.split_once('\n').map_or((message.as_str(), ""), |(a, b)| (a, b));
        let separator = if rest.is_empty() { "" } else { "\n" };
        failure.error.message = format!("{first} (after {attempts} attempts){separator}{rest}");
    }
    failure
}

/// Randomness for the retry backoff's jitter, in [0, 1).
fn jitter() -> f64 {
    random_u32() as f64 / (u32::MAX as f64 + 1.0)
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: getrandom writes at most the buffer's length into it.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled == bytes.len() as isize {
        u32::from_le_bytes(bytes)
    } else {
        // No entropy source: time and pid still spread retries and make a name clash unlikely.
        chrono::Utc::now().timestamp_subsec_nanos() ^ std::process::id().rotate_left(16)
    }
}

/// One attempt: fresh outputs directory, inputs document, templated argv, the
/// process, then the outputs checked against the interface. The failure's code
/// says whether another attempt could help (core's failure table).
async fn run_attempt(
    ctx: &Arc<Ctx>,
    task: &TaskTemplate,
    inputs: &Outputs,
    path: &str,
    dir: &Path,
    attempt: u32,
    gpus: &[String],
) -> Result<Outputs, Failure> {
    let system = |message: String| Failure::new(path, FailureCode::SystemError, message);
    // The blob store failed (S3 on the way in or out); its error says whether a retry can help.
    let data_failure = |what: String, e: PortError| {
        let code = if e.is_retryable() { FailureCode::DataUnavailable } else { FailureCode::DataError };
        Failure::new(path, code, format!("{what}: {e}"))
    };
    let outputs_dir = dir.join("outputs");
    if outputs_dir.exists() {
        std::fs::remove_dir_all(&outputs_dir)
            .map_err(|e| system(format!("cannot clear {}: {e}", outputs_dir.display())))?;
    }
    std::fs::create_dir_all(&outputs_dir)
        .map_err(|e| system(format!("cannot create {}: {e}", outputs_dir.display())))?;
    let inputs = &ctx
        .blobs
        .localize(inputs, &dir.join("inputs"))
        .await
        .map_err(|e| data_failure("cannot fetch the inputs".into(), e.into()))?;
    let inputs_path = dir.join("inputs.json");
    std::fs::write(&inputs_path, contract::inputs_document(inputs).to_string())
        .map_err(|e| system(format!("cannot write {}: {e}", inputs_path.display())))?;

    let interface = task.interface.clone().unwrap_or_default();
    let output_paths: BTreeMap<String, String> =
        interface.outputs.iter().map(|v| (v.name.clone(), outputs_dir.join(&v.name).display().to_string())).collect();
    let container = task.container.clone().unwrap_or_default();
    let argv = contract::render_argv(&container.args, inputs, &output_paths, &ctx.code_dir).map_err(system)?;
    let mut env: Vec<(String, String)> = container.env.clone().into_iter().collect();
    env.extend([
        (ENV_INPUTS.to_string(), inputs_path.display().to_string()),
        (ENV_OUTPUTS_DIR.to_string(), outputs_dir.display().to_string()),
        (ENV_CODE_DIR.to_string(), ctx.code_dir.clone()),
        (ENV_EXECUTION_ID.to_string(), ctx.execution.name.clone()),
        (ENV_NODE_ID.to_string(), path.to_string()),
        (ENV_ATTEMPT.to_string(), attempt.to_string()),
        // Its own devices, or none: a task that asked for no GPU must not take one by accident.
        ("CUDA_VISIBLE_DEVICES".to_string(), gpus.join(",")),
        ("NVIDIA_VISIBLE_DEVICES".to_string(), if gpus.is_empty() { "void".to_string() } else { gpus.join(",") }),
    ]);
    // Each attempt keeps its own logs: a retry must not overwrite why the first one failed.
    let stderr = dir.join(format!("attempt-{attempt}.stderr.log"));
    ctx.watchdog.get_or_init(|| match runner::start_watchdog(&ctx.execution.name, ctx.home.root()) {
        Ok(watchdog) => Some(watchdog),
        Err(e) => {
            ctx.progress().progress.message(&format!("warning: no watchdog for this run's tasks: {e}"));
            None
        }
    });
    let timeout = task.timeout.map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
    let attempt_spec = Attempt {
        argv,
        env,
        remove_env: Vec::new(),
        cwd: dir.to_path_buf(),
        stdout: Some(dir.join(format!("attempt-{attempt}.stdout.log"))),
        stderr: Some(stderr.clone()),
        timeout,
        max_log_bytes: Some(process::max_log_bytes()),
    };
    let logs = [attempt_spec.stdout.clone(), attempt_spec.stderr.clone()];
    let outcome = if ctx.show_task_output {
        let (done, finished) = watch::channel(false);
        let logs: Vec<PathBuf> = logs.into_iter().flatten().collect();
        let (outcome, ()) = tokio::join!(
            async {
                let outcome = run_process(ctx, attempt_spec, &container.env, gpus, path).await;
                let _ = done.send(true);
                outcome
            },
            follow_logs(ctx, path, &logs, finished)
        );
        outcome
    } else {
        run_process(ctx, attempt_spec, &container.env, gpus, path).await
    };
    let task_name = task.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
    // `what` continues "task NAME", so it starts with a space or a colon.
    let failed = |code: FailureCode, what: String| {
        let tail = process::tail(&stderr, 10);
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("\n  last lines of stderr:\n    {}", tail.replace('\n', "\n    "))
        };
        let mut f = Failure::new(path, code, format!("task {task_name}{what}{tail}\n  full log: {}", stderr.display()));
        f.error.log_uri = stderr.display().to_string();
        f
    };
    match outcome {
        Outcome::Exited(0) => match collect_outputs(ctx, &interface.outputs, &outputs_dir).await {
            Ok(outputs) => Ok(outputs),
            Err(OutputError::Bad(message)) => Err(failed(FailureCode::BadOutputs, format!(": {message}"))),
            Err(OutputError::Store(name, e)) => Err(data_failure(format!("cannot store output \"{name}\""), e)),
        },
        Outcome::Exited(code) => Err(failed(FailureCode::NonZeroExit, format!(" exited with code {code}"))),
        Outcome::Signaled(signal) => Err(failed(FailureCode::Killed, format!(" was killed by signal {signal}"))),
        Outcome::TimedOut => Err(failed(
            FailureCode::Timeout,
            format!(
                " ran past its timeout of {}",
                timeout.map(updraft_core::quantity::format_duration).unwrap_or_default()
            ),
        )),
        Outcome::LogLimit(limit) => Err(failed(
            FailureCode::LogLimit,
            format!(
                " wrote more than {limit} bytes to stdout or stderr, the limit (UPDRAFT_MAX_LOG_BYTES); it was stopped"
            ),
        )),
        Outcome::Cancelled => Err(Failure::aborted(path)),
        Outcome::SpawnFailed(message) => Err(failed(FailureCode::CannotStart, format!(" could not start: {message}"))),
    }
}

/// Prints the lines an attempt writes to its log files as they come (`--task-output`),
/// each as `PATH | line` in the progress stream, until the attempt has ended and its
/// last lines, a final one without a newline included, are out. Each log stays open
/// and is read from where the last look ended, every [`FOLLOW_EVERY`]: the task
/// writes to plain files, as always, and a line reaches the terminal within that.
async fn follow_logs(ctx: &Ctx, path: &str, logs: &[PathBuf], mut finished: watch::Receiver<bool>) {
    use std::io::Read;
    let mut files: Vec<Option<std::fs::File>> = logs.iter().map(|_| None).collect();
    let mut partial = vec![Vec::<u8>::new(); logs.len()];
    loop {
        let last_look = *finished.borrow();
        for (i, log) in logs.iter().enumerate() {
            if files[i].is_none() {
                files[i] = std::fs::File::open(log).ok();
            }
            let Some(file) = files[i].as_mut() else { continue };
            // At most 1 MiB a look: a task printing without pause cannot stall the run's progress.
            let _ = file.take(1 << 20).read_to_end(&mut partial[i]);
            let complete = partial[i].iter().rposition(|b| *b == b'\n').map(|end| end + 1).unwrap_or(0);
            let mut lines: Vec<u8> = partial[i].drain(..complete).collect();
            if last_look && !partial[i].is_empty() {
                lines.append(&mut partial[i]);
                lines.push(b'\n');
            }
            if lines.is_empty() {
                continue;
            }
            let recorder = ctx.progress();
            for line in String::from_utf8_lossy(&lines).lines() {
                recorder.progress.message(&format!("{path} | {line}"));
            }
        }
        if last_look {
            return;
        }
        tokio::select! {
            _ = finished.changed() => {}
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

/// How often a followed log is read: a task's line is on the terminal within this.
const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// Runs an attempt's process: an SDK task forked from its warm Python worker
/// (docs/python.md), anything else (and a GPU task: CUDA cannot start in a
/// process forked after its parent initialised it) as a new process.
async fn run_process(
    ctx: &Ctx,
    mut attempt: Attempt,
    task_env: &BTreeMap<String, String>,
    gpus: &[String],
    path: &str,
) -> Outcome {
    let argv = attempt.argv.clone();
    let Some((python, task)) = python::warm_task(&argv).filter(|_| gpus.is_empty()) else {
        return process::run(attempt, ctx.cancel.clone()).await;
    };
    let (kind, path0, env) = match task {
        WarmTask::Sdk(_) => (WorkerKind::Sdk, attempt.cwd.clone(), attempt.env.clone()),
        WarmTask::Script { file, .. } => {
            // sys.path[0] is the script's directory, links resolved; a missing script fails fresh, as python3 says.
            let Some(dir) = attempt.cwd.join(file).canonicalize().ok().and_then(|f| f.parent().map(Path::to_path_buf))
            else {
                return process::run(attempt, ctx.cancel.clone()).await;
            };
            let Some(env) = whole_environment(&attempt) else { return process::run(attempt, ctx.cancel.clone()).await };
            (WorkerKind::Scripts { dir: dir.display().to_string() }, dir, env)
        }
        WarmTask::Module { .. } => {
            let Some(env) = whole_environment(&attempt) else { return process::run(attempt, ctx.cancel.clone()).await };
            (WorkerKind::Scripts { dir: String::new() }, attempt.cwd.clone(), env)
        }
    };
    let key = WorkerKey { python, code_dir: ctx.code_dir.clone(), env: task_env.clone().into_iter().collect(), kind };
    let stdout = attempt.stdout.clone().expect("local attempts have log files");
    let stderr = attempt.stderr.clone().expect("local attempts have log files");
    let request = ForkRequest {
        task,
        argv: &argv,
        path0: &path0,
        cwd: &attempt.cwd,
        env: &env,
        stdout: &stdout,
        stderr: &stderr,
    };
    // A worker may first import the task's module: that counts against the timeout, and Ctrl-C stops the wait.
    let asked = Instant::now();
    let mut cancel = ctx.cancel.clone();
    let timeout = attempt.timeout;
    let timed_out = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let forked = tokio::select! {
        forked = ctx.python.fork(&key, request) => forked,
        _ = process::cancelled(&mut cancel) => return Outcome::Cancelled,
        _ = timed_out => return Outcome::TimedOut,
    };
    match forked {
        Forked::Running { pid, ended } => {
            attempt.timeout = timeout.map(|t| t.saturating_sub(asked.elapsed()));
            process::supervise(process::forked(pid, ended), &attempt, ctx.cancel.clone()).await
        }
        Forked::Cold(reason) => {
            if ctx.cold_reasons.lock().expect("cold lock").insert(reason.clone()) {
                ctx.progress().progress.message(&format!("{path}: runs in a fresh process: {reason}"));
            }
            process::run(attempt, ctx.cancel.clone()).await
        }
    }
}

/// The environment a fresh process of the attempt would have (this process's, with the
/// attempt's on top); `None` if a variable is not UTF-8 (the protocol is JSON).
fn whole_environment(attempt: &Attempt) -> Option<Vec<(String, String)>> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        env.insert(name.into_string().ok()?, value.into_string().ok()?);
    }
    for name in &attempt.remove_env {
        env.remove(name);
    }
    env.extend(attempt.env.iter().cloned());
    Some(env.into_iter().collect())
}

enum OutputError {
    /// The task broke its contract; another attempt will not help.
    Bad(String),
    /// The blob store could not take this output.
    Store(String, PortError),
}

/// Reads every declared output from the outputs directory (the shared contract
/// check); files and directories go into the blob store under their digest.
async fn collect_outputs(
    ctx: &Ctx,
    declared: &[updraft_core::proto::core::Variable],
    dir: &Path,
) -> Result<Outputs, OutputError> {
    let mut outputs = Outputs::new();
    for var in declared {
        let value = match outputs::check(var, dir).map_err(OutputError::Bad)? {
            Output::Absent => literal::none(),
            Output::Value(value) => value,
            Output::Blob { kind, format } => {
                let path = dir.join(&var.name);
                let stored = ctx
                    .blobs
                    .put(&path, kind == BlobKind::Directory)
                    .await
                    .map_err(|e| OutputError::Store(var.name.clone(), e))?;
                outputs::blob_literal(kind, Blob { uri: stored.uri, format, digest: stored.digest })
            }
        };
        outputs.insert(var.name.clone(), value);
    }
    Ok(outputs)
}

fn to_duration(d: Duration) -> updraft_core::proto::Duration {
    updraft_core::proto::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// A new execution name (`core::execution::node::execution_name`); the store refuses one that exists.
fn new_execution_name() -> String {
    rules::execution_name(chrono::Utc::now(), random_u32())
}
