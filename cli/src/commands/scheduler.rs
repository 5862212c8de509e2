//! `updraft schedule FILE [PLAN...]`: a foreground scheduler for one machine. Each
//! tick of a scheduled launch plan starts a local run (`updraft run`, a child
//! process) named by the plan and the tick (`nightly-20270329T0100Z`) with its
//! kickoff input set to the tick's time; ticks are recorded in the local store, so
//! a restart knows what ran and catches up by `--catch-up`. Which ticks are due is
//! `updraft_core::schedule::local`'s decision; this module runs them and says each
//! decision in one line.

use crate::spec_file;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use updraft_core::compile::Options;
use updraft_core::literal;
use updraft_core::proto::core::LaunchPlanSpec;
use updraft_core::schedule::local::{CatchUp, Overlap, due_ticks, next_wake};
use updraft_core::schedule::tick_execution_name;
use updraft_engine::home::Home;
use updraft_engine::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CatchUpArg {
    None,
    Last,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverlapArg {
    Skip,
    Queue,
    Allow,
}

/// The longest the loop sleeps: it reaps ended runs and notices Ctrl-C this often.
const POLL: Duration = Duration::from_millis(250);

/// Ctrl-C and SIGTERM presses, counted by the signal handler.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

fn handle_interrupts() {
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as *const () as libc::sighandler_t);
    }
}

fn log(line: &str) {
    println!("{} {line}", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
}

/// One scheduled plan and its runs.
struct Plan {
    spec: LaunchPlanSpec,
    name: String,
    running: Vec<(String, Child)>,
    queued: VecDeque<DateTime<Utc>>,
}

/// A literal as `updraft run --input NAME=VALUE` reads it.
fn input_text(value: &updraft_core::proto::core::Literal) -> String {
    match literal::to_json(value) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

fn start_run(file: &Path, plan: &Plan, tick: DateTime<Utc>, execution: &str) -> std::io::Result<Child> {
    let workflow = plan.spec.workflow_id.as_ref().map(|w| w.name.clone()).unwrap_or_default();
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.arg("run").arg(file).arg(&workflow).arg("--name").arg(execution);
    // Recorded as the plan's run for this tick (its mode SCHEDULED), as the cloud records one.
    command
        .arg("--launch-plan")
        .arg(&plan.name)
        .arg("--scheduled-at")
        .arg(tick.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let mut inputs = BTreeMap::new();
    for map in [&plan.spec.default_inputs, &plan.spec.fixed_inputs].into_iter().flatten() {
        inputs.extend(map.values.iter().map(|(k, v)| (k.clone(), input_text(v))));
    }
    let kickoff = plan.spec.schedule.as_ref().map(|s| s.kickoff_time_input.clone()).unwrap_or_default();
    if !kickoff.is_empty() {
        inputs.insert(kickoff, tick.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    for (name, value) in inputs {
        command.arg("--input").arg(format!("{name}={value}"));
    }
    // The run's own log is its record in the store and its files under the runs directory.
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
}

pub struct ScheduleArgs {
    pub file: PathBuf,
    pub plans: Vec<String>,
    pub catch_up: CatchUpArg,
    pub overlap: OverlapArg,
}

pub fn run(args: &ScheduleArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let fail = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(crate::exit::USAGE))
    };
    let compiled = match spec_file::load(&args.file, &Options::default()) {
        Ok(compiled) => compiled,
        Err(e) => return fail(e.to_string()),
    };
    let name_of = |p: &LaunchPlanSpec| p.id.as_ref().map(|i| i.name.clone()).unwrap_or_default();
    let scheduled: Vec<&LaunchPlanSpec> = compiled.launch_plans.iter().filter(|p| p.schedule.is_some()).collect();
    for wanted in &args.plans {
        if !scheduled.iter().any(|p| name_of(p) == *wanted) {
            let names: Vec<String> = scheduled.iter().map(|p| name_of(p)).collect();
            return fail(format!(
                "{} schedules no plan \"{wanted}\"; it schedules: {}",
                args.file.display(),
                names.join(", ")
            ));
        }
    }
    let mut plans: Vec<Plan> = scheduled
        .into_iter()
        .filter(|p| args.plans.is_empty() || args.plans.contains(&name_of(p)))
        .map(|spec| Plan { name: name_of(spec), spec: spec.clone(), running: Vec::new(), queued: VecDeque::new() })
        .collect();
    if plans.is_empty() {
        return fail(format!("{} has no scheduled launch plan", args.file.display()));
    }
    let file = args.file.canonicalize()?;
    let store = Store::open(&Home::from_env()?.database())?;
    let catch_up = match args.catch_up {
        CatchUpArg::None => CatchUp::None,
        CatchUpArg::Last => CatchUp::Last,
        CatchUpArg::All => CatchUp::All,
    };
    let overlap = match args.overlap {
        OverlapArg::Skip => Overlap::Skip,
        OverlapArg::Queue => Overlap::Queue,
        OverlapArg::Allow => Overlap::Allow,
    };
    handle_interrupts();
    let started = Utc::now();
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    log(&format!(
        "scheduling {} from {} (Ctrl-C stops after the running runs; twice cancels them)",
        names.join(", "),
        file.display()
    ));
    let mut stopping = false;
    loop {
        for plan in &mut plans {
            plan.running.retain_mut(|(execution, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    let how = match status.code() {
                        Some(0) => "SUCCEEDED".to_string(),
                        Some(130) => "ABORTED".to_string(),
                        Some(code) => format!("ended with exit code {code}"),
                        None => "was killed".to_string(),
                    };
                    log(&format!("{}: run {execution} {how}", plan.name));
                    false
                }
                _ => true,
            });
        }
        let interrupts = INTERRUPTS.load(Ordering::SeqCst);
        if interrupts >= 2 {
            for plan in &mut plans {
                for (execution, child) in &mut plan.running {
                    log(&format!("{}: cancelling run {execution}", plan.name));
                    // SAFETY: kill only sends a signal, to a child this process started.
                    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                    let _ = child.wait();
                }
            }
            log("cancelled");
            return Ok(ExitCode::from(crate::exit::INTERRUPTED));
        }
        if interrupts == 1 && !stopping {
            stopping = true;
            log("stopping: no new runs; waiting for the running ones (Ctrl-C again cancels them)");
        }
        if stopping {
            if plans.iter().all(|p| p.running.is_empty()) {
                log("stopped");
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(POLL);
            continue;
        }
        let now = Utc::now();
        for plan in &mut plans {
            let schedule = plan.spec.schedule.clone().unwrap_or_default();
            let last = store
                .last_tick(&plan.name)?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
            let mut due: VecDeque<DateTime<Utc>> = due_ticks(&schedule, last, started, now, catch_up)?.into();
            while let Some(tick) =
                due.pop_front().or_else(|| if plan.running.is_empty() { plan.queued.pop_front() } else { None })
            {
                let time = tick.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                let execution = tick_execution_name(&plan.name, tick);
                if store.get(&execution)?.is_some() {
                    store.record_tick(&plan.name, &time, "RAN BEFORE", &execution)?;
                    log(&format!("{}: tick {time} ran before as {execution}; not run again", plan.name));
                    continue;
                }
                if !plan.running.is_empty() && overlap != Overlap::Allow {
                    let running = plan.running.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>().join(", ");
                    if overlap == Overlap::Queue {
                        store.record_tick(&plan.name, &time, "QUEUED", &execution)?;
                        log(&format!("{}: tick {time} queued behind {running}", plan.name));
                        plan.queued.push_back(tick);
                    } else {
                        store.record_tick(&plan.name, &time, "SKIPPED", &execution)?;
                        log(&format!("{}: tick {time} skipped: {running} still runs (--overlap skip)", plan.name));
                    }
                    continue;
                }
                match start_run(&file, plan, tick, &execution) {
                    Ok(child) => {
                        store.record_tick(&plan.name, &time, "LAUNCHED", &execution)?;
                        log(&format!("{}: tick {time} started run {execution} (pid {})", plan.name, child.id()));
                        plan.running.push((execution, child));
                    }
                    Err(e) => {
                        store.record_tick(&plan.name, &time, "FAILED", &execution)?;
                        log(&format!("{}: tick {time} could not start a run: {e}", plan.name));
                    }
                }
            }
        }
        // Sleep to the next tick of any plan, waking often enough to reap runs and notice Ctrl-C.
        let next = plans
            .iter()
            .filter_map(|p| next_wake(p.spec.schedule.as_ref()?, now).ok())
            .min()
            .unwrap_or(now + chrono::Duration::seconds(60));
        let wait = (next - Utc::now()).to_std().unwrap_or_default().min(POLL);
        std::thread::sleep(wait.max(Duration::from_millis(10)));
    }
}
