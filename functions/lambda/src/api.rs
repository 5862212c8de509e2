//! The HTTPS API (API Gateway REST, Lambda proxy integration): routes, request
//! checks, and the mapping of domain errors to HTTP statuses with an
//! `ErrorResponse` body that names the place and the fix, and says whether
//! sending the same request again can help. Generic over the registry and
//! provisioner ports: unit tests use in-memory ones, the Lambda DynamoDB, Batch
//! and Step Functions.
//! docs/api/openapi.yaml describes every route in [`ROUTES`].

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::collections::HashMap;
use updraft_core::cloud_resources::{self, CloudSettings, Resource};
use updraft_core::compile::{self, Compiled, Options};
use updraft_core::execution::node;
use updraft_core::execution::steps::{self, RunValues};
use updraft_core::job_definition;
use updraft_core::ports::{CacheStore, LaunchOrigin, Runs};
use updraft_core::ports::{Entity, PageRequest, PortError, Provisioner, Registration, Registry, RunFilter};
use updraft_core::proto::Timestamp;
use updraft_core::proto::api::{
    AbortExecutionRequest, AbortExecutionResponse, CacheEntry, CreateExecutionRequest, CreateExecutionResponse,
    EvictCacheResponse, GetExecutionResponse, GetNodeOutputsResponse, ListCacheEntriesResponse, ListExecutionsResponse,
    ListTicksResponse, RerunExecutionRequest, RunTickRequest, ScheduleStatus, ScheduleTick, create_execution_request,
};
use updraft_core::proto::api::{
    Diagnostic, ErrorResponse, GetLaunchPlanResponse, GetTaskResponse, GetWorkflowResponse, ListNamesResponse,
    ListProjectsResponse, ListVersionsResponse, RegisterRequest, RegisterResponse,
};
use updraft_core::proto::core::{
    CodeBundle, CompiledWorkflow, Execution, ExecutionId, Identifier, LaunchMode, LaunchPlanSpec, Literal, LiteralMap,
    NodeExecution, NodeExecutionId, NodePhase, ResourceType, TaskTemplate, WorkflowPhase, literal,
};
use updraft_core::schedule::{
    Tick, catch_up_seconds, next_fires, schedule_drift, schedule_name, schedule_request, tick_execution_name,
};
use updraft_core::spec::Format;
use updraft_core::state_machine;

/// Specs arrive in the request body; API Gateway caps bodies at 10 MB, and a
/// spec is text, so a much smaller limit catches mistakes (a dataset pasted in)
/// with a clear message.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// A request body's limit: the spec's, plus room for JSON escaping and the other fields.
pub const MAX_BODY_BYTES: usize = 2 * MAX_SPEC_BYTES;

/// A listing's page size when the request names none, and its largest.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Every route this function serves, as (method, path template).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/register/{project}/{domain}"),
    ("GET", "/v1/projects"),
    ("GET", "/v1/tasks/{project}/{domain}"),
    ("GET", "/v1/tasks/{project}/{domain}/{name}"),
    ("GET", "/v1/tasks/{project}/{domain}/{name}/{version}"),
    ("GET", "/v1/workflows/{project}/{domain}"),
    ("GET", "/v1/workflows/{project}/{domain}/{name}"),
    ("GET", "/v1/workflows/{project}/{domain}/{name}/{version}"),
    ("GET", "/v1/launch-plans/{project}/{domain}"),
    ("GET", "/v1/launch-plans/{project}/{domain}/{name}"),
    ("GET", "/v1/launch-plans/{project}/{domain}/{name}/{version}"),
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/{version}/activate"),
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/{version}/deactivate"),
    ("GET", "/v1/launch-plans/{project}/{domain}/{name}/ticks"),
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/ticks"),
    ("GET", "/v1/executions/{project}/{domain}"),
    ("POST", "/v1/executions/{project}/{domain}"),
    ("GET", "/v1/executions/{project}/{domain}/{name}"),
    ("GET", "/v1/executions/{project}/{domain}/{name}/nodes"),
    ("POST", "/v1/executions/{project}/{domain}/{name}/abort"),
    ("POST", "/v1/executions/{project}/{domain}/{name}/recover"),
    ("POST", "/v1/executions/{project}/{domain}/{name}/relaunch"),
    ("GET", "/v1/executions/{project}/{domain}/{name}/nodes/{node}/logs"),
    ("GET", "/v1/executions/{project}/{domain}/{name}/nodes/{node}/outputs"),
    ("GET", "/v1/cache/{project}/{domain}/{task}/{version}"),
    ("DELETE", "/v1/cache/{project}/{domain}/{task}/{version}"),
];

/// One HTTP request, as the proxy event carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Who signed the request (API Gateway's IAM identity), for the records.
    pub caller: String,
}

/// One answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
}

/// An error answer: HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Box<ErrorResponse>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, path: &str, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ErrorResponse {
                code: code.into(),
                message: message.into(),
                path: path.into(),
                hint: hint.into(),
                retryable: status == 503,
                diagnostics: Vec::new(),
            }),
        }
    }

    pub fn bad_request(code: &str, path: &str, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(400, code, path, message, hint)
    }

    fn response(&self) -> ApiResponse {
        ApiResponse { status: self.status, body: serde_json::to_string(&self.body).expect("errors serialize") }
    }

    /// A port failure: what the caller did wrong (4xx), or a 503 to retry, or a 500.
    fn from_port(error: PortError, path: &str) -> ApiError {
        match error {
            PortError::Conflict(m) => {
                ApiError::new(409, "Conflict", path, m, "register the changed content under a new version")
            }
            PortError::NotFound(m) => {
                ApiError::new(404, "NotFound", path, m, "list what exists with a GET one level up")
            }
            PortError::Invalid(m) => {
                ApiError::bad_request("InvalidRequest", path, m, "fix the request as the message says")
            }
            PortError::Transient(m) => {
                ApiError::new(503, "Unavailable", path, m, "retry the same request after a short wait")
            }
            PortError::Permanent(m) => {
                // The stack itself is wrong (a missing table, a denied call): logged in full for the operator.
                tracing::error!(error = %m, "the metadata store refused a request");
                ApiError::new(
                    500,
                    "Internal",
                    path,
                    m,
                    "the stack is misconfigured; its operator can see the function's log",
                )
            }
        }
    }
}

impl From<ApiError> for ApiResponse {
    fn from(error: ApiError) -> ApiResponse {
        error.response()
    }
}

fn ok<T: serde::Serialize>(status: u16, body: &T) -> ApiResponse {
    ApiResponse { status, body: serde_json::to_string(body).expect("responses serialize") }
}

/// Validates and compiles the spec of a register request. Nothing is written
/// before this has succeeded, so a bad spec leaves no partial registration.
pub fn compile_register_request(request: &RegisterRequest) -> Result<Compiled, ApiError> {
    if request.version.trim().is_empty() {
        return Err(ApiError::bad_request(
            "MissingVersion",
            "version",
            "a registration needs a version label",
            "pass --version, e.g. v1 or a git commit",
        ));
    }
    if request.spec.len() > MAX_SPEC_BYTES {
        return Err(ApiError::new(
            413,
            "SpecTooLarge",
            "spec",
            format!("the spec is {} bytes; the limit is {MAX_SPEC_BYTES}", request.spec.len()),
            "keep data out of specs: pass datasets as file or dataframe inputs",
        ));
    }
    let options = Options {
        project: non_empty(&request.project),
        domain: non_empty(&request.domain),
        version: request.version.clone(),
    };
    let format = Format::from_file_name(&request.file_name);
    compile::compile_text(&request.spec, format, &options).map_err(|diagnostics| {
        let diagnostics: Vec<Diagnostic> = diagnostics
            .iter()
            .map(|d| Diagnostic {
                path: d.path.clone(),
                message: d.message.clone(),
                hint: d.hint.clone().unwrap_or_default(),
            })
            .collect();
        let first = diagnostics.first().cloned().unwrap_or_default();
        let mut error = ApiError::bad_request(
            "InvalidSpec",
            &first.path,
            format!("the spec has {} problem(s); the first: {}", diagnostics.len(), first.message),
            first.hint,
        );
        error.body.diagnostics = diagnostics;
        error
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// Project, domain, name and version are path segments and key parts: a
/// letter or digit first, then letters, digits and `_ . -`, at most 128
/// (compilation holds registered ones to narrower rules).
fn check_segment(what: &str, value: &str) -> Result<(), ApiError> {
    let valid = value.len() <= 128
        && value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "InvalidName",
        what,
        format!("{what} {:?} is not a valid {what}", value.chars().take(140).collect::<String>()),
        "use letters, digits and _ . - (a letter or digit first, at most 128 characters)",
    ))
}

/// Which route a request is for, with its path parameters.
#[derive(Debug, PartialEq)]
enum Route {
    /// Registers a spec's entities in a project and domain.
    Register(String, String),
    Projects,
    Names(ResourceType, String, String),
    Versions(Identifier),
    Get(Identifier),
    SetActive(Identifier, bool),
    /// A launch plan's ticks (the identifier's version is empty).
    Ticks(Identifier),
    /// Runs one tick of a launch plan (a backfill; the version is in the body).
    RunTick(Identifier),
    /// Launches a run in a project and domain.
    Launch(String, String),
    Executions(String, String),
    /// One run; `true`: its nodes only.
    Execution(ExecutionId, bool),
    Abort(ExecutionId),
    Rerun(ExecutionId, LaunchMode),
    /// A page of one node's task log.
    NodeLog(ExecutionId, String),
    /// One node's outputs, whole.
    NodeOutputs(ExecutionId, String),
    CacheEntries(Identifier),
    EvictCache(Identifier),
}

fn kind_of(segment: &str) -> Option<ResourceType> {
    match segment {
        "tasks" => Some(ResourceType::Task),
        "workflows" => Some(ResourceType::Workflow),
        "launch-plans" => Some(ResourceType::LaunchPlan),
        _ => None,
    }
}

fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let not_found = || {
        ApiError::new(
            404,
            "NoSuchRoute",
            "path",
            format!("no route {path}"),
            "see docs/api/openapi.yaml for the routes",
        )
    };
    let found = match segments.as_slice() {
        ["v1", "register", project, domain] => {
            check_segment("project", project)?;
            check_segment("domain", domain)?;
            ("POST", Route::Register(project.to_string(), domain.to_string()))
        }
        ["v1", "projects"] => ("GET", Route::Projects),
        ["v1", "cache", project, domain, task, version] => {
            for (what, value) in [("project", project), ("domain", domain), ("task", task), ("version", version)] {
                check_segment(what, value)?;
            }
            let id = Identifier {
                resource_type: ResourceType::Task as i32,
                project: project.to_string(),
                domain: domain.to_string(),
                name: task.to_string(),
                version: version.to_string(),
            };
            // One path, two methods: listing and eviction.
            if method == "DELETE" { ("DELETE", Route::EvictCache(id)) } else { ("GET", Route::CacheEntries(id)) }
        }
        ["v1", "executions", project, domain] => {
            check_segment("project", project)?;
            check_segment("domain", domain)?;
            // One path, two methods: listing and launching.
            if method == "POST" {
                ("POST", Route::Launch(project.to_string(), domain.to_string()))
            } else {
                ("GET", Route::Executions(project.to_string(), domain.to_string()))
            }
        }
        ["v1", "executions", project, domain, name] => {
            for (what, value) in [("project", project), ("domain", domain), ("name", name)] {
                check_segment(what, value)?;
            }
            let id = ExecutionId { project: project.to_string(), domain: domain.to_string(), name: name.to_string() };
            ("GET", Route::Execution(id, false))
        }
        ["v1", "executions", project, domain, name, action @ ("nodes" | "abort" | "recover" | "relaunch")] => {
            for (what, value) in [("project", project), ("domain", domain), ("name", name)] {
                check_segment(what, value)?;
            }
            let id = ExecutionId { project: project.to_string(), domain: domain.to_string(), name: name.to_string() };
            match *action {
                "abort" => ("POST", Route::Abort(id)),
                "recover" => ("POST", Route::Rerun(id, LaunchMode::Recover)),
                "relaunch" => ("POST", Route::Rerun(id, LaunchMode::Relaunch)),
                _ => ("GET", Route::Execution(id, true)),
            }
        }
        ["v1", "executions", project, domain, name, "nodes", node, what @ ("logs" | "outputs")] => {
            for (what, value) in [("project", project), ("domain", domain), ("name", name), ("node", node)] {
                check_segment(what, value)?;
            }
            let id = ExecutionId { project: project.to_string(), domain: domain.to_string(), name: name.to_string() };
            if *what == "logs" {
                ("GET", Route::NodeLog(id, node.to_string()))
            } else {
                ("GET", Route::NodeOutputs(id, node.to_string()))
            }
        }
        ["v1", kind, rest @ ..] if (2..=6).contains(&rest.len()) => {
            let kind = kind_of(kind).ok_or_else(not_found)?;
            for (what, value) in ["project", "domain", "name", "version"].iter().zip(rest.iter().take(4)) {
                check_segment(what, value)?;
            }
            let id = |version: &str| Identifier {
                resource_type: kind as i32,
                project: rest[0].into(),
                domain: rest[1].into(),
                name: rest.get(2).copied().unwrap_or_default().into(),
                version: version.into(),
            };
            match rest {
                [project, domain] => ("GET", Route::Names(kind, project.to_string(), domain.to_string())),
                [_, _, _] => ("GET", Route::Versions(id(""))),
                // (So a launch plan version cannot be named "ticks".)
                [_, _, _, "ticks"] if kind == ResourceType::LaunchPlan => {
                    if method == "POST" {
                        ("POST", Route::RunTick(id("")))
                    } else {
                        ("GET", Route::Ticks(id("")))
                    }
                }
                [_, _, _, version] => ("GET", Route::Get(id(version))),
                [_, _, _, version, action] if kind == ResourceType::LaunchPlan => match *action {
                    "activate" => ("POST", Route::SetActive(id(version), true)),
                    "deactivate" => ("POST", Route::SetActive(id(version), false)),
                    _ => return Err(not_found()),
                },
                _ => return Err(not_found()),
            }
        }
        _ => return Err(not_found()),
    };
    if method != found.0 {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "method",
            format!("{path} answers {}, not {method}", found.0),
            format!("send {} {path}", found.0),
        ));
    }
    Ok(found.1)
}

/// One page of a run's nodes, in node order, and the token of the next page (empty:
/// none). A token is the last node of the page before; one that names no node of
/// the run is refused.
fn node_page(
    mut nodes: Vec<updraft_core::proto::core::NodeExecution>,
    page: &PageRequest,
) -> Result<(Vec<updraft_core::proto::core::NodeExecution>, String), ApiError> {
    let id =
        |n: &updraft_core::proto::core::NodeExecution| n.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default();
    nodes.sort_by_key(id);
    let start = match &page.token {
        None => 0,
        Some(token) => match nodes.iter().position(|n| &id(n) == token) {
            Some(at) => at + 1,
            None => {
                return Err(ApiError::bad_request(
                    "InvalidToken",
                    "token",
                    format!("token {token:.100} is not a node of this run"),
                    "pass the nextToken of the page before, or no token for the first page",
                ));
            }
        },
    };
    let rest = nodes.split_off(start);
    let more = rest.len() > page.limit;
    let page: Vec<_> = rest.into_iter().take(page.limit).collect();
    let next = if more { page.last().map(id).unwrap_or_default() } else { String::new() };
    Ok((page, next))
}

/// The most JSON one answer of a run's nodes takes, with the run: well below
/// Lambda's 6 MB response, whatever the nodes' outputs (each up to 4 MiB).
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The first of `page`'s nodes whose JSON fits `budget` bytes (at least one,
/// which fits on its own), and the token that goes on after the last of them
/// (`next` when all fit).
fn within_bytes(
    page: Vec<updraft_core::proto::core::NodeExecution>,
    next: String,
    budget: usize,
) -> (Vec<updraft_core::proto::core::NodeExecution>, String) {
    let mut kept: Vec<updraft_core::proto::core::NodeExecution> = Vec::with_capacity(page.len());
    let mut used = 0;
    for node in page {
        let size = serde_json::to_vec(&node).map_or(0, |json| json.len());
        if !kept.is_empty() && used + size > budget {
            let last = kept.last().and_then(|n| n.id.as_ref()).map(|i| i.node_id.clone()).unwrap_or_default();
            return (kept, last);
        }
        used += size;
        kept.push(node);
    }
    (kept, next)
}

/// The runs list's filters: `phase` (`WORKFLOW_FAILED` or `FAILED`), `workflow`, `plan`
/// (a launch plan's name) and `since` (RFC 3339). An empty phase or time is refused as
/// the document says; an empty name filters nothing.
fn run_filter(request: &ApiRequest) -> Result<RunFilter, ApiError> {
    let text = |name: &str| request.query.get(name).filter(|v| !v.is_empty()).cloned();
    let phase = match request.query.get("phase") {
        None => None,
        Some(name) => {
            let phases = [
                WorkflowPhase::WorkflowQueued,
                WorkflowPhase::WorkflowRunning,
                WorkflowPhase::WorkflowSucceeded,
                WorkflowPhase::WorkflowFailed,
                WorkflowPhase::WorkflowAborted,
                WorkflowPhase::WorkflowTimedOut,
            ];
            let found = phases.into_iter().find(|p| {
                let full = p.as_str_name();
                full == name || full.strip_prefix("WORKFLOW_") == Some(name.as_str())
            });
            Some(found.ok_or_else(|| {
                ApiError::bad_request(
                    "InvalidPhase",
                    "phase",
                    format!("phase {name:.30} is not a run's phase"),
                    "pass one of QUEUED, RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT (or its WORKFLOW_ name), \
                     in capitals",
                )
            })?)
        }
    };
    let since = match request.query.get("since").cloned() {
        None => None,
        Some(at) => Some(chrono::DateTime::parse_from_rfc3339(&at).map(|t| t.to_utc()).map_err(|_| {
            ApiError::bad_request(
                "InvalidSince",
                "since",
                format!("since {at:.40} is not an RFC 3339 time"),
                "pass a time such as 2027-03-28T00:00:00Z",
            )
        })?),
    };
    Ok(RunFilter { phase, workflow: text("workflow"), launch_plan: text("plan"), since })
}

fn page_request(request: &ApiRequest) -> Result<PageRequest, ApiError> {
    let limit = match request.query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "InvalidLimit",
                    "limit",
                    format!("limit {text:.20} is not a number from 1 to {MAX_PAGE}"),
                    format!("pass a limit from 1 to {MAX_PAGE}, or none for {DEFAULT_PAGE}"),
                ));
            }
        },
    };
    let token = request.query.get("token").filter(|t| !t.is_empty()).cloned();
    Ok(PageRequest { limit, token })
}

/// A JSON body within the limit.
fn check_json_request(request: &ApiRequest) -> Result<(), ApiError> {
    let content_type = request.headers.get("content-type").map(String::as_str).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "content-type",
            format!("the body must be application/json, not {:?}", content_type.chars().take(100).collect::<String>()),
            "send the header Content-Type: application/json",
        ));
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "BodyTooLarge",
            "body",
            format!("the body is {} bytes; the limit is {MAX_BODY_BYTES}", request.body.len()),
            "keep data out of specs: pass datasets as file or dataframe inputs",
        ));
    }
    Ok(())
}

/// A code bundle named by the register request: its digest is a sha256, and its
/// URI is where `updraft register` puts that digest for the project
/// (`bundles/<project>/sha256/<hex>.tar.gz`), which only the project's tasks may read.
fn check_code_bundle(code: &CodeBundle, project: &str) -> Result<(), ApiError> {
    let hex = code.digest.strip_prefix("sha256:").unwrap_or_default();
    let valid_digest = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let key = format!("/{}sha256/{hex}.tar.gz", updraft_core::project_access::bundles_prefix(project));
    if !valid_digest {
        return Err(ApiError::bad_request(
            "InvalidCodeBundle",
            "code.digest",
            format!("{:?} is not a sha256 digest", code.digest.chars().take(80).collect::<String>()),
            "give \"sha256:\" and 64 lowercase hex digits of the archive (updraft register does)",
        ));
    }
    if !(code.uri.starts_with("s3://") && code.uri.ends_with(&key)) {
        return Err(ApiError::bad_request(
            "InvalidCodeBundle",
            "code.uri",
            format!(
                "{:?} is not where the bundle {} is stored",
                code.uri.chars().take(200).collect::<String>(),
                code.digest
            ),
            format!("upload it to s3://<the stack's data bucket>{key}"),
        ));
    }
    Ok(())
}

/// After a conflict: the first task whose registered code differs from this
/// registration's, said with both bundle digests (the usual cause of a 409 on a re-register).
async fn changed_code<R: Registry>(registry: &R, entities: &[Entity]) -> Option<String> {
    for entity in entities {
        let Entity::Task(task) = entity else { continue };
        let id = task.id.clone().unwrap_or_default();
        let Ok(Some(Entity::Task(registered))) = registry.get(&id).await else { continue };
        let digest =
            |t: &TaskTemplate| t.code.as_ref().map_or("none (code in the image)".to_string(), |c| c.digest.clone());
        if digest(&registered) != digest(task) {
            return Some(format!(
                "task {} version {} was registered with code bundle {}; this registration's code bundle is {} \
                 (its code changed: register under a new version to run it)",
                id.name,
                id.version,
                digest(&registered),
                digest(task)
            ));
        }
    }
    None
}

/// The register request in a body: JSON, within the limit, with exactly the IDL's fields.
fn register_request(request: &ApiRequest) -> Result<RegisterRequest, ApiError> {
    json_body(request, "RegisterRequest")
}

/// What the API works with.
pub struct Api<R, P, L, C> {
    pub registry: R,
    pub provisioner: P,
    pub runs: L,
    /// The task-output cache (listing and eviction by task version).
    pub cache: C,
    /// What registered versions' job definitions and state machines refer to.
    pub cloud: CloudSettings,
    /// Days a run's data (`runs/` in the bucket) is kept (the stack's RunDataDays):
    /// an older run cannot be recovered.
    pub run_data_days: u32,
}

/// Answers one request. Never panics on input; every refusal is a 4xx with an
/// `ErrorResponse`; 5xx only when the store fails (503: retry helps).
pub async fn handle<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
) -> ApiResponse {
    match answer(api, request).await {
        Ok(response) => response,
        Err(error) => error.into(),
    }
}

/// Makes sure every resource of a registration exists. Runs after the registry
/// write (a conflicting version must not touch the resources of the registered
/// one), on every registration, so sending a request again repairs a failure here.
async fn provision<P: Provisioner>(provisioner: &P, resources: &[Resource]) -> Result<(), ApiError> {
    for resource in resources {
        let made = match resource {
            Resource::JobRole { name, policy } => provisioner.ensure_job_role(name, policy).await,
            Resource::JobDefinition { name, body } => provisioner.ensure_job_definition(name, body).await,
            Resource::StateMachine { name, definition } => provisioner.ensure_state_machine(name, definition).await,
        };
        made.map_err(|e| {
            let message = format!("the entities are registered, but {} could not be made: {e}", resource.name());
            let mut error = ApiError::from_port(e, "spec");
            if error.status >= 500 {
                error.body.message = message;
                error.body.hint = "send the same request again: it is a no-op for the registry and retries this".into();
            }
            error
        })?;
    }
    Ok(())
}

async fn answer<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let registry = &api.registry;
    match route(&request.method, &request.path)? {
        Route::Register(project, domain) => {
            let body = register_request(request)?;
            same_project("project", &body.project, &project)?;
            same_project("domain", &body.domain, &domain)?;
            let mut compiled = compile_register_request(&body)?;
            // Without an override in the body, the spec's own project (or the
            // default) must be the path's: nothing moves to another project silently.
            same_project("project", &compiled.project, &project)?;
            same_project("domain", &compiled.domain, &domain)?;
            if let Some(code) = &body.code {
                check_code_bundle(code, &project)?;
                compiled.attach_code(code);
            }
            let entities = compiled.registrable();
            if entities.is_empty() {
                return Err(ApiError::bad_request(
                    "EmptySpec",
                    "spec",
                    "the spec defines no task, workflow or launch plan",
                    "register a spec file with `tasks:`, `workflows:` or `launch_plans:`",
                ));
            }
            // Planned before anything is written: a workflow too large for a state machine is a 400.
            let resources = cloud_resources::plan(&entities, &api.cloud).map_err(|e| {
                ApiError::bad_request("WorkflowTooLarge", "spec", e.to_string(), "split it into subworkflows")
            })?;
            let outcomes = match registry.register(&entities, &request.caller).await {
                Ok(outcomes) => outcomes,
                Err(PortError::Conflict(message)) => {
                    let message = match changed_code(registry, &entities).await {
                        Some(code) => format!("{message}; {code}"),
                        None => message,
                    };
                    return Err(ApiError::from_port(PortError::Conflict(message), "spec"));
                }
                Err(e) => return Err(ApiError::from_port(e, "spec")),
            };
            provision(&api.provisioner, &resources).await?;
            // A plan registered active (`active: true` in its spec, or `activate` asked) fires from now on.
            for entity in &entities {
                let Entity::LaunchPlan(plan) = entity else { continue };
                if body.activate && !plan.active {
                    let id = plan.id.clone().unwrap_or_default();
                    registry
                        .set_active(&id, true, &request.caller)
                        .await
                        .map_err(|e| ApiError::from_port(e, "activate"))?;
                }
                if plan.active || body.activate {
                    apply_schedule(api, plan, true).await?;
                }
            }
            let mut response = RegisterResponse { registered_by: request.caller.clone(), ..Default::default() };
            for (entity, outcome) in entities.iter().zip(outcomes) {
                let id = entity.id().cloned().unwrap_or_default();
                match outcome {
                    Registration::Created => response.created.push(id),
                    Registration::AlreadyRegistered => response.unchanged.push(id),
                }
            }
            Ok(ok(if response.created.is_empty() { 200 } else { 201 }, &response))
        }
        Route::Projects => {
            let projects = registry.projects().await.map_err(|e| ApiError::from_port(e, "path"))?;
            Ok(ok(200, &ListProjectsResponse { projects }))
        }
        Route::Names(kind, project, domain) => {
            let page = page_request(request)?;
            // As documented: a prefix, when given, is a name's start (an empty one is refused too).
            let prefix = request.query.get("prefix").map(String::as_str);
            if let Some(prefix) = prefix {
                check_segment("prefix", prefix)?;
            }
            let prefix = prefix.unwrap_or_default();
            let names = registry
                .names(kind, &project, &domain, prefix, &page)
                .await
                .map_err(|e| ApiError::from_port(e, "token"))?;
            Ok(ok(200, &ListNamesResponse { entities: names.items, next_token: names.next_token.unwrap_or_default() }))
        }
        Route::Versions(id) => {
            let page = page_request(request)?;
            let versions = registry.versions(&id, &page).await.map_err(|e| ApiError::from_port(e, "token"))?;
            if versions.items.is_empty() && page.token.is_none() {
                return Err(not_registered(&id));
            }
            let schedule = if id.resource_type == ResourceType::LaunchPlan as i32 && page.token.is_none() {
                schedule_status(api, &id).await?
            } else {
                None
            };
            let next_token = versions.next_token.unwrap_or_default();
            Ok(ok(200, &ListVersionsResponse { versions: versions.items, next_token, schedule }))
        }
        Route::Get(id) => get(registry, &id).await,
        Route::SetActive(id, active) => {
            registry.set_active(&id, active, &request.caller).await.map_err(|e| ApiError::from_port(e, "path"))?;
            // The registry first: repeating a request whose schedule write failed converges.
            if let Some(Entity::LaunchPlan(plan)) =
                registry.get(&id).await.map_err(|e| ApiError::from_port(e, "path"))?
            {
                apply_schedule(api, &plan, active).await?;
            }
            get(registry, &id).await
        }
        Route::Ticks(plan) => {
            let page = page_request(request)?;
            let ticks = api.runs.ticks(&plan, &page).await.map_err(|e| ApiError::from_port(e, "token"))?;
            Ok(ok(200, &ListTicksResponse { ticks: ticks.items, next_token: ticks.next_token.unwrap_or_default() }))
        }
        Route::RunTick(plan) => backfill_tick(api, request, &plan).await,
        Route::Launch(project, domain) => launch(api, request, &project, &domain).await,
        Route::CacheEntries(task) => {
            let entries = api.cache.entries(&task).await.map_err(|e| ApiError::from_port(e, "path"))?;
            let entries = entries.into_iter().map(|e| CacheEntry { key: e.key, created_at: e.created_at }).collect();
            let (last_evicted_by, last_evicted_at) =
                api.cache.last_eviction(&task).await.map_err(|e| ApiError::from_port(e, "path"))?.unwrap_or_default();
            Ok(ok(200, &ListCacheEntriesResponse { entries, last_evicted_by, last_evicted_at }))
        }
        Route::EvictCache(task) => {
            let eviction = api.cache.evict(&task, &request.caller).await.map_err(|e| ApiError::from_port(e, "path"))?;
            let response = EvictCacheResponse {
                deleted: eviction.deleted,
                evicted_by: request.caller.clone(),
                evicted_at: eviction.at,
            };
            Ok(ok(200, &response))
        }
        Route::Executions(project, domain) => {
            let (page, filter) = (page_request(request)?, run_filter(request)?);
            let runs =
                api.runs.list(&project, &domain, &filter, &page).await.map_err(|e| ApiError::from_port(e, "token"))?;
            let response =
                ListExecutionsResponse { executions: runs.items, next_token: runs.next_token.unwrap_or_default() };
            Ok(ok(200, &response))
        }
        Route::Abort(id) => abort(api, request, &id).await,
        Route::Rerun(id, mode) => rerun(api, request, &id, mode).await,
        Route::NodeLog(id, node) => {
            // At most 1,000 lines a page: a page stays far below Lambda's 6 MB answer.
            let page = page_request(request)?;
            let token = page.token.unwrap_or_default();
            let item = match request.query.get("item") {
                None => None,
                Some(text) => {
                    Some(text.parse::<usize>().ok().filter(|i| *i < crate::node::MAX_MAP_ITEMS).ok_or_else(|| {
                        ApiError::bad_request(
                            "InvalidItem",
                            "item",
                            format!(
                                "item {text:.20} is not a map item's index (0 to {})",
                                crate::node::MAX_MAP_ITEMS - 1
                            ),
                            "pass the item's index from 0, or no item for a task node",
                        )
                    })?)
                }
            };
            let attempt = match request.query.get("attempt") {
                None => None,
                Some(text) => Some(text.parse::<u32>().ok().filter(|a| *a >= 1).ok_or_else(|| {
                    ApiError::bad_request(
                        "InvalidAttempt",
                        "attempt",
                        format!("attempt {text:.20} is not an attempt's number (from 1)"),
                        "pass the attempt's number as the node's attemptRecords give it, or none for its last",
                    )
                })?),
            };
            let found = api.runs.node_log(&id, &node, item, attempt, &token, page.limit).await;
            let log = match found.map_err(|e| ApiError::from_port(e, "path"))? {
                Some(log) => log,
                None => {
                    // Which is missing, the run or its node: asked only on this refusal's path.
                    let run = api.runs.get(&id).await.map_err(|e| ApiError::from_port(e, "path"))?;
                    let (execution, _) = run.ok_or_else(|| no_execution(&id))?;
                    // A node of the workflow that nothing has written yet has no log yet: an empty page.
                    let workflow = run_workflow(registry, &execution).await?;
                    let nodes = workflow.as_ref().and_then(|w| w.template.as_ref()).map(|t| t.nodes.as_slice());
                    if !nodes.unwrap_or_default().iter().any(|n| n.id == node) {
                        return Err(no_node(&id, &node));
                    }
                    let ended = execution.phase != WorkflowPhase::WorkflowRunning as i32;
                    updraft_core::ports::LogPage { ended, ..Default::default() }
                }
            };
            let events: Vec<serde_json::Value> =
                log.events.iter().map(|(at, line)| serde_json::json!({"timestamp": at, "message": line})).collect();
            let body = serde_json::json!({
                "events": events, "nextToken": log.next_token, "logStream": log.stream, "ended": log.ended,
            });
            Ok(ok(200, &body))
        }
        Route::Execution(id, nodes_only) => {
            // Nodes come a page at a time (all of them up to 1,000 unless asked for fewer, and as many as
            // fit PAGE_BYTES): no answer nears Lambda's 6 MB however many nodes a run has.
            let page = match request.query.get("limit") {
                Some(_) => page_request(request)?,
                None => PageRequest { limit: MAX_PAGE, ..page_request(request)? },
            };
            let found = api.runs.get(&id).await.map_err(read_error)?;
            let (mut execution, nodes) = found.ok_or_else(|| no_execution(&id))?;
            let workflow = run_workflow(registry, &execution).await?;
            let nodes = with_unwritten_nodes(workflow.as_ref(), &execution, nodes);
            // The run's values, from every node: a page's upstream may be on another page.
            let values = run_values(&execution, &nodes);
            if execution.outputs.is_none() {
                execution.outputs = workflow.as_ref().and_then(|w| run_outputs(w, &values));
            }
            let (mut nodes, next_token) = node_page(nodes, &page)?;
            if let Some(workflow) = &workflow {
                nodes_inputs(workflow, &values, &mut nodes);
            }
            // Lists over 1,000 elements are summarised (a map's outputs grow with its width); the
            // outputs route answers a node's whole.
            for values in [&mut execution.inputs, &mut execution.outputs]
                .into_iter()
                .chain(nodes.iter_mut().flat_map(|n| [&mut n.inputs, &mut n.outputs]))
                .flatten()
            {
                values.values.values_mut().for_each(updraft_core::literal::summarised);
            }
            let shown = if nodes_only { 0 } else { serde_json::to_vec(&execution).map_or(0, |json| json.len()) };
            let (nodes, next_token) = within_bytes(nodes, next_token, PAGE_BYTES.saturating_sub(shown));
            let execution = (!nodes_only).then_some(execution);
            Ok(ok(200, &GetExecutionResponse { execution, nodes, next_token }))
        }
        Route::NodeOutputs(id, node) => {
            if let Some(ended) = api.runs.ended_node(&id, &node).await.map_err(read_error)? {
                return Ok(ok(200, &GetNodeOutputsResponse { id: ended.id, outputs: ended.outputs }));
            }
            let found = api.runs.get(&id).await.map_err(read_error)?;
            let (_, nodes) = found.ok_or_else(|| no_execution(&id))?;
            let found = nodes.into_iter().find(|n| n.id.as_ref().is_some_and(|n| n.node_id == node));
            let found = found.ok_or_else(|| no_node(&id, &node))?;
            Ok(ok(200, &GetNodeOutputsResponse { id: found.id, outputs: found.outputs }))
        }
    }
}

/// A launch plan's schedule, registry next to stack, with the drift between
/// them; `None` when neither has one.
async fn schedule_status<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    plan: &Identifier,
) -> Result<Option<ScheduleStatus>, ApiError> {
    let prefix = &api.cloud.jobs.name_prefix;
    let first = PageRequest { limit: 1, token: None };
    let named = api
        .registry
        .names(ResourceType::LaunchPlan, &plan.project, &plan.domain, &plan.name, &first)
        .await
        .map_err(|e| ApiError::from_port(e, "path"))?;
    let named = named.items.into_iter().find(|n| n.name == plan.name).unwrap_or_default();
    let active_version = named.active_version;
    let mut active = None;
    if !active_version.is_empty() {
        let id = Identifier { version: active_version.clone(), ..plan.clone() };
        if let Some(Entity::LaunchPlan(spec)) =
            api.registry.get(&id).await.map_err(|e| ApiError::from_port(e, "path"))?
        {
            active = schedule_request(prefix, &spec)
                .map_err(|e| ApiError::bad_request("InvalidSchedule", "schedule", e, "see docs/schedules.md"))?;
        }
    }
    let name = schedule_name(prefix, &plan.project, &plan.domain, &plan.name);
    let found = api.provisioner.find_schedule(&name).await.map_err(|e| ApiError::from_port(e, "schedule"))?;
    if active.is_none() && found.is_none() {
        return Ok(None);
    }
    let drift = schedule_drift(&plan.name, active.as_ref(), found.as_ref());
    let state = match &found {
        None => "NONE",
        Some(f) if f.enabled => "ENABLED",
        Some(_) => "DISABLED",
    };
    let found = found.unwrap_or_default();
    Ok(Some(ScheduleStatus {
        name,
        active_version,
        expected_expression: active.as_ref().map(|a| a.expression.clone()).unwrap_or_default(),
        expected_timezone: active.as_ref().map(|a| a.timezone.clone()).unwrap_or_default(),
        state: state.into(),
        expression: found.expression,
        timezone: found.timezone,
        version: found.version,
        drift,
        changed_by: named.active_changed_by,
        changed_at: named.active_changed_at,
    }))
}

/// Makes the stack's schedule of `plan` follow its registry state (see
/// `Provisioner::apply_schedule`); a failure is a 503 that sending the request again repairs.
async fn apply_schedule<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    plan: &LaunchPlanSpec,
    active: bool,
) -> Result<(), ApiError> {
    let request = schedule_request(&api.cloud.jobs.name_prefix, plan)
        .map_err(|e| ApiError::bad_request("InvalidSchedule", "schedule", e, "see docs/schedules.md"))?;
    let Some(request) = request else { return Ok(()) };
    api.provisioner.apply_schedule(&request, active).await.map_err(|e| {
        let mut error = ApiError::from_port(e, "schedule");
        if error.status >= 500 {
            error.status = 503;
            error.body.retryable = true;
            error.body.message =
                format!("the registry is updated, but schedule {} is not: {}", request.name, error.body.message);
            error.body.hint = "send the same request again: it repeats the schedule's update".into();
        }
        error
    })
}

/// Who runs a tick: the stack's schedule, or a backfill by a caller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger<'a> {
    Schedule,
    Backfill { caller: &'a str },
}

impl Trigger<'_> {
    fn name(&self) -> &'static str {
        match self {
            Trigger::Schedule => "SCHEDULE",
            Trigger::Backfill { .. } => "BACKFILL",
        }
    }
}

/// How a tick was handled: its record, whether it launched a run just now, and
/// the refusal of a launch that failed.
struct TickOutcome {
    record: ScheduleTick,
    launched_now: bool,
    refused: Option<ApiError>,
}

/// Runs one tick of a launch plan version: the run named by the plan and the
/// time, with the kickoff input set to that time — never a clock — recorded as
/// SCHEDULED by the plan at that time. The schedule's tick for a version that is
/// no longer the active one is SKIPPED; a backfill runs any version. Records the
/// tick, except a backfill's of a tick whose run existed (its record stands).
async fn run_tick<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    tick: &Tick,
    trigger: Trigger<'_>,
) -> Result<TickOutcome, String> {
    let time = tick.time()?;
    let plan_id = Identifier {
        resource_type: ResourceType::LaunchPlan as i32,
        project: tick.project.clone(),
        domain: tick.domain.clone(),
        name: tick.plan.clone(),
        version: tick.version.clone(),
    };
    let execution = tick_execution_name(&tick.plan, time);
    let mut record = ScheduleTick {
        scheduled_time: time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        version: tick.version.clone(),
        execution: execution.clone(),
        trigger: trigger.name().into(),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let launched = match api.registry.get(&plan_id).await {
        // Delivered (or retried) past the plan's catch-up window: a stale tick launches nothing.
        Ok(Some(Entity::LaunchPlan(plan)))
            if trigger == Trigger::Schedule
                && plan.active
                && plan.schedule.as_ref().is_some_and(|s| (now - time).num_seconds() > catch_up_seconds(s)) =>
        {
            record.outcome = "SKIPPED".into();
            let late = (now - time).num_minutes();
            record.message = format!(
                "handled {late} min after its time, past the plan's catch_up window; \
                 run it with updraft launchplan backfill if it is still wanted"
            );
            Ok(false)
        }
        Ok(Some(Entity::LaunchPlan(plan))) if plan.active || trigger != Trigger::Schedule => {
            let mut inputs = BTreeMap::new();
            let kickoff = plan.schedule.as_ref().map(|s| s.kickoff_time_input.clone()).unwrap_or_default();
            if !kickoff.is_empty() {
                let at = Timestamp { seconds: time.timestamp(), nanos: 0 };
                inputs.insert(kickoff, Literal { value: Some(literal::Value::Datetime(at)) });
            }
            let body = CreateExecutionRequest {
                project: tick.project.clone(),
                domain: tick.domain.clone(),
                name: execution.clone(),
                target: Some(create_execution_request::Target::LaunchPlan(plan_id.clone())),
                inputs: Some(LiteralMap { values: inputs }),
                overwrite_cache: false,
            };
            let principal = match trigger {
                Trigger::Schedule => {
                    let prefix = &api.cloud.jobs.name_prefix;
                    format!("schedule {}", schedule_name(prefix, &plan_id.project, &plan_id.domain, &plan_id.name))
                }
                Trigger::Backfill { caller } => caller.to_string(),
            };
            let origin = LaunchOrigin {
                mode: LaunchMode::Scheduled,
                launch_plan: Some(plan_id.clone()),
                principal,
                scheduled_at: Some(time),
                recovered_from: String::new(),
            };
            launch_body(api, &body, origin).await.map(|answer| answer.status == 201)
        }
        Ok(Some(_)) => {
            record.outcome = "SKIPPED".into();
            record.message = format!("version {} is not the plan's active version", tick.version);
            Ok(false)
        }
        Ok(None) => Err(not_registered(&plan_id)),
        Err(e) => Err(ApiError::from_port(e, "launchPlan")),
    };
    let launched_now = *launched.as_ref().unwrap_or(&false);
    match &launched {
        Ok(_) if record.outcome.is_empty() => record.outcome = "LAUNCHED".into(),
        Ok(_) => {}
        Err(e) => {
            record.outcome = "FAILED".into();
            record.message = format!("{}: {}", e.body.code, e.body.message);
        }
    }
    // A backfill of a tick whose run exists (launched before, or another run under
    // its name: 409) leaves the tick's record as it was.
    let ran_before = launched.is_ok() && !launched_now && record.outcome == "LAUNCHED";
    let taken = launched.as_ref().err().is_some_and(|e| e.status == 409);
    if trigger == Trigger::Schedule || !(ran_before || taken) {
        record.recorded_at = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        api.runs.record_tick(&plan_id, &record).await.map_err(|e| format!("recording tick {execution}: {e}"))?;
    }
    tracing::info!(
        plan = tick.plan,
        version = tick.version,
        time = record.scheduled_time,
        outcome = record.outcome,
        trigger = trigger.name(),
        "tick"
    );
    Ok(TickOutcome { record, launched_now, refused: launched.err() })
}

/// A tick of a launch plan version's schedule (Scheduler invokes this function
/// with the plan and the scheduled time; see [`run_tick`]). A failed launch is
/// an error, so the tick is retried.
pub async fn handle_tick<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    tick: &Tick,
) -> Result<Value, String> {
    let TickOutcome { record, .. } = run_tick(api, tick, Trigger::Schedule).await?;
    if record.outcome == "FAILED" {
        return Err(format!("tick {} of {}: {}", record.scheduled_time, tick.plan, record.message));
    }
    Ok(serde_json::to_value(&record).unwrap_or_default())
}

/// `POST /v1/launch-plans/{p}/{d}/{name}/ticks`: one tick of a backfill. The time
/// must be one the plan's schedule fires at (a rate fires at any time: its anchor
/// is the backfill's start). 201: launched; 200: its run existed; a failed launch
/// answers the launch's error.
async fn backfill_tick<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
    plan: &Identifier,
) -> Result<ApiResponse, ApiError> {
    let body: RunTickRequest = json_body(request, "RunTickRequest")?;
    check_segment("version", &body.version)?;
    let time = chrono::DateTime::parse_from_rfc3339(&body.scheduled_time)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            ApiError::bad_request(
                "InvalidTime",
                "scheduledTime",
                format!("{:?} is not an RFC 3339 time: {e}", body.scheduled_time),
                "write it like 2027-03-29T01:00:00Z",
            )
        })?;
    let id = Identifier { version: body.version.clone(), ..plan.clone() };
    let Some(Entity::LaunchPlan(spec)) = api.registry.get(&id).await.map_err(|e| ApiError::from_port(e, "version"))?
    else {
        return Err(not_registered(&id));
    };
    let Some(schedule) = &spec.schedule else {
        return Err(ApiError::bad_request(
            "NoSchedule",
            "version",
            format!("launch plan {} version {} has no schedule", id.name, id.version),
            "backfill a version with a schedule, or launch it with updraft launch",
        ));
    };
    let is_rate = matches!(schedule.kind, Some(updraft_core::proto::core::schedule::Kind::Rate(_)));
    if !is_rate {
        let next = next_fires(schedule, None, time - chrono::Duration::seconds(1), 1)
            .map_err(|e| ApiError::bad_request("InvalidSchedule", "version", e, "see docs/schedules.md"))?;
        if next.first() != Some(&time) {
            let after = next.first().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
            return Err(ApiError::bad_request(
                "NotATick",
                "scheduledTime",
                format!("the schedule of {} version {} does not fire at {}", id.name, id.version, body.scheduled_time),
                format!("the next time it fires after that is {after}; list them with updraft launchplan next"),
            ));
        }
    }
    let tick = Tick {
        project: id.project.clone(),
        domain: id.domain.clone(),
        plan: id.name.clone(),
        version: id.version.clone(),
        scheduled_time: time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let caller = if request.caller.is_empty() { "an unknown caller" } else { request.caller.as_str() };
    let outcome = run_tick(api, &tick, Trigger::Backfill { caller })
        .await
        .map_err(|e| ApiError::new(503, "TickNotRecorded", "path", e, "send the same request again"))?;
    if let Some(mut refused) = outcome.refused {
        // The launch's own refusal and status (409: another run has the tick's name).
        refused.body.message = format!("tick {}: {}", outcome.record.scheduled_time, refused.body.message);
        return Err(refused);
    }
    Ok(ok(if outcome.launched_now { 201 } else { 200 }, &outcome.record))
}

/// A run that cannot be read: its values kept in the bucket are gone with the
/// run's data (410), or what the store says.
fn read_error(error: PortError) -> ApiError {
    match error {
        PortError::NotFound(message) => ApiError::new(
            410,
            "RunDataExpired",
            "path",
            message,
            "its record is kept, its large values are not: relaunch it with its inputs given again",
        ),
        e => ApiError::from_port(e, "path"),
    }
}

fn no_node(id: &ExecutionId, node: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchNode",
        "path",
        format!("run {} has no node {node}", id.name),
        "GET /v1/executions/{project}/{domain}/{name} lists the run's nodes",
    )
}

fn no_execution(id: &ExecutionId) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "path",
        format!("no execution {}/{}/{}", id.project, id.domain, id.name),
        "list executions with updraft executions list --remote",
    )
}

/// The longest abort reason kept (Batch keeps 1,024 characters of a termination reason).
const MAX_ABORT_REASON: usize = 1024;

/// Stops a run (`Runs::abort`); an empty body means no reason.
async fn abort<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
    id: &ExecutionId,
) -> Result<ApiResponse, ApiError> {
    let body: AbortExecutionRequest = if request.body.is_empty() {
        AbortExecutionRequest::default()
    } else {
        json_body(request, "AbortExecutionRequest")?
    };
    let length = body.reason.chars().count();
    if length > MAX_ABORT_REASON {
        return Err(ApiError::bad_request(
            "ReasonTooLong",
            "reason",
            format!("the reason has {length} characters, more than the {MAX_ABORT_REASON} kept"),
            "shorten it; link to a longer text instead",
        ));
    }
    let caller = if request.caller.is_empty() { "an unknown caller" } else { request.caller.as_str() };
    let stopped = api.runs.abort(id, caller, &body.reason).await.map_err(|e| ApiError::from_port(e, "path"))?;
    let stopped = stopped.ok_or_else(|| no_execution(id))?;
    let found = api.runs.get(id).await.map_err(read_error)?;
    let execution = found.map(|(execution, _)| execution);
    Ok(ok(200, &AbortExecutionResponse { execution, stopped_nodes: stopped.stopped }))
}

/// Starts a new run of run `id`'s workflow (or of `version`) on its inputs: a
/// recovery (RECOVER, of a run that did not succeed: its nodes that succeeded on
/// the same work end RECOVERED without running) or a relaunch (RELAUNCH, of any
/// run: everything runs again, the cache serving what it holds).
async fn rerun<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
    id: &ExecutionId,
    mode: LaunchMode,
) -> Result<ApiResponse, ApiError> {
    let body: RerunExecutionRequest = if request.body.is_empty() {
        RerunExecutionRequest::default()
    } else {
        json_body(request, "RerunExecutionRequest")?
    };
    let found = api.runs.get(id).await.map_err(read_error)?;
    let (execution, _) = found.ok_or_else(|| no_execution(id))?;
    let refuse = |code: &str, message: String, hint: &str| Err(ApiError::new(409, code, "path", message, hint));
    let phase = WorkflowPhase::try_from(execution.phase).unwrap_or_default();
    match if mode == LaunchMode::Recover { phase } else { WorkflowPhase::Undefined } {
        WorkflowPhase::WorkflowRunning => {
            return refuse(
                "StillRunning",
                format!("run {} is still running", id.name),
                "wait for its end, or abort it",
            );
        }
        WorkflowPhase::WorkflowSucceeded => {
            return refuse(
                "NothingToRecover",
                format!("run {} succeeded: there is nothing to recover", id.name),
                "relaunch it (updraft executions relaunch) to run it once more",
            );
        }
        _ => {}
    }
    // A recovery reuses the run's outputs: gone with its data after the retention period.
    let started = execution.created_at.map(|t| t.seconds).unwrap_or_default();
    let age_days = (chrono::Utc::now().timestamp() - started) / 86_400;
    if mode == LaunchMode::Recover && started > 0 && age_days >= i64::from(api.run_data_days) {
        return Err(ApiError::new(
            410,
            "RunDataExpired",
            "path",
            format!(
                "run {} started {age_days} days ago; its data expired after {} days (the stack's RunDataDays), \
                 so there is nothing left to recover from",
                id.name, api.run_data_days
            ),
            "relaunch it instead (updraft executions relaunch): a new run on its inputs",
        ));
    }
    let mut workflow = execution.workflow_id.clone().unwrap_or_default();
    if !body.version.is_empty() {
        check_segment("version", &body.version)?;
        workflow.version = body.version.clone();
    }
    let create = CreateExecutionRequest {
        target: Some(create_execution_request::Target::Workflow(workflow)),
        inputs: execution.inputs.clone(),
        name: body.name.clone(),
        ..Default::default()
    };
    let recovered_from = if mode == LaunchMode::Recover { id.name.clone() } else { String::new() };
    let origin = LaunchOrigin { mode, principal: request.caller.clone(), recovered_from, ..Default::default() };
    launch_body(api, &create, origin).await
}

/// A JSON body of `T` (the IDL's canonical JSON), or the precise refusal.
fn json_body<T: serde::de::DeserializeOwned>(request: &ApiRequest, what: &str) -> Result<T, ApiError> {
    check_json_request(request)?;
    let malformed = |path: &str, message: String| {
        ApiError::bad_request(
            "MalformedBody",
            path,
            format!("the body is not a {what}: {message}"),
            "see docs/api/openapi.yaml",
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(&request.body);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        malformed(if path == "." { "body" } else { &path }, e.inner().to_string())
    })?;
    deserializer.end().map_err(|e| malformed("body", e.to_string()))?;
    Ok(parsed)
}

/// Starts a run of a registered workflow (or launch plan) with type-checked inputs.
async fn launch<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    request: &ApiRequest,
    project: &str,
    domain: &str,
) -> Result<ApiResponse, ApiError> {
    let mut body: CreateExecutionRequest = json_body(request, "CreateExecutionRequest")?;
    body.project = same_project("project", &body.project, project)?;
    body.domain = same_project("domain", &body.domain, domain)?;
    // The target lives in the path's project too: an IAM policy on the path then
    // decides which workflows a caller may run.
    if let Some(create_execution_request::Target::Workflow(id) | create_execution_request::Target::LaunchPlan(id)) =
        &mut body.target
    {
        id.project = same_project("project", &id.project, project)?;
        id.domain = same_project("domain", &id.domain, domain)?;
    }
    let origin = LaunchOrigin { mode: LaunchMode::Manual, principal: request.caller.clone(), ..Default::default() };
    launch_body(api, &body, origin).await
}

/// The project (or domain) of a request whose path names it: the body may
/// repeat it, never name another, so the path an IAM policy matches is the
/// project the request acts in.
fn same_project(what: &str, given: &str, path: &str) -> Result<String, ApiError> {
    if given.is_empty() || given == path {
        return Ok(path.to_string());
    }
    Err(ApiError::new(
        400,
        "ProjectMismatch",
        what,
        format!("the body names {what} {:?}, the path {path:?}", given.chars().take(140).collect::<String>()),
        format!("send the request to the path of {what} {given:.140}, or leave {what} out of the body"),
    ))
}

/// [`launch`] of a parsed request, recorded with `origin` (and the launch plan it names).
async fn launch_body<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    body: &CreateExecutionRequest,
    mut origin: LaunchOrigin,
) -> Result<ApiResponse, ApiError> {
    let mut given: node::Outputs = body.inputs.clone().map(|m| m.values.into_iter().collect()).unwrap_or_default();
    let workflow_id = match &body.target {
        Some(create_execution_request::Target::Workflow(id)) => id.clone(),
        Some(create_execution_request::Target::LaunchPlan(id)) => {
            let id = Identifier { resource_type: ResourceType::LaunchPlan as i32, ..id.clone() };
            let Some(Entity::LaunchPlan(plan)) =
                api.registry.get(&id).await.map_err(|e| ApiError::from_port(e, "launchPlan"))?
            else {
                return Err(not_registered(&id));
            };
            origin.launch_plan.get_or_insert(id);
            // Fixed inputs win over given ones; defaults fill what is left.
            for (name, value) in plan.default_inputs.map(|m| m.values).unwrap_or_default() {
                given.entry(name).or_insert(value);
            }
            given.extend(plan.fixed_inputs.map(|m| m.values).unwrap_or_default());
            plan.workflow_id.unwrap_or_default()
        }
        None => {
            return Err(ApiError::bad_request(
                "MissingTarget",
                "workflow",
                "a launch names a workflow or a launch plan",
                "set workflow: {project, domain, name, version}",
            ));
        }
    };
    let workflow_id = Identifier { resource_type: ResourceType::Workflow as i32, ..workflow_id };
    // A launch plan runs a workflow of its own project (compilation makes it so;
    // checked, since the run's project is the workflow's).
    if let Some(plan) = &origin.launch_plan
        && (plan.project != workflow_id.project || plan.domain != workflow_id.domain)
    {
        return Err(ApiError::bad_request(
            "ProjectMismatch",
            "launchPlan",
            format!(
                "launch plan {}/{}/{} runs a workflow of {}/{}",
                plan.project, plan.domain, plan.name, workflow_id.project, workflow_id.domain
            ),
            "register the launch plan in the workflow's project and domain",
        ));
    }
    for (what, value) in [
        ("project", &workflow_id.project),
        ("domain", &workflow_id.domain),
        ("name", &workflow_id.name),
        ("version", &workflow_id.version),
    ] {
        check_segment(what, value)?;
    }
    let Some(Entity::Workflow(workflow)) =
        api.registry.get(&workflow_id).await.map_err(|e| ApiError::from_port(e, "workflow"))?
    else {
        return Err(not_registered(&workflow_id));
    };
    let template = workflow.template.clone().unwrap_or_default();
    // A run reads files of its own project only (its tasks' role could read no other):
    // said now, not as a task's AccessDenied.
    let bucket = &api.cloud.jobs.bucket;
    for (name, value) in &given {
        let foreign = updraft_core::ports::blobs(value).into_iter().find(|(uri, _, _)| {
            uri.starts_with(&format!("s3://{bucket}/"))
                && !updraft_core::project_access::readable_by(&workflow_id.project, bucket, uri)
        });
        if let Some((uri, _, _)) = foreign {
            return Err(ApiError::bad_request(
                "InputOutsideProject",
                "inputs",
                format!("input {name} names {uri:.200}, which project {}'s tasks cannot read", workflow_id.project),
                format!(
                    "pass a local file (updraft launch uploads it to s3://{bucket}/{}) or an output of one of the project's runs",
                    updraft_core::project_access::inputs_prefix(&workflow_id.project)
                ),
            ));
        }
    }
    let inputs = node::checked_launch_inputs(&template, given).map_err(|message| {
        ApiError::bad_request("InvalidInputs", "inputs", message, "pass every required input with its declared type")
    })?;
    let name = if body.name.is_empty() {
        node::execution_name(chrono::Utc::now(), launch_random())
    } else {
        check_segment("name", &body.name)?;
        body.name.clone()
    };
    let id = ExecutionId { project: workflow_id.project.clone(), domain: workflow_id.domain.clone(), name };
    // The name is the idempotency key: the same launch again is the same run (200).
    match api.runs.launch(&id, &workflow, &inputs, body.overwrite_cache, &origin).await {
        Ok(true) => Ok(ok(201, &CreateExecutionResponse { id: Some(id), principal: origin.principal.clone() })),
        Ok(false) => {
            // The same launch again: the run as first launched, by whoever launched it.
            let found = api.runs.get(&id).await.map_err(|e| ApiError::from_port(e, "name"))?;
            let principal = found.map(|(execution, _)| execution.principal).unwrap_or_default();
            Ok(ok(200, &CreateExecutionResponse { id: Some(id), principal }))
        }
        Err(PortError::Conflict(message)) => Err(ApiError::new(
            409,
            "Conflict",
            "name",
            format!("{message} with another workflow version or other inputs"),
            "launch under another name, or none for a generated one",
        )),
        Err(e) => Err(ApiError::from_port(e, "workflow")),
    }
}

/// The compiled workflow a run runs (its version's, from the registry).
async fn run_workflow<R: Registry>(registry: &R, execution: &Execution) -> Result<Option<CompiledWorkflow>, ApiError> {
    let Some(id) = &execution.workflow_id else { return Ok(None) };
    match registry.get(id).await.map_err(|e| ApiError::from_port(e, "path"))? {
        Some(Entity::Workflow(workflow)) => Ok(Some(workflow)),
        _ => Ok(None),
    }
}

/// `nodes` and the workflow's nodes that nothing has written yet (a node's item comes
/// with its arm or its first upstream node's end): waiting (QUEUED) while the run runs,
/// SKIPPED once it has ended without them.
fn with_unwritten_nodes(
    workflow: Option<&CompiledWorkflow>,
    execution: &Execution,
    mut nodes: Vec<NodeExecution>,
) -> Vec<NodeExecution> {
    let Some(template) = workflow.and_then(|w| w.template.as_ref()) else { return nodes };
    let written: std::collections::HashSet<String> =
        nodes.iter().filter_map(|n| n.id.as_ref().map(|i| i.node_id.clone())).collect();
    let phase =
        if execution.phase == WorkflowPhase::WorkflowRunning as i32 { NodePhase::Queued } else { NodePhase::Skipped };
    for node in template.nodes.iter().filter(|n| !written.contains(&n.id)) {
        nodes.push(NodeExecution {
            id: Some(NodeExecutionId { execution_id: execution.id.clone(), node_id: node.id.clone() }),
            phase: phase as i32,
            ..Default::default()
        });
    }
    nodes
}

/// A run's values as far as its nodes have produced them.
fn run_values(execution: &Execution, nodes: &[NodeExecution]) -> RunValues {
    let literals =
        |map: &Option<LiteralMap>| map.as_ref().map(|m| m.values.clone().into_iter().collect()).unwrap_or_default();
    RunValues {
        inputs: literals(&execution.inputs),
        outputs: nodes
            .iter()
            .map(|n| (n.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default(), literals(&n.outputs)))
            .collect(),
    }
}

/// A run's workflow outputs, from its nodes' outputs and the workflow's output
/// bindings (computed on read: the run's end is recorded without a Lambda).
fn run_outputs(workflow: &CompiledWorkflow, values: &RunValues) -> Option<LiteralMap> {
    let bindings = workflow.template.as_ref().map(|t| t.output_bindings.clone()).unwrap_or_default();
    let outputs: std::collections::BTreeMap<String, Literal> = bindings
        .iter()
        .filter_map(|b| {
            Some((b.var.clone(), updraft_core::execution::resolve::resolve(b.binding.as_ref()?, values).ok()?))
        })
        .collect();
    (!outputs.is_empty()).then_some(LiteralMap { values: outputs })
}

/// Each node's inputs, as its start resolved them from the values upstream (computed
/// on read, as the outputs are: the node function writes nothing more for them). A
/// node whose upstream values are not all there yet has none.
fn nodes_inputs(workflow: &CompiledWorkflow, values: &RunValues, nodes: &mut [NodeExecution]) {
    for node in nodes.iter_mut().filter(|n| n.inputs.is_none()) {
        let id = node.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default();
        node.inputs = steps::resolved_inputs(workflow, &id, values)
            .map(|inputs| LiteralMap { values: inputs.into_iter().collect() });
    }
}

/// 32 random bits for generated execution names (from the OS, no extra crate).
fn launch_random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish() as u32
}

fn not_registered(id: &Identifier) -> ApiError {
    let kind = ResourceType::try_from(id.resource_type).unwrap_or_default();
    let what = kind.as_str_name().to_lowercase().replace('_', " ");
    let version = if id.version.is_empty() { String::new() } else { format!(" version {}", id.version) };
    ApiError::new(
        404,
        "NotFound",
        "path",
        format!("no {what} {}/{}/{}{version} is registered", id.project, id.domain, id.name),
        "list the registered names and versions with GET one level up (updraft get)",
    )
}

async fn get<R: Registry>(registry: &R, id: &Identifier) -> Result<ApiResponse, ApiError> {
    let entity = registry.get(id).await.map_err(|e| ApiError::from_port(e, "path"))?;
    Ok(match entity.ok_or_else(|| not_registered(id))? {
        Entity::Task(task) => ok(200, &GetTaskResponse { task: Some(task) }),
        Entity::Workflow(workflow) => ok(200, &GetWorkflowResponse { workflow: Some(workflow) }),
        Entity::LaunchPlan(plan) => ok(200, &GetLaunchPlanResponse { launch_plan: Some(plan) }),
    })
}

/// The request in an API Gateway (REST) proxy event; `None` for any other event.
pub fn from_proxy_event(event: &Value) -> Option<Result<ApiRequest, ApiError>> {
    let method = event.get("httpMethod")?.as_str()?.to_string();
    let path = event.get("path").and_then(Value::as_str).unwrap_or("/").to_string();
    let strings = |field: &str| -> HashMap<String, String> {
        event
            .get(field)
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default()
    };
    let headers = strings("headers").into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let query = strings("queryStringParameters");
    let text = event.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if event.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        match decode_base64(text) {
            Some(bytes) => bytes,
            None => {
                let error = ApiError::bad_request("MalformedBody", "body", "the body is not valid base64", "send JSON");
                return Some(Err(error));
            }
        }
    } else {
        text.as_bytes().to_vec()
    };
    // IAM auth: API Gateway names the signer; `caller` (the principal id) when no ARN is given.
    let identity = |field: &str| event.pointer(&format!("/requestContext/identity/{field}")).and_then(Value::as_str);
    let caller = identity("userArn").or_else(|| identity("caller")).unwrap_or_default().to_string();
    Some(Ok(ApiRequest { method, path, query, headers, body, caller }))
}

/// Standard base64 (API Gateway's encoding of binary bodies).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let take = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

/// The proxy integration's answer.
pub fn to_proxy_response(response: &ApiResponse) -> Value {
    let mut headers = json!({"content-type": "application/json"});
    if response.status == 503 {
        headers["retry-after"] = json!("1");
    }
    json!({"statusCode": response.status, "headers": headers, "body": response.body})
}

/// The api function's settings, from the variables the template sets.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The metadata table.
    pub table: String,
    /// The data bucket (large entity bodies under `specs/`).
    pub bucket: String,
    /// The role state machines run as.
    pub state_machine_role: String,
    pub cloud: CloudSettings,
    /// Schedules' target (this function), the role Scheduler invokes it as, and their dead-letter queue.
    pub schedule_target: String,
    pub scheduler_role: String,
    pub schedule_dead_letters: String,
    /// The permissions boundary of the projects' job roles.
    pub job_role_boundary: String,
    /// Days a run's data is kept (the bucket's lifecycle rule on `runs/`).
    pub run_data_days: u32,
}

impl ApiConfig {
    pub fn from_env() -> Result<ApiConfig, String> {
        let required = |name: &str| crate::required_env(name, "api");
        // `arn:<partition>:iam::<account>:role/`: the projects' job roles are made under it.
        let role_arn_prefix = required("UPDRAFT_ROLE_ARN_PREFIX")?;
        let jobs = job_definition::Settings {
            name_prefix: required("UPDRAFT_NAME_PREFIX")?,
            partition: role_arn_prefix.split(':').nth(1).unwrap_or("aws").to_string(),
            role_arn_prefix,
            bucket: required("UPDRAFT_BUCKET")?,
            execution_role_arn: required("UPDRAFT_JOB_EXECUTION_ROLE")?,
            log_group: required("UPDRAFT_JOB_LOG_GROUP")?,
            exec_path: required("UPDRAFT_EXEC_PATH")?,
        };
        let state_machines = state_machine::Targets {
            node_function_arn: required("UPDRAFT_NODE_FUNCTION")?,
            table: required("UPDRAFT_TABLE")?,
            job_start_timeout_seconds: required("UPDRAFT_JOB_START_TIMEOUT")?
                .parse()
                .map_err(|e| format!("UPDRAFT_JOB_START_TIMEOUT is not a number of seconds: {e}"))?,
        };
        Ok(ApiConfig {
            table: required("UPDRAFT_TABLE")?,
            bucket: required("UPDRAFT_BUCKET")?,
            state_machine_role: required("UPDRAFT_STATE_MACHINE_ROLE")?,
            cloud: CloudSettings { jobs, state_machines },
            schedule_target: required("UPDRAFT_SCHEDULE_TARGET")?,
            scheduler_role: required("UPDRAFT_SCHEDULER_ROLE")?,
            schedule_dead_letters: required("UPDRAFT_SCHEDULE_DLQ")?,
            job_role_boundary: required("UPDRAFT_JOB_ROLE_BOUNDARY")?,
            run_data_days: required("UPDRAFT_RUN_DATA_DAYS")?
                .parse()
                .map_err(|e| format!("UPDRAFT_RUN_DATA_DAYS is not a number of days: {e}"))?,
        })
    }

    /// `arn:<partition>:states:<region>:<account>:stateMachine:`, from the node function's ARN.
    pub fn state_machine_arn_prefix(&self) -> String {
        let parts: Vec<&str> = self.cloud.state_machines.node_function_arn.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "lambda", region, account, ..] => {
                format!("arn:{partition}:states:{region}:{account}:stateMachine:")
            }
            _ => String::new(),
        }
    }
}

/// The Lambda's whole job: a proxy event in, a proxy response out, one log line.
pub async fn respond<R: Registry, P: Provisioner, L: Runs, C: CacheStore>(
    api: &Api<R, P, L, C>,
    event: &Value,
) -> Result<Value, String> {
    let started = std::time::Instant::now();
    if let Some(tick) = Tick::of_event(event) {
        return handle_tick(api, &tick?).await;
    }
    let request = from_proxy_event(event)
        .ok_or("the api function answers API Gateway proxy events and its schedules' ticks only")?;
    let response = match &request {
        Ok(request) => handle(api, request).await,
        Err(error) => error.clone().into(),
    };
    let (method, path) = request.as_ref().map(|r| (r.method.as_str(), r.path.as_str())).unwrap_or_default();
    tracing::info!(method, path, status = response.status, ms = started.elapsed().as_millis() as u64, "answered");
    Ok(to_proxy_response(&response))
}

#[cfg(test)]
mod tests;
