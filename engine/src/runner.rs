//! Who runs a local execution, and what happens when that process dies mid-run.
//!
//! `updraft run` records itself (boot id, pid, process start time) beside each
//! execution it starts. Before its first task starts it starts a watchdog, a
//! second `updraft` process that waits for the runner's end of a pipe to close
//! (the runner exits or is killed, SIGKILL included) and then kills every process
//! still carrying the execution's id in its environment: the tasks and whatever
//! they started. (`PR_SET_PDEATHSIG` would cover the tasks alone and forces fork
//! instead of posix_spawn for every task, measured at +0.36 ms per node.) Any
//! later `updraft run` or `updraft executions` closes executions whose runner is
//! gone: ABORTED, with the reason.

use super::store::{Store, StoreError};
use crate::python::ENV_RUNNER;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use updraft_core::execution::contract::ENV_EXECUTION_ID;
use updraft_core::proto::core::{ErrorKind, ExecutionError, NodePhase, WorkflowPhase};

/// This process as `boot-id:pid:start-time`: a pid alone is reused, its start
/// time (clock ticks since boot) and the boot id are not.
pub fn this_process() -> String {
    identity(std::process::id()).map_or_else(|| format!("unknown:{}:0", std::process::id()), |(id, _)| id)
}

/// A process's identity and whether it has died unreaped (a zombie), from one
/// read of `/proc/<pid>/stat`.
fn identity(pid: u32) -> Option<(String, bool)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((format!("{}:{pid}:{}", boot.trim(), fields.get(19)?), zombie))
}

/// Whether the process recorded as `recorded` (see [`this_process`]) still runs;
/// a zombie (dead, not yet reaped by its parent) does not.
pub fn is_alive(recorded: &str) -> bool {
    let Some(pid) = recorded.split(':').nth(1).and_then(|p| p.parse::<u32>().ok()) else { return false };
    identity(pid).is_some_and(|(now, zombie)| !zombie && now == recorded)
}

/// Asks the process recorded as `recorded` to stop (SIGTERM, which `updraft run`
/// handles as Ctrl-C); nothing when it is no longer that process.
pub fn terminate(recorded: &str) {
    let Some(pid) = recorded.split(':').nth(1).and_then(|p| p.parse::<i32>().ok()) else { return };
    if is_alive(recorded) {
        // SAFETY: kill only sends a signal, to the process whose identity was just checked.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Kills (SIGKILL) every process of this user whose environment holds
/// `UPDRAFT_EXECUTION_ID=<execution>`, or `UPDRAFT_RUNNER=<runner>` (the run's
/// warm Python workers and the tasks forked from them, which keep the worker's
/// environment in `/proc`); returns how many.
pub fn kill_leftovers(execution: &str, runner: Option<&str>) -> usize {
    let mut needles = vec![format!("{ENV_EXECUTION_ID}={execution}\0")];
    needles.extend(runner.map(|r| format!("{ENV_RUNNER}={r}\0")));
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        // Other users' environments are unreadable: those are not ours to kill anyway.
        let Ok(environment) = std::fs::read(entry.path().join("environ")) else { continue };
        let holds = |needle: &String| environment.windows(needle.len()).any(|w| w == needle.as_bytes());
        if needles.iter().any(holds) {
            // SAFETY: kill only sends a signal.
            if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

/// Closes every execution whose runner died before finishing it: the execution
/// and its unfinished nodes become ABORTED with the reason, and whatever its
/// tasks left running is killed. Returns the executions closed.
pub fn close_orphans(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut closed = Vec::new();
    for (name, runner) in store.running()? {
        if is_alive(&runner) {
            continue;
        }
        kill_leftovers(&name, Some(&runner));
        let pid = runner.split(':').nth(1).unwrap_or("?");
        let now = super::now();
        store.update_nodes(&name, |node| {
            let unfinished = [NodePhase::Queued as i32, NodePhase::Running as i32].contains(&node.phase);
            if unfinished {
                node.phase = NodePhase::Aborted as i32;
                node.updated_at = Some(now);
            }
            unfinished
        })?;
        if let Some((mut execution, _)) = store.get(&name)? {
            execution.phase = WorkflowPhase::WorkflowAborted as i32;
            execution.updated_at = Some(now);
            execution.error = Some(ExecutionError {
                code: "RunnerDied".into(),
                message: format!(
                    "the updraft process running this execution (pid {pid}) ended before it did \
                     (killed, or the machine stopped); its tasks were stopped"
                ),
                kind: ErrorKind::System as i32,
                ..Default::default()
            });
            store.put_execution(&execution)?;
        } else {
            store.forget_runner(&name)?;
        }
        closed.push(name);
    }
    Ok(closed)
}

/// The runner's end of the watchdog's pipe: when it closes (the runner exits
/// or is killed), the watchdog cleans up.
pub struct Watchdog {
    _pipe: OwnedFd,
}

/// Starts the watchdog of one execution: `updraft` itself, in its own process
/// group (a Ctrl-C meant for the run does not reach it), reading the pipe.
pub fn start_watchdog(execution: &str, home: &Path) -> std::io::Result<Watchdog> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors; close-on-exec keeps tasks from inheriting either end.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    use std::os::unix::process::CommandExt;
    std::process::Command::new(std::env::current_exe()?)
        .args(["__watch-runner", execution, &this_process()])
        .env("UPDRAFT_HOME", home)
        .stdin(std::process::Stdio::from(read))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(Watchdog { _pipe: write })
}

/// The watchdog's side (`updraft __watch-runner EXECUTION RUNNER`): waits for the
/// runner to go, then closes the execution if the runner left it open and kills
/// what its tasks and workers left behind.
pub fn watch(execution: &str, runner: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut buffer = [0u8; 64];
    let mut stdin = std::io::stdin();
    while stdin.read(&mut buffer).is_ok_and(|n| n > 0) {}
    // The clean-up is bounded: a watchdog must never outlive its purpose (SIGALRM ends it).
    // SAFETY: alarm only schedules a signal.
    unsafe { libc::alarm(60) };
    let home = super::home::Home::from_env()?;
    close_orphans(&Store::open(&home.database())?)?;
    kill_leftovers(execution, runner);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_only_with_its_own_start_time() {
        let me = this_process();
        assert!(is_alive(&me), "{me}");
        let parts: Vec<&str> = me.split(':').collect();
        assert!(!is_alive(&format!("{}:{}:1", parts[0], parts[1])), "same pid, other start time: a reused pid");
        assert!(!is_alive(&format!("other-boot:{}:{}", parts[1], parts[2])));
        assert!(!is_alive("garbage"));
    }
}
