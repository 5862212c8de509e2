//! Reading spec files from disk and reporting their problems with the file name.
//! A Python spec (`.py`, or `module:workflow`) is first translated by the SDK
//! into the same document a YAML file holds (`updraft_engine::python`); its problems are
//! reported at the Python line that caused them.

use crate::translations;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use updraft_core::compile::{self, Compiled, Options};
use updraft_core::diagnostics::Diagnostics;
use updraft_core::spec::Format;
use updraft_engine::python::{self, SpecAnswer, Worker, WorkerKey, WorkerKind};

/// Why a spec file could not be used; `Display` gives every problem, each
/// prefixed with the file, as `error: FILE: PATH: MESSAGE` plus a hint line
/// (for Python, `error: FILE:LINE: PATH: MESSAGE`).
#[derive(Debug)]
pub struct SpecFileError {
    pub path: PathBuf,
    pub problems: Vec<String>,
    /// Where each problem is, when more precise than the file (`diabetes.py:42`).
    pub locations: Vec<Option<String>>,
}

impl SpecFileError {
    pub fn new(path: &Path, problems: Vec<String>) -> SpecFileError {
        SpecFileError { path: path.to_path_buf(), problems, locations: Vec::new() }
    }
}

impl std::fmt::Display for SpecFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match self.locations.get(i).cloned().flatten() {
                Some(location) => write!(f, "error: {location}: {problem}")?,
                None => write!(f, "error: {}: {problem}", self.path.display())?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecFileError {}

/// Refuses absurdly large specs while reading them (docs/spec.md, "Limits").
const MAX_SPEC_BYTES: u64 = 64 * 1024 * 1024;

pub fn load(path: &Path, options: &Options) -> Result<Compiled, SpecFileError> {
    load_keeping_worker(path, options).map(|(compiled, _)| compiled)
}

/// The directory `{{code_dir}}` stands for in a local run: the spec file's.
pub fn code_dir(path: &Path) -> std::io::Result<PathBuf> {
    let file = python::spec_file_path(path);
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).canonicalize()
}

/// As [`load`]; for a Python spec also the warm worker that translated it (a
/// local run forks its Python tasks from it, so the imports are paid once).
pub fn load_keeping_worker(
    path: &Path,
    options: &Options,
) -> Result<(Compiled, Option<(WorkerKey, Worker)>), SpecFileError> {
    if !python::is_python_spec(path) {
        return load_text_file(path, options).map(|compiled| (compiled, None));
    }
    let Translation { worker, document, locations } = translate(path)?;
    let text = document.to_string();
    let compiled = compile::compile_text(&text, Format::Json, options)
        .map_err(|diagnostics| located(path, &diagnostics, &locations))?;
    Ok((compiled, worker))
}

/// As [`load_keeping_worker`], with one more workflow, named `task`, that runs that
/// task alone: the task's inputs (types, defaults) are the workflow's, its outputs
/// the workflow's (`updraft run FILE TASK`, as `pyflyte run file.py task`).
pub fn load_task_as_workflow(
    path: &Path,
    options: &Options,
    task: &str,
) -> Result<(Compiled, Option<(WorkerKey, Worker)>), SpecFileError> {
    let (mut document, worker, locations) = if python::is_python_spec(path) {
        let Translation { worker, document, locations } = translate(path)?;
        (document, worker, locations)
    } else {
        let text = read_spec_file(path)?;
        let document: serde_json::Value = match Format::from_file_name(&path.to_string_lossy()) {
            Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
            _ => serde_norway::from_str(&text).map_err(|e| e.to_string()),
        }
        .map_err(|e| SpecFileError::new(path, vec![format!("cannot read: {e}")]))?;
        (document, None, HashMap::new())
    };
    wrap_task(&mut document, task).map_err(|problem| SpecFileError::new(path, vec![problem]))?;
    let compiled = compile::compile_text(&document.to_string(), Format::Json, options)
        .map_err(|diagnostics| located(path, &diagnostics, &locations))?;
    Ok((compiled, worker))
}

/// Adds `workflows.<task>`: one node running the task, every input and output passed through.
fn wrap_task(document: &mut serde_json::Value, task: &str) -> Result<(), String> {
    use serde_json::{Map, Value, json};
    let Some(spec) = document.get("tasks").and_then(|tasks| tasks.get(task)) else {
        return Err(format!("defines no workflow or task \"{task}\""));
    };
    if document.get("workflows").and_then(|w| w.get(task)).is_some() {
        return Err(format!("\"{task}\" is a workflow; it is run as one"));
    }
    let inputs = spec.get("inputs").cloned().unwrap_or_else(|| json!({}));
    let bindings: Map<String, Value> = inputs
        .as_object()
        .map(|inputs| inputs.keys().map(|name| (name.clone(), json!(format!("$inputs.{name}")))).collect())
        .unwrap_or_default();
    let outputs: Map<String, Value> = spec
        .get("outputs")
        .and_then(Value::as_object)
        .map(|outputs| outputs.keys().map(|name| (name.clone(), json!(format!("${task}.{name}")))).collect())
        .unwrap_or_default();
    let workflow = json!({
        "inputs": inputs,
        "nodes": {task: {"task": task, "inputs": bindings}},
        "outputs": outputs,
    });
    let Some(document) = document.as_object_mut() else { return Err("is not a mapping".into()) };
    let workflows = document.entry("workflows").or_insert_with(|| json!({}));
    match workflows.as_object_mut() {
        Some(workflows) => {
            workflows.insert(task.to_string(), workflow);
            Ok(())
        }
        None => Err("workflows: is not a mapping".into()),
    }
}

/// The spec text of a file as the API takes it, and the file name that tells its
/// format: a Python spec is sent as its translation (JSON).
pub fn spec_text(path: &Path, max_bytes: u64) -> Result<(String, String), SpecFileError> {
    if python::is_python_spec(path) {
        let text = translate(path)?.document.to_string();
        if text.len() as u64 > max_bytes {
            let problem =
                format!("its translation is {} bytes; specs sent to the API are limited to {max_bytes}", text.len());
            return Err(SpecFileError::new(path, vec![problem]));
        }
        let stem = python::spec_file_path(path).file_stem().map(|s| s.to_string_lossy().into_owned());
        return Ok((text, format!("{}.json", stem.unwrap_or_else(|| "spec".into()))));
    }
    let text = updraft_aws::files::read_text_limited(path, max_bytes, "specs sent to the API are limited to")
        .map_err(|e| SpecFileError::new(path, vec![format!("cannot read: {e}")]))?;
    Ok((text, path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()))
}

/// A Python spec's translation, and the warm worker that made it (none when the
/// translation was reused: a run starts workers when a task needs one).
struct Translation {
    worker: Option<(WorkerKey, Worker)>,
    document: serde_json::Value,
    locations: HashMap<String, String>,
}

/// The SDK's translation of a Python spec (`python3 -m updraft worker --spec`),
/// reused while nothing it was made from changed (`crate::translations`).
fn translate(path: &Path) -> Result<Translation, SpecFileError> {
    let fail = |problem: String| SpecFileError::new(path, vec![problem]);
    let code_dir =
        code_dir(path).or_else(|_| Path::new(".").canonicalize()).map_err(|e| fail(format!("cannot read: {e}")))?;
    let key = WorkerKey {
        python: python::interpreter(),
        code_dir: code_dir.display().to_string(),
        env: Vec::new(),
        kind: WorkerKind::Sdk,
    };
    if let Some(reused) = translations::lookup(path, &key) {
        return Ok(Translation { worker: None, document: reused.document, locations: reused.locations });
    }
    let (worker, answer) = Worker::start(&key, Some(path), &updraft_engine::runner::this_process(), None)
        .map_err(|e| fail(format!("cannot translate the Python: {e}")))?;
    match answer {
        SpecAnswer::Spec { document, locations, depends } => {
            translations::store(path, &key, &depends, &document, &locations);
            Ok(Translation { worker: Some((key, worker)), document, locations })
        }
        SpecAnswer::Error { location, message, hint } => {
            let hint = if hint.is_empty() { String::new() } else { format!("\n  hint: {hint}") };
            Err(SpecFileError {
                path: path.to_path_buf(),
                problems: vec![format!("{message}{hint}")],
                locations: vec![Some(location)],
            })
        }
    }
}

/// Each diagnostic at the Python line of the deepest entity its path is inside.
fn located(path: &Path, diagnostics: &Diagnostics, locations: &HashMap<String, String>) -> SpecFileError {
    let at = |spec_path: &str| {
        locations
            .iter()
            .filter(|(key, _)| spec_path == key.as_str() || spec_path.starts_with(&format!("{key}.")))
            .max_by_key(|(key, _)| key.len())
            .map(|(_, location)| location.clone())
    };
    SpecFileError {
        path: path.to_path_buf(),
        problems: diagnostics.iter().map(ToString::to_string).collect(),
        locations: diagnostics.iter().map(|d| at(&d.path)).collect(),
    }
}

/// A YAML or JSON spec file's text, within the limit; the error has its hint.
fn read_spec_file(path: &Path) -> Result<String, SpecFileError> {
    updraft_aws::files::read_text_limited(path, MAX_SPEC_BYTES, "specs are limited to").map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::InvalidData => "a spec is UTF-8 text of at most 64 MiB",
            _ => "give the path of a spec file (YAML, or JSON ending in .json)",
        };
        SpecFileError::new(path, vec![format!("cannot read: {e}\n  hint: {hint}")])
    })
}

fn load_text_file(path: &Path, options: &Options) -> Result<Compiled, SpecFileError> {
    let text = read_spec_file(path)?;
    let format = Format::from_file_name(&path.to_string_lossy());
    compile::compile_text(&text, format, options)
        .map_err(|diagnostics| SpecFileError::new(path, diagnostics.iter().map(ToString::to_string).collect()))
}
