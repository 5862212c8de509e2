//! `updraft executions list|get|delete|abort|logs` and `updraft gc`: what the
//! embedded metadata store knows, and keeping the home's size in check.

use serde_json::json;
use std::process::ExitCode;
use updraft_core::literal;
use updraft_core::proto::core::{CacheStatus, Execution, LaunchMode, NodeExecution, NodePhase, WorkflowPhase};
use updraft_engine::home::Home;
use updraft_engine::progress::phase_name;
use updraft_engine::runner;
use updraft_engine::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// The store, with executions whose runner died closed first (they would show RUNNING forever).
pub fn open_store() -> Result<Store, Box<dyn std::error::Error>> {
    let store = Store::open(&Home::from_env()?.database())?;
    runner::close_orphans(&store)?;
    Ok(store)
}

/// Which runs `executions list` shows (every flag given must match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub workflow: Option<String>,
    pub phase: Option<WorkflowPhase>,
    /// Created at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Local runs only: their project and domain (a stack's listing is by both already).
    pub project: Option<String>,
    pub domain: Option<String>,
}

/// `--phase`: the run phases by the names `executions list` prints.
pub fn parse_phase(text: &str) -> Result<WorkflowPhase, String> {
    let phases = [
        ("RUNNING", WorkflowPhase::WorkflowRunning),
        ("SUCCEEDED", WorkflowPhase::WorkflowSucceeded),
        ("FAILED", WorkflowPhase::WorkflowFailed),
        ("ABORTED", WorkflowPhase::WorkflowAborted),
        ("TIMED_OUT", WorkflowPhase::WorkflowTimedOut),
    ];
    let wanted = text.to_ascii_uppercase().replace('-', "_");
    phases.iter().find(|(name, _)| *name == wanted).map(|(_, phase)| *phase).ok_or_else(|| {
        let names: Vec<&str> = phases.iter().map(|(name, _)| *name).collect();
        format!("--phase {text:?} is not a phase; one of {}", names.join(", "))
    })
}

/// `--since`: a time (`2027-03-28`, RFC 3339) or an age (`90m`, `6h`, `2d`) before `now`.
pub fn parse_since(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    if let (Some(per), Ok(count)) = (seconds, number.parse::<i64>()) {
        if count < 0 {
            return Err(format!("--since {text:?}: an age counts back from now; write it without the sign"));
        }
        return count
            .checked_mul(per)
            .filter(|s| *s >= 0 && *s <= 100 * 365 * 86_400)
            .map(|s| now - chrono::Duration::seconds(s))
            .ok_or_else(|| format!("--since {text:?} reaches back too far; at most 100 years"));
    }
    super::schedule::parse_after(text)
        .map_err(|_| format!("--since {text:?} is neither an age (90m, 6h, 2d) nor a time (2027-03-28T01:00:00Z)"))
}

pub fn list(limit: usize, filter: &Filter, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let query = updraft_engine::store::ExecutionQuery {
        workflow: filter.workflow.clone(),
        launch_plan: None,
        phase: filter.phase.map(|p| p as i32),
        project: filter.project.clone(),
        domain: filter.domain.clone(),
        since_seconds: filter.since.map(|s| s.timestamp()),
        after: None,
    };
    let listing = open_store()?.list_where(limit, &query)?;
    for warning in &listing.skipped {
        eprintln!("warning: {warning}");
    }
    print_list(&listing.executions, output)?;
    Ok(ExitCode::SUCCESS)
}

/// `updraft executions delete`: the named executions, plus those older than a time
/// and all but the newest `keep`; at least one way of choosing must be given.
pub fn delete(
    names: &[String],
    older_than: Option<chrono::DateTime<chrono::Utc>>,
    keep: Option<usize>,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if names.is_empty() && older_than.is_none() && keep.is_none() {
        eprintln!("error: name the executions to delete, or choose them with --older-than AGE or --keep N");
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    let store = open_store()?;
    let mut chosen: Vec<String> = names.to_vec();
    if older_than.is_some() || keep.is_some() {
        let all = store.list(usize::MAX)?.executions;
        for (newest_first, execution) in all.iter().enumerate() {
            let created = execution.created_at.map(|t| t.seconds).unwrap_or_default();
            let old = older_than.is_some_and(|cutoff| created < cutoff.timestamp());
            let beyond = keep.is_some_and(|keep| newest_first >= keep);
            let name = execution.id.as_ref().map(|i| i.name.clone()).unwrap_or_default();
            // A run in flight is never chosen by age or count, only by name (and then refused).
            let running = execution.phase == WorkflowPhase::WorkflowRunning as i32;
            if (old || beyond) && !running && !chosen.contains(&name) {
                chosen.push(name);
            }
        }
    }
    let deleted = updraft_engine::cleanup::delete_executions(&Home::from_env()?, &store, &chosen)?;
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&deleted)?);
    } else {
        for name in &deleted.executions {
            println!("deleted {name}");
        }
        println!(
            "{} execution{} deleted, {} freed; `updraft gc` frees the blobs only they named",
            deleted.executions.len(),
            if deleted.executions.len() == 1 { "" } else { "s" },
            human_bytes(deleted.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft gc`: what nothing references, removed (or only counted with --dry-run).
pub fn gc(dry_run: bool, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let home = Home::from_env()?;
    let collected = updraft_engine::cleanup::collect_garbage(&home, &open_store()?, dry_run)?;
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&collected)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {}: {} unreferenced blob{}, {} leftover run director{}/staging file{}",
        human_bytes(collected.bytes),
        collected.blobs,
        if collected.blobs == 1 { "" } else { "s" },
        collected.leftovers,
        if collected.leftovers == 1 { "y" } else { "ies" },
        if collected.leftovers == 1 { "" } else { "s" },
    );
    if collected.kept_recent > 0 {
        println!(
            "kept {} recent unreferenced blob{}: a run is in flight and may not have recorded them yet",
            collected.kept_recent,
            if collected.kept_recent == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft cache list|delete TASK` on this machine: the same shape as the stack's
/// answer (`{"entries": [{key, createdAt}]}`, `{"deleted": N}`), each entry also
/// naming its project, domain and cache version.
pub fn local_cache(
    task: &str,
    cache_version: Option<&str>,
    scope: &super::registry::Remote,
    delete: bool,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let home = Home::from_env()?;
    let cache = updraft_engine::cache::LocalCache::new(home.cache(), home.tmp());
    let filter = updraft_engine::cache::TaskFilter {
        project: scope.project.clone(),
        domain: scope.domain.clone(),
        cache_version: cache_version.map(str::to_string),
    };
    let which = cache_version.map(|v| format!(" (cache version {v})")).unwrap_or_default();
    if delete {
        let deleted = cache.delete_entries(task, &filter)?;
        if output == OutputFormat::Json {
            println!("{}", json!({"deleted": deleted}));
        } else {
            println!("deleted {deleted} cache entr{} of {task}{which}", if deleted == 1 { "y" } else { "ies" });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let entries = cache.entries_of(task, &filter);
    let stored = |e: &updraft_engine::cache::LocalEntry| {
        e.stored.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()).unwrap_or_default()
    };
    if output == OutputFormat::Json {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                json!({"key": e.key, "createdAt": stored(e), "project": e.project, "domain": e.domain,
                       "cacheVersion": e.cache_version})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "entries": entries }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no cache entries of {task}{which} on this machine");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<66} {:<10} {:<24} STORED (UTC)", "CACHE KEY", "VERSION", "PROJECT/DOMAIN");
    for e in &entries {
        let stored = stored(e).chars().take(19).collect::<String>().replace('T', " ");
        println!("{:<66} {:<10} {:<24} {stored}", e.key, e.cache_version, format!("{}/{}", e.project, e.domain));
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Executions as a table (newest first, as given) or as JSON.
pub fn print_list(executions: &[Execution], output: OutputFormat) -> Result<(), serde_json::Error> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(executions)?);
        return Ok(());
    }
    println!("{:<24} {:<20} {:<10} {:<20} {:>9}", "EXECUTION", "WORKFLOW", "PHASE", "STARTED (UTC)", "DURATION");
    for e in executions {
        let workflow = e.workflow_id.as_ref().map(|w| w.name.as_str()).unwrap_or_default();
        let started = e
            .created_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{:<24} {:<20} {:<10} {:<20} {:>9}",
            e.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default(),
            workflow,
            workflow_phase(e.phase),
            started,
            seconds(e.duration)
        );
    }
    Ok(())
}

pub fn get(name: &str, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let store = open_store()?;
    let Some((execution, nodes)) = store.get(name)? else {
        eprintln!("error: no execution \"{name}\"\n  hint: `updraft executions list` shows the recent ones");
        return Ok(ExitCode::FAILURE);
    };
    print_execution(&execution, &nodes, output)?;
    if output == OutputFormat::Text {
        // Where each node's task wrote, its last attempt: what `updraft logs` prints.
        let logged = logged_attempts(&Home::from_env()?.node_dir(name, ""));
        if !logged.is_empty() {
            println!("\nlogs (updraft logs {name} NODE):");
            for (node, attempts) in &logged {
                let last = attempts.last().copied().unwrap_or(1);
                let dir = Home::from_env()?.node_dir(name, node);
                println!("  {node:<28} {}", dir.join(format!("attempt-{last}.{{stdout,stderr}}.log")).display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary of a run: node table, outputs, final phase (or all of it as JSON).
pub fn print_execution(
    execution: &Execution,
    nodes: &[NodeExecution],
    output: OutputFormat,
) -> Result<(), serde_json::Error> {
    let outputs = execution.outputs.clone().unwrap_or_default().values;
    if output == OutputFormat::Json {
        let plain: serde_json::Map<String, serde_json::Value> =
            outputs.iter().map(|(k, v)| (k.clone(), literal::to_json(v))).collect();
        let document = json!({
            "execution": serde_json::to_value(execution)?,
            "nodes": serde_json::to_value(nodes)?,
            "outputs": plain,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!();
    println!("{:<28} {:<10} {:>9} {:>8}  CACHE", "NODE", "PHASE", "DURATION", "ATTEMPTS");
    for n in nodes {
        let id = n.id.as_ref().map(|i| i.node_id.as_str()).unwrap_or_default();
        let phase = phase_name(NodePhase::try_from(n.phase).unwrap_or_default());
        let items =
            if n.items_total > 0 { format!(" ({}/{} items)", n.items_done, n.items_total) } else { String::new() };
        let cache = match CacheStatus::try_from(n.cache_status).unwrap_or_default() {
            CacheStatus::CacheHit => "hit",
            CacheStatus::CacheMiss => "miss",
            CacheStatus::CachePopulated => "stored",
            CacheStatus::CacheOverwritten => "overwritten",
            CacheStatus::CacheDisabled => "-",
        };
        let attempts = if n.attempts > 0 { n.attempts.to_string() } else { "-".into() };
        let gpus: Vec<String> =
            n.attempt_devices.iter().map(|a| format!("attempt {}: GPU {}", a.attempt, a.gpus.join(","))).collect();
        let gpus = if gpus.is_empty() { String::new() } else { format!(" ({})", gpus.join("; ")) };
        let duration = if n.phase == NodePhase::Running as i32 { so_far(n.started_at) } else { seconds(n.duration) };
        println!("{id:<28} {phase:<10} {duration:>9} {attempts:>8}  {cache}{items}{gpus}");
    }
    if !outputs.is_empty() {
        println!("\noutputs:");
        for (name, value) in &outputs {
            match literal::omitted(value) {
                0 => println!("  {name} = {}", literal::to_json(value)),
                // The API summarises long lists; the node that made it has them whole.
                n => println!("  {name} = {} … and {n} more elements", literal::to_json(value)),
            }
        }
    }
    let id = execution.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
    if let Some(origin) = origin(execution) {
        println!("\nlaunched {origin}");
    }
    if execution.phase == WorkflowPhase::WorkflowRunning as i32 {
        println!("\nexecution {id} RUNNING for {} so far", so_far(execution.started_at.or(execution.created_at)));
    } else {
        println!("\nexecution {id} {} in {}", workflow_phase(execution.phase), seconds(execution.duration));
    }
    if let Some(error) = &execution.error {
        let node = if error.node_id.is_empty() { String::new() } else { format!("node {}: ", error.node_id) };
        eprintln!("error: {node}{}", error.message);
    }
    Ok(())
}

/// How a run was launched, as recorded (cloud runs): "by a schedule, plan nightly
/// v2, tick 2027-03-29T01:00:00Z". `None` when nothing was recorded.
fn origin(execution: &Execution) -> Option<String> {
    let mut parts = Vec::new();
    match LaunchMode::try_from(execution.mode).unwrap_or_default() {
        LaunchMode::Scheduled => parts.push("on schedule".to_string()),
        LaunchMode::ChildWorkflow => parts.push("as a subworkflow".to_string()),
        LaunchMode::Relaunch => parts.push("as a relaunch".to_string()),
        LaunchMode::Recover => parts.push(format!("recovering {}", execution.recovered_from)),
        LaunchMode::Manual => {}
    }
    if !execution.principal.is_empty() {
        parts.push(format!("by {}", execution.principal));
    }
    if let Some(plan) = &execution.launch_plan_id {
        parts.push(format!("from launch plan {} {}", plan.name, plan.version));
    }
    if let Some(time) = execution.scheduled_at.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)) {
        parts.push(format!("for the tick of {}", time.format("%Y-%m-%dT%H:%M:%SZ")));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The attempts of each node of a run that left logs: node path → attempt numbers.
pub(crate) fn logged_attempts(run_dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u32>> {
    let mut found: std::collections::BTreeMap<String, Vec<u32>> = std::collections::BTreeMap::new();
    let mut dirs = vec![run_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            // A task's own output directories hold its files, not logs: only node directories are walked.
            if path.is_dir() && !matches!(entry.file_name().to_str(), Some("outputs" | "inputs" | "work")) {
                dirs.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(attempt) = name.strip_prefix("attempt-").and_then(|n| n.strip_suffix(".stdout.log")) else {
                continue;
            };
            if let (Ok(attempt), Ok(node)) = (attempt.parse::<u32>(), dir.strip_prefix(run_dir)) {
                found.entry(node.to_string_lossy().into_owned()).or_default().push(attempt);
            }
        }
    }
    found.values_mut().for_each(|attempts| attempts.sort_unstable());
    found
}

/// Which of a task's two log streams `updraft logs` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    Both,
    Stdout,
    Stderr,
}

/// What `updraft logs` (and `updraft executions logs`) is asked for.
pub struct LogsRequest<'a> {
    pub id: &'a str,
    pub node: Option<&'a str>,
    pub attempt: Option<u32>,
    /// A map node's item, from 0: the node `NODE/I`.
    pub item: Option<u32>,
    pub streams: Streams,
    /// Keep printing what the tasks write until the run ends, as `tail -f`.
    pub follow: bool,
}

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// A local run's task logs: every node's (or one node's, or one map item's), the
/// last attempt unless told, both streams unless told; with `follow`, what is
/// written afterwards too, until the run has ended.
pub fn logs(request: &LogsRequest<'_>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let home = Home::from_env()?;
    let store = open_store()?;
    let id = request.id;
    if store.get(id)?.is_none() {
        eprintln!("error: no execution \"{id}\"\n  hint: `updraft executions list` shows the recent ones");
        return Ok(ExitCode::FAILURE);
    }
    let node = match (request.node, request.item) {
        (Some(node), Some(item)) => Some(format!("{node}/{item}")),
        (None, Some(_)) => {
            eprintln!("error: --item needs the map node: updraft logs {id} NODE --item I");
            return Ok(ExitCode::from(crate::exit::USAGE));
        }
        (node, None) => node.map(str::to_string),
    };
    let run_dir = home.node_dir(id, "");
    let streams: &[&str] = match request.streams {
        Streams::Both => &["stdout", "stderr"],
        Streams::Stdout => &["stdout"],
        Streams::Stderr => &["stderr"],
    };
    // Where each log file was read up to, and which one was printed last (for headers).
    let mut read: std::collections::BTreeMap<std::path::PathBuf, u64> = Default::default();
    let mut last_printed: Option<std::path::PathBuf> = None;
    let mut stdout = std::io::stdout().lock();
    loop {
        // Read before the pass: a run seen ended here has written everything the pass reads.
        let running =
            request.follow && store.get(id)?.is_some_and(|(e, _)| e.phase == WorkflowPhase::WorkflowRunning as i32);
        let mut logged = logged_attempts(&run_dir);
        if let Some(node) = &node {
            match logged.remove(node) {
                Some(attempts) => logged = [(node.clone(), attempts)].into(),
                None if running => logged.clear(), // not started yet
                None => {
                    let nodes: Vec<&str> = logged.keys().map(String::as_str).collect();
                    let nodes =
                        if nodes.is_empty() { "none (no task of it ran)".to_string() } else { nodes.join(", ") };
                    eprintln!("error: node \"{node}\" of {id} left no logs\n  hint: nodes with logs: {nodes}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        for (node, attempts) in &logged {
            let chosen = match request.attempt {
                Some(wanted) if attempts.contains(&wanted) => wanted,
                Some(_) if running => continue, // that attempt may come
                Some(wanted) => {
                    let made: Vec<String> = attempts.iter().map(u32::to_string).collect();
                    eprintln!("error: node {node} made no attempt {wanted}\n  hint: its attempts: {}", made.join(", "));
                    return Ok(ExitCode::FAILURE);
                }
                None => *attempts.last().expect("a logged node has an attempt"),
            };
            for stream in streams {
                let file = run_dir.join(node).join(format!("attempt-{chosen}.{stream}.log"));
                let Ok(mut log) = std::fs::File::open(&file) else { continue };
                let offset = read.entry(file.clone()).or_default();
                use std::io::{Read, Seek, Write};
                log.seek(std::io::SeekFrom::Start(*offset))?;
                let mut new = Vec::new();
                log.read_to_end(&mut new)?;
                if new.is_empty() && (request.follow || *offset > 0) {
                    continue;
                }
                if last_printed.as_ref() != Some(&file) {
                    writeln!(stdout, "==> {node} attempt {chosen} {stream} <==")?;
                    last_printed = Some(file.clone());
                }
                stdout.write_all(&new)?;
                stdout.flush()?;
                *offset += new.len() as u64;
            }
        }
        if !running {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// How long `executions abort` waits for a local run to record its end.
const LOCAL_ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `updraft executions abort NAME`: a local run is stopped by its runner, as on
/// Ctrl-C (SIGTERM: every task's process group is killed, the run and its
/// unfinished nodes are recorded ABORTED); this waits for that record.
pub fn abort(name: &str, output: OutputFormat) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let store = open_store()?;
    let Some((execution, _)) = store.get(name)? else {
        eprintln!("error: no execution \"{name}\"\n  hint: `updraft executions list` shows the recent ones");
        return Ok(ExitCode::FAILURE);
    };
    if execution.phase == WorkflowPhase::WorkflowRunning as i32
        && let Some((_, runner)) = store.running()?.into_iter().find(|(n, _)| n == name)
    {
        runner::terminate(&runner);
    }
    let deadline = std::time::Instant::now() + LOCAL_ABORT_WAIT;
    let (execution, nodes) = loop {
        // A runner that died meanwhile is closed ABORTED by the store's orphan check.
        runner::close_orphans(&store)?;
        let (execution, nodes) = store.get(name)?.ok_or("the execution's record disappeared")?;
        if execution.phase != WorkflowPhase::WorkflowRunning as i32 || std::time::Instant::now() > deadline {
            break (execution, nodes);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if execution.phase == WorkflowPhase::WorkflowRunning as i32 {
        eprintln!(
            "error: {name} is still RUNNING {} s after its runner was asked to stop\n  hint: \
             its tasks may ignore SIGTERM; the runner kills them on its own timeout",
            LOCAL_ABORT_WAIT.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }
    if output == OutputFormat::Json {
        print_execution(&execution, &nodes, output)?;
    } else {
        println!("{name}: {}", workflow_phase(execution.phase));
    }
    Ok(abort_exit_code(execution.phase, name))
}

/// An abort succeeded when the run ends ABORTED; a run that had ended otherwise
/// before is reported, and the command fails.
pub fn abort_exit_code(phase: i32, name: &str) -> ExitCode {
    if phase == WorkflowPhase::WorkflowAborted as i32 {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {name} had ended {} before the abort; nothing was changed", workflow_phase(phase));
    ExitCode::FAILURE
}

pub fn workflow_phase(phase: i32) -> &'static str {
    match WorkflowPhase::try_from(phase).unwrap_or_default() {
        WorkflowPhase::WorkflowSucceeded => "SUCCEEDED",
        WorkflowPhase::WorkflowFailed => "FAILED",
        WorkflowPhase::WorkflowAborted => "ABORTED",
        WorkflowPhase::WorkflowRunning => "RUNNING",
        WorkflowPhase::WorkflowQueued => "QUEUED",
        WorkflowPhase::WorkflowTimedOut => "TIMED_OUT",
        WorkflowPhase::Undefined => "-",
    }
}

/// How long something that still runs has run, from its start to now.
fn so_far(started: Option<updraft_core::proto::Timestamp>) -> String {
    let Some(started) = started.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)) else {
        return "-".into();
    };
    let elapsed = (chrono::Utc::now() - started).num_milliseconds().max(0) as f64 / 1000.0;
    format!("{elapsed:.2}s")
}

fn seconds(d: Option<updraft_core::proto::Duration>) -> String {
    d.map(|d| format!("{:.2}s", d.seconds as f64 + d.nanos as f64 / 1e9)).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_an_age_or_a_time_and_refuses_the_rest() {
        let now = chrono::DateTime::parse_from_rfc3339("2027-03-28T12:00:00Z").unwrap().to_utc();
        let at = |text: &str| parse_since(text, now).map(|t| t.to_rfc3339());
        assert_eq!(at("90m").unwrap(), "2027-03-28T10:30:00+00:00");
        assert_eq!(at("2d").unwrap(), "2027-03-26T12:00:00+00:00");
        assert_eq!(at("2027-03-01").unwrap(), "2027-03-01T00:00:00+00:00");
        assert!(at("yesterday").unwrap_err().contains("neither an age"));
        assert!(at("99999999999d").unwrap_err().contains("too far"));
        assert!(at("-5h").unwrap_err().contains("without the sign"));
        assert_eq!(parse_phase("timed-out"), Ok(WorkflowPhase::WorkflowTimedOut));
    }
}
