//! One attempt of a task as a local process: argv run directly (no shell), in
//! its own process group so that a timeout or Ctrl-C stops everything it
//! started, with stdout and stderr going to log files.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

pub struct Attempt {
    pub argv: Vec<String>,
    /// Set on top of this process's environment.
    pub env: Vec<(String, String)>,
    /// Taken out of the inherited environment (secrets meant as files).
    pub remove_env: Vec<String>,
    pub cwd: PathBuf,
    /// Log files; `None` passes the stream through (`updraft exec`, where the container's log is the log).
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub timeout: Option<Duration>,
    /// The most each log file may grow to; past it the task is stopped (`None`: no limit).
    pub max_log_bytes: Option<u64>,
}

/// What a local attempt may write to each of stdout and stderr: 1 GiB, so a task
/// stuck printing cannot fill the disk. `UPDRAFT_MAX_LOG_BYTES` changes it.
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// The log limit in force: `UPDRAFT_MAX_LOG_BYTES` or [`MAX_LOG_BYTES`].
pub fn max_log_bytes() -> u64 {
    std::env::var("UPDRAFT_MAX_LOG_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_LOG_BYTES)
}

fn stream(path: &Option<PathBuf>) -> std::io::Result<Stdio> {
    match path {
        Some(path) => std::fs::File::create(path).map(Stdio::from),
        None => Ok(Stdio::inherit()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    /// A log file grew past `max_log_bytes`; the task was stopped.
    LogLimit(u64),
    Cancelled,
    /// The program could not be started (not found, not executable).
    SpawnFailed(String),
}

/// How long a cancelled process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// A started attempt: its process group, and a future of how it ended.
pub struct Started {
    pub pgid: i32,
    pub ended: Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

pub async fn run(attempt: Attempt, cancel: watch::Receiver<bool>) -> Outcome {
    match spawn(&attempt) {
        Ok(started) => supervise(started, &attempt, cancel).await,
        Err(outcome) => outcome,
    }
}

/// Starts the argv as a child of this process, in a process group of its own.
fn spawn(attempt: &Attempt) -> Result<Started, Outcome> {
    let (Ok(stdout), Ok(stderr)) = (stream(&attempt.stdout), stream(&attempt.stderr)) else {
        return Err(Outcome::SpawnFailed(format!("cannot create log files in {}", attempt.cwd.display())));
    };
    let Some((program, args)) = attempt.argv.split_first() else {
        return Err(Outcome::SpawnFailed("empty command".into()));
    };
    let mut command = tokio::process::Command::new(program);
    for name in &attempt.remove_env {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(attempt.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&attempt.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Err(Outcome::SpawnFailed(format!("cannot start {program:?}: {e}"))),
    };
    let Some(pgid) = child.id().map(|pid| pid as i32) else {
        return Err(Outcome::SpawnFailed("the process ended before it could be tracked".into()));
    };
    let ended = async move {
        match child.wait().await {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(signal)) => Outcome::Signaled(signal),
                _ => Outcome::Exited(-1),
            },
            Err(e) => Outcome::SpawnFailed(format!("lost track of the process: {e}")),
        }
    };
    Ok(Started { pgid, ended: Box::pin(ended) })
}

/// Waits for a started attempt under the attempt's timeout, log limit and
/// cancellation; whatever the group still runs afterwards is killed.
pub async fn supervise(started: Started, attempt: &Attempt, mut cancel: watch::Receiver<bool>) -> Outcome {
    let Started { pgid, mut ended } = started;
    let timeout = async {
        match attempt.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    // Log files are checked ten times a second; a task writing past the limit is stopped
    // (a very fast writer may overshoot by what it writes in 100 ms).
    let logs: Vec<PathBuf> = [&attempt.stdout, &attempt.stderr].into_iter().flatten().cloned().collect();
    let log_limit = async {
        let Some(limit) = attempt.max_log_bytes.filter(|_| !logs.is_empty()) else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if logs.iter().any(|log| std::fs::metadata(log).is_ok_and(|m| m.len() > limit)) {
                return limit;
            }
        }
    };
    let outcome = tokio::select! {
        outcome = &mut ended => outcome,
        _ = timeout => {
            kill_group(pgid, libc::SIGKILL);
            let _ = ended.await;
            Outcome::TimedOut
        }
        limit = log_limit => {
            kill_group(pgid, libc::SIGKILL);
            let _ = ended.await;
            Outcome::LogLimit(limit)
        }
        _ = cancelled(&mut cancel) => {
            kill_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(GRACE, &mut ended).await.is_err() {
                kill_group(pgid, libc::SIGKILL);
                let _ = ended.await;
            }
            Outcome::Cancelled
        }
    };
    // Whatever the task left running in the background goes with it.
    kill_group(pgid, libc::SIGKILL);
    outcome
}

/// Resolves once cancellation has been requested.
pub async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    while !*cancel.borrow_and_update() {
        if cancel.changed().await.is_err() {
            // The sender is gone: nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: killpg only sends a signal; a group that is already gone yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// An attempt forked by a warm Python worker: the child is the worker's, so its
/// end comes as the worker's report (exit code, or minus the signal).
pub fn forked(pid: i32, ended: tokio::sync::oneshot::Receiver<Option<i32>>) -> Started {
    let ended = async move {
        match ended.await {
            Ok(Some(code)) if code >= 0 => Outcome::Exited(code),
            Ok(Some(signal)) => Outcome::Signaled(-signal),
            _ => Outcome::SpawnFailed("lost track of the task: its warm Python worker ended".into()),
        }
    };
    Started { pgid: pid, ended: Box::pin(ended) }
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
