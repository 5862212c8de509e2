//! The node function: the node protocol of docs/cloud-execution.md on AWS.
//! Step Functions calls it to arm a node (`{action: arm}`); EventBridge brings
//! it Batch "Job State Change" events of the nodes' jobs. (A run's end is
//! recorded by the state machine itself, without this function.) Every decision is `updraft_core::execution::steps`'; this
//! module only reads events and fills the ports: the run in DynamoDB, jobs in
//! Batch, task tokens in Step Functions, blobs in S3.

use aws_sdk_batch::types::KeyValuePair;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use serde_json::{Value, json};
use updraft_aws::runs::{DynamoCache, DynamoRun};
use updraft_aws::s3::{self, S3Uri};
use updraft_aws::sdk_error::port_error;
use updraft_core::compute::{self, Platform, Queue, Queues};
use updraft_core::cost;
use updraft_core::execution::contract::{self, ErrorDocument, MapManifest, OutputsDocument};
use updraft_core::execution::failure::{self, FailureCode};
use updraft_core::execution::node::ItemResult;
use updraft_core::execution::node::{NodeFailure, Outputs};
use updraft_core::execution::resolve::resolve;
use updraft_core::execution::steps::{
    Gathered, Gathering, ItemToRun, JobReport, Jobs, Recovering, RunStore, Steps, Tokens,
};
use updraft_core::execution::stop::StopCause;
use updraft_core::job_definition::job_definition_name;
use updraft_core::ports::{self, BlobStore, Entity, PortError, Registry, StoredBlob};
use updraft_core::project_access;
use updraft_core::proto::Timestamp;
use updraft_core::proto::core::{
    AttemptRecord, CompiledWorkflow, ExecutionId, Identifier, Literal, LiteralMap, NodePhase, ResourceType, RunUsage,
    TaskTemplate,
};

/// The node function's settings, from the variables the template sets.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub table: String,
    pub bucket: String,
    pub name_prefix: String,
    pub cpu_queue: String,
    pub gpu_queue: String,
    /// Where jobs log (log URIs of failed nodes point into it).
    pub job_log_group: String,
    /// `arn:<partition>:states:<region>:<account>:stateMachine:` (subworkflows' machines).
    pub state_machine_arn_prefix: String,
    /// The node function's own name (Lambda sets it): a gather out of time goes on in
    /// a follow-up invocation of it. Without it a gather takes whatever time it needs.
    pub function_name: Option<String>,
    /// The share of an invocation's time a gather may use before it goes on in a
    /// follow-up (`UPDRAFT_GATHER_TIME_SHARE`, 0 to 0.9; 0.7 when unset). At 0 each
    /// invocation writes one chunk of cache entries: tests make a small map go on so.
    pub gather_time_share: f64,
}

impl NodeConfig {
    pub fn from_env() -> Result<NodeConfig, String> {
        let required = |name: &str| crate::required_env(name, "node");
        Ok(NodeConfig {
            table: required("UPDRAFT_TABLE")?,
            bucket: required("UPDRAFT_BUCKET")?,
            name_prefix: required("UPDRAFT_NAME_PREFIX")?,
            cpu_queue: required("UPDRAFT_CPU_QUEUE")?,
            gpu_queue: required("UPDRAFT_GPU_QUEUE")?,
            job_log_group: required("UPDRAFT_JOB_LOG_GROUP")?,
            state_machine_arn_prefix: required("UPDRAFT_STATE_MACHINE_PREFIX")?,
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|name| !name.is_empty()),
            gather_time_share: match std::env::var("UPDRAFT_GATHER_TIME_SHARE") {
                Err(_) => GATHER_TIME_SHARE,
                Ok(share) => share.parse::<f64>().ok().filter(|s| (0.0..=0.9).contains(s)).ok_or_else(|| {
                    format!("UPDRAFT_GATHER_TIME_SHARE is {share:?}: a share of the function's time, 0 to 0.9")
                })?,
            },
        })
    }
}

/// Which run and workflow an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRef {
    pub execution: ExecutionId,
    pub workflow: Identifier,
}

/// What the node function is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    Arm {
        run: RunRef,
        node: String,
        token: String,
    },
    /// A node's Batch job reached SUCCEEDED or FAILED.
    JobEnded {
        run: RunRef,
        node: String,
        /// The job's id: the node's end is taken only from the job its start recorded.
        job: String,
        succeeded: bool,
        exit_code: Option<i64>,
        reason: String,
        log_stream: String,
        attempts: u32,
        /// The job's vCPUs, MiB of memory and GPUs.
        size: (f64, f64, f64),
        /// What the attempts used of Batch (an array job's children are not in its event).
        batch: RunUsage,
        /// Each attempt: queued, started, stopped, how it failed, its log stream (as a name).
        attempt_records: Vec<AttemptRecord>,
        /// A map node's job: how many items it ran (on however many children).
        items: Option<usize>,
        /// The queue the job ran on: only the stack's queues' jobs are nodes' jobs.
        queue: String,
        /// A map's gather going on where an invocation out of time stopped.
        follow_up: Option<GatherFollowUp>,
    },
    /// A subworkflow node's child run ended (its state machine says so).
    ChildEnded {
        run: RunRef,
        node: String,
        child: RunRef,
        succeeded: bool,
        error: Value,
    },
    /// An event the node function has nothing to do with (an array job's child).
    Ignored(String),
    /// An event that claims to be what it cannot be (a job's end from another
    /// source): dropped without side effects, logged and counted ([`refused`]).
    Refused(String),
}

/// Where a map's gather goes on: the Batch event of its job's end, sent again by the
/// invocation that ran out of time with this under [`FOLLOW_UP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatherFollowUp {
    /// Cache entries of the items that ran written so far.
    pub written: usize,
    /// When the invocation that sends it took the gather's lease, which the follow-up takes over.
    pub leased_at: u64,
}

/// The member of a Batch job-end event that makes it a gather's follow-up.
const FOLLOW_UP: &str = "updraftGather";

/// The share of an invocation's time a gather may use before it goes on in a
/// follow-up invocation, unless configured ([`NodeConfig::gather_time_share`]).
const GATHER_TIME_SHARE: f64 = 0.7;

/// Drops an event that is not what it claims: a warning, and one `RefusedEvents`
/// metric in CloudWatch's embedded metric format (a JSON line on stdout), so an
/// alarm can watch for forged or misrouted events.
fn refused(why: &str) -> Value {
    tracing::warn!(why, "event refused");
    let metric = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": "Updraft", "Dimensions": [[]], "Metrics": [{"Name": "RefusedEvents", "Unit": "Count"}]}],
        },
        "RefusedEvents": 1,
        "why": why,
    });
    println!("{metric}");
    json!({"refused": why})
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The run a state's payload names: the workflow is a constant of its state
/// machine, the execution name Step Functions' own.
fn run_of_payload(event: &Value) -> RunRef {
    let workflow = Identifier {
        resource_type: ResourceType::Workflow as i32,
        project: text(event, "/workflow/project"),
        domain: text(event, "/workflow/domain"),
        name: text(event, "/workflow/name"),
        version: text(event, "/workflow/version"),
    };
    let execution = ExecutionId {
        project: workflow.project.clone(),
        domain: workflow.domain.clone(),
        name: text(event, "/execution"),
    };
    RunRef { execution, workflow }
}

/// A job's parameters carry its run and node (set at submission).
const PARAMETERS: [&str; 6] =
    ["updraft_project", "updraft_domain", "updraft_execution", "updraft_node", "updraft_workflow", "updraft_version"];

pub fn parse_event(event: &Value) -> Result<NodeEvent, String> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Batch Job State Change") {
        // EventBridge sets `source`; only Batch's own events say what a job did.
        let source = text(event, "/source");
        if source != "aws.batch" {
            return Ok(NodeEvent::Refused(format!(
                "a Batch Job State Change from source {source:?}: only aws.batch's are taken"
            )));
        }
        let detail = &event["detail"];
        let p = |name: &str| text(detail, &format!("/parameters/{name}"));
        if PARAMETERS.iter().any(|name| p(name).is_empty()) {
            return Err(format!("job {} is not a node's job (no updraft parameters)", text(detail, "/jobName")));
        }
        let run = RunRef {
            execution: ExecutionId {
                project: p("updraft_project"),
                domain: p("updraft_domain"),
                name: p("updraft_execution"),
            },
            workflow: Identifier {
                resource_type: ResourceType::Workflow as i32,
                project: p("updraft_project"),
                domain: p("updraft_domain"),
                name: p("updraft_workflow"),
                version: p("updraft_version"),
            },
        };
        if detail.pointer("/arrayProperties/index").is_some() {
            return Ok(NodeEvent::Ignored("an array job's child: its parent's end completes the map node".into()));
        }
        let status = text(detail, "/status");
        if status != "SUCCEEDED" && status != "FAILED" {
            return Err(format!("job status {status} is not an end"));
        }
        let size = job_size(detail);
        return Ok(NodeEvent::JobEnded {
            run,
            node: p("updraft_node"),
            job: text(detail, "/jobId"),
            succeeded: status == "SUCCEEDED",
            exit_code: detail.pointer("/container/exitCode").and_then(Value::as_i64),
            reason: text(detail, "/statusReason"),
            log_stream: text(detail, "/container/logStreamName"),
            attempts: detail.get("attempts").and_then(Value::as_array).map_or(1, |a| a.len().max(1) as u32),
            size,
            batch: batch_usage(detail, size),
            attempt_records: attempt_records(detail),
            items: p(ITEMS_PARAMETER).parse().ok(),
            queue: text(detail, "/jobQueue"),
            follow_up: match event.get(FOLLOW_UP) {
                None => None,
                Some(cursor) => Some(
                    serde_json::from_value(cursor.clone()).map_err(|e| format!("{FOLLOW_UP} is not a cursor: {e}"))?,
                ),
            },
        });
    }
    match event.get("action").and_then(Value::as_str) {
        Some("arm") => {
            Ok(NodeEvent::Arm { run: run_of_payload(event), node: text(event, "/node"), token: text(event, "/token") })
        }
        Some("child_ended") => {
            let child = run_of_payload(event);
            let parent = &event["parent"];
            let run = RunRef {
                execution: ExecutionId {
                    project: text(parent, "/project"),
                    domain: text(parent, "/domain"),
                    name: text(parent, "/execution"),
                },
                workflow: Identifier {
                    resource_type: ResourceType::Workflow as i32,
                    project: text(parent, "/project"),
                    domain: text(parent, "/domain"),
                    name: text(parent, "/workflow"),
                    version: text(parent, "/version"),
                },
            };
            let succeeded = event.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
            let error = event.get("error").cloned().unwrap_or(Value::Null);
            Ok(NodeEvent::ChildEnded { run, node: text(parent, "/node"), child, succeeded, error })
        }
        _ => {
            Err("the node function takes {action: arm|child_ended} from state machines and Batch job state changes"
                .into())
        }
    }
}

/// The AWS clients the node function uses.
pub struct NodeServices<R> {
    pub registry: R,
    /// Starts subworkflows' child runs.
    pub runs: crate::launch::AwsRuns,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub batch: aws_sdk_batch::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// Sends a gather's follow-up to this function.
    pub lambda: aws_sdk_lambda::Client,
    pub config: NodeConfig,
    /// Counts what each invocation uses, written with the run's records (docs/cost.md).
    pub meter: Option<std::sync::Arc<updraft_aws::meter::Meter>>,
    /// Workflows read from the registry by this process: a version never changes, so a
    /// warm invocation does not read and parse its closure again (a 1,000-node one is
    /// a megabyte of JSON in the bucket).
    pub workflows: WorkflowCache,
}

/// The registry's workflows read so far, by id; at most [`WorkflowCache::MAX`].
#[derive(Default)]
pub struct WorkflowCache(std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<CompiledWorkflow>>>);

impl WorkflowCache {
    const MAX: usize = 32;

    /// Workflow `id`, from this cache or else the registry; `None` if it is not registered.
    async fn get<R: Registry>(
        &self,
        registry: &R,
        id: &Identifier,
    ) -> Result<Option<std::sync::Arc<CompiledWorkflow>>, PortError> {
        let key = format!("{}/{}/{}/{}", id.project, id.domain, id.name, id.version);
        if let Some(found) = self.lock().get(&key) {
            return Ok(Some(found.clone()));
        }
        let Some(Entity::Workflow(workflow)) = registry.get(id).await? else { return Ok(None) };
        let workflow = std::sync::Arc::new(workflow);
        let mut cached = self.lock();
        if cached.len() >= Self::MAX {
            cached.clear();
        }
        cached.insert(key, workflow.clone());
        Ok(Some(workflow))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::sync::Arc<CompiledWorkflow>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<R> NodeServices<R> {
    /// A run's records; values too large for their items go to the bucket.
    fn run_store(&self, execution: &ExecutionId) -> DynamoRun {
        self.runs.run_store(execution)
    }
}

/// Where a node's job keeps its inputs document and outputs.
fn node_prefix(bucket: &str, run: &RunRef, node: &str) -> S3Uri {
    let e = &run.execution;
    S3Uri { bucket: bucket.into(), key: format!("runs/{}/{}/{}/{node}/", e.project, e.domain, e.name) }
}

struct BatchJobs<'a> {
    runs: &'a crate::launch::AwsRuns,
    batch: &'a aws_sdk_batch::Client,
    s3: &'a aws_sdk_s3::Client,
    config: &'a NodeConfig,
    run: &'a RunRef,
}

async fn put_inputs(s3_client: &aws_sdk_s3::Client, at: &S3Uri, inputs: &Outputs) -> Result<(), PortError> {
    s3::put_bytes(s3_client, at, inputs_document(inputs), "application/json").await.map_err(PortError::from)
}

/// A node's (or a map item's) inputs as `updraft exec` reads them: a `LiteralMap` as proto JSON, on one line.
fn inputs_document(inputs: &Outputs) -> Vec<u8> {
    let document = LiteralMap { values: inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect() };
    serde_json::to_vec(&document).expect("literals serialize")
}

impl BatchJobs<'_> {
    /// Submits the job of `task` for `node` with these environment overrides; for
    /// a map, an array job when it has two or more children (Batch's minimum).
    async fn submit_job(
        &self,
        node: &str,
        task: &TaskTemplate,
        environment: Vec<(&str, String)>,
        map: Option<MapJob>,
    ) -> Result<String, PortError> {
        let id = task.id.clone().unwrap_or_default();
        let definition = job_definition_name(&self.config.name_prefix, &id.project, &id.domain, &id.name, &id.version);
        // The stack's two queues, as the template makes them: Fargate for CPU, EC2 GPU instances.
        let queues = Queues {
            cpu: Queue { arn: self.config.cpu_queue.clone(), platforms: vec![Platform::Fargate] },
            gpu: Some(Queue { arn: self.config.gpu_queue.clone(), platforms: vec![Platform::Ec2] }),
        };
        let queue = &compute::route(task, &queues, node).map_err(|d| PortError::Invalid(d.to_string()))?.arn;
        let e = &self.run.execution;
        let mut overrides = aws_sdk_batch::types::ContainerOverrides::builder()
            .environment(KeyValuePair::builder().name("UPDRAFT_EXECUTION_ID").value(&e.name).build())
            .environment(KeyValuePair::builder().name("UPDRAFT_NODE_ID").value(node).build());
        for (name, value) in environment {
            overrides = overrides.environment(KeyValuePair::builder().name(name).value(value).build());
        }
        let values =
            [&e.project, &e.domain, &e.name, &node.to_string(), &self.run.workflow.name, &self.run.workflow.version];
        let mut request = self
            .batch
            .submit_job()
            .job_name(job_name(&e.name, node))
            .job_queue(queue)
            .job_definition(definition)
            .container_overrides(overrides.build());
        for (name, value) in PARAMETERS.iter().zip(values) {
            request = request.parameters(*name, value.as_str());
        }
        if let Some(MapJob { items, children }) = map {
            request = request.parameters(ITEMS_PARAMETER, items.to_string());
            if children >= 2 {
                let array = aws_sdk_batch::types::ArrayProperties::builder().size(children as i32).build();
                request = request.array_properties(array);
            }
        }
        let submitted = request.send().await.map_err(|e| port_error(&format!("submitting the job of {node}"), &e))?;
        Ok(submitted.job_id().unwrap_or_default().to_string())
    }
}

impl Jobs for BatchJobs<'_> {
    async fn submit(&self, node: &str, task: &TaskTemplate, inputs: &Outputs) -> Result<String, PortError> {
        let prefix = node_prefix(&self.config.bucket, self.run, node);
        let inputs_uri = prefix.join("inputs.json");
        put_inputs(self.s3, &inputs_uri, inputs).await?;
        let environment =
            vec![("UPDRAFT_INPUTS_URI", inputs_uri.to_string()), ("UPDRAFT_OUTPUT_PREFIX", prefix.to_string())];
        self.submit_job(node, task, environment, None).await
    }

    async fn start_subworkflow(
        &self,
        node: &str,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        overwrite_cache: bool,
    ) -> Result<String, PortError> {
        let e = &self.run.execution;
        let child =
            ExecutionId { project: e.project.clone(), domain: e.domain.clone(), name: child_name(&e.name, node) };
        let parent = json!({"parent": {
            "project": e.project, "domain": e.domain, "execution": e.name, "node": node,
            "workflow": self.run.workflow.name, "version": self.run.workflow.version,
        }});
        // A repeated start (a redelivered event) finds the record and starts what is missing.
        self.runs.ensure_started(&child, workflow, inputs, overwrite_cache, &parent).await?;
        Ok(child.name)
    }

    async fn cancel(&self, node: &str, job: &str, reason: &str) -> Result<(), PortError> {
        let e = &self.run.execution;
        if job == child_name(&e.name, node) {
            let child = ExecutionId { project: e.project.clone(), domain: e.domain.clone(), name: job.to_string() };
            let cause = StopCause::Aborted { by: format!("its parent run {}", e.name), reason: reason.to_string() };
            return crate::stop::stop(self.runs, &child, &cause).await.map(|_| ());
        }
        // Terminating a job that has ended changes nothing.
        self.batch
            .terminate_job()
            .job_id(job)
            .reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error(&format!("terminating the job of {node}"), &e))
    }

    fn max_map_items(&self) -> Option<usize> {
        Some(MAX_MAP_ITEMS)
    }

    /// Read from the other run's items prefix, through its manifest; a run whose
    /// map never started has none.
    async fn map_results(&self, run: &str, node: &str) -> Result<Vec<(usize, ItemResult)>, PortError> {
        let e = &self.run.execution;
        let other = ExecutionId { project: e.project.clone(), domain: e.domain.clone(), name: run.to_string() };
        let prefix = items_prefix_of(&self.config.bucket, &other, node);
        let Some(manifest) = read_manifest(self.s3, &prefix).await? else { return Ok(Vec::new()) };
        let results = item_results(self.s3, &prefix, manifest.items.len(), manifest.children, None).await?;
        Ok(manifest.items.into_iter().zip(results).collect())
    }

    /// Run `j` (the `j`-th item to run) keeps its inputs and results under `j/`,
    /// and the manifest maps `j` back to the item's index in the map (the items
    /// reused from the cache do not run). Written after the inputs and before the
    /// job is submitted, so whoever gathers finds it. A start repeated after its
    /// manifest was written (it died before recording its job) submits what that
    /// manifest says, not what it would choose now (the cache may have changed
    /// meanwhile), so the manifest describes whichever job is recorded. The array
    /// job has `min(items, concurrency, 10,000)` children; with fewer children
    /// than items, child `k` runs `k`, `k + children`, … in turn.
    async fn submit_map(
        &self,
        node: &str,
        task: &TaskTemplate,
        items: &[ItemToRun<'_>],
        concurrency: Option<usize>,
    ) -> Result<String, PortError> {
        let prefix = items_prefix(&self.config.bucket, self.run, node);
        let (mut manifest, fresh) = map_submission(read_manifest(self.s3, &prefix).await?, items, concurrency);
        if fresh {
            // Every item's inputs in one object (one request however many items), then the
            // manifest with each line's offsets: a manifest names inputs that exist.
            let documents: Vec<Vec<u8>> = items.iter().map(|item| inputs_document(item.inputs)).collect();
            let (file, offsets) = contract::map_inputs_file(documents.iter().map(Vec::as_slice));
            s3::put_bytes(self.s3, &prefix.join(contract::MAP_INPUTS), file, "application/x-ndjson").await?;
            manifest.inputs_offsets = offsets;
            let bytes = serde_json::to_vec(&manifest).expect("manifests serialize");
            s3::put_bytes(self.s3, &prefix.join(MANIFEST), bytes, "application/json").await?;
        }
        let (runs, children) = (manifest.items.len(), manifest.children);
        let mut environment = vec![(contract::ENV_ARRAY_PREFIX, prefix.to_string())];
        if children < runs {
            environment.push((contract::ENV_ARRAY_STRIDE, children.to_string()));
            environment.push((contract::ENV_ARRAY_ITEMS, runs.to_string()));
        }
        self.submit_job(node, task, environment, Some(MapJob { items: runs, children })).await
    }
}

/// What a map's start submits: the manifest a start before it wrote (whose
/// inputs are written too), or a new one for `items` (`true`: its inputs and
/// itself are to be written).
fn map_submission(
    existing: Option<MapManifest>,
    items: &[ItemToRun<'_>],
    concurrency: Option<usize>,
) -> (MapManifest, bool) {
    if let Some(manifest) = existing {
        return (manifest, false);
    }
    let children = items.len().min(concurrency.unwrap_or(MAX_ARRAY_SIZE)).clamp(1, MAX_ARRAY_SIZE);
    let items = items.iter().map(|item| item.index).collect();
    (MapManifest { items, children, inputs_offsets: Vec::new() }, true)
}

/// A map's job: how many items it runs, on how many array children.
#[derive(Debug, Clone, Copy)]
struct MapJob {
    items: usize,
    children: usize,
}

const MANIFEST: &str = contract::MAP_MANIFEST;

/// A map job's manifest; `None` before the map has started (no manifest yet).
pub(crate) async fn read_manifest(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
) -> Result<Option<MapManifest>, PortError> {
    let at = prefix.join(MANIFEST);
    match s3::get_bytes(s3_client, &at).await {
        Ok(bytes) => serde_json::from_slice::<MapManifest>(&bytes)
            .map(Some)
            .map_err(|e| PortError::Permanent(format!("{at} is not a map manifest: {e}"))),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// The map index of each of the job's `ran` items and how many children ran them,
/// or why they cannot be known. A job submitted before manifests existed has none:
/// it ran the items in order, one child each.
async fn item_indices(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
    ran: usize,
) -> Result<Result<(Vec<usize>, usize), NodeFailure>, PortError> {
    let bad = |message: String| NodeFailure::new(FailureCode::DataError, message);
    match read_manifest(s3_client, prefix).await {
        Ok(None) => Ok(Ok(((0..ran).collect(), ran))),
        Ok(Some(manifest)) if manifest.items.len() == ran => Ok(Ok((manifest.items, manifest.children))),
        Ok(Some(manifest)) => {
            Ok(Err(bad(format!("{} names {} items, the job ran {ran}", prefix.join(MANIFEST), manifest.items.len()))))
        }
        Err(PortError::Permanent(message)) => Ok(Err(bad(message))),
        Err(e) => Err(e),
    }
}

/// Where a map node's items keep their inputs and outputs (`<index>/` under it).
fn items_prefix(bucket: &str, run: &RunRef, node: &str) -> S3Uri {
    items_prefix_of(bucket, &run.execution, node)
}

/// [`items_prefix`] by execution id (the API's log route knows no workflow).
pub(crate) fn items_prefix_of(bucket: &str, e: &ExecutionId, node: &str) -> S3Uri {
    S3Uri { bucket: bucket.into(), key: format!("runs/{}/{}/{}/{node}/items/", e.project, e.domain, e.name) }
}

/// AWS Batch's largest array job (SubmitJob's `arrayProperties.size`): a map
/// with more items to run has its children stride over them.
const MAX_ARRAY_SIZE: usize = 10_000;

/// The most items one map runs in a run. Its start reads every item's cache entry
/// and writes their inputs file within one node-function invocation (100,000 items:
/// 6.3 s of the 60 s in the emulator); its gather reads at most one summary per
/// child and writes the entries, going on in follow-up invocations when its time
/// runs out (docs/limits.md).
pub const MAX_MAP_ITEMS: usize = 100_000;

/// A map node's job carries its item count, which tells its end from a task's.
const ITEMS_PARAMETER: &str = "updraft_items";

/// A child run's name: its parent's and its node's, within Step Functions' 80
/// characters (a long one keeps a digest of the whole, so names stay distinct).
pub(crate) fn child_name(parent: &str, node: &str) -> String {
    let raw: String = format!("{parent}-{node}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if raw.len() <= 80 {
        return raw;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut hasher);
    format!("{}-{:016x}", &raw[..63], hasher.finish())
}

/// Batch job names: letters, digits, `-` and `_`, at most 128.
fn job_name(execution: &str, node: &str) -> String {
    let raw = format!("{execution}-{node}");
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(128).collect()
}

struct SfnTokens<'a> {
    sfn: &'a aws_sdk_sfn::Client,
}

/// A token whose execution ended (stopped, timed out, failed elsewhere) cannot be answered: nothing waits for it.
fn gone<E>(e: &aws_sdk_sfn::error::SdkError<E, aws_sdk_sfn::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    matches!(e.code(), Some("TaskDoesNotExist" | "TaskTimedOut" | "InvalidToken"))
}

impl Tokens for SfnTokens<'_> {
    async fn succeed(&self, token: &str, node: &str, phase: NodePhase) -> Result<(), PortError> {
        let output = json!({"node": node, "phase": phase.as_str_name()}).to_string();
        match self.sfn.send_task_success().task_token(token).output(output).send().await {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(port_error(&format!("answering the token of {node}"), &e)),
        }
    }

    async fn fail(&self, token: &str, failure: &NodeFailure) -> Result<(), PortError> {
        let answered = self
            .sfn
            .send_task_failure()
            .task_token(token)
            .error(failure.code.as_str())
            .cause(failure.message.chars().take(32_000).collect::<String>())
            .send()
            .await;
        match answered {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(port_error("failing a node's token", &e)),
        }
    }
}

/// Blobs in S3 that a run of `project` may use: a file is there, or a directory
/// has objects under its prefix, in the project's runs or inputs. A cache entry
/// naming anything else is a miss (the project's tasks could not read it).
struct S3Blobs<'a> {
    s3: &'a aws_sdk_s3::Client,
    project: &'a str,
    bucket: &'a str,
}

impl BlobStore for S3Blobs<'_> {
    async fn put(&self, path: &std::path::Path, _: bool) -> Result<StoredBlob, PortError> {
        Err(PortError::Permanent(format!("the node function stores no blobs ({})", path.display())))
    }

    async fn holds(&self, uri: &str, _digest: &str, is_dir: bool) -> bool {
        if !project_access::readable_by(self.project, self.bucket, uri) {
            tracing::warn!(uri, project = self.project, "a blob outside the project's data is not served to it");
            return false;
        }
        let Ok(uri) = S3Uri::parse(uri) else { return false };
        if is_dir {
            return s3::list_prefix(self.s3, &uri).await.is_ok_and(|keys| !keys.is_empty());
        }
        s3::exists(self.s3, &uri).await.unwrap_or(false)
    }
}

/// A finished child run's workflow outputs, from its nodes' and its output bindings.
async fn child_outputs<R: Registry>(services: &NodeServices<R>, child: &RunRef) -> Result<Outputs, NodeFailure> {
    let lost = |message: String| NodeFailure::new(FailureCode::OutputUnavailable, message);
    let Ok(Some(workflow)) = services.workflows.get(&services.registry, &child.workflow).await else {
        return Err(lost(format!(
            "subworkflow {} version {} is not registered",
            child.workflow.name, child.workflow.version
        )));
    };
    let store = services.run_store(&child.execution);
    // The workflow's outputs may bind any of its nodes.
    let values = store.values(None).await.map_err(|e| lost(e.to_string()))?;
    let bindings = workflow.template.as_ref().map(|t| t.output_bindings.as_slice()).unwrap_or_default();
    bindings
        .iter()
        .map(|b| {
            let value =
                resolve(b.binding.as_ref().ok_or_else(|| lost(format!("output {} has no binding", b.var)))?, &values)
                    .map_err(|e| lost(format!("output {}: {e}", b.var)))?;
            Ok((b.var.clone(), value))
        })
        .collect()
}

/// The result of each of a map job's items (`0/`, `1/`, …), in that order, read [`IN_FLIGHT`] at a time: a
/// map's gather waits on S3 round trips, not on one read after another.
async fn item_results(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
    items: usize,
    children: usize,
    last_attempts: Option<&[u32]>,
) -> Result<Vec<ItemResult>, PortError> {
    let mut known = if children < items {
        strided_results(s3_client, prefix, items, children, last_attempts).await?
    } else {
        Default::default()
    };
    let unknown: Vec<usize> = (0..items).filter(|j| !known.contains_key(j)).collect();
    for chunk in unknown.chunks(IN_FLIGHT) {
        let mut reads = tokio::task::JoinSet::new();
        for &i in chunk {
            let (s3_client, item) = (s3_client.clone(), prefix.join(&format!("{i}/")));
            reads.spawn(async move {
                let result = match job_outputs(&s3_client, &item).await? {
                    Ok(outputs) => ItemResult::Succeeded(outputs),
                    Err(bad) => ItemResult::Failed(match error_document(&s3_client, &item).await? {
                        // The item said why it failed.
                        Some(failure) => failure,
                        // Its outputs document is there but unusable: that is why (BadOutputs).
                        None if s3::exists(&s3_client, &item.join("outputs.json")).await.unwrap_or(false) => bad,
                        // Neither: its process died before `updraft exec` wrote anything.
                        None => NodeFailure::new(FailureCode::CannotStart, "the item's job failed"),
                    }),
                };
                Ok::<_, PortError>((i, result))
            });
        }
        known.extend(reads.join_all().await.into_iter().collect::<Result<Vec<_>, _>>()?);
    }
    Ok(known.into_values().collect())
}

/// The results strided children summed up ([`contract::map_child_results`]), read
/// [`IN_FLIGHT`] children at a time: item `j` from child `j % children` only. A
/// failure counts only when the child's last attempt (`last_attempts[k]`, as Batch
/// describes the child) recorded it: an earlier attempt's may have been run again
/// since, by an attempt that died before summing up. A child without a summary (it
/// died, or wrote none) and the failures not known so leave their items to be read
/// one by one, so a map whose items all fail reads one summary per child, not
/// three objects per item.
async fn strided_results(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
    items: usize,
    children: usize,
    last_attempts: Option<&[u32]>,
) -> Result<std::collections::BTreeMap<usize, ItemResult>, PortError> {
    let mut known = std::collections::BTreeMap::new();
    for first in (0..children).step_by(IN_FLIGHT) {
        let mut reads = tokio::task::JoinSet::new();
        for k in first..(first + IN_FLIGHT).min(children) {
            let (s3_client, prefix) = (s3_client.clone(), prefix.clone());
            let last_attempt = last_attempts.and_then(|attempts| attempts.get(k).copied());
            reads.spawn(async move {
                let mut found = Vec::new();
                let summary = match s3::get_bytes(&s3_client, &prefix.join(&contract::map_child_results(k))).await {
                    Ok(bytes) => serde_json::from_slice::<contract::ChildResults>(&bytes).unwrap_or_default(),
                    Err(e) if e.is_retryable() => return Err(PortError::from(e)),
                    Err(_) => return Ok(found),
                };
                for (j, document) in summary.items {
                    if j >= items || j % children != k {
                        continue;
                    }
                    let result = match document {
                        contract::ItemDocument::Outputs(document) => {
                            match outputs_of(&s3_client, &prefix.join(&format!("{j}/")), document).await? {
                                Ok(outputs) => ItemResult::Succeeded(outputs),
                                Err(failure) => ItemResult::Failed(failure),
                            }
                        }
                        // Recorded by the child's last attempt: nothing ran the item after it.
                        contract::ItemDocument::Error(error) if Some(error.attempt) == last_attempt => {
                            ItemResult::Failed(failure_of(error))
                        }
                        // An earlier attempt's: the item's own documents say (read below).
                        contract::ItemDocument::Error(_) => continue,
                    };
                    found.push((j, result));
                }
                Ok(found)
            });
        }
        for found in reads.join_all().await {
            known.extend(found?);
        }
    }
    Ok(known)
}

/// How many item documents a map's start writes, or its gather reads, at once.
const IN_FLIGHT: usize = 32;

/// The outputs a succeeded job recorded, or why they cannot be used. A read that
/// may succeed later (throttling, a 5xx) is the outer error: the event is retried,
/// the node not failed.
async fn job_outputs(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
) -> Result<Result<Outputs, NodeFailure>, PortError> {
    let bad = |message: String| NodeFailure::new(FailureCode::BadOutputs, message);
    let bytes = match s3::get_bytes(s3_client, &prefix.join("outputs.json")).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => return Ok(Err(bad(format!("the job succeeded but its outputs.json cannot be read: {e}")))),
    };
    let document: OutputsDocument = match serde_json::from_slice(&bytes) {
        Ok(document) => document,
        Err(e) => return Ok(Err(bad(format!("outputs.json is not an outputs document: {e}")))),
    };
    outputs_of(s3_client, prefix, document).await
}

/// The outputs an outputs document of the job under `prefix` gives, or why they
/// cannot be used (a large value stored elsewhere or changed since, files outside
/// the project's data).
async fn outputs_of(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
    document: OutputsDocument,
) -> Result<Result<Outputs, NodeFailure>, PortError> {
    let bad = |message: String| NodeFailure::new(FailureCode::BadOutputs, message);
    let project = project_of(prefix);
    let mut outputs = Outputs::new();
    for (name, entry) in document.outputs {
        let value = match (entry.value, entry.uri) {
            (Some(value), _) => value,
            // Over 64 KiB, `updraft exec` keeps the value in its own object, under the job's prefix: read it back, checked.
            (None, Some(uri)) if !uri.starts_with(&prefix.to_string()) => {
                return Ok(Err(bad(format!("output {name} is stored at {uri:.200}, outside its job's {prefix}"))));
            }
            (None, Some(uri)) => match stored_value(s3_client, &name, &uri, &entry.digest).await? {
                Ok(value) => value,
                Err(failure) => return Ok(Err(failure)),
            },
            (None, None) => return Ok(Err(bad(format!("output {name} has neither a value nor a URI")))),
        };
        // A task writes outputs.json itself: files it names must be its project's, or
        // a task could hand downstream nodes (and the cache) another project's data.
        if let Some((uri, _, _)) = ports::blobs(&value)
            .into_iter()
            .find(|(uri, _, _)| !project_access::readable_by(project, &prefix.bucket, uri))
        {
            return Ok(Err(bad(format!(
                "output {name} names {uri:.200}, outside project {project}'s runs and inputs: \
                 a task's outputs are files it wrote (updraft exec uploads them under its run)"
            ))));
        }
        outputs.insert(name, value);
    }
    Ok(Ok(outputs))
}

/// The project of a run prefix (`runs/<project>/…`, as [`node_prefix`] makes it).
fn project_of(prefix: &S3Uri) -> &str {
    prefix.key.split('/').nth(1).unwrap_or_default()
}

/// A value `updraft exec` stored in its own object (over 64 KiB), checked against
/// the digest its outputs document gives: one changed after the task wrote it is
/// refused, naming both digests.
async fn stored_value(
    s3_client: &aws_sdk_s3::Client,
    name: &str,
    uri: &str,
    digest: &str,
) -> Result<Result<Literal, NodeFailure>, PortError> {
    let bad = |message: String| NodeFailure::new(FailureCode::BadOutputs, message);
    let Ok(at) = S3Uri::parse(uri) else {
        return Ok(Err(bad(format!("output {name}: {uri:.200} is not an s3:// URI"))));
    };
    let bytes = match s3::get_bytes(s3_client, &at).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => return Ok(Err(bad(format!("output {name} cannot be read from {uri}: {e}")))),
    };
    let value: Literal = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => return Ok(Err(bad(format!("output {name} at {uri} is not a value: {e}")))),
    };
    let found = updraft_core::cache_key::literal_digest_string(&value);
    if found != digest {
        return Ok(Err(NodeFailure::new(
            FailureCode::DataError,
            format!("output {name} at {uri} has digest {found}, but the task wrote {digest}: it was changed since"),
        )));
    }
    Ok(Ok(value))
}

/// Why a job failed: `error.json` when `updraft exec` wrote one, else the exit
/// code and Batch's reason. A read of `error.json` that may succeed later is an
/// error (the event is retried), so a throttle never loses the failure's cause.
async fn job_failure(
    s3_client: &aws_sdk_s3::Client,
    prefix: &S3Uri,
    exit_code: Option<i64>,
    reason: &str,
    log_stream: &str,
) -> Result<NodeFailure, PortError> {
    let logs = if log_stream.is_empty() { String::new() } else { format!(" (log stream {log_stream})") };
    if let Some(failure) = error_document(s3_client, prefix).await? {
        return Ok(NodeFailure::new(failure.code, format!("{}{logs}", failure.message)));
    }
    let code = match exit_code {
        Some(exit) => failure::from_exit_code(exit.clamp(0, 255) as u8),
        None => FailureCode::CannotStart,
    };
    let exit = exit_code.map(|c| format!("exit code {c}: ")).unwrap_or_default();
    Ok(NodeFailure::new(code, format!("{exit}{reason}{logs}")))
}

/// The failure `updraft exec` recorded under `prefix` (`error.json`), if it wrote
/// one (a job that died before it could write one has none).
async fn error_document(s3_client: &aws_sdk_s3::Client, prefix: &S3Uri) -> Result<Option<NodeFailure>, PortError> {
    match s3::get_bytes(s3_client, &prefix.join("error.json")).await {
        Err(e) if e.is_retryable() => Err(e.into()),
        Ok(bytes) => Ok(serde_json::from_slice::<ErrorDocument>(&bytes).ok().map(failure_of)),
        Err(_) => Ok(None),
    }
}

/// The failure an error document records (an unknown code reads as a non-zero exit).
fn failure_of(document: ErrorDocument) -> NodeFailure {
    let code = FailureCode::ALL.into_iter().find(|c| c.as_str() == document.code).unwrap_or(FailureCode::NonZeroExit);
    NodeFailure::new(code, document.message)
}

/// Why an event could not be handled, as Step Functions' `Retry` and Lambda's
/// async retries see it: the error type tells whether a retry can help.
#[derive(Debug)]
pub enum NodeError {
    /// Throttling, a 5xx, a start held by another call: `Updraft.Transient`, retried.
    Transient(String),
    /// Retrying cannot help (a malformed event, an unregistered workflow): `Updraft.Error`.
    Permanent(String),
}

/// The error type the state machines' `Retry` names (`core::state_machine`).
pub const TRANSIENT_ERROR: &str = "Updraft.Transient";

impl From<PortError> for NodeError {
    fn from(e: PortError) -> NodeError {
        if e.is_retryable() { NodeError::Transient(e.to_string()) } else { NodeError::Permanent(e.to_string()) }
    }
}

impl From<NodeError> for lambda_runtime::Diagnostic {
    fn from(e: NodeError) -> lambda_runtime::Diagnostic {
        let (error_type, error_message) = match e {
            NodeError::Transient(message) => (TRANSIENT_ERROR, message),
            NodeError::Permanent(message) => ("Updraft.Error", message),
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message }
    }
}

/// A job's size, from Batch's description of it: (vCPUs, MiB of memory, GPUs).
fn job_size(job: &Value) -> (f64, f64, f64) {
    let requirement = |kind: &str| {
        let requirements = job.pointer("/container/resourceRequirements").and_then(Value::as_array);
        let found = requirements.and_then(|r| r.iter().find(|x| x.get("type").and_then(Value::as_str) == Some(kind)));
        found.and_then(|x| x.get("value")).and_then(Value::as_str).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
    };
    (requirement("VCPU"), requirement("MEMORY"), requirement("GPU"))
}

/// What a job's attempts used of Batch, as billed, from Batch's description of it
/// (a state change's detail): each attempt's start and stop at the job's size.
fn batch_usage(job: &Value, size: (f64, f64, f64)) -> RunUsage {
    let mut usage = RunUsage::default();
    for attempt in job.get("attempts").and_then(Value::as_array).into_iter().flatten() {
        let at = |name: &str| attempt.get(name).and_then(Value::as_u64);
        let (Some(started), Some(stopped)) = (at("startedAt"), at("stoppedAt")) else { continue };
        cost::add(&mut usage, &attempt_usage(started, stopped, size));
    }
    usage
}

/// Each attempt of a job, from Batch's description of it (a state change's detail):
/// the first waited from the job's creation, a retry from its previous attempt's
/// stop (Batch queues it again at once); its failure code is the failure table's
/// for its exit code (empty for a success); its `log_uri` is its log stream's name
/// until the event is handled, where the stack's job log group is known.
fn attempt_records(job: &Value) -> Vec<AttemptRecord> {
    let at = |value: &Value, name: &str| {
        value
            .get(name)
            .and_then(Value::as_i64)
            .map(|ms| Timestamp { seconds: ms / 1000, nanos: (ms % 1000) as i32 * 1_000_000 })
    };
    let mut queued_at = at(job, "createdAt");
    let attempts = job.get("attempts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    attempts
        .iter()
        .enumerate()
        .map(|(i, attempt)| {
            let exit = attempt.pointer("/container/exitCode").and_then(Value::as_i64);
            let stream = text(attempt, "/container/logStreamName");
            let record = AttemptRecord {
                attempt: i as u32 + 1,
                queued_at,
                started_at: at(attempt, "startedAt"),
                ended_at: at(attempt, "stoppedAt"),
                failure_code: match exit {
                    Some(0) => String::new(),
                    Some(exit) => failure::from_exit_code(exit.clamp(0, 255) as u8).as_str().into(),
                    None => FailureCode::CannotStart.as_str().into(),
                },
                log_uri: stream,
                ..AttemptRecord::default()
            };
            queued_at = record.ended_at;
            record
        })
        .collect()
}

/// One attempt from `started` to `stopped` (epoch ms) at a job's size, as billed.
fn attempt_usage(started: u64, stopped: u64, (vcpus, memory_mib, gpus): (f64, f64, f64)) -> RunUsage {
    let seconds = stopped.saturating_sub(started) as f64 / 1000.0;
    cost::attempt_usage(&cost::JobAttempt { seconds, vcpus, memory_mib, gpus })
}

/// What an array job's children used of Batch, from their attempts read with
/// DescribeJobs (100 children a call; the array job's own state change carries
/// none), and how many attempts each child made, by child index (`None` when Batch
/// could not say: the gather then trusts no summary's failures). Best effort: a
/// run's cost is an estimate, never a reason to fail.
async fn describe_children(
    batch: &aws_sdk_batch::Client,
    job: &str,
    children: usize,
    size: (f64, f64, f64),
) -> (RunUsage, Option<Vec<u32>>) {
    let mut usage = RunUsage::default();
    let mut attempts = vec![0; children];
    let ids: Vec<String> = (0..children).map(|k| format!("{job}:{k}")).collect();
    for chunk in ids.chunks(100) {
        let Ok(described) = batch.describe_jobs().set_jobs(Some(chunk.to_vec())).send().await else {
            return (usage, None);
        };
        for child in described.jobs() {
            let index = child
                .array_properties()
                .and_then(|a| a.index())
                .map(|i| i as usize)
                .or_else(|| child.job_id().and_then(|id| id.rsplit_once(':')).and_then(|(_, k)| k.parse().ok()));
            if let Some(made) = index.and_then(|k| attempts.get_mut(k)) {
                *made = child.attempts().len() as u32;
            }
            for attempt in child.attempts() {
                let (Some(started), Some(stopped)) = (attempt.started_at(), attempt.stopped_at()) else { continue };
                let (started, stopped) = (started.max(0) as u64, stopped.max(0) as u64);
                cost::add(&mut usage, &attempt_usage(started, stopped, size));
            }
        }
    }
    (usage, Some(attempts))
}

/// Sends the job-end event `payload` again to this function, as the follow-up of a
/// gather out of time.
async fn send_follow_up<R: Registry>(
    services: &NodeServices<R>,
    payload: &Value,
    follow_up: GatherFollowUp,
) -> Result<(), PortError> {
    let function = services.config.function_name.as_deref().unwrap_or_default();
    let mut event = payload.clone();
    event[FOLLOW_UP] = serde_json::to_value(follow_up).expect("a cursor is JSON");
    crate::stop::invoke_async(&services.lambda, function, &event, "sending a gather's follow-up").await
}

/// Gathers the items of map node `node`, whose job `job` ended having run `ran` items,
/// from where `gathering` says.
#[allow(clippy::too_many_arguments)]
async fn gather<R: Registry, S: RunStore>(
    services: &NodeServices<R>,
    steps: &Steps<'_, S, DynamoCache, S3Blobs<'_>, BatchJobs<'_>, SfnTokens<'_>>,
    run: &RunRef,
    node: &str,
    job: &str,
    ran: usize,
    size: (f64, f64, f64),
    batch: RunUsage,
    gathering: Gathering<'_>,
) -> Result<Gathered, PortError> {
    let prefix = items_prefix(&services.config.bucket, run, node);
    match item_indices(&services.s3, &prefix, ran).await? {
        Ok((indices, children)) => {
            // One child is a plain job, whose event has its attempts.
            let (batch, last_attempts) = if children > 1 {
                describe_children(&services.batch, job, children, size).await
            } else {
                (batch, None)
            };
            let results = item_results(&services.s3, &prefix, ran, children, last_attempts.as_deref()).await?;
            let results = indices.into_iter().zip(results).collect();
            steps.map_gathered(node, results, 1, String::new(), batch, gathering).await
        }
        Err(failure) => {
            let report = JobReport {
                result: Err(failure),
                attempts: 1,
                log_uri: String::new(),
                batch: RunUsage::default(),
                attempt_records: Vec::new(),
            };
            steps.job_reported(node, report).await.map(|_| Gathered::Ended)
        }
    }
}

/// Handles one event; the result is what Step Functions' `lambda:invoke` sees.
/// `deadline` is the invocation's (epoch ms, as Lambda gives it), which a map's
/// gather keeps well within.
pub async fn handle<R: Registry>(
    services: &NodeServices<R>,
    payload: &Value,
    deadline: Option<u64>,
) -> Result<Value, NodeError> {
    if let Some(meter) = &services.meter {
        meter.begin();
    }
    let event = parse_event(payload).map_err(NodeError::Permanent)?;
    let run = match &event {
        NodeEvent::Arm { run, .. } | NodeEvent::JobEnded { run, .. } | NodeEvent::ChildEnded { run, .. } => run.clone(),
        NodeEvent::Ignored(why) => return Ok(json!({"ignored": why})),
        NodeEvent::Refused(why) => return Ok(refused(why)),
    };
    if let NodeEvent::JobEnded { queue, .. } = &event
        && queue != &services.config.cpu_queue
        && queue != &services.config.gpu_queue
    {
        return Ok(refused(&format!("a job of queue {queue:.200}, not one of this stack's: not a node's job")));
    }
    let store = services.run_store(&run.execution);
    let store = match &services.meter {
        Some(meter) => store.with_meter(meter.clone()),
        None => store,
    };
    let Some(workflow) = services.workflows.get(&services.registry, &run.workflow).await? else {
        let missing = format!("workflow {} version {} is not registered", run.workflow.name, run.workflow.version);
        return Err(NodeError::Permanent(missing));
    };
    let cache = DynamoCache::new(services.dynamo.clone(), &services.config.table);
    let jobs = BatchJobs {
        runs: &services.runs,
        batch: &services.batch,
        s3: &services.s3,
        config: &services.config,
        run: &run,
    };
    let tokens = SfnTokens { sfn: &services.sfn };
    let blobs = S3Blobs { s3: &services.s3, project: &run.execution.project, bucket: &services.config.bucket };
    let (overwrite_cache, recovered_from) = store.launch_settings().await?;
    // A recovery reads the run it recovers: its records and the closure it ran.
    let source = (!recovered_from.is_empty()).then(|| {
        let e = &run.execution;
        let id = ExecutionId { project: e.project.clone(), domain: e.domain.clone(), name: recovered_from.clone() };
        services.run_store(&id)
    });
    let source_workflow = match &source {
        Some(source) => match source.workflow().await? {
            Some(id) => services.workflows.get(&services.registry, &id).await?,
            None => None,
        },
        None => None,
    };
    let recovering = source.as_ref().zip(source_workflow.as_ref()).map(|(store, workflow)| Recovering {
        run: &recovered_from,
        workflow,
        store,
    });
    let steps = Steps {
        workflow: &workflow,
        store: &store,
        cache: &cache,
        blobs: &blobs,
        jobs: &jobs,
        tokens: &tokens,
        overwrite_cache,
        now_ms: chrono::Utc::now().timestamp_millis().max(0) as u64,
        recovering,
    };
    if let NodeEvent::JobEnded { node, job, .. } = &event
        && !steps.is_its_job(node, job).await?
    {
        return Ok(refused(&format!("job {job:?} is not the job node {node} submitted: its end is not the node's")));
    }
    match event {
        NodeEvent::Arm { node, token, .. } => steps.arm(&node, &token).await?,
        NodeEvent::Ignored(_) | NodeEvent::Refused(_) => {}
        NodeEvent::ChildEnded { node, child, succeeded, error, .. } => {
            let result = if succeeded {
                child_outputs(services, &child).await
            } else {
                let code = text(&error, "/Error");
                let code =
                    FailureCode::ALL.into_iter().find(|c| c.as_str() == code).unwrap_or(FailureCode::SystemError);
                Err(NodeFailure::new(
                    code,
                    format!("subworkflow run {}: {}", child.execution.name, text(&error, "/Cause")),
                ))
            };
            let report = JobReport {
                result,
                attempts: 0,
                log_uri: String::new(),
                batch: RunUsage::default(),
                attempt_records: Vec::new(),
            };
            steps.job_reported(&node, report).await?;
        }
        NodeEvent::JobEnded { node, job, items: Some(ran), size, batch, follow_up, .. } => {
            if !steps.gathers(&node, follow_up.map(|f| f.leased_at)).await? {
                return Ok(json!({"execution": run.execution.name, "gathered": "by another delivery of the end"}));
            }
            // A follow-up can be sent only by a function that knows its own name.
            let budget_end = services.config.function_name.as_ref().and(deadline).map(|deadline| {
                let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
                now + (deadline.saturating_sub(now) as f64 * services.config.gather_time_share) as u64
            });
            let time_left = move || budget_end.is_none_or(|end| (chrono::Utc::now().timestamp_millis() as u64) < end);
            let gathering = Gathering { written: follow_up.map_or(0, |f| f.written), time_left: &time_left };
            let gathered = match gather(services, &steps, &run, &node, &job, ran, size, batch, gathering).await {
                Ok(Gathered::OutOfTime { written }) => {
                    let follow_up = GatherFollowUp { written, leased_at: steps.now_ms };
                    send_follow_up(services, payload, follow_up).await.map(|_| json!({"goesOnFrom": written}))
                }
                Ok(Gathered::Ended) => Ok(json!({"gathered": ran})),
                Err(e) => Err(e),
            };
            if gathered.is_err() {
                steps.gather_failed(&node).await;
            }
            return Ok(json!({"execution": run.execution.name, "map": gathered?}));
        }
        NodeEvent::JobEnded {
            node,
            succeeded,
            exit_code,
            reason,
            log_stream,
            attempts,
            batch,
            attempt_records,
            ..
        } => {
            let prefix = node_prefix(&services.config.bucket, &run, &node);
            let result = if succeeded {
                job_outputs(&services.s3, &prefix).await?
            } else {
                Err(job_failure(&services.s3, &prefix, exit_code, &reason, &log_stream).await?)
            };
            let log_uri = |stream: &str| {
                if stream.is_empty() {
                    String::new()
                } else {
                    format!("cloudwatch:{}:{stream}", services.config.job_log_group)
                }
            };
            let mut attempt_records = attempt_records;
            for record in &mut attempt_records {
                record.log_uri = log_uri(&record.log_uri);
            }
            let report = JobReport { result, attempts, log_uri: log_uri(&log_stream), batch, attempt_records };
            steps.job_reported(&node, report).await?;
        }
    }
    Ok(json!({"execution": run.execution.name}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_payloads_and_batch_events_are_read() {
        let arm = json!({"action": "arm", "execution": "e1", "node": "fit", "token": "t",
                         "workflow": {"project": "p", "domain": "development", "name": "train", "version": "v1"}});
        let NodeEvent::Arm { run, node, token } = parse_event(&arm).unwrap() else { panic!() };
        assert_eq!(
            (run.execution.name.as_str(), run.workflow.version.as_str(), node.as_str(), token.as_str()),
            ("e1", "v1", "fit", "t")
        );
        let parameters: serde_json::Map<String, Value> =
            PARAMETERS.iter().map(|p| (p.to_string(), json!(format!("{p}-value")))).collect();
        let job = json!({"detail-type": "Batch Job State Change", "source": "aws.batch",
            "detail": {"status": "FAILED", "statusReason": "Essential container in task exited", "parameters": parameters,
                       "container": {"exitCode": 3, "logStreamName": "fit/default/abc"}}});
        let NodeEvent::JobEnded { node, succeeded, exit_code, log_stream, .. } = parse_event(&job).unwrap() else {
            panic!()
        };
        assert_eq!(
            (node.as_str(), succeeded, exit_code, log_stream.as_str()),
            ("updraft_node-value", false, Some(3), "fit/default/abc")
        );
        let mut running = job.clone();
        running["detail"]["status"] = json!("RUNNING");
        assert!(parse_event(&running).is_err(), "only ends complete nodes");
        let sourceless = json!({"detail-type": "Batch Job State Change", "detail": {"status": "FAILED"}});
        assert!(matches!(parse_event(&sourceless), Ok(NodeEvent::Refused(_))), "no source: refused, no side effect");
        assert!(parse_event(&json!({"hello": 1})).is_err());
        let mut forged = job.clone();
        forged["source"] = json!("my.app");
        let Ok(NodeEvent::Refused(why)) = parse_event(&forged) else { panic!("{forged}") };
        assert!(why.contains("only aws.batch's are taken"), "{why}");
        let mut with_id = job.clone();
        with_id["detail"]["jobId"] = json!("job-1");
        with_id["detail"]["jobQueue"] = json!("arn:aws:batch:us-east-1:1:job-queue/q");
        let NodeEvent::JobEnded { job, queue, follow_up, .. } = parse_event(&with_id).unwrap() else { panic!() };
        assert_eq!((job.as_str(), queue.as_str()), ("job-1", "arn:aws:batch:us-east-1:1:job-queue/q"));
        assert_eq!(follow_up, None, "Batch's own event starts a gather");
        // The same event sent again by a gather out of time goes on where it stopped.
        let mut follow_up = with_id.clone();
        follow_up[FOLLOW_UP] = json!({"written": 2500, "leasedAt": 1_700_000_000_000u64});
        let NodeEvent::JobEnded { follow_up, .. } = parse_event(&follow_up).unwrap() else { panic!() };
        assert_eq!(follow_up, Some(GatherFollowUp { written: 2500, leased_at: 1_700_000_000_000 }));
        let mut garbled = with_id.clone();
        garbled[FOLLOW_UP] = json!({"written": "lots"});
        assert!(parse_event(&garbled).unwrap_err().contains("updraftGather is not a cursor"));
    }

    #[test]
    fn a_repeated_map_start_submits_what_the_first_start_wrote() {
        let inputs = Outputs::new();
        let misses: Vec<ItemToRun<'_>> =
            [2, 5, 7].into_iter().map(|index| ItemToRun { index, inputs: &inputs }).collect();
        let (fresh, write) = map_submission(None, &misses, Some(2));
        assert_eq!((fresh.items.as_slice(), fresh.children, write), (&[2, 5, 7][..], 2, true));
        let (capped, _) = map_submission(None, &misses, None);
        assert_eq!(capped.children, 3, "as many children as items when the map sets no concurrency");
        // More items than an array job holds: 10,000 children, each striding over two or three items.
        let wide: Vec<ItemToRun<'_>> = (0..25_000).map(|index| ItemToRun { index, inputs: &inputs }).collect();
        let (strided, _) = map_submission(None, &wide, None);
        assert_eq!((strided.items.len(), strided.children), (25_000, 10_000));
        assert_eq!(strided.child_of(24_999), Some((4_999, 24_999)), "child k runs k, k + 10,000, k + 20,000");
        // The cache changed since (item 5 is a hit now): the first start's manifest still stands.
        let now_missing: Vec<ItemToRun<'_>> =
            [2, 7].into_iter().map(|index| ItemToRun { index, inputs: &inputs }).collect();
        let (again, write) = map_submission(Some(fresh), &now_missing, Some(2));
        assert_eq!((again.items.as_slice(), write), (&[2, 5, 7][..], false));
    }

    #[test]
    fn a_manifest_names_the_child_that_ran_an_item() {
        // Items 2, 5, 7, 9 and 11 ran on two children: child 0 ran 2, 7 and 11, child 1 ran 5 and 9.
        let manifest = MapManifest { items: vec![2, 5, 7, 9, 11], children: 2, inputs_offsets: Vec::new() };
        assert_eq!(manifest.child_of(7), Some((0, 2)));
        assert_eq!(manifest.child_of(9), Some((1, 3)));
        assert_eq!(manifest.child_of(3), None, "reused from the cache: no child ran it");
        let unstrided = MapManifest { items: vec![4, 8], children: 2, inputs_offsets: Vec::new() };
        assert_eq!(unstrided.child_of(8), Some((1, 1)));
    }

    #[test]
    fn child_run_names_keep_to_step_functions_80_characters_and_stay_distinct() {
        assert_eq!(child_name("20261127-abc", "sub.1"), "20261127-abc-sub_1");
        let (a, b) = (child_name(&"r".repeat(100), "left"), child_name(&"r".repeat(100), "right"));
        assert!(a.len() <= 80 && b.len() <= 80, "{a} {b}");
        assert_ne!(a, b, "a digest of the whole keeps long names apart");
    }

    #[test]
    fn a_jobs_attempts_are_read_from_its_description_each_queued_from_the_previous_end() {
        let job = json!({"createdAt": 1_000, "attempts": [
            {"startedAt": 3_500, "stoppedAt": 9_000, "container": {"exitCode": 3, "logStreamName": "fit/default/a"}},
            {"startedAt": 9_250, "stoppedAt": 12_000, "container": {"exitCode": 0, "logStreamName": "fit/default/b"}},
            {"container": {"reason": "CannotPullContainerError"}},
        ]});
        let records = attempt_records(&job);
        let ms = |t: &Option<Timestamp>| t.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000));
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.attempt, ms(&r.queued_at), ms(&r.started_at), ms(&r.ended_at), r.failure_code.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, Some(1_000), Some(3_500), Some(9_000), "NonZeroExit"),
                (2, Some(9_000), Some(9_250), Some(12_000), ""),
                (3, Some(12_000), None, None, "CannotStart"),
            ]
        );
        assert_eq!(records[0].log_uri, "fit/default/a", "the stream, until the event's handler names its group");
        assert!(attempt_records(&json!({"createdAt": 5})).is_empty(), "no attempt yet: none recorded");
    }

    #[test]
    fn job_names_keep_to_batchs_alphabet() {
        assert_eq!(job_name("20261127-abc.1", "fit"), "20261127-abc_1-fit");
        assert_eq!(job_name(&"e".repeat(200), "n").len(), 128);
    }
}
