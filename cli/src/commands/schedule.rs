//! `updraft launchplan next`: when a launch plan's schedule fires, computed by
//! the same code (`updraft_core::schedule`) and the same Scheduler rules that fire
//! it in the cloud, so a user sees the zone's wall clock and UTC side by side
//! before a nightly job is trusted.

use super::executions::OutputFormat;
use crate::spec_file;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use updraft_core::compile::Options;
use updraft_core::proto::core::{LaunchPlanSpec, schedule};
use updraft_core::schedule::{next_fires, scheduler_expression, wall_clock};

/// The most fire times one call lists.
pub const MAX_FIRES: usize = 1000;

/// `--after`: an RFC 3339 time, or a date (its midnight, UTC).
pub fn parse_after(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("--after {text:?} is not a time; write 2027-03-28T01:00:00Z or 2027-03-28"))
}

fn plan_name(plan: &LaunchPlanSpec) -> &str {
    plan.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default()
}

/// The scheduled plan `wanted` of the file, or the only one.
fn pick<'a>(plans: &'a [LaunchPlanSpec], wanted: Option<&str>, file: &Path) -> Result<&'a LaunchPlanSpec, String> {
    let scheduled: Vec<&LaunchPlanSpec> = plans.iter().filter(|p| p.schedule.is_some()).collect();
    let names = || scheduled.iter().map(|p| plan_name(p)).collect::<Vec<_>>().join(", ");
    match (wanted, scheduled.as_slice()) {
        (Some(name), _) => scheduled.iter().copied().find(|p| plan_name(p) == name).ok_or_else(|| {
            if plans.iter().any(|p| plan_name(p) == name) {
                format!("launch plan \"{name}\" of {} has no schedule", file.display())
            } else {
                format!("{} has no launch plan \"{name}\"; its scheduled plans: {}", file.display(), names())
            }
        }),
        (None, [only]) => Ok(only),
        (None, []) => Err(format!("{} has no scheduled launch plan", file.display())),
        (None, _) => Err(format!("{} has several scheduled launch plans; name one of: {}", file.display(), names())),
    }
}

pub fn next(
    file: &Path,
    plan: Option<&str>,
    count: usize,
    after: Option<&str>,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let fail = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(crate::exit::USAGE))
    };
    if !(1..=MAX_FIRES).contains(&count) {
        return fail(format!("-n {count}: list between 1 and {MAX_FIRES} fire times"));
    }
    let after = match after.map(parse_after).transpose() {
        Ok(after) => after.unwrap_or_else(Utc::now),
        Err(e) => return fail(e),
    };
    let compiled = match spec_file::load(file, &Options::default()) {
        Ok(compiled) => compiled,
        Err(e) => return fail(e.to_string()),
    };
    let plan = match pick(&compiled.launch_plans, plan, file) {
        Ok(plan) => plan,
        Err(e) => return fail(e),
    };
    let schedule = plan.schedule.clone().unwrap_or_default();
    let expression = scheduler_expression(&schedule)?;
    let zone = match &schedule.kind {
        Some(schedule::Kind::Cron(c)) if !c.timezone.is_empty() => c.timezone.clone(),
        _ => "UTC".to_string(),
    };
    let fires = next_fires(&schedule, None, after, count)?;
    if output == OutputFormat::Json {
        let fires: Vec<_> = fires
            .iter()
            .map(|t| json!({"utc": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "local": wall_clock(&schedule, *t)}))
            .collect();
        let document = json!({"plan": plan_name(plan), "expression": expression, "timezone": zone, "fires": fires});
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {expression} in {zone}, after {}", plan_name(plan), after.format("%Y-%m-%dT%H:%M:%SZ"));
    for t in &fires {
        println!("  {:<28} {}", wall_clock(&schedule, *t), t.format("%Y-%m-%dT%H:%M:%SZ"));
    }
    Ok(ExitCode::SUCCESS)
}
