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
//! is answered and each downstream node learns that one more upstream node ended.

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

/// One node's coordination state in a run, as the run store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSlot {
    /// Upstream nodes that have not ended yet.
    pub pending: u32,
    /// The task token of the node's state, once armed.
    pub token: Option<String>,
    /// Whether an upstream node failed or was skipped: the node will be skipped.
    pub skip: bool,
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEnd {
    pub phase: NodePhase,
    pub outputs: Outputs,
    pub failure: Option<NodeFailure>,
    /// Attempts its job made (0: no job ran).
    pub attempts: u32,
    /// Where the last attempt's log is (empty: no job ran).
    pub log_uri: String,
    /// The task's cache key (empty when it is not cached): the same as a local run's.
    pub cache_key: String,
}

/// How a node's job ended, as its executor reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    pub result: Result<Outputs, NodeFailure>,
    pub attempts: u32,
    pub log_uri: String,
}

impl NodeEnd {
    fn ok(phase: NodePhase, outputs: Outputs) -> NodeEnd {
        NodeEnd { phase, outputs, failure: None, attempts: 0, log_uri: String::new(), cache_key: String::new() }
    }

    fn failed(failure: NodeFailure) -> NodeEnd {
        NodeEnd {
            phase: NodePhase::Failed,
            outputs: Outputs::new(),
            failure: Some(failure),
            attempts: 0,
            log_uri: String::new(),
            cache_key: String::new(),
        }
    }

    fn skipped() -> NodeEnd {
        NodeEnd {
            phase: NodePhase::Skipped,
            outputs: Outputs::new(),
            failure: None,
            attempts: 0,
            log_uri: String::new(),
            cache_key: String::new(),
        }
    }
}

/// The per-run state of the protocol; every method is one conditional write
/// (or read), so concurrent arms and completions are safe.
pub trait RunStore: Send + Sync {
    /// Stores `node`'s token; the slot after the write. Arming again stores the new token.
    fn arm(&self, node: &str, token: &str) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// One upstream node of `node` ended (`failed`: failed or was skipped); the slot after the write.
    fn upstream_ended(&self, node: &str, failed: bool) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// The slot as it is.
    fn slot(&self, node: &str) -> impl Future<Output = Result<NodeSlot, PortError>> + Send;
    /// Claims the start of `node`: `true` for exactly one caller, ever.
    fn claim(&self, node: &str) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Records how `node` ended: `true` the first time, `false` when it had ended already.
    fn end(&self, node: &str, end: &NodeEnd) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The run's inputs and the outputs of its ended nodes.
    fn values(&self) -> impl Future<Output = Result<RunValues, PortError>> + Send;
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
    /// Submits one job per item of a map node (Batch: one array job); its id. When
    /// every item has ended, the adapter calls [`Steps::map_reported`].
    fn submit_map(
        &self,
        node: &str,
        task: &TaskTemplate,
        items: &[Outputs],
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
}

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
}

impl<S: RunStore, C: CacheStore, B: BlobStore, J: Jobs, T: Tokens> Steps<'_, S, C, B, J, T> {
    fn node(&self, id: &str) -> Result<&Node, PortError> {
        let template = self.workflow.template.as_ref();
        template
            .and_then(|t| t.nodes.iter().find(|n| n.id == id))
            .ok_or_else(|| PortError::Invalid(format!("the workflow has no node {id}")))
    }

    fn downstream(&self, id: &str) -> Vec<String> {
        let nodes = self.workflow.template.as_ref().map(|t| t.nodes.as_slice()).unwrap_or_default();
        nodes.iter().filter(|n| n.upstream_node_ids.iter().any(|u| u == id)).map(|n| n.id.clone()).collect()
    }

    fn task(&self, id: &crate::proto::core::Identifier) -> Option<&TaskTemplate> {
        self.workflow.tasks.iter().find(|t| t.id.as_ref().is_some_and(|t| t.name == id.name && t.version == id.version))
    }

    fn fail_immediately(&self) -> bool {
        let policy = self.workflow.template.as_ref().map(|t| t.failure_policy).unwrap_or_default();
        policy == FailurePolicy::FailImmediately as i32
    }

    /// A node's state armed it with `token`: starts it if its upstream nodes have all ended.
    pub async fn arm(&self, node: &str, token: &str) -> Result<(), PortError> {
        self.node(node)?;
        let slot = self.store.arm(node, token).await?;
        if slot.pending == 0 {
            self.start_ready(vec![(node.to_string(), slot)]).await?;
        }
        Ok(())
    }

    /// A node's job ended with its outputs or its failure (after Batch's retries).
    pub async fn job_ended(&self, node: &str, result: Result<Outputs, NodeFailure>) -> Result<(), PortError> {
        self.job_reported(node, JobReport { result, attempts: 1, log_uri: String::new() }).await
    }

    /// A node's job ended, with its attempts and log location.
    pub async fn job_reported(&self, node: &str, report: JobReport) -> Result<(), PortError> {
        let mut end = match report.result {
            Ok(outputs) => NodeEnd::ok(NodePhase::Succeeded, outputs),
            Err(failure) => NodeEnd::failed(failure),
        };
        if end.phase == NodePhase::Succeeded {
            let values = self.store.values().await?;
            if let Ok(Some(Invocation::Task(task, inputs))) = self.invocation(node, &values)
                && let Some(key) = cache_key::for_task(task, &inputs)
            {
                // A lost cache entry costs a rerun later, not this run.
                let _ = self.cache.put_for(&key, &task.id.clone().unwrap_or_default(), &end.outputs).await;
                end.cache_key = key;
            }
        }
        (end.attempts, end.log_uri) = (report.attempts, report.log_uri);
        let slot = NodeSlot { token: None, ..Default::default() };
        self.finish(vec![(node.to_string(), slot, end)]).await
    }

    /// Every item of a map node ended (after Batch's retries of each).
    pub async fn map_reported(
        &self,
        node: &str,
        items: Vec<node::ItemResult>,
        attempts: u32,
        log_uri: String,
    ) -> Result<(), PortError> {
        let values = self.store.values().await?;
        let mut end = match self.invocation(node, &values) {
            Ok(Some(Invocation::Map(task, map_node, inputs))) => {
                // Each item's outputs are cached as a local run caches them, under the item's key.
                for (item, result) in inputs.iter().zip(&items) {
                    if let (Some(key), node::ItemResult::Succeeded(outputs)) = (cache_key::for_task(task, item), result)
                    {
                        let _ = self.cache.put_for(&key, &task.id.clone().unwrap_or_default(), outputs).await;
                    }
                }
                match node::map_outcome(&items, &output_names(task), map_node.min_success_ratio) {
                    Ok(outputs) => NodeEnd::ok(NodePhase::Succeeded, outputs),
                    Err(failure) => NodeEnd::failed(failure),
                }
            }
            Ok(_) => NodeEnd::failed(NodeFailure::new(FailureCode::BadJob, format!("node {node} is not a map node"))),
            Err(failure) => NodeEnd::failed(failure),
        };
        (end.attempts, end.log_uri) = (attempts, log_uri);
        let slot = NodeSlot { token: None, ..Default::default() };
        self.finish(vec![(node.to_string(), slot, end)]).await
    }

    /// What a node runs (a branch: its chosen case), or why it cannot run;
    /// `None` for nodes that run no task of their own (subworkflows).
    fn invocation(&self, id: &str, values: &RunValues) -> Result<Option<Invocation<'_>>, NodeFailure> {
        let bad = |message: String| NodeFailure::new(FailureCode::BadJob, message);
        let target = self.node(id).map_err(|e| bad(e.to_string()))?;
        // A branch runs its chosen case as the node itself.
        let chosen = match &target.target {
            Some(Target::Branch(branch)) => node::choose_branch(branch, values)?,
            _ => target,
        };
        let task_of = |task_id: Option<&crate::proto::core::Identifier>| {
            task_id
                .and_then(|t| self.task(t))
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
                let sub = self
                    .workflow
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

    /// Starts every ready node in the list, and those that their ends make ready,
    /// without recursion: a chain of cache hits is a loop, not a deep stack.
    async fn start_ready(&self, mut ready: Vec<(String, NodeSlot)>) -> Result<(), PortError> {
        while let Some((id, slot)) = ready.pop() {
            if slot.token.is_none() || !self.store.claim(&id).await? {
                continue;
            }
            let end = if slot.skip { Some(NodeEnd::skipped()) } else { self.start(&id).await? };
            if let Some(end) = end {
                self.finish_one(&id, &slot, end, &mut ready).await?;
            }
        }
        Ok(())
    }

    /// Starts one claimed node: `Some` when it ended at once (a cache hit, a
    /// failure to start), `None` when its job runs.
    async fn start(&self, id: &str) -> Result<Option<NodeEnd>, PortError> {
        let values = self.store.values().await?;
        match self.invocation(id, &values) {
            Ok(Some(Invocation::Task(task, inputs))) => {
                if let Some(key) = cache_key::for_task(task, &inputs)
                    && let Some(outputs) = self.cached(&key).await?
                {
                    let mut end = NodeEnd::ok(NodePhase::Cached, outputs);
                    end.cache_key = key;
                    return Ok(Some(end));
                }
                self.jobs.submit(id, task, &inputs).await?;
                Ok(None)
            }
            Ok(Some(Invocation::Map(task, map_node, items))) => {
                // Every item a verified hit (or no item at all): no job starts.
                let mut hits = Vec::with_capacity(items.len());
                for item in &items {
                    let Some(key) = cache_key::for_task(task, item) else { break };
                    let Some(outputs) = self.cached(&key).await? else { break };
                    hits.push(node::ItemResult::Succeeded(outputs));
                }
                if hits.len() < items.len() {
                    self.jobs.submit_map(id, task, &items).await?;
                    return Ok(None);
                }
                let phase = if items.is_empty() { NodePhase::Succeeded } else { NodePhase::Cached };
                Ok(Some(match node::map_outcome(&hits, &output_names(task), map_node.min_success_ratio) {
                    Ok(outputs) => NodeEnd::ok(phase, outputs),
                    Err(failure) => NodeEnd::failed(failure),
                }))
            }
            Ok(Some(Invocation::Workflow(sub, inputs))) => {
                // A child run of the subworkflow's own state machine; its end completes this node.
                self.jobs.start_subworkflow(id, sub, &inputs, self.overwrite_cache).await?;
                Ok(None)
            }
            Ok(None) => {
                let message = format!("node {id} runs nothing (no task, map or subworkflow)");
                Ok(Some(NodeEnd::failed(NodeFailure::new(FailureCode::BadJob, message))))
            }
            Err(failure) => Ok(Some(NodeEnd::failed(failure))),
        }
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

    async fn finish(&self, ended: Vec<(String, NodeSlot, NodeEnd)>) -> Result<(), PortError> {
        let mut ready = Vec::new();
        for (id, slot, end) in ended {
            self.finish_one(&id, &slot, end, &mut ready).await?;
        }
        self.start_ready(ready).await
    }

    /// Records one node's end (once), answers its token, and tells its downstream
    /// nodes; those that become ready are pushed onto `ready`.
    async fn finish_one(
        &self,
        id: &str,
        slot: &NodeSlot,
        end: NodeEnd,
        ready: &mut Vec<(String, NodeSlot)>,
    ) -> Result<(), PortError> {
        if !self.store.end(id, &end).await? {
            return Ok(()); // delivered twice: the first delivery did the rest
        }
        // The token: the slot's, or (for a job that ended) the one stored at arming.
        let token = match &slot.token {
            Some(token) => Some(token.clone()),
            None => self.store.slot(id).await?.token,
        };
        let failed = matches!(end.phase, NodePhase::Failed | NodePhase::Skipped);
        if let Some(token) = token {
            match (&end.failure, self.fail_immediately()) {
                (Some(failure), true) => {
                    // The run fails now; Step Functions cancels every waiting node.
                    return self.tokens.fail(&token, failure).await;
                }
                _ => self.tokens.succeed(&token, id, end.phase).await?,
            }
        }
        for child in self.downstream(id) {
            let slot = self.store.upstream_ended(&child, failed).await?;
            if slot.pending == 0 {
                ready.push((child, slot));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
