//! `updraft launch` and `updraft executions list|get --remote`: runs in the
//! cloud through the HTTPS API. Inputs are typed by the workflow (from the spec
//! file, or the registered version); local files are uploaded to the stack's
//! bucket under their content digest first. `--watch` follows the run with the
//! same progress lines and summary table as a local run.

use super::executions::{OutputFormat, print_execution};
use super::registry::{Remote, Session, session};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use updraft_aws::api_client::ApiAnswer;
use updraft_aws::s3::{self, S3Uri};
use updraft_core::compile::Options;
use updraft_core::proto::api::{
    AbortExecutionRequest, AbortExecutionResponse, CreateExecutionResponse, GetExecutionResponse, GetWorkflowResponse,
    ListExecutionsResponse, RerunExecutionRequest,
};
use updraft_core::proto::core::{
    ExecutionId, Literal, NodePhase, WorkflowPhase, WorkflowTemplate, literal::Value as LV,
};

pub struct LaunchArgs {
    /// A spec file, or the name of a registered workflow.
    pub target: String,
    pub workflow: Option<String>,
    pub version: String,
    pub inputs: Vec<String>,
    pub name: Option<String>,
    pub overwrite_cache: bool,
    pub watch: bool,
    /// Register the spec file under `version` first (`launch --register`).
    pub register: bool,
    pub remote: Remote,
    pub output: OutputFormat,
}

/// The workflow's template: compiled from the spec file, or read from the registry.
fn template(args: &LaunchArgs, session: &Session) -> Result<(WorkflowTemplate, PathBuf), String> {
    let path = PathBuf::from(&args.target);
    if path.is_file() {
        let options = Options {
            project: args.remote.project.clone(),
            domain: args.remote.domain.clone(),
            version: args.version.clone(),
        };
        let compiled = crate::spec_file::load(&path, &options).map_err(|e| e.to_string())?;
        let names: Vec<String> =
            compiled.workflows.iter().filter_map(|w| Some(w.template.as_ref()?.id.as_ref()?.name.clone())).collect();
        let name = match (&args.workflow, names.as_slice()) {
            (Some(name), _) => name.clone(),
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(format!(
                    "{} defines {} workflows; name one: {}",
                    path.display(),
                    names.len(),
                    names.join(", ")
                ));
            }
        };
        let workflow =
            compiled.workflow(&name).ok_or_else(|| format!("{} has no workflow \"{name}\"", path.display()))?;
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        return Ok((workflow.template.clone().unwrap_or_default(), dir));
    }
    let route = format!("/v1/workflows/{}/{}/{}/{}", session.project, session.domain, args.target, args.version);
    let answer = session.send("GET", &route, &[], None)?;
    if answer.status != 200 {
        return Err(crate::remote::describe_refusal(&answer).trim_start_matches("error: ").to_string());
    }
    let response: GetWorkflowResponse = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    let template = response.workflow.and_then(|w| w.template).unwrap_or_default();
    Ok((template, std::env::current_dir().unwrap_or_default()))
}

/// Uploads every local file or directory an input names to the bucket, under
/// the project's inputs (which its tasks alone may read) and its digest.
async fn upload_blobs(
    s3_client: &aws_sdk_s3::Client,
    bucket: &str,
    project: &str,
    value: &mut Literal,
) -> Result<(), String> {
    let prefix = updraft_core::project_access::inputs_prefix(project);
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match &mut value.value {
            Some(LV::File(b)) | Some(LV::Dataframe(b)) if !b.uri.starts_with("s3://") => {
                let hex = b.digest.trim_start_matches("sha256:").to_string();
                let to = S3Uri { bucket: bucket.into(), key: format!("{prefix}sha256/{hex}") };
                if !s3::exists(s3_client, &to).await.map_err(|e| e.to_string())? {
                    s3::upload_file(s3_client, std::path::Path::new(&b.uri), &to).await.map_err(|e| e.to_string())?;
                }
                b.uri = to.to_string();
            }
            Some(LV::Directory(b)) if !b.uri.starts_with("s3://") => {
                let hex = b.digest.trim_start_matches("sha256:").to_string();
                let to = S3Uri { bucket: bucket.into(), key: format!("{prefix}dirs/{hex}/") };
                s3::upload_dir(s3_client, std::path::Path::new(&b.uri), &to).await.map_err(|e| e.to_string())?;
                b.uri = to.to_string();
            }
            Some(LV::List(l)) => stack.extend(l.values.iter_mut()),
            Some(LV::Map(m)) | Some(LV::Struct(m)) => stack.extend(m.values.values_mut()),
            _ => {}
        }
    }
    Ok(())
}

fn has_local_blobs(value: &Literal) -> bool {
    updraft_core::ports::blobs(value).iter().any(|(uri, _, _)| !uri.starts_with("s3://"))
}

pub fn launch(mut args: LaunchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if args.register {
        let file = PathBuf::from(&args.target);
        if !file.is_file() {
            eprintln!("error: --register needs a spec file; {} is not one", args.target);
            return Ok(ExitCode::from(crate::exit::USAGE));
        }
        if args.version.is_empty() {
            args.version = super::registry::content_version(&file)?;
            eprintln!("version {} (derived from the spec and its code; --version names one)", args.version);
        }
        let registered = super::registry::register_before_launch(&file, &args.version, &args.remote)?;
        if registered != ExitCode::SUCCESS {
            return Ok(registered);
        }
    }
    let session = session(&args.remote)?;
    let (template, base) = template(&args, &session)?;
    let mut inputs = match super::run::launch_inputs(&template, &args.inputs, &base) {
        Ok(inputs) => inputs,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(crate::exit::USAGE));
        }
    };
    let id = template.id.clone().unwrap_or_default();
    if inputs.values().any(has_local_blobs) {
        let Some(bucket) = session.config.data_bucket.clone() else {
            return Err(
                "local files among the inputs need the stack's bucket: run `updraft config init --stack NAME` again"
                    .into(),
            );
        };
        let sdk = session.runtime.block_on(crate::remote::sdk_config(&session.config));
        let s3_client = updraft_aws::config::s3_client(&sdk);
        for (name, value) in inputs.iter_mut() {
            if let Err(e) = session.runtime.block_on(upload_blobs(&s3_client, &bucket, &id.project, value)) {
                return Err(format!("input {name}: cannot upload to s3://{bucket}: {e}").into());
            }
        }
    }
    let values: BTreeMap<String, serde_json::Value> =
        inputs.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("literals serialize"))).collect();
    let body = json!({
        "workflow": {"project": id.project, "domain": id.domain, "name": id.name, "version": args.version},
        "inputs": {"values": values},
        "name": args.name.clone().unwrap_or_default(),
        "overwriteCache": args.overwrite_cache,
    });
    let path = format!("/v1/executions/{}/{}", id.project, id.domain);
    let answer = session.send("POST", &path, &[], Some(serde_json::to_vec(&body)?))?;
    if !(200..300).contains(&answer.status) {
        eprintln!("{}", crate::remote::describe_refusal(&answer));
        return Ok(crate::remote::refusal_exit(&answer));
    }
    let created: CreateExecutionResponse = serde_json::from_slice(&answer.body)?;
    let run = created.id.unwrap_or_default();
    let name = run.name.clone();
    if !args.watch {
        match args.output {
            OutputFormat::Json => println!("{}", String::from_utf8_lossy(&answer.body)),
            OutputFormat::Text => println!(
                "launched {name} ({} {}); follow it with: updraft executions get {name} --remote --project {}",
                id.name, args.version, id.project
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.output == OutputFormat::Text {
        println!("execution {name}: {} {} in the cloud", id.name, args.version);
    }
    watch(&session, &run, args.output)
}

/// One page of a node's log from the stack: its lines, the token to read on from,
/// and whether the node has ended (docs/api/openapi.yaml, `getNodeLog`).
struct LogLines {
    lines: Vec<String>,
    next_token: String,
    ended: bool,
}

fn node_log_page(
    session: &Session,
    id: &ExecutionId,
    node: &str,
    item: Option<u32>,
    attempt: Option<u32>,
    token: &str,
) -> Result<LogLines, String> {
    let route = format!("/v1/executions/{}/{}/{}/nodes/{node}/logs", id.project, id.domain, id.name);
    let (item, attempt) = (item.map(|i| i.to_string()), attempt.map(|a| a.to_string()));
    let mut query = vec![("limit", "1000")];
    if !token.is_empty() {
        query.push(("token", token));
    }
    if let Some(item) = &item {
        query.push(("item", item));
    }
    if let Some(attempt) = &attempt {
        query.push(("attempt", attempt));
    }
    let answer = session.send("GET", &route, &query, None)?;
    if answer.status != 200 {
        return Err(crate::remote::describe_refusal(&answer));
    }
    let body: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    let lines = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    Ok(LogLines {
        lines,
        next_token: body["nextToken"].as_str().unwrap_or(token).to_string(),
        ended: body["ended"].as_bool().unwrap_or(true),
    })
}

/// What `launch --watch` has printed of each node's log.
#[derive(Default)]
struct FollowedLogs {
    tokens: BTreeMap<String, String>,
    /// Nodes whose log is wholly printed (ended, then an empty page).
    done: std::collections::BTreeSet<String>,
    last_look: Option<std::time::Instant>,
    /// Where the next look starts among the nodes still followed.
    cursor: usize,
}

/// How often `launch --watch` reads task logs, and how many nodes' a look reads.
const LOG_LOOK_EVERY: Duration = Duration::from_secs(2);
const NODES_PER_LOOK: usize = 4;

impl FollowedLogs {
    /// Prints the lines written since the last look, as `node | line`, for a few of
    /// the nodes still followed; with `drain`, every remaining line of every node.
    fn look(&mut self, session: &Session, id: &ExecutionId, nodes: &[String], drain: bool) {
        if !drain && self.last_look.is_some_and(|t| t.elapsed() < LOG_LOOK_EVERY) {
            return;
        }
        self.last_look = Some(std::time::Instant::now());
        let open: Vec<&String> = nodes.iter().filter(|n| !self.done.contains(*n)).collect();
        if open.is_empty() {
            return;
        }
        let count = if drain { open.len() } else { NODES_PER_LOOK.min(open.len()) };
        let start = self.cursor % open.len();
        self.cursor = start + count;
        for node in open.iter().cycle().skip(start).take(count) {
            // A drain reads until the node's log is exhausted (bounded: a page holds 1,000 lines).
            for _ in 0..if drain { 100 } else { 1 } {
                let token = self.tokens.get(*node).cloned().unwrap_or_default();
                let Ok(page) = node_log_page(session, id, node, None, None, &token) else { break };
                for line in &page.lines {
                    println!("  {node} | {line}");
                }
                self.tokens.insert(node.to_string(), page.next_token);
                if page.lines.is_empty() {
                    if page.ended {
                        self.done.insert(node.to_string());
                    }
                    break;
                }
            }
        }
    }
}

/// `updraft logs ID [NODE] --remote [-f]`: a cloud run's task logs through the
/// API, every node's (or one's); with `follow`, until each has ended.
pub fn logs_remote(
    name: &str,
    node: Option<&str>,
    item: Option<u32>,
    attempt: Option<u32>,
    follow: bool,
    remote: &Remote,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if item.is_some() && node.is_none() {
        eprintln!("error: --item needs the map node: updraft logs {name} NODE --item I --remote");
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    if attempt.is_some() && node.is_none() {
        eprintln!("error: --attempt needs the node: updraft logs {name} NODE --attempt N --remote");
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    let session = session(remote)?;
    let id = ExecutionId { project: session.project.clone(), domain: session.domain.clone(), name: name.into() };
    let nodes: Vec<String> = match node {
        Some(node) => vec![node.to_string()],
        None => match get(&session, &id)? {
            Ok(run) => run.nodes.iter().filter_map(|n| n.id.as_ref().map(|i| i.node_id.clone())).collect(),
            Err(code) => return Ok(code),
        },
    };
    for node in &nodes {
        if nodes.len() > 1 {
            println!("==> {node} <==");
        }
        let mut token = String::new();
        loop {
            let page = match node_log_page(&session, &id, node, item, attempt, &token) {
                Ok(page) => page,
                Err(refusal) => {
                    eprintln!("{refusal}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for line in &page.lines {
                println!("{line}");
            }
            token = page.next_token;
            if page.lines.is_empty() {
                if page.ended || !follow {
                    break;
                }
                std::thread::sleep(LOG_LOOK_EVERY);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls the run until it ends, printing each node's phase change and, in text,
/// what its tasks write as they write it (`node | line`, from CloudWatch).
fn watch(session: &Session, id: &ExecutionId, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut seen: BTreeMap<String, i32> = BTreeMap::new();
    let mut logs = FollowedLogs::default();
    // Watching outlives a busy API: a 5xx, a throttle or a dropped connection is
    // tried again for this long (the run goes on regardless) before giving up.
    let patience = Duration::from_secs(300);
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        let answer = send_get(session, id);
        let transient = match &answer {
            Ok(answer) if answer.status >= 500 || answer.status == 429 => Some(format!("HTTP {}", answer.status)),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        if let Some(why) = transient {
            let since = *failing_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < patience {
                eprintln!("  (the API did not answer: {why}; asking again)");
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        }
        failing_since = None;
        let run = match read_run(session, id, answer?)? {
            Ok(run) => run,
            Err(code) => return Ok(code),
        };
        let execution = run.execution.clone().unwrap_or_default();
        for node in &run.nodes {
            let id = node.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default();
            if seen.get(&id) != Some(&node.phase)
                && node.phase != NodePhase::Queued as i32
                && output == OutputFormat::Text
            {
                let phase = NodePhase::try_from(node.phase).map(|p| p.as_str_name()).unwrap_or("-");
                println!("  {id:<28} {phase}");
            }
            seen.insert(id, node.phase);
        }
        let ended = execution.phase != WorkflowPhase::WorkflowRunning as i32
            && execution.phase != WorkflowPhase::WorkflowQueued as i32;
        if output == OutputFormat::Text {
            // Nodes that never ran have no log to follow.
            let followed: Vec<String> = run
                .nodes
                .iter()
                .filter(|n| n.phase != NodePhase::Skipped as i32)
                .filter_map(|n| n.id.as_ref().map(|i| i.node_id.clone()))
                .collect();
            logs.look(session, id, &followed, ended);
        }
        if ended {
            print_execution(&execution, &run.nodes, output)?;
            // As `updraft run` ends: docs/cli.md, "Exit statuses".
            return Ok(match WorkflowPhase::try_from(execution.phase) {
                Ok(WorkflowPhase::WorkflowSucceeded) => ExitCode::SUCCESS,
                Ok(WorkflowPhase::WorkflowAborted) => ExitCode::from(crate::exit::INTERRUPTED),
                _ => ExitCode::FAILURE,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn get(
    session: &Session,
    id: &ExecutionId,
) -> Result<Result<GetExecutionResponse, ExitCode>, Box<dyn std::error::Error>> {
    read_run(session, id, send_get(session, id)?)
}

fn send_get(session: &Session, id: &ExecutionId) -> Result<ApiAnswer, String> {
    let route = format!("/v1/executions/{}/{}/{}", id.project, id.domain, id.name);
    session.send("GET", &route, &[], None)
}

/// The run in an answer with all its nodes (the pages after the answer's read too),
/// or the API's refusal printed and exit code 1.
fn read_run(
    session: &Session,
    id: &ExecutionId,
    answer: ApiAnswer,
) -> Result<Result<GetExecutionResponse, ExitCode>, Box<dyn std::error::Error>> {
    if answer.status != 200 {
        eprintln!("{}", crate::remote::describe_refusal(&answer));
        return Ok(Err(ExitCode::FAILURE));
    }
    let mut run: GetExecutionResponse = serde_json::from_slice(&answer.body)?;
    let route = format!("/v1/executions/{}/{}/{}/nodes", id.project, id.domain, id.name);
    while !run.next_token.is_empty() {
        let answer = session.send("GET", &route, &[("token", &run.next_token)], None)?;
        if answer.status != 200 {
            eprintln!("{}", crate::remote::describe_refusal(&answer));
            return Ok(Err(ExitCode::FAILURE));
        }
        let page: GetExecutionResponse = serde_json::from_slice(&answer.body)?;
        run.nodes.extend(page.nodes);
        run.next_token = page.next_token;
    }
    Ok(Ok(run))
}

/// `updraft executions get NAME --remote [--prices FILE]`.
pub fn get_remote(
    name: &str,
    remote: &Remote,
    prices: Option<&std::path::Path>,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // A price table that cannot be used is refused before anything is asked of the stack.
    let prices = match prices.map(|path| std::fs::read_to_string(path).map(|text| (path, text))).transpose() {
        Ok(None) => None,
        Ok(Some((path, text))) => match updraft_core::cost::PriceTable::from_json(&text) {
            Ok(table) => Some(table),
            Err(e) => {
                eprintln!("error: {}: {e}\n  hint: docs/cost.md lists a price table's fields", path.display());
                return Ok(ExitCode::from(2));
            }
        },
        Err(e) => return Err(e.into()),
    };
    let session = session(remote)?;
    let id = ExecutionId { project: session.project.clone(), domain: session.domain.clone(), name: name.into() };
    let run = match get(&session, &id)? {
        Ok(run) => run,
        Err(code) => return Ok(code),
    };
    let mut execution = run.execution.unwrap_or_default();
    if let (Some(table), Some(cost)) = (&prices, &mut execution.cost) {
        *cost = updraft_core::cost::estimate(&cost.usage.unwrap_or_default(), table);
    }
    print_execution(&execution, &run.nodes, output)?;
    if output == OutputFormat::Text
        && let Some(cost) = &execution.cost
    {
        print_cost(cost);
    }
    Ok(ExitCode::SUCCESS)
}

/// A cloud run's usage and its estimated cost.
fn print_cost(cost: &updraft_core::proto::core::RunCost) {
    let u = cost.usage.unwrap_or_default();
    println!(
        "\nusage: {} state transitions; {} node function invocations, {:.2} GB-s; {} DynamoDB reads, {} writes; \
              {} S3 GETs, {} PUTs/LISTs; Batch: {} attempts, {:.0} vCPU-s, {:.0} GB-s, {:.0} GPU-s",
        u.state_transitions,
        u.lambda_invocations,
        u.lambda_gb_seconds,
        u.dynamodb_read_units,
        u.dynamodb_write_units,
        u.s3_read_requests,
        u.s3_write_requests,
        u.batch_attempts,
        u.batch_vcpu_seconds,
        u.batch_gb_seconds,
        u.batch_gpu_seconds
    );
    println!(
        "cost: ${:.6} (orchestration ${:.6}, compute ${:.6}), {}",
        cost.total_usd, cost.orchestration_usd, cost.compute_usd, cost.prices
    );
}

/// `updraft executions abort NAME --remote [--reason R]`: stops the cloud run and
/// shows it as recorded after; fails when the run had ended otherwise before.
pub fn abort_remote(
    name: &str,
    reason: &str,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let route = format!("/v1/executions/{}/{}/{name}/abort", session.project, session.domain);
    let body = serde_json::to_vec(&AbortExecutionRequest { reason: reason.into() })?;
    let answer = session.send("POST", &route, &[], Some(body))?;
    if answer.status != 200 {
        eprintln!("{}", crate::remote::describe_refusal(&answer));
        return Ok(ExitCode::FAILURE);
    }
    let aborted: AbortExecutionResponse = serde_json::from_slice(&answer.body)?;
    let execution = aborted.execution.unwrap_or_default();
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"execution": execution, "stoppedNodes": aborted.stopped_nodes}))?
        );
    } else {
        let phase = super::executions::workflow_phase(execution.phase);
        let stopped =
            if aborted.stopped_nodes.is_empty() { "none".to_string() } else { aborted.stopped_nodes.join(", ") };
        println!("{name}: {phase} (jobs stopped now: {stopped})");
    }
    Ok(super::executions::abort_exit_code(execution.phase, name))
}

/// `updraft executions recover|relaunch`: a new run of a cloud run, on its inputs.
#[derive(clap::Args)]
pub struct RerunArgs {
    pub id: String,
    /// The workflow version to run; the given run's when not given.
    #[arg(long)]
    pub version: Option<String>,
    /// The new run's name (generated when not given).
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the new run to its end, as `launch --watch` does.
    #[arg(long)]
    pub watch: bool,
    /// The run is a cloud run (required: the stack's API starts the new one).
    #[arg(long)]
    pub remote: bool,
    #[command(flatten)]
    pub remote_settings: Remote,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Starts the new run through the API's `action` (`recover` or `relaunch`),
/// prints its name (and follows it with `--watch`). Without `--remote` it says
/// what to run for a local run instead.
pub fn rerun_remote(action: &'static str, args: &RerunArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (name, output) = (&args.id, args.output);
    if !args.remote {
        let local = if action == "recover" {
            format!("a local run is recovered from its spec: updraft run SPEC --recover {name}")
        } else {
            format!("a local run is run again with updraft run SPEC (its inputs: updraft executions get {name})")
        };
        eprintln!("error: updraft executions {action} takes a cloud run (--remote)\n  hint: {local}");
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    let session = session(&args.remote_settings)?;
    let route = format!("/v1/executions/{}/{}/{name}/{action}", session.project, session.domain);
    let request = RerunExecutionRequest {
        version: args.version.clone().unwrap_or_default(),
        name: args.name.clone().unwrap_or_default(),
    };
    let answer = session.send("POST", &route, &[], Some(serde_json::to_vec(&request)?))?;
    if answer.status != 200 && answer.status != 201 {
        eprintln!("{}", crate::remote::describe_refusal(&answer));
        return Ok(crate::remote::refusal_exit(&answer));
    }
    let created: CreateExecutionResponse = serde_json::from_slice(&answer.body)?;
    let id = created.id.unwrap_or_default();
    if args.watch {
        eprintln!("{action} {name} as {}", id.name);
        return watch(&session, &id, output);
    }
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&json!({"id": id, "from": name}))?);
    } else {
        println!("{}", id.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft executions list --remote`: the stack's runs of a project and domain, newest first.
/// The API filters (a page of a filter may be short while the history goes on); pages
/// read at most, so a filter that matches nothing in a long history ends.
const MAX_FILTERED_PAGES: usize = 20;

pub fn list_remote(
    limit: usize,
    filter: &super::executions::Filter,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let route = format!("/v1/executions/{}/{}", session.project, session.domain);
    let phase = filter.phase.map(|p| p.as_str_name().to_string());
    let since = filter.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (mut shown, mut token) = (Vec::new(), String::new());
    for _ in 0..MAX_FILTERED_PAGES {
        // What is still to show: the API's token goes on after the last run shown.
        let page = limit.saturating_sub(shown.len()).clamp(1, 1000).to_string();
        let mut query = vec![("limit", page.as_str())];
        for (name, value) in [("phase", &phase), ("workflow", &filter.workflow), ("since", &since)] {
            if let Some(value) = value {
                query.push((name, value.as_str()));
            }
        }
        if !token.is_empty() {
            query.push(("token", token.as_str()));
        }
        let answer = session.send("GET", &route, &query, None)?;
        if answer.status != 200 {
            eprintln!("{}", crate::remote::describe_refusal(&answer));
            return Ok(ExitCode::FAILURE);
        }
        let listed: ListExecutionsResponse = serde_json::from_slice(&answer.body)?;
        shown.extend(listed.executions);
        token = listed.next_token;
        if shown.len() >= limit || token.is_empty() {
            break;
        }
    }
    shown.truncate(limit);
    super::executions::print_list(&shown, output)?;
    Ok(ExitCode::SUCCESS)
}
