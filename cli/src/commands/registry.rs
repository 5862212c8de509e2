//! `updraft register`, `get`, `launchplan` and `config init`: the registry
//! through the HTTPS API (docs/api/openapi.yaml), signed with SigV4.

use super::executions::OutputFormat;
use crate::remote::{self, Config};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use updraft_aws::api_client::{ApiAnswer, ApiClient};
use updraft_aws::s3::S3Uri;
use updraft_core::compile::{Compiled, DEFAULT_DOMAIN, DEFAULT_PROJECT, Options, compile_text};
use updraft_core::proto::api::{
    ListNamesResponse, ListProjectsResponse, ListVersionsResponse, RegisterRequest, RegisterResponse, ScheduleStatus,
};
use updraft_core::proto::core::CodeBundle;

/// Specs sent to the API are read with the server's limit (it answers 413 past it).
const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// What `updraft get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Tasks,
    Workflows,
    LaunchPlans,
    Projects,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Tasks => "tasks",
            Kind::Workflows => "workflows",
            Kind::LaunchPlans => "launch-plans",
            Kind::Projects => "projects",
        }
    }
}

/// Where remote commands send their requests, and the namespace defaults.
#[derive(clap::Args, Clone, Default)]
pub struct Remote {
    /// The API's stage URL (default: UPDRAFT_ENDPOINT, then the config file).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Project (default: the config file's, else `default`).
    #[arg(long)]
    pub project: Option<String>,
    /// Domain (default: the config file's, else `development`).
    #[arg(long)]
    pub domain: Option<String>,
}

pub(crate) struct Session {
    pub config: Config,
    client: ApiClient,
    pub runtime: tokio::runtime::Runtime,
    pub project: String,
    pub domain: String,
}

pub(crate) fn session(remote: &Remote) -> Result<Session, String> {
    let config = remote::resolve(remote.endpoint.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let client = runtime.block_on(remote::client(&config))?;
    let project = remote.project.clone().or(config.project.clone()).unwrap_or_else(|| "default".into());
    let domain = remote.domain.clone().or(config.domain.clone()).unwrap_or_else(|| "development".into());
    Ok(Session { config, client, runtime, project, domain })
}

impl Session {
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<ApiAnswer, String> {
        self.runtime.block_on(self.send_async(method, path, query, body))
    }

    /// [`send`](Session::send), to be awaited with others on the session's runtime.
    pub async fn send_async(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<ApiAnswer, String> {
        self.client.send(method, path, query, body).await.map_err(|e| e.to_string())
    }
}

/// An answer's JSON when it is a success; the API's refusal, printed, when not.
fn accepted(answer: ApiAnswer) -> Result<Value, ExitCode> {
    if (200..300).contains(&answer.status) {
        return serde_json::from_slice(&answer.body).map_err(|e| {
            eprintln!("error: the API answered {} with a body that is not JSON: {e}", answer.status);
            ExitCode::FAILURE
        });
    }
    eprintln!("{}", remote::describe_refusal(&answer));
    Err(remote::refusal_exit(&answer))
}

/// Registers each file's entities under `version`, one all-or-nothing request per file.
pub fn register(
    files: &[PathBuf],
    version: &str,
    activate: bool,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    register_files(files, version, activate, remote, output, false)
}

/// `launch --register`'s first step: as `register`, its lines on stderr (stdout is the launch's).
/// The version `launch --register` uses when none is given: `c-` and 12 hex digits of
/// the sha256 of the spec document (a `.py` spec's translation) and its code bundle's
/// digest, if its tasks need code. The same content gives the same version, so an
/// unchanged project registers as a no-op and a changed one as a new version, never
/// a conflict.
pub fn content_version(file: &Path) -> Result<String, Box<dyn std::error::Error>> {
    use sha2::Digest;
    let (spec, file_name) = crate::spec_file::spec_text(file, MAX_SPEC_BYTES)?;
    let mut digest = sha2::Sha256::new();
    digest.update(spec.as_bytes());
    let format = updraft_core::spec::Format::from_file_name(&file_name);
    let options = updraft_core::compile::Options::default();
    if let Ok(compiled) = updraft_core::compile::compile_text(&spec, format, &options)
        && compiled.needs_code()
    {
        let dir = crate::spec_file::code_dir(file)?;
        digest.update(crate::bundle::pack(&dir)?.digest.as_bytes());
    }
    let hex: String = digest.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!("c-{hex}"))
}

pub fn register_before_launch(
    file: &Path,
    version: &str,
    remote: &Remote,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    register_files(&[file.to_path_buf()], version, false, remote, OutputFormat::Text, true)
}

fn register_files(
    files: &[PathBuf],
    version: &str,
    activate: bool,
    remote: &Remote,
    output: OutputFormat,
    lines_to_stderr: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let mut code = ExitCode::SUCCESS;
    let mut answers = Vec::new();
    for file in files {
        let (spec, file_name) = match crate::spec_file::spec_text(file, MAX_SPEC_BYTES) {
            Ok(spec) => spec,
            Err(e) => {
                eprintln!("{e}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        let project = remote.project.clone().or(session.config.project.clone()).unwrap_or_default();
        let domain = remote.domain.clone().or(session.config.domain.clone()).unwrap_or_default();
        // Compiled once here for what the request needs to know: where it goes, and its code.
        let compiled = compile_here(&spec, &file_name, &project, &domain);
        let (path_project, path_domain) = registered_in(compiled.as_ref(), &project, &domain);
        let bundle = match code_bundle(&session, file, compiled.as_ref(), &path_project) {
            Ok(bundle) => bundle,
            Err(e) => {
                eprintln!("error: {}: {e}\n  ({}: nothing of it was registered)", file.display(), file.display());
                code = ExitCode::FAILURE;
                continue;
            }
        };
        let path = format!("/v1/register/{path_project}/{path_domain}");
        let request =
            RegisterRequest { project, domain, version: version.into(), spec, file_name, activate, code: bundle };
        let answer = session.send("POST", &path, &[], Some(serde_json::to_vec(&request)?))?;
        let status = answer.status;
        match accepted(answer) {
            Ok(body) => {
                let response: RegisterResponse = serde_json::from_value(body.clone())?;
                if output == OutputFormat::Text {
                    for (what, ids) in [("registered", &response.created), ("unchanged", &response.unchanged)] {
                        for id in ids {
                            let kind = updraft_core::proto::core::ResourceType::try_from(id.resource_type)
                                .map(|k| k.as_str_name().to_lowercase().replace('_', " "))
                                .unwrap_or_default();
                            let line = format!(
                                "{what:<10} {kind:<11} {}/{}/{} {}",
                                id.project, id.domain, id.name, id.version
                            );
                            if lines_to_stderr {
                                eprintln!("{line}");
                            } else {
                                println!("{line}");
                            }
                        }
                    }
                }
                answers.push(serde_json::json!({"file": file, "status": status, "response": body}));
            }
            Err(failure) => {
                eprintln!("  ({}: nothing of it was registered)", file.display());
                code = failure;
            }
        }
    }
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    }
    Ok(code)
}

/// `spec` compiled as the API will compile it (with the project and domain
/// overrides, when given); `None` when it does not compile: the API's answer then
/// lists what is wrong with it.
fn compile_here(spec: &str, file_name: &str, project: &str, domain: &str) -> Option<Compiled> {
    let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let options = Options { project: given(project), domain: given(domain), version: String::new() };
    compile_text(spec, updraft_core::spec::Format::from_file_name(file_name), &options).ok()
}

/// The project and domain a spec registers in: the overrides, else the spec's
/// own, else the defaults. The request goes to their path (the API refuses a spec
/// whose project is not its path's); one that does not compile goes to the
/// overrides' or the defaults' path.
fn registered_in(compiled: Option<&Compiled>, project: &str, domain: &str) -> (String, String) {
    let or = |given: &str, default: &str| if given.is_empty() { default.to_string() } else { given.to_string() };
    match compiled {
        Some(compiled) => (compiled.project.clone(), compiled.domain.clone()),
        None => (or(project, DEFAULT_PROJECT), or(domain, DEFAULT_DOMAIN)),
    }
}

/// The spec directory's code bundle, uploaded to the stack's bucket under its
/// project and digest unless it is there already — when a task of the spec needs
/// code (docs/task-contract.md, "Code bundles"). A spec that does not compile here
/// is sent without one: the API answers with its problems.
fn code_bundle(
    session: &Session,
    file: &Path,
    compiled: Option<&Compiled>,
    project: &str,
) -> Result<Option<CodeBundle>, String> {
    if !compiled.is_some_and(Compiled::needs_code) {
        return Ok(None);
    }
    let dir = crate::spec_file::code_dir(file).map_err(|e| format!("cannot read its directory: {e}"))?;
    let bundle = crate::bundle::pack(&dir).map_err(|e| e.to_string())?;
    let bucket = session.config.data_bucket.clone().ok_or(
        "its tasks' code is uploaded to the stack's bucket, which the config does not name: \
         run `updraft config init --stack NAME` again",
    )?;
    let to = S3Uri { bucket, key: bundle.key(project) };
    let s3_client =
        updraft_aws::config::s3_client(&session.runtime.block_on(crate::remote::sdk_config(&session.config)));
    let uploaded = session.runtime.block_on(async {
        if updraft_aws::s3::exists(&s3_client, &to).await? {
            return Ok("already in the bucket");
        }
        updraft_aws::s3::put_bytes(&s3_client, &to, bundle.bytes.clone(), "application/gzip").await.map(|_| "uploaded")
    });
    let how = uploaded.map_err(|e| format!("cannot upload its code bundle: {e}"))?;
    eprintln!(
        "code bundle {} of {} ({} files, {} bytes): {how}",
        bundle.digest,
        dir.display(),
        bundle.files,
        bundle.content_bytes
    );
    Ok(Some(CodeBundle { uri: to.to_string(), digest: bundle.digest, size_bytes: bundle.bytes.len() as u64 }))
}

/// What `updraft get` asks for.
pub struct Wanted {
    pub kind: Kind,
    pub name: Option<String>,
    pub version: Option<String>,
    pub prefix: Option<String>,
    pub limit: usize,
}

/// `updraft get KIND [NAME] [--version V]`: names, a name's versions, or one entity.
pub fn get(wanted: &Wanted, remote: &Remote, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (kind, name, version, limit) = (wanted.kind, wanted.name.as_deref(), wanted.version.as_deref(), wanted.limit);
    let session = session(remote)?;
    let base = format!("/v1/{}/{}/{}", kind.segment(), session.project, session.domain);
    let (path, listing) = match (kind, name, version) {
        (Kind::Projects, ..) => ("/v1/projects".to_string(), true),
        (_, None, Some(_)) => return Err("--version needs a NAME".into()),
        (_, None, None) => (base, true),
        (_, Some(name), None) => (format!("{base}/{name}"), true),
        (_, Some(name), Some(version)) => (format!("{base}/{name}/{version}"), false),
    };
    let mut items: Vec<Value> = Vec::new();
    // A launch plan's versions come with its schedule (first page only).
    let mut schedule: Option<Value> = None;
    let mut token = String::new();
    loop {
        let page_size = limit.clamp(1, 1000).to_string();
        let mut query = vec![];
        if listing && kind != Kind::Projects {
            query.push(("limit", page_size.as_str()));
            if !token.is_empty() {
                query.push(("token", token.as_str()));
            }
            if let Some(prefix) = &wanted.prefix {
                query.push(("prefix", prefix.as_str()));
            }
        }
        let answer = session.send("GET", &path, &query, None)?;
        let body = match accepted(answer) {
            Ok(body) => body,
            Err(code) => return Ok(code),
        };
        if !listing {
            println!("{}", serde_json::to_string_pretty(&body)?);
            return Ok(ExitCode::SUCCESS);
        }
        let field = match (kind, name) {
            (Kind::Projects, _) => "projects",
            (_, Some(_)) => "versions",
            _ => "entities",
        };
        items.extend(body.get(field).and_then(Value::as_array).cloned().unwrap_or_default());
        schedule = schedule.or_else(|| body.get("schedule").cloned());
        token = body.get("nextToken").and_then(Value::as_str).unwrap_or_default().to_string();
        if token.is_empty() || items.len() >= limit {
            break;
        }
    }
    items.truncate(limit);
    if output == OutputFormat::Json {
        let document = match &schedule {
            Some(schedule) => serde_json::json!({"versions": items, "schedule": schedule}),
            None => Value::Array(items),
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_table(kind, name.is_some(), items)?;
    if let Some(schedule) = schedule.map(serde_json::from_value::<ScheduleStatus>).transpose()? {
        print_schedule(&schedule);
    }
    Ok(ExitCode::SUCCESS)
}

/// A launch plan's schedule, registry next to stack, drift flagged with its fix.
fn print_schedule(schedule: &ScheduleStatus) {
    let or_none = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    println!();
    println!("SCHEDULE {}", schedule.name);
    println!("  {:<10} {:<10} {:<28} ZONE", "", "VERSION", "EXPRESSION");
    println!(
        "  {:<10} {:<10} {:<28} {}",
        "registry",
        or_none(&schedule.active_version),
        or_none(&schedule.expected_expression),
        or_none(&schedule.expected_timezone)
    );
    println!(
        "  {:<10} {:<10} {:<28} {}  ({})",
        "stack",
        or_none(&schedule.version),
        or_none(&schedule.expression),
        or_none(&schedule.timezone),
        schedule.state
    );
    if !schedule.changed_by.is_empty() {
        println!("  last activated or deactivated by {} at {}", schedule.changed_by, or_none(&schedule.changed_at));
    }
    if schedule.drift.is_empty() {
        println!("  in sync");
    }
    for drift in &schedule.drift {
        println!("  DRIFT: {drift}");
    }
}

fn print_table(kind: Kind, versions: bool, items: Vec<Value>) -> Result<(), Box<dyn std::error::Error>> {
    let time = |t: &Option<updraft_core::proto::Timestamp>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    if kind == Kind::Projects {
        let projects: ListProjectsResponse = serde_json::from_value(serde_json::json!({"projects": items}))?;
        println!("{:<30} DOMAINS", "PROJECT");
        for p in projects.projects {
            println!("{:<30} {}", p.name, p.domains.join(", "));
        }
    } else if versions {
        let list: ListVersionsResponse = serde_json::from_value(serde_json::json!({"versions": items}))?;
        println!("{:<24} {:<20} {:<20} REGISTERED BY", "VERSION", "CREATED (UTC)", "DIGEST");
        for v in list.versions {
            let digest: String = v.digest.chars().take(19).collect();
            let version = v.id.map(|i| i.version).unwrap_or_default();
            println!("{version:<24} {:<20} {digest:<20} {}", time(&v.created_at), v.registered_by);
        }
    } else {
        let list: ListNamesResponse = serde_json::from_value(serde_json::json!({"entities": items}))?;
        let active = if kind == Kind::LaunchPlans { "ACTIVE" } else { "" };
        println!("{:<30} {:<24} {:<20} {active}", "NAME", "LATEST VERSION", "UPDATED (UTC)");
        for e in list.entities {
            println!("{:<30} {:<24} {:<20} {}", e.name, e.latest_version, time(&e.updated_at), e.active_version);
        }
    }
    Ok(())
}

/// `updraft launchplan activate|deactivate NAME --version V`.
pub fn set_active(
    name: &str,
    version: &str,
    active: bool,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let action = if active { "activate" } else { "deactivate" };
    let path = format!("/v1/launch-plans/{}/{}/{name}/{version}/{action}", session.project, session.domain);
    let answer = session.send("POST", &path, &[], None)?;
    match accepted(answer) {
        Ok(body) if output == OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&body)?),
        Ok(body) => {
            let now = body.pointer("/launchPlan/active").and_then(Value::as_bool).unwrap_or(false);
            println!("launch plan {name} {version}: {}", if now { "active" } else { "inactive" });
        }
        Err(code) => return Ok(code),
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft launchplan ticks PLAN`: each firing of the plan's schedule, newest first.
pub fn ticks(
    name: &str,
    limit: usize,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let path = format!("/v1/launch-plans/{}/{}/{name}/ticks", session.project, session.domain);
    let limit = limit.clamp(1, 1000).to_string();
    let answer = session.send("GET", &path, &[("limit", limit.as_str())], None)?;
    let body = match accepted(answer) {
        Ok(body) => body,
        Err(code) => return Ok(code),
    };
    let listed: updraft_core::proto::api::ListTicksResponse = serde_json::from_value(body)?;
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&listed.ticks)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<22} {:<10} {:<9} {:<40} MESSAGE", "SCHEDULED (UTC)", "VERSION", "OUTCOME", "EXECUTION");
    for t in &listed.ticks {
        println!("{:<22} {:<10} {:<9} {:<40} {}", t.scheduled_time, t.version, t.outcome, t.execution, t.message);
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft cache list|delete TASK --version V`.
pub fn cache(
    task: &str,
    version: &str,
    delete: bool,
    remote: &Remote,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let session = session(remote)?;
    let path = format!("/v1/cache/{}/{}/{task}/{version}", session.project, session.domain);
    let answer = session.send(if delete { "DELETE" } else { "GET" }, &path, &[], None)?;
    let body = match accepted(answer) {
        Ok(body) => body,
        Err(code) => return Ok(code),
    };
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else if delete {
        let deleted = body.get("deleted").and_then(Value::as_u64).unwrap_or(0);
        let by = body.get("evictedBy").and_then(Value::as_str).unwrap_or_default();
        let by = if by.is_empty() { String::new() } else { format!(" (recorded: evicted by {by})") };
        println!("deleted {deleted} cache entr{} of {task} {version}{by}", if deleted == 1 { "y" } else { "ies" });
    } else {
        println!("{:<66} STORED (UTC)", "CACHE KEY");
        for entry in body.get("entries").and_then(Value::as_array).into_iter().flatten() {
            let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            println!("{:<66} {}", text("key"), text("createdAt"));
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        if !text("lastEvictedBy").is_empty() {
            println!("last evicted by {} at {}", text("lastEvictedBy"), text("lastEvictedAt"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft config init --stack NAME`: the stack's API endpoint into the config file.
pub fn config_init(
    stack: &str,
    endpoint_url: Option<&str>,
    region: Option<&str>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sdk = runtime.block_on(updraft_aws::config::sdk_config(endpoint_url, region));
    let (path, config) = runtime.block_on(write_stack_config(&sdk, stack, false))?;
    println!("wrote {}: endpoint {}", path.display(), config.endpoint);
    Ok(ExitCode::SUCCESS)
}

/// `updraft config show`: the resolved settings, the file they come from, and
/// which of --endpoint / UPDRAFT_ENDPOINT / the file chose the endpoint.
pub fn config_show(endpoint: Option<&str>, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let path = remote::config_path()?;
    let config = remote::resolve(endpoint)?;
    let source = if endpoint.is_some() {
        "--endpoint".to_string()
    } else if std::env::var("UPDRAFT_ENDPOINT").is_ok_and(|e| !e.trim().is_empty()) {
        "UPDRAFT_ENDPOINT".to_string()
    } else {
        path.display().to_string()
    };
    if output == OutputFormat::Json {
        let mut shown = serde_json::to_value(&config)?;
        shown["file"] = Value::from(path.display().to_string());
        shown["endpoint_from"] = Value::from(source);
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let or_default = |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| format!("({default})"));
    println!("file              {}", path.display());
    println!("endpoint          {} (from {source})", config.endpoint);
    println!("region            {}", or_default(&config.region, "the AWS default region"));
    println!("stack             {}", or_default(&config.stack, "not recorded"));
    println!("data bucket       {}", or_default(&config.data_bucket, "none: run config init again to upload files"));
    println!("aws endpoint      {}", or_default(&config.aws_endpoint_url, "AWS itself"));
    println!(
        "project / domain  {} / {}",
        or_default(&config.project, "default"),
        or_default(&config.domain, "development")
    );
    println!(
        "credentials       {}",
        if config.sandbox { "the sandbox's test key" } else { "the usual AWS settings (environment, profile, role)" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Points the config file at `stack` (read through `sdk`); `sandbox`: the offline sandbox's.
pub(crate) async fn write_stack_config(
    sdk: &updraft_aws::config::SdkConfig,
    stack: &str,
    sandbox: bool,
) -> Result<(PathBuf, Config), String> {
    let path = remote::config_path()?;
    let outputs = match updraft_aws::deploy::stack_outputs(sdk, stack).await {
        Ok(outputs) => outputs,
        Err(e) => {
            return Err(format!(
                "{e}\n  hint: deploy it with `updraft deploy --stack-name {stack}`, or name the stack it made"
            ));
        }
    };
    let endpoint = match (sdk.endpoint_url(), outputs.get("ApiId"), outputs.get("ApiStageName")) {
        // An emulator serves every stage on its own address, LocalStack's way.
        (Some(emulator), Some(api), Some(stage)) => {
            format!("{}/restapis/{api}/{stage}/_user_request_", emulator.trim_end_matches('/'))
        }
        _ => match outputs.get("ApiUrl") {
            Some(url) => url.clone(),
            None => return Err(format!("stack {stack} has no ApiUrl output; is it an Updraft stack?")),
        },
    };
    let mut config = remote::read_config(&path).ok().flatten().unwrap_or_default();
    config.endpoint = endpoint;
    config.region = sdk.region().map(|r| r.to_string());
    config.data_bucket = outputs.get("DataBucketName").cloned();
    config.aws_endpoint_url = sdk.endpoint_url().map(str::to_string);
    config.stack = Some(stack.into());
    config.sandbox = sandbox;
    remote::write_config(&path, &config)?;
    Ok((path, config))
}
