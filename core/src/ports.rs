//! The ports: what the node logic needs from the outside world, as traits with
//! no runtime or SDK types in them. Adapters fill them (the local disk and SQLite
//! for `updraft run`, S3 and DynamoDB for the cloud); `memory` holds in-memory
//! fakes for unit tests. Each method's doc states its contract, which every
//! implementation keeps, so the node logic can rely on it whichever is plugged in.

use crate::execution::node::Outputs;
use crate::proto::api::{EntitySummary, NamedEntity, Project};
use crate::proto::core::{
    CompiledWorkflow, Execution, ExecutionId, Identifier, LaunchPlanSpec, NodeExecution, ResourceType, TaskTemplate,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::Path;

/// Why a port call failed, and whether the same call could succeed later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Throttled, timed out, connection lost: the same call may succeed later.
    #[error("{0} (transient: retrying may help)")]
    Transient(String),
    /// Refused for good: denied, malformed, missing bucket.
    #[error("{0}")]
    Permanent(String),
    /// A write lost to a different value already there (see each method).
    #[error("{0}")]
    Conflict(String),
    /// What the call names does not exist (see each method).
    #[error("{0}")]
    NotFound(String),
    /// The call's own arguments are wrong (a page token from another listing).
    #[error("{0}")]
    Invalid(String),
}

impl PortError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Transient(_))
    }
}

/// A stored file or directory tree: its content digest (`sha256:…`) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: String,
    pub uri: String,
}

/// Task data, addressed by content.
pub trait BlobStore: Send + Sync {
    /// Stores the file (or, with `is_dir`, the directory tree) at `path` under its
    /// digest. Storing equal content twice yields the same URI; a stored blob is
    /// never changed afterwards, and one found corrupt is replaced.
    fn put(&self, path: &Path, is_dir: bool) -> impl Future<Output = Result<StoredBlob, PortError>> + Send;

    /// Whether `uri` can be read and (where the store can tell cheaply) still
    /// has `digest`. A `false` makes a cache entry a miss, never a failure.
    fn holds(&self, uri: &str, digest: &str, is_dir: bool) -> impl Future<Output = bool> + Send;
}

/// Blobs a literal names (files, directories, dataframes), with whether each is a directory.
pub fn blobs(literal: &crate::proto::core::Literal) -> Vec<(&str, &str, bool)> {
    let mut found = Vec::new();
    let mut stack = vec![literal];
    while let Some(value) = stack.pop() {
        match &value.value {
            Some(crate::proto::core::literal::Value::File(b))
            | Some(crate::proto::core::literal::Value::Dataframe(b)) => {
                found.push((b.uri.as_str(), b.digest.as_str(), false))
            }
            Some(crate::proto::core::literal::Value::Directory(b)) => {
                found.push((b.uri.as_str(), b.digest.as_str(), true))
            }
            Some(crate::proto::core::literal::Value::List(list)) => stack.extend(list.values.iter()),
            Some(crate::proto::core::literal::Value::Map(map))
            | Some(crate::proto::core::literal::Value::Struct(map)) => stack.extend(map.values.values()),
            _ => {}
        }
    }
    found
}

/// Whether the store still holds every blob that `values` name (a cache entry
/// whose blob is gone is a miss, never a failure).
pub async fn holds_all<B: BlobStore>(store: &B, values: &Outputs) -> bool {
    for value in values.values() {
        for (uri, digest, is_dir) in blobs(value) {
            if !store.holds(uri, digest, is_dir).await {
                return false;
            }
        }
    }
    true
}

/// Task outputs by cache key (docs/caching.md).
pub trait CacheStore: Send + Sync {
    /// The outputs stored under `key`, if any. The blobs they name may be gone:
    /// callers check them with [`BlobStore::holds`].
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Outputs>, PortError>> + Send;
    /// [`get`](CacheStore::get) of many keys: the entries in the keys' order. A store
    /// that reads in batches (DynamoDB's BatchGetItem) overrides this one-by-one read.
    fn get_many(&self, keys: &[String]) -> impl Future<Output = Result<Vec<Option<Outputs>>, PortError>> + Send {
        async move {
            let mut entries = Vec::with_capacity(keys.len());
            for key in keys {
                entries.push(self.get(key).await?);
            }
            Ok(entries)
        }
    }
    /// Stores (or replaces) the outputs under `key`; readers see the old entry or the new one, never half.
    fn put(&self, key: &str, outputs: &Outputs) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Removes the entry; removing a missing one is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// [`put`](CacheStore::put), recording which task version the entry belongs
    /// to, so that [`entries`](CacheStore::entries) and [`evict`](CacheStore::evict) find it.
    fn put_for(
        &self,
        key: &str,
        _task: &Identifier,
        outputs: &Outputs,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.put(key, outputs)
    }
    /// [`put_for`](CacheStore::put_for) of many entries of one task version (a
    /// map's items). A store that writes in batches (DynamoDB's BatchWriteItem)
    /// overrides this one-by-one write.
    fn put_many_for(
        &self,
        entries: &[(String, Outputs)],
        task: &Identifier,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async move {
            for (key, outputs) in entries {
                self.put_for(key, task, outputs).await?;
            }
            Ok(())
        }
    }
    /// The entries stored for a task version (`put_for`), newest first.
    fn entries(&self, task: &Identifier) -> impl Future<Output = Result<Vec<CacheEntry>, PortError>> + Send {
        let name = task.name.clone();
        async move { Err(PortError::Invalid(format!("this cache does not index entries by task ({name})"))) }
    }
    /// Removes every entry of a task version. Records the eviction, `by` (an IAM
    /// ARN in the cloud) and the time ([`CacheStore::last_eviction`]), and answers
    /// how many entries there were and the recorded time.
    fn evict(&self, task: &Identifier, by: &str) -> impl Future<Output = Result<Eviction, PortError>> + Send {
        let _ = by;
        let name = task.name.clone();
        async move { Err(PortError::Invalid(format!("this cache does not index entries by task ({name})"))) }
    }
    /// Who evicted a task version's entries last, and when (RFC 3339); `None` if nobody has.
    fn last_eviction(
        &self,
        task: &Identifier,
    ) -> impl Future<Output = Result<Option<(String, String)>, PortError>> + Send {
        let _ = task;
        async { Ok(None) }
    }
}

/// What an eviction removed and when it was recorded (RFC 3339; empty where the
/// store keeps no time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Eviction {
    pub deleted: u32,
    pub at: String,
}

/// One cache entry as listed: its key and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: String,
    pub created_at: String,
}

/// Execution and node execution records.
pub trait ExecutionStore: Send + Sync {
    /// Records a new execution. An execution of the same name exists: `Conflict`,
    /// and the existing record is left as it was (names are never reused).
    fn create(&self, execution: &Execution) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Replaces the record of an existing execution.
    fn update(&self, execution: &Execution) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Creates or replaces one node's record (`position` orders the nodes of an execution).
    fn put_node(&self, node: &NodeExecution, position: usize) -> impl Future<Output = Result<(), PortError>> + Send;
    /// One execution and its nodes in order, or `None`.
    fn get(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<(Execution, Vec<NodeExecution>)>, PortError>> + Send;
    /// The newest executions first, at most `limit`.
    fn list(&self, limit: usize) -> impl Future<Output = Result<Vec<Execution>, PortError>> + Send;
}

/// One registrable entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Task(TaskTemplate),
    /// A workflow's closure (`Compiled::closure`).
    Workflow(CompiledWorkflow),
    LaunchPlan(LaunchPlanSpec),
}

impl Entity {
    pub fn id(&self) -> Option<&Identifier> {
        match self {
            Entity::Task(t) => t.id.as_ref(),
            Entity::Workflow(w) => w.template.as_ref().and_then(|t| t.id.as_ref()),
            Entity::LaunchPlan(l) => l.id.as_ref(),
        }
    }

    pub fn resource_type(&self) -> ResourceType {
        match self {
            Entity::Task(_) => ResourceType::Task,
            Entity::Workflow(_) => ResourceType::Workflow,
            Entity::LaunchPlan(_) => ResourceType::LaunchPlan,
        }
    }

    /// The entity's canonical JSON (the IDL's proto3 JSON mapping).
    pub fn to_json(&self) -> String {
        match self {
            Entity::Task(t) => serde_json::to_string(t),
            Entity::Workflow(w) => serde_json::to_string(w),
            Entity::LaunchPlan(l) => serde_json::to_string(l),
        }
        .expect("entities serialize")
    }

    /// The entity of `kind` whose canonical JSON is `json`.
    pub fn from_json(kind: ResourceType, json: &str) -> Result<Entity, serde_json::Error> {
        Ok(match kind {
            ResourceType::Workflow => Entity::Workflow(serde_json::from_str(json)?),
            ResourceType::LaunchPlan => Entity::LaunchPlan(serde_json::from_str(json)?),
            _ => Entity::Task(serde_json::from_str(json)?),
        })
    }

    /// The content digest a registry compares: `sha256:` of the canonical JSON.
    /// A launch plan's `active` is its declared initial state, part of its content.
    pub fn digest(&self) -> String {
        crate::execution::contract::digest_string(&hex::encode(Sha256::digest(self.to_json())))
    }
}

/// How a registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Created,
    /// The same id with the same content was there: nothing was written.
    AlreadyRegistered,
}

/// The refusal of a re-registration with other content: both digests, and what to do.
pub fn registration_conflict(id: &Identifier, registered: &str, offered: &str) -> PortError {
    let kind =
        ResourceType::try_from(id.resource_type).unwrap_or_default().as_str_name().to_lowercase().replace('_', " ");
    PortError::Conflict(format!(
        "{kind} {}/{}/{} version {} is registered with content {registered}; this one is {offered} \
         (versions are immutable: register the change under a new version)",
        id.project, id.domain, id.name, id.version
    ))
}

/// Which page of a listing: at most `limit` items after `token`, which is the
/// `next_token` of the previous page (opaque, valid only for the same listing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub token: Option<String>,
}

/// Which runs a listing keeps (`None`: any); every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub phase: Option<crate::proto::core::WorkflowPhase>,
    /// The workflow's name.
    pub workflow: Option<String>,
    /// The launch plan's name (runs its schedule or a launch of it started).
    pub launch_plan: Option<String>,
    /// Created at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl RunFilter {
    pub fn matches(&self, execution: &Execution) -> bool {
        let workflow = execution.workflow_id.as_ref().map(|w| w.name.as_str()).unwrap_or_default();
        let plan = execution.launch_plan_id.as_ref().map(|p| p.name.as_str()).unwrap_or_default();
        let created = execution.created_at.map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        self.phase.is_none_or(|p| execution.phase == p as i32)
            && self.workflow.as_deref().is_none_or(|w| w == workflow)
            && self.launch_plan.as_deref().is_none_or(|p| p == plan)
            && self.since.is_none_or(|since| created >= (since.timestamp(), since.timestamp_subsec_nanos() as i32))
    }
}

/// One page of a listing; `next_token` is `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// One page of a node's task log (docs/api/openapi.yaml, the node log route).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPage {
    /// (epoch milliseconds, line), oldest first.
    pub events: Vec<(i64, String)>,
    /// Where the next page starts: give it back to read what was written since.
    pub next_token: String,
    /// The log stream read; empty while the node's job has not started one.
    pub stream: String,
    /// Whether the node has ended: after this page, nothing more will come.
    pub ended: bool,
}

/// Registered entities: immutable and versioned (FlyteAdmin's model).
///
/// Preconditions every implementation keeps: ids are complete (kind, project,
/// domain, name, version all set; the caller checks); an entity is written once
/// and never changed, so its digest identifies its content for good; a failed
/// call leaves the registry as it was.
pub trait Registry: Send + Sync {
    /// Registers entities all-or-nothing. For each, the same (kind, project,
    /// domain, name, version) with identical content is `AlreadyRegistered`; with
    /// different content the whole call is a `Conflict` ([`registration_conflict`])
    /// and nothing is written. Concurrent calls for the same id with different
    /// content: exactly one wins, decided by the store's conditional write.
    /// A launch plan declared `active` becomes its name's active version. Each new
    /// version records `by`, who registered it (an IAM ARN in the cloud).
    fn register(
        &self,
        entities: &[Entity],
        by: &str,
    ) -> impl Future<Output = Result<Vec<Registration>, PortError>> + Send;
    /// One entity by its full id, or `None`. A launch plan's `active` says whether
    /// it is its name's active version now.
    fn get(&self, id: &Identifier) -> impl Future<Output = Result<Option<Entity>, PortError>> + Send;
    /// The versions of the entity `id` names (its version is ignored), newest first.
    fn versions(
        &self,
        id: &Identifier,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<EntitySummary>, PortError>> + Send;
    /// The names of one kind in a project and domain that start with `prefix`
    /// (every name when it is empty), in alphabetical order.
    fn names(
        &self,
        kind: ResourceType,
        project: &str,
        domain: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<NamedEntity>, PortError>> + Send;
    /// Every project with the domains that hold entities, alphabetical.
    fn projects(&self) -> impl Future<Output = Result<Vec<Project>, PortError>> + Send;
    /// Makes the launch plan `id` its name's one active version, or (with `false`)
    /// makes it inactive; deactivating a version that is not active changes
    /// nothing. An unregistered `id`: `NotFound`. Records `by` (an IAM ARN in
    /// the cloud) and the time on the name (`NamedEntity.active_changed_by/at`).
    fn set_active(&self, id: &Identifier, active: bool, by: &str)
    -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The cloud resources a registered version runs with (`cloud_resources::plan`).
/// Both methods are idempotent: names carry the version, and a version's
/// content never changes, so an existing resource of that name is the one wanted.
pub trait Provisioner: Send + Sync {
    /// Makes sure the job role `name` exists (under the stack's permissions
    /// boundary) and holds `policy` as its inline policy, put again every time so
    /// a changed policy or an interrupted creation is repaired; its ARN.
    fn ensure_job_role(&self, name: &str, policy: &Value) -> impl Future<Output = Result<String, PortError>> + Send;
    /// Makes sure an active Batch job definition `name` exists, registering `body`
    /// (a `RegisterJobDefinition` request) when none does; its ARN.
    fn ensure_job_definition(&self, name: &str, body: &Value)
    -> impl Future<Output = Result<String, PortError>> + Send;
    /// Makes sure the state machine `name` exists; its ARN. One of that name with
    /// another definition is a `Conflict` (the stack's settings changed under it).
    fn ensure_state_machine(
        &self,
        name: &str,
        definition: &Value,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// `enabled`: makes the plan's schedule launch this version, ENABLED (created
    /// or updated; a rate's start date kept). Not `enabled`: disables the schedule
    /// if it launches this version (its start date kept); another version's
    /// schedule is left alone. Idempotent.
    fn apply_schedule(
        &self,
        schedule: &crate::schedule::ScheduleRequest,
        enabled: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The schedule `name` as the stack has it; `None`: there is none.
    fn find_schedule(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<crate::schedule::FoundSchedule>, PortError>> + Send;
}

/// How a run came to be, recorded with it (`Execution.mode`, `launch_plan_id`,
/// `principal`, `scheduled_at`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaunchOrigin {
    pub mode: crate::proto::core::LaunchMode,
    /// The launch plan version it was launched from, if any.
    pub launch_plan: Option<Identifier>,
    /// Who launched it: the caller's IAM ARN, or the schedule that fired.
    pub principal: String,
    /// A scheduled run's tick (its kickoff time).
    pub scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A RECOVER run: the run it recovers (same project and domain).
    pub recovered_from: String,
}

/// Cloud runs: launched from a registered workflow version, read back from their records.
pub trait Runs: Send + Sync {
    /// A page of what a node's task wrote (its `attempt`, from 1, by default its last;
    /// a map node's `item`, from 0, on the child that ran it), from `token` on (empty:
    /// the start), at most `limit` lines; `None`: no such run or node. An attempt the
    /// node did not make: `NotFound`. Where logs are not kept, `Invalid`.
    #[allow(clippy::too_many_arguments)]
    fn node_log(
        &self,
        _execution: &ExecutionId,
        node: &str,
        _item: Option<usize>,
        _attempt: Option<u32>,
        _token: &str,
        _limit: usize,
    ) -> impl Future<Output = Result<Option<LogPage>, PortError>> + Send {
        let node = node.to_string();
        async move { Err(PortError::Invalid(format!("the logs of node {node} are not kept here"))) }
    }
    /// Records the run (its inputs and nodes) and starts its state machine: `true`.
    /// The name is the idempotency key: a run of that name with the same workflow
    /// version and inputs is the same run, started if a launch that died between its
    /// two writes left it unstarted: `false`. With other content: `Conflict`, and
    /// nothing is started. `origin` is recorded as the first launch gave it.
    fn launch(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
        origin: &LaunchOrigin,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The runs of a project and domain that `filter` keeps, newest first. A page may
    /// hold fewer than `limit` runs while `next_token` says more may follow (a filter
    /// reads a bounded part of the history per page).
    fn list(
        &self,
        project: &str,
        domain: &str,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Execution>, PortError>> + Send;
    /// Stops a run: records it ABORTED by `by` for `reason` unless it has ended
    /// (the first end stands), stops its engine, its jobs and its child runs.
    /// Idempotent. What it did; `None`: no such run.
    fn abort(
        &self,
        execution: &ExecutionId,
        by: &str,
        reason: &str,
    ) -> impl Future<Output = Result<Option<crate::execution::stop::Stopped>, PortError>> + Send;
    /// Records how a tick of `plan`'s schedule was handled (the same tick again
    /// replaces its record: a retried tick that launched says so).
    fn record_tick(
        &self,
        plan: &Identifier,
        tick: &crate::proto::api::ScheduleTick,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The ticks of a launch plan (any version), newest first.
    fn ticks(
        &self,
        plan: &Identifier,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::proto::api::ScheduleTick>, PortError>> + Send;
    /// The run and its nodes as recorded, or `None`.
    fn get(
        &self,
        execution: &ExecutionId,
    ) -> impl Future<Output = Result<Option<(Execution, Vec<NodeExecution>)>, PortError>> + Send;
    /// One node of the run, read alone, once it has ended (with its outputs). `None`:
    /// not ended, no such run or node, or a store that reads runs whole — the caller
    /// then reads the run with [`get`](Runs::get), which tells them apart.
    fn ended_node(
        &self,
        _execution: &ExecutionId,
        _node: &str,
    ) -> impl Future<Output = Result<Option<NodeExecution>, PortError>> + Send {
        async { Ok(None) }
    }
}

/// What drives a workflow's DAG in the cloud (Step Functions).
pub trait WorkflowEngine: Send + Sync {
    /// Starts `execution_name` of the registered workflow with inputs stored at
    /// `inputs_uri`. Starting the same name with the same inputs again returns
    /// the same run (idempotent launches); with other inputs, `Conflict`.
    fn start(
        &self,
        workflow: &Identifier,
        execution_name: &str,
        inputs_uri: &str,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// Asks a running execution to stop; stopping a finished one is not an error.
    fn stop(&self, run: &str, reason: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub mod memory;
