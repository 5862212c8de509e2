//! `updraft exec -- ARGV...`: the task contract inside a Batch container.
//!
//! Reads the job description from the environment, downloads the inputs from
//! S3 (checking recorded digests), runs the argv without a shell in a process
//! group of its own with stdout/stderr passed through to the container's log,
//! checks the outputs against the interface (the same check as `updraft run`),
//! uploads them, and writes `outputs.json` **last**: a reader that finds it
//! finds every output. SIGTERM (Batch stopping the job, or its timeout) stops
//! the task and exits without writing it.

use aws_sdk_s3::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use updraft_aws::s3::{self, DataError, S3Uri};
use updraft_core::cache_key;
use updraft_core::execution::contract::{self, *};
use updraft_core::execution::failure::{self, FailureCode};
use updraft_core::execution::node::fill_optional_inputs;
use updraft_core::literal;
use updraft_core::proto::core::{Blob, Literal, LiteralMap, TypedInterface};
use updraft_engine::outputs::{self, BlobKind, Output};
use updraft_engine::process::{self, Attempt, Outcome};

/// A value whose JSON is larger than this is stored as its own object and the
/// outputs document refers to it, so state payloads (256 KiB in Step Functions) stay small.
pub const VALUE_INLINE_LIMIT: usize = 64 * 1024;

/// The exit code of a job description that cannot be used (core's failure table).
pub const EXIT_BAD_JOB: u8 = 64;

/// What the environment says this job is.
#[derive(Debug)]
pub struct Job {
    pub interface: TypedInterface,
    pub inputs_uri: Option<S3Uri>,
    /// A map item: its job's items prefix and its position `j` there; its inputs are
    /// line `j` of the prefix's inputs file (`inputs_uri` for a job that has none).
    pub map_item: Option<(S3Uri, usize)>,
    pub output_prefix: S3Uri,
    pub execution_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub work_dir: PathBuf,
    pub code_dir: String,
    /// The task's code bundle and its registered digest: unpacked into the
    /// work directory, it becomes `{{code_dir}}` instead of the image's directory.
    pub code: Option<(S3Uri, String)>,
    /// (secret name, value) of secrets meant as files.
    pub secret_files: Vec<(String, String)>,
}

impl Job {
    /// Every problem at once, as `NAME: what is wrong`.
    pub fn from_env(vars: &BTreeMap<String, String>) -> Result<Job, String> {
        let mut problems = Vec::new();
        let interface = match vars.get(ENV_INTERFACE) {
            Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
                problems.push(format!("{ENV_INTERFACE}: not a task interface as JSON: {e}"));
                TypedInterface::default()
            }),
            None => {
                problems.push(format!("{ENV_INTERFACE} is not set (the job definition sets it)"));
                TypedInterface::default()
            }
        };
        // An item of a map node's array job finds its inputs and outputs under its index.
        let mut vars = vars.clone();
        let mut map_item = None;
        if let Some(prefix) = vars.get(ENV_ARRAY_PREFIX).cloned() {
            let index = (vars.get(ENV_ITEM_INDEX).or_else(|| vars.get("AWS_BATCH_JOB_ARRAY_INDEX")))
                .cloned()
                .unwrap_or_else(|| "0".into());
            match (S3Uri::parse(&format!("{}/", prefix.trim_end_matches('/'))), index.parse::<usize>()) {
                (Ok(prefix), Ok(j)) => map_item = Some((prefix, j)),
                (Err(e), _) => problems.push(format!("{ENV_ARRAY_PREFIX}: {e}")),
                (_, Err(_)) => problems.push(format!("the item index {index:?} is not a number")),
            }
            let item = format!("{}/{index}/", prefix.trim_end_matches('/'));
            vars.insert(ENV_INPUTS_URI.into(), format!("{item}inputs.json"));
            vars.insert(ENV_OUTPUT_PREFIX.into(), item);
        }
        let vars = &vars;
        let mut uri = |name: &str, required: bool| match vars.get(name) {
            Some(text) => S3Uri::parse(text).map(Some).unwrap_or_else(|e| {
                problems.push(format!("{name}: {e}"));
                None
            }),
            None if required => {
                problems.push(format!("{name} is not set (the state machine sets it per run)"));
                None
            }
            None => None,
        };
        let inputs_uri = uri(ENV_INPUTS_URI, false);
        let code_uri = uri(ENV_CODE_BUNDLE, false);
        let output_prefix = uri(ENV_OUTPUT_PREFIX, true);
        let code = match (code_uri, vars.get(ENV_CODE_DIGEST)) {
            (Some(uri), Some(digest)) => Some((uri, digest.clone())),
            (None, None) => None,
            _ => {
                problems.push(format!(
                    "{ENV_CODE_BUNDLE} and {ENV_CODE_DIGEST} go together (the job definition sets both)"
                ));
                None
            }
        };
        if !interface.inputs.is_empty() && inputs_uri.is_none() && !vars.contains_key(ENV_INPUTS_URI) {
            problems.push(format!("{ENV_INPUTS_URI} is not set, but the task has inputs"));
        }
        // Batch numbers attempts from 1, as the contract does (AWS Batch user guide, "Automated job retries").
        let attempt = match (vars.get(ENV_ATTEMPT), vars.get("AWS_BATCH_JOB_ATTEMPT")) {
            (Some(a), _) | (None, Some(a)) => a.parse().ok(),
            (None, None) => Some(1),
        }
        .unwrap_or_else(|| {
            problems.push(format!("{ENV_ATTEMPT}: not a number"));
            1
        });
        if !problems.is_empty() {
            return Err(problems.join("\n  "));
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Ok(Job {
            interface,
            inputs_uri,
            map_item,
            output_prefix: output_prefix.expect("checked above"),
            execution_id: vars.get(ENV_EXECUTION_ID).cloned().unwrap_or_default(),
            node_id: vars.get(ENV_NODE_ID).cloned().unwrap_or_default(),
            attempt,
            work_dir: vars
                .get("UPDRAFT_WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join(format!("updraft-exec-{}", std::process::id()))),
            code_dir: vars.get(ENV_CODE_DIR).cloned().unwrap_or_else(|| cwd.display().to_string()),
            code,
            secret_files: vars
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(SECRET_FILE_PREFIX)?.to_string(), v.clone())))
                .collect(),
        })
    }
}

/// The most of a map's inputs file a strided child reads in one request: the span
/// from its first line to its last, when no larger. A child of a map of small items
/// then makes one request for all its lines instead of one per item (its lines lie
/// `stride` apart, so the span is most of the file); past this, each line is read by
/// its own range, so a child's memory does not grow with the map.
pub const MAP_INPUTS_SPAN_MAX: u64 = 8 << 20;

type Shared<T> = std::sync::Mutex<BTreeMap<String, std::sync::Arc<T>>>;

/// Read once per process, by URI: a strided child runs many items of one map.
static MANIFESTS: std::sync::OnceLock<Shared<MapManifest>> = std::sync::OnceLock::new();
/// [`read_map_inputs_span`]'s reads: the inputs file's URI to (first byte, the bytes).
static INPUT_SPANS: std::sync::OnceLock<Shared<(u64, Vec<u8>)>> = std::sync::OnceLock::new();

fn remembered<T>(shared: &std::sync::OnceLock<Shared<T>>, key: &str) -> Option<std::sync::Arc<T>> {
    shared.get_or_init(Default::default).lock().expect("per-process cache").get(key).cloned()
}

fn remember<T>(shared: &std::sync::OnceLock<Shared<T>>, key: String, value: T) -> std::sync::Arc<T> {
    let value = std::sync::Arc::new(value);
    shared.get_or_init(Default::default).lock().expect("per-process cache").insert(key, value.clone());
    value
}

/// The manifest of the map job under `prefix`; `None` for a job started before maps
/// had one (or whose manifest is gone: the job's own inputs object is read instead).
async fn map_manifest(s3: &Client, prefix: &S3Uri) -> Result<Option<std::sync::Arc<MapManifest>>, Failure> {
    let at = prefix.join(MAP_MANIFEST);
    if let Some(manifest) = remembered(&MANIFESTS, &at.to_string()) {
        return Ok(Some(manifest));
    }
    let bytes = match s3::get_bytes(s3, &at).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_retryable() => return Err(Failure::Data(e)),
        Err(_) => return Ok(None),
    };
    let manifest: MapManifest =
        serde_json::from_slice(&bytes).map_err(|e| Failure::BadJob(format!("{at}: not a map manifest: {e}")))?;
    Ok(Some(remember(&MANIFESTS, at.to_string(), manifest)))
}

/// Reads, in one request, the span of the map's inputs file that holds the lines of
/// all of `jobs` (the items of one strided child), if it is at most
/// [`MAP_INPUTS_SPAN_MAX`]; each item's [`map_item_inputs`] then slices its line
/// from it. Best effort: on any failure each item reads its own line, and reports
/// what goes wrong there.
pub async fn read_map_inputs_span(s3: &Client, jobs: &[&Job]) {
    let Some((prefix, _)) = jobs.first().and_then(|job| job.map_item.as_ref()) else { return };
    let Ok(Some(manifest)) = map_manifest(s3, prefix).await else { return };
    let ranges: Option<Vec<(u64, u64)>> =
        jobs.iter().map(|job| job.map_item.as_ref().and_then(|(_, j)| manifest.inputs_range(*j))).collect();
    let Some(ranges) = ranges.filter(|ranges| ranges.len() > 1) else { return };
    let start = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let end = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    if end - start > MAP_INPUTS_SPAN_MAX {
        return;
    }
    let file = prefix.join(MAP_INPUTS);
    if let Ok(bytes) = s3::get_range(s3, &file, start, end).await
        && bytes.len() as u64 == end - start
    {
        remember(&INPUT_SPANS, file.to_string(), (start, bytes));
    }
}

/// A map item's inputs: its line of the job's inputs file, by the range its
/// manifest gives (sliced from the span [`read_map_inputs_span`] read, if it holds it).
/// `None` for a job whose manifest has no offsets (written before the file existed).
async fn map_item_inputs(s3: &Client, job: &Job) -> Result<Option<(S3Uri, Vec<u8>)>, Failure> {
    let Some((prefix, j)) = &job.map_item else { return Ok(None) };
    let Some(manifest) = map_manifest(s3, prefix).await? else { return Ok(None) };
    if manifest.inputs_offsets.is_empty() {
        return Ok(None);
    }
    let Some((start, end)) = manifest.inputs_range(*j) else {
        let at = prefix.join(MAP_MANIFEST);
        return Err(Failure::BadJob(format!("{at} has no inputs for item {j} (it names {})", manifest.items.len())));
    };
    let file = prefix.join(MAP_INPUTS);
    let spanned = remembered(&INPUT_SPANS, &file.to_string()).and_then(|span| {
        let (first, bytes) = &*span;
        let (from, to) = (start.checked_sub(*first)? as usize, end.checked_sub(*first)? as usize);
        bytes.get(from..to).map(<[u8]>::to_vec)
    });
    let bytes = match spanned {
        Some(bytes) => bytes,
        None => s3::get_range(s3, &file, start, end).await.map_err(Failure::Data)?,
    };
    Ok(Some((S3Uri { key: format!("{}#{j}", file.key), ..file }, bytes)))
}

/// The items a strided child of a map's array job runs (`ENV_ARRAY_STRIDE`):
/// `k`, `k + stride`, … below the item count; `None` for a task's job or a child
/// that runs its own item only.
pub fn strided_items(vars: &BTreeMap<String, String>) -> Result<Option<Vec<usize>>, String> {
    let Some(stride) = vars.get(ENV_ARRAY_STRIDE) else { return Ok(None) };
    let number = |name: &str, text: Option<&String>| -> Result<usize, String> {
        let text = text.ok_or_else(|| format!("{name} is not set, but {ENV_ARRAY_STRIDE} is"))?;
        text.parse().map_err(|_| format!("{name}: {text:.20} is not a count"))
    };
    let stride = number(ENV_ARRAY_STRIDE, Some(stride))?;
    let items = number(ENV_ARRAY_ITEMS, vars.get(ENV_ARRAY_ITEMS))?;
    let child =
        vars.get("AWS_BATCH_JOB_ARRAY_INDEX").map_or(Ok(0), |i| number("AWS_BATCH_JOB_ARRAY_INDEX", Some(i)))?;
    if stride == 0 {
        return Err(format!("{ENV_ARRAY_STRIDE} must be at least 1"));
    }
    Ok(Some((child..items).step_by(stride).collect()))
}

/// Why exec stopped, with the exit code it reports.
#[derive(Debug)]
pub enum Failure {
    BadJob(String),
    Data(DataError),
    /// The task ran and exited non-zero, or was killed.
    Task {
        code: u8,
        message: String,
    },
    BadOutputs(String),
    Terminated,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, message, _) = self.describe();
        write!(f, "{code}: {message}")
    }
}

impl Failure {
    /// The code in the shared failure table (`core::execution::failure`).
    pub fn code(&self) -> FailureCode {
        match self {
            Failure::BadJob(_) => FailureCode::BadJob,
            Failure::Data(e) if e.is_retryable() => FailureCode::DataUnavailable,
            Failure::Data(_) => FailureCode::DataError,
            Failure::Task { code, .. } => failure::from_exit_code(*code),
            Failure::BadOutputs(_) => FailureCode::BadOutputs,
            Failure::Terminated => FailureCode::Terminated,
        }
    }

    /// exec's own failures end with the table's exit code; a task's failure with the task's.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Task { code, .. } => *code,
            other => other.code().exit_code().expect("exec's own failures have exit codes in the table"),
        }
    }

    /// The error document's code, message and whether another attempt could help.
    pub fn describe(&self) -> (FailureCode, String, bool) {
        let message = match self {
            Failure::BadJob(m) | Failure::BadOutputs(m) | Failure::Task { message: m, .. } => m.clone(),
            Failure::Data(e) => e.to_string(),
            Failure::Terminated => "stopped by SIGTERM".into(),
        };
        (self.code(), message, self.code().retryable())
    }
}

/// Timings for the summary line and the benchmark.
#[derive(Debug, Default)]
pub struct Report {
    pub inputs: Duration,
    pub task: Duration,
    pub outputs: Duration,
    pub output_bytes: u64,
    /// The `outputs.json` published.
    pub document: Option<OutputsDocument>,
}

/// Whether the job's outputs are published already (`outputs.json` is written
/// last): a strided item that a retried child need not run again.
pub async fn already_done(s3: &Client, job: &Job) -> bool {
    s3::exists(s3, &job.output_prefix.join("outputs.json")).await.unwrap_or(false)
}

/// Runs the job; on failure (but not on SIGTERM) writes `error.json` under the
/// output prefix so the control plane can say why without reading logs.
pub async fn run(s3: &Client, job: &Job, argv: &[String], terminate: watch::Receiver<bool>) -> Result<Report, Failure> {
    let result = run_job(s3, job, argv, terminate).await;
    if let Err(failure) = &result
        && !matches!(failure, Failure::Terminated)
    {
        let (code, message, retryable) = failure.describe();
        let document = ErrorDocument { code: code.as_str().into(), message, retryable, attempt: job.attempt };
        let bytes = serde_json::to_vec(&document).expect("documents serialize");
        let _ = s3::put_bytes(s3, &job.output_prefix.join("error.json"), bytes, "application/json").await;
    }
    result
}

async fn run_job(
    s3: &Client,
    job: &Job,
    argv: &[String],
    mut terminate: watch::Receiver<bool>,
) -> Result<Report, Failure> {
    let mut report = Report::default();
    let local_error =
        |what: &str, path: &Path, e: std::io::Error| Failure::BadJob(format!("{what} {}: {e}", path.display()));
    let outputs_dir = job.work_dir.join("outputs");
    let inputs_dir = job.work_dir.join("inputs");
    let task_dir = job.work_dir.join("task");
    for dir in [&outputs_dir, &inputs_dir, &task_dir] {
        std::fs::create_dir_all(dir).map_err(|e| local_error("cannot create", dir, e))?;
    }

    let started = Instant::now();
    let (inputs, code_dir) = tokio::select! {
        fetched = async { tokio::try_join!(fetch_inputs(s3, job, &inputs_dir), fetch_code(s3, job)) } => fetched?,
        _ = process::cancelled(&mut terminate) => return Err(Failure::Terminated),
    };
    report.inputs = started.elapsed();
    let mut env = Vec::new();
    if job.code.is_some() && contract::python_task(argv).is_some() {
        // The bundle holds the task's module; the SDK that runs it comes with this binary.
        let sdk_dir = job.work_dir.join("sdk");
        updraft_engine::embedded_sdk::write_to(&sdk_dir)
            .map_err(|e| local_error("cannot write the SDK to", &sdk_dir, e))?;
        let mut path = sdk_dir.display().to_string();
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path = format!("{path}:{}", existing.to_string_lossy());
        }
        env.push(("PYTHONPATH".to_string(), path));
    }

    let secrets_dir = job.work_dir.join("secrets");
    if !job.secret_files.is_empty() {
        write_secrets(&secrets_dir, &job.secret_files)
            .map_err(|e| local_error("cannot write secrets to", &secrets_dir, e))?;
    }
    let inputs_path = job.work_dir.join("inputs.json");
    std::fs::write(&inputs_path, contract::inputs_document(&inputs).to_string())
        .map_err(|e| local_error("cannot write", &inputs_path, e))?;
    let output_paths: BTreeMap<String, String> = job
        .interface
        .outputs
        .iter()
        .map(|v| (v.name.clone(), outputs_dir.join(&v.name).display().to_string()))
        .collect();
    let argv = contract::render_argv(argv, &inputs, &output_paths, &code_dir).map_err(Failure::BadJob)?;
    env.extend([
        (ENV_INPUTS.into(), inputs_path.display().to_string()),
        (ENV_OUTPUTS_DIR.into(), outputs_dir.display().to_string()),
        (ENV_CODE_DIR.into(), code_dir.clone()),
        (ENV_SECRETS_DIR.into(), secrets_dir.display().to_string()),
        (ENV_ATTEMPT.into(), job.attempt.to_string()),
    ]);

    let started = Instant::now();
    let outcome = process::run(
        Attempt {
            argv,
            env,
            // The task sees secrets meant as files only as files, and none of exec's plumbing.
            remove_env: job
                .secret_files
                .iter()
                .map(|(name, _)| format!("{SECRET_FILE_PREFIX}{name}"))
                .chain(
                    [ENV_INTERFACE, ENV_INPUTS_URI, ENV_OUTPUT_PREFIX, ENV_CODE_BUNDLE, ENV_CODE_DIGEST]
                        .map(String::from),
                )
                .collect(),
            cwd: task_dir,
            stdout: None,
            stderr: None,
            timeout: None,
            // The container's log driver takes the streams; CloudWatch bounds them.
            max_log_bytes: None,
        },
        terminate.clone(),
    )
    .await;
    report.task = started.elapsed();
    match outcome {
        Outcome::Exited(0) => {}
        Outcome::Exited(code) => {
            // exec's own exit codes are reserved: Batch must not read a task's 65 as "bad outputs".
            let exit = code.clamp(1, 255) as u8;
            let reserved = failure::EXIT_CODES.iter().any(|(_, e)| *e == exit);
            return Err(Failure::Task {
                code: if reserved { 1 } else { exit },
                message: format!("the task exited with code {code}"),
            });
        }
        Outcome::Signaled(signal) => {
            return Err(Failure::Task {
                code: (128 + signal).min(255) as u8,
                message: format!("the task was killed by signal {signal}"),
            });
        }
        Outcome::Cancelled => return Err(Failure::Terminated),
        Outcome::SpawnFailed(message) => return Err(Failure::BadJob(message)),
        Outcome::TimedOut | Outcome::LogLimit(_) => {
            unreachable!("exec sets no timeout and no log limit; Batch enforces the attempt timeout with SIGTERM")
        }
    }

    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for var in &job.interface.outputs {
        match outputs::check(var, &outputs_dir) {
            Ok(output) => checked.push((var.name.clone(), output)),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::BadOutputs(problems.join("\n")));
    }

    let started = Instant::now();
    let document = tokio::select! {
        document = publish(s3, job, &outputs_dir, checked, &mut report) => document?,
        _ = process::cancelled(&mut terminate) => return Err(Failure::Terminated),
    };
    // Last: its presence means every output above is in place.
    let bytes = serde_json::to_vec(&document).expect("documents serialize");
    s3::put_bytes(s3, &job.output_prefix.join("outputs.json"), bytes, "application/json")
        .await
        .map_err(Failure::Data)?;
    report.outputs = started.elapsed();
    report.document = Some(document);
    Ok(report)
}

/// `{{code_dir}}`: the job's code bundle, checked against its registered digest
/// and unpacked into `<work>/code`; without a bundle, the image's directory.
async fn fetch_code(s3: &Client, job: &Job) -> Result<String, Failure> {
    let Some((uri, digest)) = &job.code else {
        return Ok(job.code_dir.clone());
    };
    let bytes = s3::get_bytes(s3, uri).await.map_err(Failure::Data)?;
    let dir = job.work_dir.join("code");
    let unpacked = tokio::task::spawn_blocking({
        let (dir, digest) = (dir.clone(), digest.clone());
        move || crate::bundle::unpack(&bytes, &digest, &dir)
    })
    .await
    .map_err(|e| Failure::BadJob(format!("unpacking the code bundle stopped: {e}")))?;
    match unpacked {
        Ok(_) => Ok(dir.display().to_string()),
        Err(crate::bundle::BundleError::DigestMismatch { expected, found }) => {
            Err(Failure::Data(DataError::DigestMismatch { uri: uri.to_string(), expected, found }))
        }
        Err(e @ crate::bundle::BundleError::Io(_)) => Err(Failure::BadJob(format!("{uri}: {e}"))),
        Err(e) => Err(Failure::Data(DataError::BadUri(format!("{uri}: {e}")))),
    }
}

/// The inputs as the task sees them: blobs downloaded, their URIs replaced by local paths.
async fn fetch_inputs(s3: &Client, job: &Job, dir: &Path) -> Result<BTreeMap<String, Literal>, Failure> {
    let Some(uri) = &job.inputs_uri else {
        return Ok(BTreeMap::new());
    };
    let (uri, bytes) = match map_item_inputs(s3, job).await? {
        Some(found) => found,
        None => (uri.clone(), s3::get_bytes(s3, uri).await.map_err(Failure::Data)?),
    };
    let uri = &uri;
    let map: LiteralMap = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::BadJob(format!("{uri}: not a map of input values as proto JSON: {e}")))?;
    let mut inputs: BTreeMap<String, Literal> = map.values.into_iter().collect();
    let mut problems: Vec<String> = fill_optional_inputs(&job.interface, &mut inputs)
        .into_iter()
        .map(|name| format!("input \"{name}\" is missing from {uri}"))
        .collect();
    for var in &job.interface.inputs {
        if let Some(value) = inputs.get(&var.name)
            && let Err(e) = literal::check_type(value, &var.r#type.clone().unwrap_or_default())
        {
            problems.push(format!("input \"{}\": {e}", var.name));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::BadJob(problems.join("\n")));
    }
    updraft_aws::data::download_inputs(s3, &mut inputs, dir).await.map_err(|e| match e {
        DataError::BadUri(message) => Failure::BadJob(format!("{uri}: {message}")),
        e => Failure::Data(e),
    })?;
    Ok(inputs)
}

fn write_secrets(dir: &Path, secrets: &[(String, String)]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for (name, value) in secrets {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dir.join(name))?;
        std::io::Write::write_all(&mut file, value.as_bytes())?;
    }
    Ok(())
}

/// Uploads the checked outputs; returns the outputs document.
async fn publish(
    s3: &Client,
    job: &Job,
    dir: &Path,
    checked: Vec<(String, Output)>,
    report: &mut Report,
) -> Result<OutputsDocument, Failure> {
    let mut entries = BTreeMap::new();
    for (name, output) in checked {
        let entry = match output {
            Output::Absent | Output::Value(_) => {
                let value = if let Output::Value(v) = output { v } else { literal::none() };
                let text = serde_json::to_string(&value).expect("literals serialize");
                let digest = cache_key::literal_digest_string(&value);
                let size_bytes = text.len() as u64;
                report.output_bytes += size_bytes;
                if text.len() > VALUE_INLINE_LIMIT {
                    let to = job.output_prefix.join(&format!("values/{name}.json"));
                    s3::put_bytes(s3, &to, text.into_bytes(), "application/json").await.map_err(Failure::Data)?;
                    OutputEntry { value: None, uri: Some(to.to_string()), digest, size_bytes }
                } else {
                    OutputEntry { value: Some(value), uri: None, digest, size_bytes }
                }
            }
            Output::Blob { kind, format } => {
                let to = job.output_prefix.join(&format!("outputs/{name}"));
                let path = dir.join(&name);
                let (digest, size) = if kind == BlobKind::Directory {
                    s3::upload_dir(s3, &path, &to).await
                } else {
                    s3::upload_file(s3, &path, &to).await
                }
                .map_err(Failure::Data)?;
                report.output_bytes += size;
                let value = outputs::blob_literal(kind, Blob { uri: to.to_string(), format, digest: digest.clone() });
                OutputEntry { value: Some(value), uri: None, digest, size_bytes: size }
            }
        };
        entries.insert(name, entry);
    }
    Ok(OutputsDocument {
        execution_id: job.execution_id.clone(),
        node_id: job.node_id.clone(),
        attempt: job.attempt,
        outputs: entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_job_description_comes_from_the_environment() {
        let interface = r#"{"inputs":[{"name":"n","type":{"simple":"INTEGER"}}],"outputs":[]}"#;
        let job = Job::from_env(&vars(&[
            (ENV_INTERFACE, interface),
            (ENV_INPUTS_URI, "s3://data/runs/r1/fit/inputs.json"),
            (ENV_OUTPUT_PREFIX, "s3://data/runs/r1/fit/1/"),
            ("AWS_BATCH_JOB_ATTEMPT", "2"),
            ("UPDRAFT_SECRET_FILE_TOKEN", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(job.interface.inputs[0].name, "n");
        assert_eq!(job.output_prefix.join("outputs.json").to_string(), "s3://data/runs/r1/fit/1/outputs.json");
        assert_eq!(job.attempt, 2, "Batch's attempt number, which starts at 1");
        assert_eq!(job.secret_files, [("TOKEN".to_string(), "s3cr3t".to_string())]);
    }

    #[test]
    fn an_array_job_item_reads_and_writes_under_its_index() {
        let interface = r#"{"inputs":[{"name":"n","type":{"simple":"INTEGER"}}],"outputs":[]}"#;
        let item = |index: Option<&str>| {
            let mut pairs = vec![(ENV_INTERFACE, interface), (ENV_ARRAY_PREFIX, "s3://data/runs/r1/squares/items/")];
            pairs.extend(index.map(|i| ("AWS_BATCH_JOB_ARRAY_INDEX", i)));
            Job::from_env(&vars(&pairs)).unwrap()
        };
        let seventh = item(Some("7"));
        assert_eq!(seventh.inputs_uri.unwrap().to_string(), "s3://data/runs/r1/squares/items/7/inputs.json");
        assert_eq!(seventh.output_prefix.to_string(), "s3://data/runs/r1/squares/items/7/");
        assert_eq!(
            item(None).output_prefix.to_string(),
            "s3://data/runs/r1/squares/items/0/",
            "a one-item map is a plain job"
        );
    }

    #[test]
    fn a_bad_job_description_names_every_problem() {
        let interface = r#"{"inputs":[{"name":"n","type":{"simple":"INTEGER"}}]}"#;
        let err = Job::from_env(&vars(&[(ENV_INTERFACE, interface), (ENV_OUTPUT_PREFIX, "data/x")])).unwrap_err();
        assert!(err.contains("UPDRAFT_OUTPUT_PREFIX: \"data/x\" is not an s3://bucket/key URI"), "{err}");
        assert!(err.contains("UPDRAFT_INPUTS_URI is not set, but the task has inputs"), "{err}");
        let err = Job::from_env(&vars(&[])).unwrap_err();
        assert!(
            err.contains("UPDRAFT_INTERFACE is not set") && err.contains("UPDRAFT_OUTPUT_PREFIX is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_strided_child_runs_every_stride_th_item_from_its_index() {
        let strided = |pairs: &[(&str, &str)]| strided_items(&vars(pairs));
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![(ENV_ARRAY_STRIDE, "3"), (ENV_ARRAY_ITEMS, "10")];
            pairs.extend_from_slice(extra);
            strided(&pairs)
        };
        assert_eq!(with(&[("AWS_BATCH_JOB_ARRAY_INDEX", "1")]), Ok(Some(vec![1, 4, 7])));
        assert_eq!(with(&[]), Ok(Some(vec![0, 3, 6, 9])), "Batch sets no index on a one-child job");
        assert_eq!(strided(&[]), Ok(None), "a task or an unstrided item");
        assert!(strided(&[(ENV_ARRAY_STRIDE, "0"), (ENV_ARRAY_ITEMS, "4")]).unwrap_err().contains("at least 1"));
        assert!(strided(&[(ENV_ARRAY_STRIDE, "2")]).unwrap_err().contains("UPDRAFT_ARRAY_ITEMS is not set"));
        assert!(with(&[("AWS_BATCH_JOB_ARRAY_INDEX", "x")]).unwrap_err().contains("not a count"));
    }
}
