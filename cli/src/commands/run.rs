//! `updraft run FILE [WORKFLOW] --input k=v ...`: a local run, no cloud needed.

use super::executions::{OutputFormat, print_execution};
use crate::spec_file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use updraft_aws::files;
use updraft_aws::s3::S3Uri;
use updraft_core::compile::Options;
use updraft_core::execution::node;
use updraft_core::execution::retry::Backoff;
use updraft_core::literal;
use updraft_core::proto::core::{Literal, WorkflowPhase, literal::Value as LV};
use updraft_core::types::display;
use updraft_engine::executor::{self, CacheMode, RunError, RunRequest};
use updraft_engine::gpus::Gpus;
use updraft_engine::home::Home;
use updraft_engine::resources::Capacity;
use updraft_engine::store::StoreError;

pub struct RunArgs {
    pub file: PathBuf,
    pub workflow: Option<String>,
    pub inputs: Vec<String>,
    pub cache_mode: CacheMode,
    pub max_parallel: Option<usize>,
    pub output: OutputFormat,
    pub blob_store: Option<String>,
    pub options: Options,
    /// The execution's name; it must not be taken (`None`: generated).
    pub name: Option<String>,
    pub task_output: TaskOutput,
    /// A local run to recover (`--recover NAME`).
    pub recover: Option<String>,
    /// The launch plan and tick (RFC 3339) this run is, when a scheduler starts it.
    pub scheduled: Option<(String, String)>,
}

/// `--task-output`: whether what tasks print is shown while they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskOutput {
    /// When stderr is a terminal (and the output is text).
    Auto,
    On,
    Off,
}

/// The inputs of local run `source`, which a recovery runs on; why it cannot be
/// recovered (missing, still running, succeeded).
fn recovered_run_inputs(source: &str) -> Result<BTreeMap<String, Literal>, String> {
    let store = super::executions::open_store().map_err(|e| format!("error: {e}"))?;
    let found = store.get(source).map_err(|e| format!("error: {e}"))?;
    let Some((execution, _)) = found else {
        return Err(format!(
            "error: --recover: no local run \"{source}\"\n  hint: `updraft executions list --phase failed` shows the ones to recover"
        ));
    };
    match WorkflowPhase::try_from(execution.phase).unwrap_or_default() {
        WorkflowPhase::WorkflowRunning => {
            Err(format!("error: --recover: run {source} is still running\n  hint: wait for its end, or abort it"))
        }
        WorkflowPhase::WorkflowSucceeded => Err(format!(
            "error: --recover: run {source} succeeded: there is nothing to recover\n  hint: run it again without --recover"
        )),
        _ => Ok(execution.inputs.map(|m| m.values).unwrap_or_default()),
    }
}

/// Bad input to `updraft run` (exit code 2): nothing was started.
const EXIT_BAD_INPUT: u8 = crate::exit::USAGE;
/// The execution was cancelled (Ctrl-C), as shells report SIGINT.
const EXIT_ABORTED: u8 = crate::exit::INTERRUPTED;

pub fn run(args: RunArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let bad_input = |message: String| {
        eprintln!("{message}");
        Ok(ExitCode::from(EXIT_BAD_INPUT))
    };
    if let Some(name) = &args.name {
        let valid = name.len() <= 80
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return bad_input(format!(
                "error: --name {:?} is not an execution name\n  hint: use letters, digits, - and _ \
                 (a letter or digit first, at most 80 characters)",
                name.chars().take(100).collect::<String>()
            ));
        }
    }
    let blob_store = match args.blob_store.as_deref().map(S3Uri::parse).transpose() {
        Ok(root) => root,
        Err(e) => {
            return bad_input(format!(
                "error: --blob-store: {e}\n  hint: give an S3 prefix such as s3://my-bucket/updraft; \
                 without the flag, outputs stay under $UPDRAFT_HOME/blobs"
            ));
        }
    };
    let (mut compiled, mut python_worker) = match spec_file::load_keeping_worker(&args.file, &args.options) {
        Ok(loaded) => loaded,
        Err(e) => return bad_input(e.to_string()),
    };
    let workflow_names = |compiled: &updraft_core::compile::Compiled| -> Vec<String> {
        compiled.workflows.iter().filter_map(|w| w.template.as_ref()?.id.as_ref().map(|i| i.name.clone())).collect()
    };
    let is_task = |name: &str| compiled.tasks.iter().any(|t| t.id.as_ref().is_some_and(|i| i.name == name));
    // `updraft run FILE TASK`: a task alone, as a one-node workflow of its name.
    let task_alone =
        args.workflow.as_ref().is_some_and(|name| !workflow_names(&compiled).contains(name) && is_task(name));
    if let Some(name) = args.workflow.as_ref().filter(|_| task_alone) {
        (compiled, python_worker) = match spec_file::load_task_as_workflow(&args.file, &args.options, name) {
            Ok(loaded) => loaded,
            Err(e) => return bad_input(e.to_string()),
        };
    }
    let names = workflow_names(&compiled);
    let workflow_name = match (&args.workflow, names.as_slice()) {
        (Some(name), _) if names.contains(name) => name.clone(),
        (Some(name), _) => {
            let tasks: Vec<String> =
                compiled.tasks.iter().filter_map(|t| t.id.as_ref().map(|i| i.name.clone())).collect();
            return bad_input(format!(
                "error: {}: no workflow or task \"{name}\"; it defines workflows: {}; tasks: {}",
                args.file.display(),
                names.join(", "),
                tasks.join(", ")
            ));
        }
        (None, [only]) => only.clone(),
        (None, []) => return bad_input(format!("error: {}: defines no workflow to run", args.file.display())),
        (None, _) => {
            return bad_input(format!(
                "error: {} defines several workflows; name one: updraft run {} <{}>",
                args.file.display(),
                args.file.display(),
                names.join("|")
            ));
        }
    };
    let workflow = compiled.workflow(&workflow_name).expect("listed above");
    let template = workflow.template.clone().unwrap_or_default();
    let code_dir = spec_file::code_dir(&args.file)?;

    // A recovery runs on the recovered run's inputs, unless others are given.
    let recovered_inputs = match &args.recover {
        Some(source) => match recovered_run_inputs(source) {
            Ok(inputs) => Some(inputs),
            Err(message) => return bad_input(message),
        },
        None => None,
    };
    let inputs = match recovered_inputs.filter(|_| args.inputs.is_empty()) {
        Some(given) => node::checked_launch_inputs(&template, given).map_err(|message| {
            format!("{message} (the inputs of run {})", args.recover.as_deref().unwrap_or_default())
        }),
        None => launch_inputs(&template, &args.inputs, &code_dir),
    };
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(message) => {
            let signature: Vec<String> = template
                .inputs
                .iter()
                .filter_map(|p| {
                    let v = p.var.as_ref()?;
                    let default = p.default.as_ref().map(|d| format!(" = {}", literal::to_json(d))).unwrap_or_default();
                    Some(format!("{}: {}{default}", v.name, display(&v.r#type.clone().unwrap_or_default())))
                })
                .collect();
            return bad_input(format!(
                "error: {message}\n  hint: {} {workflow_name} takes --input NAME=VALUE for: {}",
                if task_alone { "task" } else { "workflow" },
                if signature.is_empty() { "(no inputs)".to_string() } else { signature.join(", ") }
            ));
        }
    };

    // GPUs are found only when a task of this workflow asks for one, and a request
    // for more than there are is refused before anything starts (CPU and memory are clamped).
    let closure = compiled.closure(&workflow_name).expect("listed above");
    let gpu_tasks: Vec<(String, u32)> = closure
        .tasks
        .iter()
        .filter_map(|t| {
            let gpu = t.resources.and_then(|r| r.requests).map_or(0, |r| r.gpu);
            (gpu > 0).then(|| (t.id.as_ref().map(|i| i.name.clone()).unwrap_or_default(), gpu))
        })
        .collect();
    let gpus = (!gpu_tasks.is_empty()).then(Gpus::detect);
    if let Some(found) = &gpus
        && let Some((task, wanted)) = gpu_tasks.iter().find(|(_, gpu)| *gpu as usize > found.devices.len())
    {
        return bad_input(format!(
            "error: task {task} asks for {wanted} GPU(s), but this machine offers {}; nothing was run\n  \
             hint: run it where there are enough GPUs, lower resources.gpu, or set UPDRAFT_GPUS to the devices to use",
            found.describe()
        ));
    }

    let scheduled = match &args.scheduled {
        None => None,
        Some((plan, at)) => match chrono::DateTime::parse_from_rfc3339(at) {
            Ok(at) => Some((plan.clone(), updraft_core::proto::Timestamp { seconds: at.timestamp(), nanos: 0 })),
            Err(e) => return bad_input(format!("error: --scheduled-at {at:?}: not an RFC 3339 time ({e})")),
        },
    };
    let home = Home::from_env()?;
    let result = match executor::run(
        &home,
        RunRequest {
            compiled: compiled.clone(),
            workflow: workflow_name,
            inputs,
            code_dir,
            cache_mode: args.cache_mode,
            capacity: Capacity::of_this_machine(args.max_parallel),
            backoff: Backoff::default(),
            show_progress: args.output == OutputFormat::Text,
            show_task_output: match args.task_output {
                TaskOutput::On => true,
                TaskOutput::Off => false,
                TaskOutput::Auto => {
                    args.output == OutputFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr())
                }
            },
            blob_store,
            gpus,
            python_worker,
            name: args.name.clone(),
            recover: args.recover.clone(),
            scheduled,
        },
    ) {
        Err(e @ RunError::BlobStore { .. }) => {
            return bad_input(format!(
                "error: {e}\n  hint: create the bucket, or check the credentials and AWS_ENDPOINT_URL; nothing was run"
            ));
        }
        Err(RunError::Store(StoreError::NameTaken(name))) => {
            return bad_input(format!(
                "error: an execution named {name} exists already; nothing was run\n  hint: names are never reused: \
                 pick another --name, or leave it out for a generated one"
            ));
        }
        result => result?,
    };
    print_execution(&result.execution, &result.nodes, args.output)?;
    Ok(match WorkflowPhase::try_from(result.execution.phase) {
        Ok(WorkflowPhase::WorkflowSucceeded) => ExitCode::SUCCESS,
        Ok(WorkflowPhase::WorkflowAborted) => ExitCode::from(EXIT_ABORTED),
        _ => ExitCode::FAILURE,
    })
}

/// The workflow's inputs for this run: `--input` values over defaults; every
/// required input present; files resolved to absolute paths and digested.
pub(crate) fn launch_inputs(
    template: &updraft_core::proto::core::WorkflowTemplate,
    given: &[String],
    code_dir: &Path,
) -> Result<BTreeMap<String, Literal>, String> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let mut inputs = BTreeMap::new();
    for pair in given {
        let Some((name, text)) = pair.split_once('=') else {
            return Err(format!("--input {pair:?} is not NAME=VALUE"));
        };
        let Some(param) = template.inputs.iter().find(|p| p.var.as_ref().is_some_and(|v| v.name == name)) else {
            return Err(format!("--input {name}: the workflow has no input \"{name}\""));
        };
        if inputs.contains_key(name) {
            return Err(format!("--input {name} is given twice; give each input once"));
        }
        let t = param.var.as_ref().and_then(|v| v.r#type.clone()).unwrap_or_default();
        let mut value = literal::from_cli(text, &t).map_err(|e| format!("--input {name}={text}: {e}"))?;
        resolve_files(&mut value, &cwd).map_err(|e| format!("--input {name}: {e}"))?;
        // Declared columns are checked before anything runs, not as a task's KeyError.
        updraft_engine::outputs::check_given(name, &value, &t).map_err(|e| format!("--input {name}: {e}"))?;
        inputs.insert(name.to_string(), value);
    }
    let given: Vec<String> = inputs.keys().cloned().collect();
    let mut inputs = updraft_core::execution::node::launch_inputs(template, inputs)?;
    // Paths written in a spec (defaults) are relative to the spec file.
    for (name, value) in inputs.iter_mut().filter(|(name, _)| !given.contains(name)) {
        resolve_files(value, code_dir).map_err(|e| format!("default of input {name}: {e}"))?;
        let t = template.inputs.iter().find_map(|p| p.var.as_ref().filter(|v| v.name == *name)?.r#type.clone());
        updraft_engine::outputs::check_given(name, value, &t.unwrap_or_default())
            .map_err(|e| format!("default of input {name}: {e}"))?;
    }
    Ok(inputs)
}

/// Makes every file, directory and dataframe path absolute, checks it exists,
/// and records its content digest (what the cache key uses).
fn resolve_files(value: &mut Literal, base: &Path) -> Result<(), String> {
    let want_dir = matches!(value.value, Some(LV::Directory(_)));
    match &mut value.value {
        Some(LV::File(b)) | Some(LV::Dataframe(b)) | Some(LV::Directory(b)) => {
            let path = base.join(&b.uri);
            let path =
                path.canonicalize().map_err(|e| format!("{} does not exist or cannot be read: {e}", path.display()))?;
            match (want_dir, path.is_dir()) {
                (false, true) => return Err(format!("{} is a directory, but the input is a file", path.display())),
                (true, false) => return Err(format!("{} is not a directory, but the input is one", path.display())),
                _ => {}
            }
            let digest = if want_dir { files::dir_sha256(&path) } else { files::file_sha256(&path) }
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            b.uri = path.display().to_string();
            b.digest = updraft_core::execution::contract::digest_string(&digest);
            Ok(())
        }
        Some(LV::List(l)) => l.values.iter_mut().try_for_each(|v| resolve_files(v, base)),
        Some(LV::Map(m)) | Some(LV::Struct(m)) => m.values.values_mut().try_for_each(|v| resolve_files(v, base)),
        _ => Ok(()),
    }
}
