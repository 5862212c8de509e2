//! Schedules of launch plans: five-field cron (with the usual aliases) in an IANA
//! time zone, and fixed rates. The grammar, field matching and next-match search
//! are `croner`'s; the time zone database is `chrono-tz`'s. This module adds what
//! EventBridge Scheduler decides and no cron library knows:
//!
//! - the exact Scheduler expression of a schedule (`0 3 * * *` → `cron(0 3 * * ? *)`,
//!   `6h` → `rate(6 hours)`), and a refusal, with the reason and the fix, of what
//!   Scheduler cannot express (day-of-month and day-of-week both restricted);
//! - the fire times, by Scheduler's rule for daylight saving time (AWS knowledge
//!   center, "eventbridge-scheduler-adjust-dst"; Scheduler user guide, "Schedule
//!   types", daylight saving time): a wall-clock time that does not exist on a
//!   spring-forward day is skipped, one that happens twice on a fall-back day fires
//!   once, at its first occurrence; a rate counts fixed durations from its start
//!   (a `1d` rate is 24 hours, whatever the clocks do).
//!
//! Everything is checked at registration, so a malformed schedule never reaches
//! Scheduler.

use crate::proto::core::{CronSchedule, FixedRate, RateUnit, Schedule, schedule};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const FIELD_VALUES: [&str; 5] =
    ["0-59", "0-23", "1-31, L or nW", "1-12 or JAN-DEC", "0-7 or SUN-SAT (0 and 7: Sunday)"];

/// The aliases cron users write, as five fields.
fn expand_alias(expression: &str) -> Result<&str, String> {
    Ok(match expression {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        alias if alias.starts_with('@') => {
            return Err(format!(
                "unknown alias \"{alias}\"; use @yearly, @monthly, @weekly, @daily or @hourly, or five fields"
            ));
        }
        fields => fields,
    })
}

/// The five fields of `expression` (an alias expanded), upper-cased as croner reads them.
fn fields_of(expression: &str) -> Result<Vec<String>, String> {
    let expanded = expand_alias(expression.trim())?;
    let fields: Vec<String> = expanded.split_whitespace().map(str::to_ascii_uppercase).collect();
    if fields.len() != 5 {
        return Err(format!(
            "cron \"{expression}\" has {} fields; write five: minute hour day-of-month month day-of-week, \
             e.g. \"0 3 * * *\" for 03:00 daily",
            fields.len()
        ));
    }
    Ok(fields)
}

/// Parses a five-field cron expression (or alias) with croner: no seconds, no
/// years, `a-b/n` ranges (not the ambiguous `a/n`).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = fields_of(expression)?;
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    parser.parse(&fields.join(" ")).map_err(|e| {
        // croner names the problem; say which field when one field alone is wrong.
        let field = (0..5).find(|&i| {
            let mut probe: Vec<&str> = vec!["*"; 5];
            probe[i] = &fields[i];
            parser.parse(&probe.join(" ")).is_err()
        });
        match field {
            Some(i) => {
                let problem = e.to_string();
                let problem = problem.trim_start_matches("Component error: ").trim_end_matches('.').to_lowercase();
                format!(
                    "cron \"{expression}\": {} field \"{}\": {problem}; its values are {}",
                    FIELD_NAMES[i], fields[i], FIELD_VALUES[i]
                )
            }
            None => format!("cron \"{expression}\": {e}"),
        }
    })
}

fn restricted(field: &str) -> bool {
    field != "*" && field != "?"
}

/// Day-of-week names as numbers (0 = Sunday), as croner reads them.
fn numeric_weekdays(field: &str) -> String {
    let names = [("SUN", "0"), ("MON", "1"), ("TUE", "2"), ("WED", "3"), ("THU", "4"), ("FRI", "5"), ("SAT", "6")];
    names.iter().fold(field.to_string(), |text, (name, number)| text.replace(name, number))
}

/// One day-of-week value in Scheduler's numbering (1 = Sunday … 7 = Saturday);
/// `L` (last) and `#n` (n-th) suffixes kept.
fn scheduler_weekday(value: &str) -> Result<String, String> {
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let number: u32 = value[..digits].parse().map_err(|_| format!("\"{value}\" is not a day of the week"))?;
    if number > 7 {
        return Err(format!("day of week {number} is out of range 0-7"));
    }
    Ok(format!("{}{}", number % 7 + 1, &value[digits..]))
}

/// The day-of-week field in Scheduler's numbering. Unix cron counts 0–6 (or 7)
/// from Sunday, Scheduler 1–7: each value moves by one; a range that would wrap
/// (`5-7`: Friday to Sunday) becomes a list.
fn scheduler_weekdays(field: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in numeric_weekdays(field).split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let translated = match range.split_once('-') {
            _ if range == "*" => "*".to_string(),
            Some((from, to)) => {
                let (from, to) = (scheduler_weekday(from)?, scheduler_weekday(to)?);
                let (a, b): (u32, u32) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
                if a <= b {
                    format!("{a}-{b}")
                } else if b == 1 && step.is_none() {
                    // `x-7` (up to Sunday written as 7): Sunday is 1 in Scheduler.
                    format!("{a}-7,1")
                } else {
                    return Err(format!("the day-of-week range \"{range}\" runs backwards"));
                }
            }
            None => scheduler_weekday(range)?,
        };
        parts.push(match step {
            Some(step) if translated == "*" => format!("1/{step}"),
            Some(step) => format!("{translated}/{step}"),
            None => translated,
        });
    }
    Ok(parts.join(","))
}

/// `*/n` is written `first/n` in Scheduler's cron.
fn scheduler_field(field: &str, first: u32) -> String {
    field.split(',').map(|part| part.replacen("*/", &format!("{first}/"), 1)).collect::<Vec<_>>().join(",")
}

/// The EventBridge Scheduler expression of a cron: six fields, one of
/// day-of-month and day-of-week `?`, Sunday = 1, and any year.
pub fn scheduler_cron(expression: &str) -> Result<String, String> {
    parse_cron(expression)?;
    let f = fields_of(expression)?;
    let (dom, dow) = match (restricted(&f[2]), restricted(&f[4])) {
        (true, true) => {
            return Err(format!(
                "cron \"{expression}\" restricts both day-of-month ({}) and day-of-week ({}): cron fires on \
                 either, EventBridge Scheduler cannot say that; split it into two launch plans, one with \
                 each (\"{} {} {} {} *\" and \"{} {} * {} {}\")",
                f[2], f[4], f[0], f[1], f[2], f[3], f[0], f[1], f[3], f[4]
            ));
        }
        (true, false) => (scheduler_field(&f[2], 1), "?".to_string()),
        (false, true) => ("?".to_string(), scheduler_weekdays(&f[4])?),
        (false, false) => ("*".to_string(), "?".to_string()),
    };
    Ok(format!(
        "cron({} {} {dom} {} {dow} *)",
        scheduler_field(&f[0], 0),
        scheduler_field(&f[1], 0),
        scheduler_field(&f[3], 1)
    ))
}

/// The EventBridge Scheduler expression of a rate.
pub fn scheduler_rate(rate: &FixedRate) -> String {
    let unit = match RateUnit::try_from(rate.unit).unwrap_or(RateUnit::Minute) {
        RateUnit::Hour => "hour",
        RateUnit::Day => "day",
        RateUnit::Minute | RateUnit::Unspecified => "minute",
    };
    let plural = if rate.value == 1 { "" } else { "s" };
    format!("rate({} {unit}{plural})", rate.value)
}

/// The EventBridge Scheduler expression of a compiled schedule.
pub fn scheduler_expression(schedule: &Schedule) -> Result<String, String> {
    match &schedule.kind {
        Some(schedule::Kind::Cron(cron)) => scheduler_cron(&cron.expression),
        Some(schedule::Kind::Rate(rate)) => Ok(scheduler_rate(rate)),
        None => Err("the schedule has neither cron nor rate".into()),
    }
}

/// `6h`, `30m`, `1d`, `"2 hours"`, `"1 day"`.
pub fn parse_rate(text: &str) -> Result<FixedRate, String> {
    let hint = "write a rate such as 30m, 6h, 1d or \"2 hours\"";
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact.find(|c: char| !c.is_ascii_digit()).unwrap_or(compact.len());
    let value: u32 = compact[..digits].parse().map_err(|_| format!("cannot read rate \"{text}\"; {hint}"))?;
    let unit = match &compact[digits..] {
        "m" | "min" | "minute" | "minutes" => RateUnit::Minute,
        "h" | "hour" | "hours" => RateUnit::Hour,
        "d" | "day" | "days" => RateUnit::Day,
        "s" | "sec" | "second" | "seconds" => {
            return Err(format!(
                "rate \"{text}\" is below a minute: EventBridge Scheduler fires at most once a minute; use 1m or more"
            ));
        }
        other => return Err(format!("unknown rate unit \"{other}\" in \"{text}\"; {hint}")),
    };
    if value == 0 {
        return Err(format!("a rate of zero never fires; {hint}"));
    }
    Ok(FixedRate { value, unit: unit as i32 })
}

/// The IANA zone of `name` (chrono-tz's database); a near miss is named.
pub fn time_zone(name: &str) -> Result<Tz, String> {
    if let Ok(zone) = name.parse::<Tz>() {
        return Ok(zone);
    }
    let folded = name.trim().to_ascii_lowercase();
    match chrono_tz::TZ_VARIANTS.iter().find(|zone| zone.name().to_ascii_lowercase() == folded) {
        Some(zone) => Err(format!("\"{name}\" is not an IANA time zone; did you mean \"{}\"?", zone.name())),
        None => Err(format!(
            "\"{name}\" is not an IANA time zone; write an IANA name such as UTC, Europe/Paris or America/New_York"
        )),
    }
}

/// Refuses a cron that never fires (`0 0 30 2 *`): within eight years every
/// date that exists at all occurs (February 29 included).
fn check_fires(cron: &Cron, expression: &str) -> Result<(), String> {
    let from = NaiveDate::from_ymd_opt(2027, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("a valid date");
    let limit = NaiveDate::from_ymd_opt(2035, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("a valid date");
    match cron.find_next_occurrence(&from, true) {
        Ok(next) if next < limit => Ok(()),
        _ => Err(format!(
            "cron \"{expression}\" never fires: no month it names has the days it names; pick days that exist in \
             those months"
        )),
    }
}

/// Checks a cron schedule as registration stores it: the expression parses,
/// Scheduler can express it, it fires, and the zone is an IANA name.
pub fn cron_schedule(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, String> {
    let cron = parse_cron(expression)?;
    scheduler_cron(expression)?;
    check_fires(&cron, expression)?;
    if let Some(zone) = timezone {
        time_zone(zone)?;
    }
    Ok(CronSchedule { expression: expression.trim().to_string(), timezone: timezone.unwrap_or_default().to_string() })
}

/// The instant a wall-clock time of `zone` names by Scheduler's rule: `None` in a
/// spring-forward gap (skipped), the first occurrence in a fall-back overlap.
fn instant_of(zone: &Tz, wall: &NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(wall) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

fn rate_period(rate: &FixedRate) -> Duration {
    let minutes = match RateUnit::try_from(rate.unit).unwrap_or(RateUnit::Minute) {
        RateUnit::Hour => 60,
        RateUnit::Day => 24 * 60,
        RateUnit::Minute | RateUnit::Unspecified => 1,
    };
    Duration::minutes(i64::from(rate.value.max(1)) * minutes)
}

/// The first `n` fire times of `schedule` strictly after `after`, in UTC. A rate
/// fires at `start` + k × its period (`start`: the schedule's start date; `None`:
/// `after`, as Scheduler starts a rate without one when it is created).
pub fn next_fires(
    schedule: &Schedule,
    start: Option<DateTime<Utc>>,
    after: DateTime<Utc>,
    n: usize,
) -> Result<Vec<DateTime<Utc>>, String> {
    match &schedule.kind {
        Some(schedule::Kind::Rate(rate)) => {
            let period = rate_period(rate);
            let start = start.unwrap_or(after);
            // The first k with start + k·period > after.
            let k = if after < start { 0 } else { (after - start).num_seconds() / period.num_seconds() + 1 };
            Ok((0..n as i64).map(|i| start + period * (k + i) as i32).collect())
        }
        Some(schedule::Kind::Cron(cron)) => {
            let zone = if cron.timezone.is_empty() { Tz::UTC } else { time_zone(&cron.timezone)? };
            let pattern = parse_cron(&cron.expression)?;
            let mut wall = after.with_timezone(&zone).naive_local();
            let mut fires = Vec::with_capacity(n);
            while fires.len() < n {
                wall = pattern
                    .find_next_occurrence(&wall, false)
                    .map_err(|e| format!("cron \"{}\" has no next fire time: {e}", cron.expression))?;
                // Skipped in a gap; a repeated wall-clock time maps to its first instant, already passed.
                if let Some(instant) = instant_of(&zone, &wall).filter(|t| *t > after) {
                    fires.push(instant);
                }
            }
            Ok(fires)
        }
        None => Err("the schedule has neither cron nor rate".into()),
    }
}

/// A fire time as the zone's wall clock shows it.
pub fn wall_clock(schedule: &Schedule, instant: DateTime<Utc>) -> String {
    let zone = match &schedule.kind {
        Some(schedule::Kind::Cron(c)) if !c.timezone.is_empty() => time_zone(&c.timezone).unwrap_or(Tz::UTC),
        _ => Tz::UTC,
    };
    let local = instant.with_timezone(&zone);
    format!("{} {}", local.format("%Y-%m-%d %H:%M %Z"), local.weekday())
}

/// How late a tick may start its run by default (Scheduler's `MaximumEventAgeInSeconds`).
pub const DEFAULT_CATCH_UP_SECONDS: i64 = 3600;
/// Scheduler's bounds of `MaximumEventAgeInSeconds`.
pub const MIN_CATCH_UP_SECONDS: i64 = 60;
pub const MAX_CATCH_UP_SECONDS: i64 = 24 * 3600;

/// A schedule's catch-up window in seconds.
pub fn catch_up_seconds(schedule: &Schedule) -> i64 {
    schedule.catch_up.map_or(DEFAULT_CATCH_UP_SECONDS, |d| d.seconds + i64::from(d.nanos > 0))
}

/// Keeps letters, digits, `-` and `_`; at most `max` characters, a long name
/// ending in a digest of the whole, so distinct names stay distinct.
fn bounded_name(raw: &str, max: usize) -> String {
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if clean.len() <= max {
        return clean;
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    format!("{}-{}", &clean[..max - 17], &digest[..16])
}

/// The EventBridge Scheduler schedule of a launch plan (one per plan name, whatever
/// its active version): at most 64 characters, Scheduler's limit.
pub fn schedule_name(prefix: &str, project: &str, domain: &str, plan: &str) -> String {
    bounded_name(&format!("{prefix}-{project}-{domain}-{plan}"), 64)
}

/// The run a tick starts: named by the plan and the scheduled time, so a tick
/// delivered twice (or backfilled again) is the same run. At most 80 characters,
/// Step Functions' limit for execution names.
pub fn tick_execution_name(plan: &str, scheduled: DateTime<Utc>) -> String {
    let time = scheduled.format("%Y%m%dT%H%MZ").to_string();
    format!("{}-{time}", bounded_name(plan, 80 - time.len() - 1))
}

/// What Scheduler puts in a target's input for the time a tick is for.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// The stack's schedule of one launch plan version, as Scheduler's
/// CreateSchedule/UpdateSchedule take it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRequest {
    /// See [`schedule_name`].
    pub name: String,
    /// `cron(...)` or `rate(...)`.
    pub expression: String,
    /// IANA zone (UTC by default).
    pub timezone: String,
    /// Scheduler's `MaximumEventAgeInSeconds`.
    pub catch_up_seconds: i64,
    /// A rate counts from the schedule's start date, kept across versions.
    pub is_rate: bool,
    /// The launch plan version it launches.
    pub plan: crate::proto::core::Identifier,
    /// The target's input: a tick event with [`SCHEDULED_TIME`] for Scheduler to fill.
    pub input: serde_json::Value,
}

/// The schedule a scheduled launch plan version needs; `None` without a schedule.
pub fn schedule_request(
    prefix: &str,
    plan: &crate::proto::core::LaunchPlanSpec,
) -> Result<Option<ScheduleRequest>, String> {
    let Some(schedule) = &plan.schedule else { return Ok(None) };
    let id = plan.id.clone().unwrap_or_default();
    let timezone = match &schedule.kind {
        Some(schedule::Kind::Cron(c)) if !c.timezone.is_empty() => c.timezone.clone(),
        _ => "UTC".to_string(),
    };
    let tick = Tick {
        project: id.project.clone(),
        domain: id.domain.clone(),
        plan: id.name.clone(),
        version: id.version.clone(),
        scheduled_time: SCHEDULED_TIME.to_string(),
    };
    Ok(Some(ScheduleRequest {
        name: schedule_name(prefix, &id.project, &id.domain, &id.name),
        expression: scheduler_expression(schedule)?,
        timezone,
        catch_up_seconds: catch_up_seconds(schedule),
        is_rate: matches!(schedule.kind, Some(schedule::Kind::Rate(_))),
        input: serde_json::json!({ TICK_EVENT: tick }),
        plan: id,
    }))
}

/// The key of a tick event in a target's input.
pub const TICK_EVENT: &str = "updraft_tick";

/// A plan's schedule as the stack's Scheduler has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoundSchedule {
    pub enabled: bool,
    pub expression: String,
    pub timezone: String,
    /// The launch plan version its ticks launch.
    pub version: String,
}

/// How the stack's schedule differs from the registry's state, each difference
/// with its fix: `active` is the schedule the plan's active version needs
/// (`None`: no active version has a schedule), `found` the stack's (`None`: none).
pub fn schedule_drift(plan: &str, active: Option<&ScheduleRequest>, found: Option<&FoundSchedule>) -> Vec<String> {
    let activate = |version: &str| format!("updraft launchplan activate {plan} --version {version}");
    let mut drift = Vec::new();
    match (active, found) {
        (None, Some(found)) if found.enabled => drift.push(format!(
            "the schedule is ENABLED (version {}) but no version with a schedule is active: \
             updraft launchplan deactivate {plan} --version {}",
            found.version, found.version
        )),
        (None, _) => {}
        (Some(active), None) => drift.push(format!(
            "version {} is active but the stack has no schedule for it: {}",
            active.plan.version,
            activate(&active.plan.version)
        )),
        (Some(active), Some(found)) => {
            let version = &active.plan.version;
            if !found.enabled {
                drift.push(format!("version {version} is active but the schedule is DISABLED: {}", activate(version)));
            }
            if found.version != *version {
                drift.push(format!(
                    "the schedule launches version {} but version {version} is active: {}",
                    found.version,
                    activate(version)
                ));
            }
            if found.expression != active.expression || found.timezone != active.timezone {
                drift.push(format!(
                    "the schedule fires on {} in {} but version {version} says {} in {}: {}",
                    found.expression,
                    found.timezone,
                    active.expression,
                    active.timezone,
                    activate(version)
                ));
            }
        }
    }
    drift
}

/// One firing of a launch plan version's schedule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    pub project: String,
    pub domain: String,
    pub plan: String,
    pub version: String,
    /// RFC 3339 (Scheduler's `<aws.scheduler.scheduled-time>`, e.g. `2027-03-29T01:00:00Z`).
    pub scheduled_time: String,
}

impl Tick {
    /// The tick of an event, `None` when the event is not one.
    pub fn of_event(event: &serde_json::Value) -> Option<Result<Tick, String>> {
        let tick = event.get(TICK_EVENT)?;
        Some(serde_json::from_value::<Tick>(tick.clone()).map_err(|e| format!("a malformed tick event: {e}")))
    }

    /// The time the tick is for.
    pub fn time(&self) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(&self.scheduled_time)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("the tick's scheduled time {:?} is not RFC 3339: {e}", self.scheduled_time))
    }
}

pub mod local;

#[cfg(test)]
mod tests;
