//! Python specs and warm Python workers (docs/python.md).
//!
//! A `.py` spec (or `module:workflow`) is translated by the Python SDK into the
//! spec document YAML holds: `python3 -m updraft worker --spec FILE` imports the
//! file, answers with the document, and then stays up as the warm worker of a
//! local run, so the spec's imports are paid once. A task whose argv is exactly
//! `[python, -m, updraft.task, MODULE:FUNCTION]` (what the SDK writes; see
//! `contract::python_task`) runs as a child forked from such a worker instead
//! of a fresh interpreter; the protocol is in the SDK's `updraft/_worker.py`.
//!
//! A task written as a script, `python3 FILE.py ARGS…` or `python3 -m MODULE
//! ARGS…` ([`warm_task`]), runs forked from a *script worker*
//! (`python -m updraft worker --scripts`, started from [`crate::embedded_sdk`] so
//! no SDK need be installed): it has imported what the script imports, and its
//! child runs the script as a fresh interpreter would (the SDK's `_scripts.py`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use updraft_core::execution::contract;

/// Set in every warm worker's environment to the runner's identity
/// (`runner::this_process`), so the watchdog finds workers and their children.
pub const ENV_RUNNER: &str = "UPDRAFT_RUNNER";

/// The interpreter that translates `.py` specs and runs the warm workers of
/// tasks whose argv starts with `python3` (what the SDK writes): `UPDRAFT_PYTHON`,
/// else `python3` from `PATH`.
pub fn interpreter() -> String {
    std::env::var("UPDRAFT_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into())
}

/// Whether a spec argument names Python: a `.py` file, `FILE.py:workflow`, or
/// `package.module:workflow` that is not a file.
pub fn is_python_spec(spec: &Path) -> bool {
    let text = spec.to_string_lossy();
    if text.ends_with(".py") {
        return true;
    }
    if spec.exists() {
        return false;
    }
    let Some((module, workflow)) = text.rsplit_once(':') else { return false };
    let word = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    module.ends_with(".py") || (module.split('.').all(word) && word(workflow))
}

/// The `.py` file of a Python spec argument (without `:workflow`), if it is one.
pub fn spec_file_path(spec: &Path) -> &Path {
    let text = spec.to_str().unwrap_or_default();
    match text.rsplit_once(':') {
        Some((file, _)) if file.ends_with(".py") => Path::new(file),
        _ => spec,
    }
}

/// `(interpreter, MODULE:FUNCTION)` when an argv is an SDK task that may run
/// warm (not `--fresh-process`); a plain `python3` is [`interpreter`].
pub fn warm_entry(argv: &[String]) -> Option<(String, &str)> {
    let (entry, fresh) = contract::python_task(argv)?;
    let python = if argv[0] == "python3" { interpreter() } else { argv[0].clone() };
    (!fresh).then_some((python, entry))
}

/// What a task's argv runs that a warm worker can fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmTask<'a> {
    /// An SDK task, `python3 -m updraft.task MODULE:FUNCTION`.
    Sdk(&'a str),
    /// `python3 FILE.py ARGS…`.
    Script { file: &'a str, args: &'a [String] },
    /// `python3 -m MODULE ARGS…`.
    Module { module: &'a str, args: &'a [String] },
}

/// `(interpreter, task)` when an argv can run forked from a warm worker. A script
/// needs a plain interpreter name (`python`, `python3`, `python3.N`, or a path to
/// one) followed directly by `FILE.py` or `-m MODULE`: any interpreter option
/// (`python3 -u train.py`; `-X fresh_process` is the documented opt-out, ignored
/// by CPython) runs it as a fresh process, which alone can honour it. Scripts run
/// on `argv[0]` itself, as a fresh process would.
pub fn warm_task(argv: &[String]) -> Option<(String, WarmTask<'_>)> {
    if let Some((python, entry)) = warm_entry(argv) {
        return Some((python, WarmTask::Sdk(entry)));
    }
    if contract::python_task(argv).is_some() {
        return None; // an SDK task with --fresh-process
    }
    let (python, rest) = argv.split_first()?;
    let program = Path::new(python).file_name()?.to_str()?;
    let version = program.strip_prefix("python3").or_else(|| program.strip_prefix("python"))?;
    let version_ok = version.is_empty() || version.strip_prefix('.').is_some_and(|v| v.parse::<u32>().is_ok());
    if !version_ok {
        return None;
    }
    let dotted = |m: &str| {
        m.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
    };
    let task = match rest {
        [m, module, args @ ..] if m == "-m" && dotted(module) => WarmTask::Module { module, args },
        [file, args @ ..] if file.ends_with(".py") && !file.starts_with('-') => WarmTask::Script { file, args },
        _ => return None,
    };
    Some((python.clone(), task))
}

/// What the translation of a Python spec gave.
pub enum SpecAnswer {
    /// The spec document (JSON, as a YAML file holds it), `file:line` by spec path,
    /// and the source files it was made from (`crate::translations`).
    Spec { document: serde_json::Value, locations: HashMap<String, String>, depends: Vec<String> },
    /// The Python could not be read as a spec: where (`file:line`), what, and what to do.
    Error { location: String, message: String, hint: String },
}

/// Which worker a task can use: the same interpreter, code directory, task environment and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerKey {
    pub python: String,
    pub code_dir: String,
    /// The task's own `env:` (applied before the worker imports anything).
    pub env: Vec<(String, String)>,
    pub kind: WorkerKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// Forks SDK tasks; imports the spec's or the task's module.
    Sdk,
    /// Forks scripts whose `sys.path[0]` is this directory (a script's own, resolved;
    /// empty for `-m` modules, whose first path entry is each attempt's directory):
    /// one worker per directory, so a module it imported is the one a script would find.
    Scripts { dir: String },
}

/// A worker process, killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started worker process (not yet serving a run).
pub struct Worker {
    child: KillOnDrop,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Worker {
    /// Starts a worker; with `spec`, it first translates that spec and answers with it.
    /// A script worker starts from the SDK in `sdk_dir` (which its scripts never see).
    pub fn start(
        key: &WorkerKey,
        spec: Option<&Path>,
        runner: &str,
        sdk_dir: Option<&Path>,
    ) -> std::io::Result<(Worker, SpecAnswer)> {
        let mut command = Command::new(&key.python);
        command.args(["-m", "updraft", "worker", "--code-dir", &key.code_dir]);
        if let Some(spec) = spec {
            command.arg("--spec").arg(spec);
        }
        if matches!(key.kind, WorkerKind::Scripts { .. }) {
            command.arg("--scripts");
        }
        command.envs(key.env.iter().map(|(k, v)| (k, v)));
        // After the task's own `env:`, whose PYTHONPATH (else this process's) follows the SDK's.
        if let (WorkerKind::Scripts { .. }, Some(sdk)) = (&key.kind, sdk_dir) {
            let inherited = key
                .env
                .iter()
                .find(|(k, _)| k == "PYTHONPATH")
                .map(|(_, v)| std::ffi::OsString::from(v))
                .or_else(|| std::env::var_os("PYTHONPATH"))
                .filter(|p| !p.is_empty());
            let path = std::env::join_paths(std::iter::once(sdk.as_os_str().to_owned()).chain(inherited))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            command.env("UPDRAFT_WORKER_SDK", sdk).env("PYTHONPATH", path);
        }
        let child = command
            .env(ENV_RUNNER, runner)
            .env(contract::ENV_CODE_DIR, &key.code_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", key.python)))?;
        let mut child = KillOnDrop(child);
        let stdin = child.0.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.0.stdout.take().expect("piped"));
        let answer = read_framed(&mut stdout).map_err(|e| {
            let _ = child.0.kill();
            let status = child.0.wait().ok().map(|s| s.to_string()).unwrap_or_default();
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                return e;
            }
            let message = format!(
                "{} -m updraft worker did not answer ({e}; {status}); is the SDK installed? \
                 pip install ./sdk/python from the repository",
                key.python
            );
            std::io::Error::new(e.kind(), message)
        })?;
        let text = |field: &str| answer.get(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let answer = if answer.get("error").is_some() {
            SpecAnswer::Error { location: text("where"), message: text("error"), hint: text("hint") }
        } else {
            let locations =
                answer.get("locations").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
            let depends =
                answer.get("depends").and_then(|d| serde_json::from_value(d.clone()).ok()).unwrap_or_default();
            SpecAnswer::Spec { document: answer.get("spec").cloned().unwrap_or_default(), locations, depends }
        };
        Ok((Worker { child, stdin, stdout }, answer))
    }
}

/// The largest translated spec taken, as for spec files (docs/spec.md, "Limits").
const MAX_TRANSLATION_BYTES: usize = 64 * 1024 * 1024;

/// `LENGTH\n` then that many bytes of JSON.
fn read_framed(stdout: &mut BufReader<std::process::ChildStdout>) -> std::io::Result<serde_json::Value> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let mut header = String::new();
    stdout.by_ref().take(32).read_line(&mut header)?;
    let length: usize = header.trim().parse().map_err(|_| invalid("no answer on its stdout".into()))?;
    if length > MAX_TRANSLATION_BYTES {
        let message = format!("the translated spec is {length} bytes; specs are limited to 64 MiB");
        return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, message));
    }
    let mut body = vec![0; length];
    stdout.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// How the worker answered a request to run an attempt.
pub enum Forked {
    /// The attempt runs as this process (and process group); `ended` gives its exit code
    /// (negative: the signal that killed it), or `None` if the worker itself went away.
    Running { pid: i32, ended: oneshot::Receiver<Option<i32>> },
    /// Run it as a fresh process instead, for this reason.
    Cold(String),
}

struct Pending {
    started: Option<oneshot::Sender<Result<i32, String>>>,
    ended: oneshot::Sender<Option<i32>>,
}

/// A worker serving a run: requests go to its stdin; a thread reads its answers.
struct Serving {
    stdin: Mutex<ChildStdin>,
    pending: Arc<Mutex<HashMap<u64, Pending>>>,
    next: AtomicU64,
    _process: KillOnDrop,
}

impl Serving {
    fn new(worker: Worker) -> Serving {
        let Worker { child, stdin, stdout } = worker;
        let pending: Arc<Mutex<HashMap<u64, Pending>>> = Arc::default();
        let answers = Arc::clone(&pending);
        std::thread::spawn(move || read_answers(stdout, answers));
        Serving { stdin: Mutex::new(stdin), pending, next: AtomicU64::new(1), _process: child }
    }

    async fn fork(&self, request: serde_json::Value) -> Forked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (started_tx, started_rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, Pending { started: Some(started_tx), ended: ended_tx });
        let mut line = request;
        line["id"] = id.into();
        let mut text = line.to_string();
        text.push('\n');
        if let Err(e) = self.stdin.lock().expect("stdin lock").write_all(text.as_bytes()) {
            self.pending.lock().expect("pending lock").remove(&id);
            return Forked::Cold(format!("the warm worker is gone ({e})"));
        }
        match started_rx.await {
            Ok(Ok(pid)) => Forked::Running { pid, ended: ended_rx },
            Ok(Err(reason)) => Forked::Cold(reason),
            Err(_) => Forked::Cold("the warm worker ended".into()),
        }
    }
}

fn read_answers(stdout: BufReader<std::process::ChildStdout>, pending: Arc<Mutex<HashMap<u64, Pending>>>) {
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        let Ok(answer) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let Some(id) = answer.get("id").and_then(|i| i.as_u64()) else { continue };
        let mut pending = pending.lock().expect("pending lock");
        if let Some(pid) = answer.get("pid").and_then(|p| p.as_i64()) {
            if let Some(started) = pending.get_mut(&id).and_then(|p| p.started.take())
                && started.send(Ok(pid as i32)).is_err()
            {
                // Nobody waits for it any more (the attempt was cancelled or timed out first).
                // SAFETY: killpg only sends a signal, to the group the worker made for this child.
                unsafe { libc::killpg(pid as i32, libc::SIGKILL) };
            }
        } else if let Some(reason) = answer.get("cold").and_then(|c| c.as_str()) {
            if let Some(entry) = pending.remove(&id)
                && let Some(started) = entry.started
            {
                let _ = started.send(Err(reason.to_string()));
            }
        } else if let Some(code) = answer.get("exit").and_then(|c| c.as_i64())
            && let Some(entry) = pending.remove(&id)
        {
            let _ = entry.ended.send(Some(code as i32));
        }
    }
    // The worker is gone: every attempt waiting on it learns so (the senders drop).
    pending.lock().expect("pending lock").clear();
}

/// The warm workers of one run, started lazily, one per [`WorkerKey`]; all are
/// stopped when the pool is dropped (the run is over).
pub struct Pool {
    runner: String,
    /// The SDK script workers start from, if it could be written.
    sdk_dir: Option<std::path::PathBuf>,
    /// A worker, or why it could not start (its tasks then run in fresh processes).
    workers: tokio::sync::Mutex<HashMap<WorkerKey, Result<Arc<Serving>, String>>>,
}

/// One attempt, as the worker needs it.
pub struct ForkRequest<'a> {
    pub task: WarmTask<'a>,
    /// The whole argv (a script sees it as `sys.orig_argv`).
    pub argv: &'a [String],
    /// A script's first `sys.path` entry: its directory, or the working directory for `-m`.
    pub path0: &'a Path,
    pub cwd: &'a Path,
    /// An SDK task's environment on top of the worker's; a script's whole environment.
    pub env: &'a [(String, String)],
    pub stdout: &'a Path,
    pub stderr: &'a Path,
}

impl Pool {
    /// A pool for the run of `runner`; `adopted` is the worker that translated the spec;
    /// script workers start from the SDK in `sdk_dir` (`crate::embedded_sdk::materialized`).
    pub fn new(runner: String, adopted: Option<(WorkerKey, Worker)>, sdk_dir: Option<std::path::PathBuf>) -> Pool {
        let workers = adopted.into_iter().map(|(key, worker)| (key, Ok(Arc::new(Serving::new(worker))))).collect();
        Pool { runner, sdk_dir, workers: tokio::sync::Mutex::new(workers) }
    }

    /// Forks the attempt from the key's worker (starting it first if needed).
    pub async fn fork(&self, key: &WorkerKey, request: ForkRequest<'_>) -> Forked {
        let serving = {
            let mut workers = self.workers.lock().await;
            if !workers.contains_key(key) {
                // Starting takes an interpreter's start-up and the SDK's import: off the runtime's thread.
                let (owned, runner, sdk) = (key.clone(), self.runner.clone(), self.sdk_dir.clone());
                let started =
                    tokio::task::spawn_blocking(move || Worker::start(&owned, None, &runner, sdk.as_deref())).await;
                let serving = match started {
                    Ok(Ok((worker, _))) => Ok(Arc::new(Serving::new(worker))),
                    Ok(Err(e)) => Err(format!("its warm worker could not start: {e}")),
                    Err(e) => Err(format!("its warm worker could not start: {e}")),
                };
                workers.insert(key.clone(), serving);
            }
            match &workers[key] {
                Ok(serving) => Arc::clone(serving),
                Err(reason) => return Forked::Cold(reason.clone()),
            }
        };
        let env: serde_json::Map<String, serde_json::Value> =
            request.env.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let mut message = serde_json::json!({
            "cwd": request.cwd,
            "env": env,
            "stdout": request.stdout,
            "stderr": request.stderr,
        });
        match request.task {
            WarmTask::Sdk(entry) => message["entry"] = entry.into(),
            WarmTask::Script { file, args } => {
                message["script"] = file.into();
                message["args"] = args.into();
            }
            WarmTask::Module { module, args } => {
                message["module"] = module.into();
                message["args"] = args.into();
            }
        }
        if !matches!(request.task, WarmTask::Sdk(_)) {
            message["argv"] = request.argv.into();
            message["path0"] = request.path0.to_string_lossy().into_owned().into();
        }
        serving.fork(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_sdk_argv_runs_warm() {
        assert_eq!(warm_entry(&argv(&["python3", "-m", "updraft.task", "m:f"])), Some((interpreter(), "m:f")));
        assert_eq!(
            warm_entry(&argv(&["/usr/bin/python3.11", "-m", "updraft.task", "pkg.m:f"])),
            Some(("/usr/bin/python3.11".to_string(), "pkg.m:f"))
        );
        for cold in [
            &["python3", "-m", "updraft.task", "--fresh-process", "m:f"][..],
            &["python3", "task.py", "m:f"],
            &["sh", "-m", "updraft.task", "m:f"],
            &["python3", "-m", "updraft.task", "no-colon"],
        ] {
            assert_eq!(warm_entry(&argv(cold)), None, "{cold:?}");
        }
    }

    #[test]
    fn scripts_and_modules_run_warm_unless_the_interpreter_gets_options() {
        let script = argv(&["python3", "{code}/train.py", "--lr", "0.1"]);
        assert_eq!(
            warm_task(&script),
            Some(("python3".to_string(), WarmTask::Script { file: "{code}/train.py", args: &script[2..] }))
        );
        let module = argv(&["/usr/bin/python3.11", "-m", "pkg.train", "x"]);
        assert_eq!(
            warm_task(&module),
            Some(("/usr/bin/python3.11".to_string(), WarmTask::Module { module: "pkg.train", args: &module[3..] }))
        );
        assert!(matches!(warm_task(&argv(&["python3", "-m", "updraft.task", "m:f"])), Some((_, WarmTask::Sdk("m:f")))));
        for cold in [
            &["python3", "-X", "fresh_process", "train.py"][..],
            &["python3", "-u", "train.py"],
            &["python3", "-m", "updraft.task", "--fresh-process", "m:f"],
            &["python3", "-m", "not a module"],
            &["python3", "train.sh"],
            &["pythonista", "train.py"],
            &["python3.x", "train.py"],
            &["bash", "train.py"],
            &["python3"],
        ] {
            assert_eq!(warm_task(&argv(cold)), None, "{cold:?}");
        }
    }

    #[test]
    fn python_specs_are_files_or_module_references() {
        assert!(is_python_spec(Path::new("examples/diabetes/diabetes.py")));
        assert!(is_python_spec(Path::new("pipelines.train:nightly")));
        assert!(is_python_spec(Path::new("flows.py:train")));
        assert!(!is_python_spec(Path::new("examples/hello/hello.yaml")));
        assert!(!is_python_spec(Path::new("a b:c")));
        assert_eq!(spec_file_path(Path::new("flows.py:train")), Path::new("flows.py"));
        assert_eq!(spec_file_path(Path::new("flows.py")), Path::new("flows.py"));
    }
}
