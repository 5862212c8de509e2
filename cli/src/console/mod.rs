//! `updraft console`: a web page over this machine's runs, served from the binary on
//! loopback. The JSON API under `/api/` answers in the cloud API's IDL JSON; the page is
//! plain ES modules and SVG embedded here (no npm, no CDN). Safe on loopback: it binds
//! 127.0.0.1 only, answers only requests addressed to that address and port (DNS
//! rebinding), opens the store read-only, and its actions (abort, relaunch, recover, of
//! cloud runs) need this process's token and a same-origin `Origin` (CSRF).

pub mod cloud;
pub mod source;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use source::{LogRange, RunQuery, RunSource, Scope, SourceError, Stream};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The most runs one page of the list holds.
const MAX_PAGE: usize = 500;

struct Console {
    source: Arc<dyn RunSource>,
    /// `127.0.0.1:PORT` and `localhost:PORT`: the only `Host` values served.
    hosts: [String; 2],
    /// `http://` and each of `hosts`: the only `Origin` a write is taken from.
    origins: [String; 2],
    /// Drawn at start and written into the page: a write must carry it (`X-Updraft-Token`),
    /// which a page of another origin cannot read.
    token: String,
    /// The page, with the token in it.
    page: String,
    /// Foreign hosts refused so far: each is logged once, not once per request.
    refused: Mutex<HashSet<String>>,
}

/// `updraft console`: this machine's runs (`UPDRAFT_HOME`).
pub fn serve_local(port: u16, open: bool) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let home = updraft_engine::home::Home::from_env()?;
    serve(Arc::new(source::LocalRuns::new(home)), port, open)
}

/// `updraft console --remote`: the stack's runs, through its API.
pub fn serve_remote(
    port: u16,
    open: bool,
    remote: &crate::commands::registry::Remote,
) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let session = crate::commands::registry::session(remote)?;
    serve(Arc::new(cloud::CloudRuns::new(session)), port, open)
}

/// 128 random bits from the kernel, as hex.
fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Serves the console on 127.0.0.1:`port` (0: a free one) until Ctrl-C; `open`: in the browser too.
pub fn serve(
    source: Arc<dyn RunSource>,
    port: u16,
    open: bool,
) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!(
                    "error: cannot listen on 127.0.0.1:{port}: {e}\n  hint: `--port 0` picks a free port, or stop what uses {port}"
                );
                return Ok(std::process::ExitCode::FAILURE);
            }
        };
        let port = listener.local_addr()?.port();
        let token = new_token()?;
        let page = include_str!("assets/index.html").replace("{{token}}", &token);
        let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let origins = hosts.clone().map(|host| format!("http://{host}"));
        let console =
            Arc::new(Console { source, hosts, origins, token, page, refused: Mutex::new(HashSet::new()) });
        let url = format!("http://127.0.0.1:{port}/");
        println!("console: {url} (Ctrl-C stops it)");
        use std::io::Write;
        std::io::stdout().flush()?;
        if open {
            open_in_browser(&url);
        }
        axum::serve(listener, router(console))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// The desktop's own opener, argv without a shell; a machine without one gets a warning.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let opened = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = opened {
        eprintln!("warning: cannot open a browser ({opener}: {e}); open {url} yourself");
    }
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        // The page: one document for every view, which its module draws from the path.
        .route("/", get(page))
        .route("/runs/{name}", get(page))
        .route("/workflows/{name}", get(page))
        .route("/launch-plans", get(page))
        .route("/projects", get(page))
        .route("/assets/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("assets/app.js"))))
        .route("/assets/app.css", get(|| asset("text/css; charset=utf-8", include_str!("assets/app.css"))))
        // The graph's layout: @dagrejs/dagre, vendored (assets/vendor: its version and license).
        .route(
            "/assets/dagre.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("assets/vendor/dagre-3.1.4.esm.js"))),
        )
        // What the page reads, and its one write.
        .route("/api/about", get(about))
        .route("/api/projects", get(projects))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{name}", get(get_run))
        .route("/api/runs/{name}/nodes/{node}/logs", get(node_log))
        .route("/api/runs/{name}/{action}", post(act_on_run))
        .route("/api/workflows/{name}/runs", get(workflow_runs))
        .route("/api/launch-plans", get(launch_plans))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "NotFound", "no such page") })
        .layer(middleware::from_fn_with_state(console.clone(), loopback_only))
        .with_state(console)
}

/// Refuses requests whose `Host` is not this console's address: a page of another site
/// whose name was rebound to 127.0.0.1 must not read the runs.
async fn loopback_only(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if console.hosts.contains(&host) {
        let mut response = next.run(request).await;
        let headers = response.headers_mut();
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; style-src 'self'; img-src 'self' data:"),
        );
        return response;
    }
    if console.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(host.clone()) {
        eprintln!("console: refused a request for host {host:?} (only {} is served)", console.hosts[0]);
    }
    problem(
        StatusCode::FORBIDDEN,
        "ForeignHost",
        &format!("this console answers requests for {} only", console.hosts[0]),
    )
}

async fn page(State(console): State<Arc<Console>>) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], console.page.clone())
        .into_response()
}

async fn about(State(console): State<Arc<Console>>) -> Response {
    let about = console.source.about();
    axum::Json(json!({"mode": about.mode, "location": about.location, "canAct": about.can_act})).into_response()
}

/// An action on a run (abort, relaunch, recover): only a request of this console's own page
/// (its token, its origin) may.
async fn act_on_run(
    State(console): State<Arc<Console>>,
    Query(scope): Query<Scope>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Query(params): Query<ActionParams>,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("");
    let token = headers.get("x-updraft-token").and_then(|t| t.to_str().ok()).unwrap_or("");
    if !console.origins.iter().any(|o| o == origin) || !constant_time_eq(token.as_bytes(), console.token.as_bytes()) {
        eprintln!("console: refused a {action} of {name} without this console's token and origin");
        return problem(StatusCode::FORBIDDEN, "Forbidden", "a write needs this console's token and its own origin");
    }
    let how = match action.as_str() {
        "abort" => None,
        "relaunch" => Some(source::Rerun::Relaunch),
        "recover" => Some(source::Rerun::Recover),
        _ => return problem(StatusCode::NOT_FOUND, "NotFound", "a run's actions are abort, relaunch and recover"),
    };
    match how {
        None => match read(&console, &scope, move |source| source.abort(&name, "aborted from the console")).await {
            Ok(execution) => axum::Json(json!({ "execution": execution })).into_response(),
            Err(response) => response,
        },
        Some(how) => {
            // The page draws one key per button: a click sent twice (or a request retried) names
            // the same new run, which the API answers with the run it started the first time.
            let Some(key) = params.key.filter(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit())) else {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "a relaunch or recover needs `key`, 16 hex digits",
                );
            };
            let new_name = rerun_name(&name, &action, &key);
            match read(&console, &scope, move |source| source.rerun(&name, how, &new_name)).await {
                Ok(started) => (StatusCode::CREATED, axum::Json(json!({ "name": started }))).into_response(),
                Err(response) => response,
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ActionParams {
    key: Option<String>,
}

/// The name of a relaunch or recovery of `run` asked for with `key`: within Step Functions'
/// 80 characters, and the same for the same request.
fn rerun_name(run: &str, action: &str, key: &str) -> String {
    let kept: String = run.chars().take(80 - action.len() - key.len() - 2).collect();
    format!("{kept}-{action}-{key}")
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A JSON error as the cloud API answers them: `{"code", "message"}`.
fn problem(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message}))).into_response()
}

/// Runs the source's blocking read off the async workers, over the runs of the
/// project and domain the request names (`?project=&domain=`), else the console's.
async fn read<T: Send + 'static>(
    console: &Arc<Console>,
    scope: &Scope,
    f: impl FnOnce(&dyn RunSource) -> Result<T, SourceError> + Send + 'static,
) -> Result<T, Response> {
    let source = match scope.parts() {
        Ok(None) => console.source.clone(),
        Ok(Some((project, domain))) => console.source.scoped(&project, &domain),
        Err(message) => return Err(problem(StatusCode::BAD_REQUEST, "BadScope", &message)),
    };
    match tokio::task::spawn_blocking(move || f(source.as_ref())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(SourceError::Refused { status, code, message })) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            Err(problem(status, &code, &message))
        }
        Ok(Err(SourceError::Unreachable(message))) => Err(problem(StatusCode::BAD_GATEWAY, "ApiUnreachable", &message)),
        Ok(Err(e)) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, "StoreUnreadable", &e.to_string())),
        Err(e) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal", &e.to_string())),
    }
}

/// A JSON answer with an `ETag`: a poll that finds nothing new gets 304 and no body.
fn json_answer(request_headers: &HeaderMap, body: &Value) -> Response {
    use sha2::{Digest, Sha256};
    let text = body.to_string();
    let tag = format!("\"{}\"", &hex::encode(Sha256::digest(text.as_bytes()))[..32]);
    if request_headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, "no-cache".into()),
        ],
        text,
    )
        .into_response()
}

/// The list across projects: every project and domain that holds runs, with its newest.
async fn projects(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match read(&console, &Scope::default(), |source| source.projects()).await {
        Ok(projects) => json_answer(&headers, &json!({ "projects": projects })),
        Err(response) => response,
    }
}

#[derive(serde::Deserialize)]
struct ListParams {
    phase: Option<String>,
    workflow: Option<String>,
    plan: Option<String>,
    since: Option<i64>,
    token: Option<String>,
    limit: Option<usize>,
}

async fn list_runs(
    State(console): State<Arc<Console>>,
    Query(scope): Query<Scope>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    use updraft_core::proto::core::WorkflowPhase;
    let phase = match params.phase.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(name) => match WorkflowPhase::from_str_name(name) {
            Some(phase) => Some(phase),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "phase {name:?} is not a run phase; use one of WORKFLOW_RUNNING, WORKFLOW_SUCCEEDED, WORKFLOW_FAILED, WORKFLOW_ABORTED, WORKFLOW_TIMED_OUT"
                    ),
                );
            }
        },
    };
    let query = RunQuery {
        phase,
        workflow: params.workflow.filter(|w| !w.is_empty()),
        launch_plan: params.plan.filter(|p| !p.is_empty()),
        since_seconds: params.since,
        after: params.token.filter(|t| !t.is_empty()),
        limit: params.limit.unwrap_or(50).clamp(1, MAX_PAGE),
    };
    let page = match read(&console, &scope, move |source| source.list(&query)).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let body = json!({
        "executions": page.executions,
        "nextToken": page.next_token.unwrap_or_default(),
        "runnerGone": page.runner_gone,
        "skipped": page.skipped,
    });
    json_answer(&headers, &body)
}

async fn get_run(
    State(console): State<Arc<Console>>,
    Query(scope): Query<Scope>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let wanted = name.clone();
    let view = match read(&console, &scope, move |source| source.run(&wanted)).await {
        Ok(Some(view)) => view,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "ExecutionNotFound", &format!("no run named {name}")),
        Err(response) => return response,
    };
    let mut body = json!({
        "execution": view.execution,
        "nodes": view.nodes,
        "runnerGone": view.runner_gone,
    });
    match view.workflow {
        Some(workflow) => body["workflow"] = json!(workflow),
        None => {
            body["workflowMissing"] =
                json!("this run was recorded before the store kept each run's workflow: no graph to draw")
        }
    }
    json_answer(&headers, &body)
}

/// The launch plans with their schedules, next fires and last ten ticks.
async fn launch_plans(State(console): State<Arc<Console>>, Query(scope): Query<Scope>, headers: HeaderMap) -> Response {
    let plans = match read(&console, &scope, move |source| source.launch_plans(10)).await {
        Ok(plans) => plans,
        Err(response) => return response,
    };
    let plans: Vec<Value> = plans
        .into_iter()
        .map(|p| {
            json!({"name": p.name, "activeVersion": p.active_version, "schedule": p.schedule, "state": p.state,
                   "nextFires": p.next_fires, "ticks": p.ticks})
        })
        .collect();
    json_answer(&headers, &json!({ "launchPlans": plans }))
}

#[derive(serde::Deserialize)]
struct GridParams {
    limit: Option<usize>,
}

/// The newest runs of a workflow with their nodes, and the newest one's compiled workflow:
/// the workflow page's graph and its runs × nodes grid.
async fn workflow_runs(
    State(console): State<Arc<Console>>,
    Query(scope): Query<Scope>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<GridParams>,
) -> Response {
    let limit = params.limit.unwrap_or(25).clamp(1, 100);
    let wanted = name.clone();
    let runs = match read(&console, &scope, move |source| source.runs_of(&wanted, limit)).await {
        Ok(runs) => runs,
        Err(response) => return response,
    };
    let workflow = runs.iter().find_map(|run| run.workflow.clone());
    let runs: Vec<Value> = runs
        .into_iter()
        .map(|run| json!({"execution": run.execution, "nodes": run.nodes, "runnerGone": run.runner_gone}))
        .collect();
    json_answer(&headers, &json!({"workflow": workflow, "runs": runs}))
}

#[derive(serde::Deserialize)]
struct LogParams {
    attempt: Option<u32>,
    stream: Option<String>,
    item: Option<u32>,
    /// The last this many lines (default 200)...
    tail: Option<usize>,
    /// ...or `length` bytes from `offset`.
    offset: Option<u64>,
    length: Option<u64>,
}

async fn node_log(
    State(console): State<Arc<Console>>,
    Query(scope): Query<Scope>,
    Path((name, node)): Path<(String, String)>,
    Query(params): Query<LogParams>,
) -> Response {
    let stream = match params.stream.as_deref() {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => {
            return problem(StatusCode::BAD_REQUEST, "BadRequest", &format!("stream {other:?}: use stdout or stderr"));
        }
    };
    let range = match (params.offset, params.tail) {
        (Some(offset), None) => LogRange::Bytes { offset, length: params.length.unwrap_or(source::MAX_LOG_BYTES) },
        (None, tail) => LogRange::Tail { lines: tail.unwrap_or(200) },
        (Some(_), Some(_)) => {
            return problem(StatusCode::BAD_REQUEST, "BadRequest", "ask for `tail` lines or an `offset`, not both");
        }
    };
    let path = match params.item {
        Some(item) => format!("{node}/{item}"),
        None => node.clone(),
    };
    let attempt = params.attempt;
    let (run, wanted) = (name.clone(), path.clone());
    match read(&console, &scope, move |source| source.log(&run, &wanted, attempt, stream, range)).await {
        Ok(Some(chunk)) => {
            let attempts: Vec<String> = chunk.attempts.iter().map(u32::to_string).collect();
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
                    (header::HeaderName::from_static("x-log-size"), chunk.size.to_string()),
                    (header::HeaderName::from_static("x-log-offset"), chunk.offset.to_string()),
                    (header::HeaderName::from_static("x-log-attempt"), chunk.attempt.to_string()),
                    (header::HeaderName::from_static("x-log-attempts"), attempts.join(",")),
                    (header::HeaderName::from_static("x-log-label"), chunk.label),
                ],
                chunk.text,
            )
                .into_response()
        }
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "LogNotFound",
            &format!(
                "run {name} has no log of node {path}{}",
                attempt.map(|a| format!(" attempt {a}")).unwrap_or_default()
            ),
        ),
        Err(response) => response,
    }
}
