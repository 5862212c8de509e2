//! `updraft launchplan backfill PLAN --version V --from T1 --to T2`: runs the ticks
//! a schedule would have fired in a past (or future) range, each under its tick's
//! name and kickoff time — computed by `next_fires`, as the cloud fires them — so a
//! tick that already ran (by the scheduler or an earlier backfill) is not run again:
//! its launch answers "the same run". Each tick goes through the API's tick route,
//! so the run is recorded SCHEDULED and the tick listed by `launchplan ticks`.

use super::executions::OutputFormat;
use super::registry::{Remote, Session, session};
use super::schedule::parse_after;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Poll;
use updraft_core::proto::api::GetLaunchPlanResponse;
use updraft_core::schedule::{next_fires, tick_execution_name};

pub struct BackfillArgs {
    pub plan: String,
    pub version: String,
    pub from: String,
    pub to: String,
    pub max_parallel: usize,
    pub dry_run: bool,
    pub max: usize,
    pub remote: Remote,
    pub output: OutputFormat,
}

/// Bad input: nothing was launched.
const EXIT_BAD_INPUT: u8 = crate::exit::USAGE;

/// What became of one tick.
struct Outcome {
    time: String,
    execution: String,
    outcome: &'static str,
    message: String,
}

/// Runs `futures` concurrently (one thread: they wait on the network) and
/// returns their results in order.
async fn all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none()
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *result = Some(value);
            }
        }
        if results.iter().all(Option::is_some) { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future ended")).collect()
}

/// Runs one tick through the API's tick route: the run is recorded SCHEDULED by
/// the plan at the tick's time, and the tick in `launchplan ticks`.
async fn launch(session: &Session, args: &BackfillArgs, time: chrono::DateTime<chrono::Utc>) -> Outcome {
    let execution = tick_execution_name(&args.plan, time);
    let stamp = time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let body = json!({"version": args.version, "scheduledTime": stamp});
    let path = format!("/v1/launch-plans/{}/{}/{}/ticks", session.project, session.domain, args.plan);
    let answer = session.send_async("POST", &path, &[], Some(body.to_string().into_bytes())).await;
    let (outcome, message) = match answer {
        Ok(a) if a.status == 201 => ("LAUNCHED", String::new()),
        // The tick's run exists: this tick ran before (by the schedule or a backfill).
        Ok(a) if a.status == 200 => ("RAN BEFORE", String::new()),
        Ok(a) => ("FAILED", crate::remote::describe_refusal(&a)),
        Err(e) => ("FAILED", e),
    };
    Outcome { time: stamp, execution, outcome, message }
}

/// How many ticks fall in `[from, to]`, counted up to a million ("1000000+" past it).
fn count_ticks(
    schedule: &updraft_core::proto::core::Schedule,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    const CAP: usize = 1_000_000;
    let (mut count, mut after) = (0, from - chrono::Duration::seconds(1));
    while count < CAP {
        let batch = next_fires(schedule, Some(from), after, 10_000)?;
        let within = batch.iter().take_while(|t| **t <= to).count();
        count += within;
        if within < batch.len() {
            return Ok(count.to_string());
        }
        after = *batch.last().expect("a batch of fires");
    }
    Ok(format!("{CAP}+"))
}

pub fn backfill(args: &BackfillArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let refuse = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(EXIT_BAD_INPUT))
    };
    let (from, to) = match (parse_after(&args.from), parse_after(&args.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return refuse(e.replace("--after", "the time")),
    };
    if to < from {
        return refuse(format!("the range runs backwards: --from {} is after --to {}", args.from, args.to));
    }
    if !(1..=64).contains(&args.max_parallel) {
        return refuse(format!("--max-parallel {}: launch between 1 and 64 ticks at once", args.max_parallel));
    }
    let session = session(&args.remote)?;
    let path = format!("/v1/launch-plans/{}/{}/{}/{}", session.project, session.domain, args.plan, args.version);
    let answer = session.send("GET", &path, &[], None)?;
    if answer.status != 200 {
        eprintln!("{}", crate::remote::describe_refusal(&answer));
        return Ok(ExitCode::FAILURE);
    }
    let plan = serde_json::from_slice::<GetLaunchPlanResponse>(&answer.body)?.launch_plan.unwrap_or_default();
    let Some(schedule) = plan.schedule else {
        return refuse(format!("launch plan {} version {} has no schedule to backfill", args.plan, args.version));
    };
    // Inclusive of --from: the fires after the second before it, up to --to.
    let fires = next_fires(&schedule, Some(from), from - chrono::Duration::seconds(1), args.max + 1)?;
    let ticks: Vec<_> = fires.into_iter().take_while(|t| *t <= to).collect();
    if ticks.len() > args.max {
        let count = count_ticks(&schedule, from, to)?;
        return refuse(format!(
            "{} to {} holds {count} ticks of {}, more than --max {}; narrow the range or raise --max",
            args.from, args.to, args.plan, args.max
        ));
    }
    if ticks.is_empty() {
        return refuse(format!("no tick of {} falls between {} and {}", args.plan, args.from, args.to));
    }
    if args.dry_run {
        for time in &ticks {
            println!("{}  {}  would launch", time.format("%Y-%m-%dT%H:%M:%SZ"), tick_execution_name(&args.plan, *time));
        }
        println!("{} ticks (dry run: nothing launched)", ticks.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut outcomes = Vec::with_capacity(ticks.len());
    for chunk in ticks.chunks(args.max_parallel) {
        let launches = chunk
            .iter()
            .map(|time| Box::pin(launch(&session, args, *time)) as Pin<Box<dyn Future<Output = Outcome> + '_>>)
            .collect();
        for outcome in session.runtime.block_on(all(launches)) {
            if args.output == OutputFormat::Text {
                println!("{}  {:<40} {} {}", outcome.time, outcome.execution, outcome.outcome, outcome.message);
            }
            outcomes.push(outcome);
        }
    }
    let count = |what: &str| outcomes.iter().filter(|o| o.outcome == what).count();
    let (launched, before, failed) = (count("LAUNCHED"), count("RAN BEFORE"), count("FAILED"));
    if args.output == OutputFormat::Json {
        let ticks: Vec<_> = outcomes
            .iter()
            .map(|o| json!({"time": o.time, "execution": o.execution, "outcome": o.outcome, "message": o.message}))
            .collect();
        let document = json!({"launched": launched, "ranBefore": before, "failed": failed, "ticks": ticks});
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!("{} ticks: {launched} launched, {before} ran before, {failed} failed", outcomes.len());
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
