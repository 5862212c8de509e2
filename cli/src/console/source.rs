//! Where the console reads runs from. One trait, so the views never know whether
//! they show the local store or (later) a stack's API; the local implementation
//! opens the store read-only for each request and never closes a run itself.

use std::collections::HashSet;
use std::path::PathBuf;
use updraft_core::proto::core::{CompiledWorkflow, Execution, NodeExecution, WorkflowPhase};
use updraft_engine::home::Home;
use updraft_engine::runner;
use updraft_engine::store::{ExecutionQuery, Store, StoreError};

/// Which runs a page lists (`None`: any), newest first.
#[derive(Debug, Default, Clone)]
pub struct RunQuery {
    pub phase: Option<WorkflowPhase>,
    pub workflow: Option<String>,
    /// Launched by this launch plan (a scheduled run).
    pub launch_plan: Option<String>,
    /// Created at or after this time (epoch seconds).
    pub since_seconds: Option<i64>,
    /// The last run of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

/// A page of runs, the token of the next (the last run's name) and the records skipped.
pub struct RunPage {
    pub executions: Vec<Execution>,
    pub next_token: Option<String>,
    /// RUNNING runs whose `updraft run` is gone (killed): shown as such, not closed.
    pub runner_gone: Vec<String>,
    pub skipped: Vec<String>,
}

/// One run with what its views need.
pub struct RunView {
    pub execution: Execution,
    pub nodes: Vec<NodeExecution>,
    /// The compiled workflow it ran; `None` for runs recorded before the store kept it.
    pub workflow: Option<CompiledWorkflow>,
    pub runner_gone: bool,
}

/// A node attempt's log, or the part of it asked for.
pub struct LogChunk {
    pub text: String,
    /// What the text is: `stdout`/`stderr` of a local task, `log` of a cloud job's stream.
    pub label: String,
    /// The whole file's size and where the text starts in it.
    pub size: u64,
    pub offset: u64,
    /// The node's attempts that left logs, and the one read.
    pub attempts: Vec<u32>,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Which part of a log to read: its last `lines` lines, or `length` bytes from `offset`.
#[derive(Debug, Clone, Copy)]
pub enum LogRange {
    Tail { lines: usize },
    Bytes { offset: u64, length: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stack's API refused (its status and error, passed on to the page).
    #[error("{message}")]
    Refused { status: u16, code: String, message: String },
    /// The stack's API could not be reached or answered nonsense.
    #[error("{0}")]
    Unreachable(String),
}

/// A launch plan as its page shows it: its schedule, when it fires next, what its ticks did.
pub struct PlanView {
    pub name: String,
    /// The version whose schedule is active (cloud plans).
    pub active_version: String,
    /// Its schedule, as the registry holds it (cloud plans; a local plan's is in its spec file).
    pub schedule: Option<updraft_core::proto::core::Schedule>,
    /// The stack's schedule: ENABLED, DISABLED or NONE (cloud plans).
    pub state: String,
    /// The next three fire times (RFC 3339, UTC).
    pub next_fires: Vec<String>,
    /// The newest ticks first, as `ScheduleTick` JSON.
    pub ticks: Vec<serde_json::Value>,
}

/// What the page may offer: an action is shown only where the source has it.
pub struct About {
    /// `local` or `remote`.
    pub mode: &'static str,
    /// Where the runs are: the home's directory, or the API's endpoint, project and domain.
    pub location: String,
    /// Abort, relaunch and recover (cloud runs, through the API).
    pub can_act: bool,
}

/// A run started from another: all again (`Relaunch`), or what did not succeed (`Recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    Relaunch,
    Recover,
}

/// A project and domain: where a stack keeps a run (its runs' names are unique within one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Scope {
    pub project: Option<String>,
    pub domain: Option<String>,
}

impl Scope {
    /// Both parts, each a name the API accepts as a path segment (no `/`, no `..`);
    /// `None` for no scope; the refusal for a malformed one.
    pub fn parts(&self) -> Result<Option<(String, String)>, String> {
        let segment = |what: &str, text: &str| {
            let ok = text.len() <= 128
                && text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && text.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !text.contains("..");
            if ok { Ok(text.to_string()) } else { Err(format!("{what} {text:.40?} is not a {what} name")) }
        };
        match (self.project.as_deref().filter(|p| !p.is_empty()), self.domain.as_deref().filter(|d| !d.is_empty())) {
            (None, None) => Ok(None),
            (Some(project), Some(domain)) => Ok(Some((segment("project", project)?, segment("domain", domain)?))),
            _ => Err("name both the project and the domain, or neither".into()),
        }
    }
}

/// A project and domain that holds runs, with its newest run (the list across projects).
#[derive(serde::Serialize)]
pub struct ProjectRuns {
    pub project: String,
    pub domain: String,
    pub newest: Option<Execution>,
}

/// Project and domain pairs the list across projects reads at most (one listing each).
pub const MAX_PROJECT_DOMAINS: usize = 100;

pub trait RunSource: Send + Sync + 'static {
    fn about(&self) -> About;
    /// Every project and domain that holds runs (or, for a stack, entities), with its
    /// newest run, at most [`MAX_PROJECT_DOMAINS`].
    fn projects(&self) -> Result<Vec<ProjectRuns>, SourceError>;
    /// This source over the runs of one project and domain only.
    fn scoped(&self, project: &str, domain: &str) -> std::sync::Arc<dyn RunSource>;
    fn list(&self, query: &RunQuery) -> Result<RunPage, SourceError>;
    /// `None`: no run of that name.
    fn run(&self, name: &str) -> Result<Option<RunView>, SourceError>;
    /// `None`: no such run, node or attempt, or no log of it.
    fn log(
        &self,
        run: &str,
        node: &str,
        attempt: Option<u32>,
        stream: Stream,
        range: LogRange,
    ) -> Result<Option<LogChunk>, SourceError>;
    /// The newest `limit` runs of `workflow`, each with its nodes (the workflow page's grid):
    /// a page of the list, then each run, as both sources can.
    fn runs_of(&self, workflow: &str, limit: usize) -> Result<Vec<RunView>, SourceError> {
        let query = RunQuery { workflow: Some(workflow.to_string()), limit, ..Default::default() };
        let names: Vec<String> =
            self.list(&query)?.executions.iter().filter_map(|e| e.id.as_ref().map(|id| id.name.clone())).collect();
        names.iter().filter_map(|name| self.run(name).transpose()).collect()
    }

    /// The launch plans with schedules or ticks, and the last `ticks` ticks of each.
    fn launch_plans(&self, ticks: usize) -> Result<Vec<PlanView>, SourceError>;

    /// Aborts a running run and answers it as it is then; only where `about().can_act`.
    fn abort(&self, run: &str, reason: &str) -> Result<Execution, SourceError> {
        let _ = (run, reason);
        Err(not_supported())
    }

    /// Starts a new run of `run` named `name` (the idempotency key: the same request
    /// again is the same run) and answers its name; only where `about().can_act`.
    fn rerun(&self, run: &str, how: Rerun, name: &str) -> Result<String, SourceError> {
        let _ = (run, how, name);
        Err(not_supported())
    }
}

fn not_supported() -> SourceError {
    SourceError::Refused {
        status: 405,
        code: "NotSupported".into(),
        message: "this console only reads local runs: use `updraft executions abort` or `updraft run --recover`".into(),
    }
}

/// The runs of this machine's `UPDRAFT_HOME` (of every project, or of one).
#[derive(Clone)]
pub struct LocalRuns {
    home: Home,
    scope: Option<(String, String)>,
}

impl LocalRuns {
    pub fn new(home: Home) -> LocalRuns {
        LocalRuns { home, scope: None }
    }

    /// The store as a reader, or `None` while no run has made one (an empty home).
    fn store(&self) -> Result<Option<Store>, StoreError> {
        let path = self.home.database();
        if !path.exists() {
            return Ok(None);
        }
        Store::open_read_only(&path).map(Some)
    }

    fn gone_runners(store: &Store) -> Result<HashSet<String>, StoreError> {
        Ok(store.running()?.into_iter().filter(|(_, runner)| !runner::is_alive(runner)).map(|(run, _)| run).collect())
    }
}

impl RunSource for LocalRuns {
    fn about(&self) -> About {
        // Acting on a local run means signalling or starting processes: the console only reads.
        About { mode: "local", location: self.home.root().display().to_string(), can_act: false }
    }

    fn projects(&self) -> Result<Vec<ProjectRuns>, SourceError> {
        let Some(store) = self.store()? else { return Ok(vec![]) };
        let mut found = Vec::new();
        for (project, domain) in store.project_domains()?.into_iter().take(MAX_PROJECT_DOMAINS) {
            let query =
                ExecutionQuery { project: Some(project.clone()), domain: Some(domain.clone()), ..Default::default() };
            let newest = store.list_where(1, &query)?.executions.into_iter().next();
            found.push(ProjectRuns { project, domain, newest });
        }
        Ok(found)
    }

    fn scoped(&self, project: &str, domain: &str) -> std::sync::Arc<dyn RunSource> {
        std::sync::Arc::new(LocalRuns { scope: Some((project.to_string(), domain.to_string())), ..self.clone() })
    }

    /// `updraft schedule` records each tick it handles; the plans and their schedules live in
    /// the spec files it was given, so a local plan shows its ticks and no next fires.
    fn launch_plans(&self, ticks: usize) -> Result<Vec<PlanView>, SourceError> {
        let Some(store) = self.store()? else { return Ok(vec![]) };
        let mut plans: Vec<PlanView> = Vec::new();
        for tick in store.ticks()? {
            if plans.last().is_none_or(|p| p.name != tick.plan) {
                plans.push(PlanView {
                    name: tick.plan.clone(),
                    active_version: String::new(),
                    schedule: None,
                    state: String::new(),
                    next_fires: vec![],
                    ticks: vec![],
                });
            }
            let plan = plans.last_mut().expect("pushed above");
            if plan.ticks.len() < ticks {
                plan.ticks.push(serde_json::json!({
                    "scheduledTime": tick.scheduled_time, "outcome": tick.outcome, "execution": tick.execution,
                }));
            }
        }
        Ok(plans)
    }

    fn list(&self, query: &RunQuery) -> Result<RunPage, SourceError> {
        let Some(store) = self.store()? else {
            return Ok(RunPage { executions: vec![], next_token: None, runner_gone: vec![], skipped: vec![] });
        };
        let wanted = ExecutionQuery {
            workflow: query.workflow.clone(),
            launch_plan: query.launch_plan.clone(),
            phase: query.phase.map(|p| p as i32),
            since_seconds: query.since_seconds,
            after: query.after.clone(),
            project: self.scope.as_ref().map(|(project, _)| project.clone()),
            domain: self.scope.as_ref().map(|(_, domain)| domain.clone()),
        };
        // One more than the page: whether there is a next page, without a second query.
        let mut listing = store.list_where(query.limit + 1, &wanted)?;
        let more = listing.executions.len() > query.limit;
        listing.executions.truncate(query.limit);
        let name = |e: &Execution| e.id.as_ref().map(|id| id.name.clone()).unwrap_or_default();
        let gone = Self::gone_runners(&store)?;
        Ok(RunPage {
            next_token: if more { listing.executions.last().map(name) } else { None },
            runner_gone: listing.executions.iter().map(name).filter(|n| gone.contains(n)).collect(),
            executions: listing.executions,
            skipped: listing.skipped,
        })
    }

    fn run(&self, name: &str) -> Result<Option<RunView>, SourceError> {
        let Some(store) = self.store()? else { return Ok(None) };
        let Some((execution, nodes)) = store.get(name)? else { return Ok(None) };
        let workflow = store.workflow_of_run(name)?;
        let runner_gone = Self::gone_runners(&store)?.contains(name);
        Ok(Some(RunView { execution, nodes, workflow, runner_gone }))
    }

    fn log(
        &self,
        run: &str,
        node: &str,
        attempt: Option<u32>,
        stream: Stream,
        range: LogRange,
    ) -> Result<Option<LogChunk>, SourceError> {
        // The run must exist, and the node is looked up among the directories its attempts
        // left (walked from the run's directory): nothing from the request becomes a path unchecked.
        let Some(store) = self.store()? else { return Ok(None) };
        if store.get(run)?.is_none() {
            return Ok(None);
        }
        let run_dir = self.home.node_dir(run, "");
        let logged = crate::commands::executions::logged_attempts(&run_dir);
        let Some(attempts) = logged.get(node) else { return Ok(None) };
        let attempt = match attempt {
            Some(wanted) if attempts.contains(&wanted) => wanted,
            Some(_) => return Ok(None),
            None => *attempts.last().expect("a logged node has an attempt"),
        };
        let suffix = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let file: PathBuf = run_dir.join(node).join(format!("attempt-{attempt}.{suffix}.log"));
        let (text, size, offset) = read_range(&file, range)?;
        Ok(Some(LogChunk { text, label: suffix.into(), size, offset, attempts: attempts.clone(), attempt }))
    }
}

/// Reads a part of a log without reading the whole file: a 50 MB log costs what its tail costs.
fn read_range(file: &std::path::Path, range: LogRange) -> std::io::Result<(String, u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut log = match std::fs::File::open(file) {
        Ok(log) => log,
        // A stream the attempt never wrote to is an empty log.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), 0, 0)),
        Err(e) => return Err(e),
    };
    let size = log.metadata()?.len();
    match range {
        LogRange::Bytes { offset, length } => {
            let offset = offset.min(size);
            log.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::new();
            log.take(length.min(MAX_LOG_BYTES)).read_to_end(&mut bytes)?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), size, offset))
        }
        LogRange::Tail { lines } => {
            // Back from the end a block at a time until the lines are there (or the start).
            let mut start = size;
            let mut bytes: Vec<u8> = Vec::new();
            while start > 0
                && bytes.iter().filter(|b| **b == b'\n').count() <= lines
                && bytes.len() < MAX_LOG_BYTES as usize
            {
                let step = start.min(64 * 1024);
                start -= step;
                log.seek(SeekFrom::Start(start))?;
                let mut block = vec![0; step as usize];
                log.read_exact(&mut block)?;
                block.extend_from_slice(&bytes);
                bytes = block;
            }
            // Keep the last `lines` lines (a line in progress at the end counts as one).
            let ends_with_newline = bytes.last() == Some(&b'\n');
            let mut newlines =
                bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect::<Vec<_>>();
            if ends_with_newline {
                newlines.pop();
            }
            let keep_from = if newlines.len() >= lines && lines > 0 {
                newlines[newlines.len() - lines] + 1
            } else if lines == 0 {
                bytes.len()
            } else {
                0
            };
            let offset = start + keep_from as u64;
            Ok((String::from_utf8_lossy(&bytes[keep_from..]).into_owned(), size, offset))
        }
    }
}

/// The most a log answer carries: past it, the page asks for the next range.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_tail_is_its_last_lines_and_a_range_is_those_bytes() {
        let dir = std::env::temp_dir().join(format!("updraft-console-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("attempt-1.stdout.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, &text).unwrap();
        let (tail, size, offset) = read_range(&file, LogRange::Tail { lines: 3 }).unwrap();
        assert_eq!(tail, "line 99997\nline 99998\nline 99999\n");
        assert_eq!((size, offset), (text.len() as u64, (text.len() - tail.len()) as u64));
        let (part, _, at) = read_range(&file, LogRange::Bytes { offset: 7, length: 14 }).unwrap();
        assert_eq!((part.as_str(), at), ("line 1\nline 2\n", 7));
        let (whole, _, at) = read_range(&file, LogRange::Tail { lines: 1_000_000 }).unwrap();
        assert!(whole.len() as u64 <= MAX_LOG_BYTES + 64 * 1024 && at > 0, "bounded, from a line start");
        assert_eq!(read_range(&dir.join("none.log"), LogRange::Tail { lines: 5 }).unwrap().0, "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
