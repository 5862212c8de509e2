//! The decisions of the local scheduler (`updraft schedule`), on an injected
//! clock: which ticks of a plan are due when it wakes, by its catch-up rule. The
//! command runs them; these functions only decide, so a whole day of ticks can be
//! driven through them in milliseconds.

use super::next_fires;
use crate::proto::core::Schedule;
use chrono::{DateTime, Duration, Utc};

/// A tick is on time if the scheduler wakes within this of it; older ones were missed
/// (the scheduler was not running, or the machine slept).
pub const ON_TIME_SECONDS: i64 = 30;

/// The most missed ticks `--catch-up all` runs at once.
pub const MAX_CATCH_UP_TICKS: usize = 1000;

/// What to do with ticks missed while the scheduler was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Run none of them.
    None,
    /// Run the latest one only: at most one catch-up run, never a burst.
    #[default]
    Last,
    /// Run every one of them (at most [`MAX_CATCH_UP_TICKS`]).
    All,
}

/// What to do with a tick while the plan's previous run still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Do not run it (recorded SKIPPED).
    #[default]
    Skip,
    /// Run it when the previous run has ended.
    Queue,
    /// Run it alongside.
    Allow,
}

/// The ticks of `schedule` due at `now`, oldest first: those after `last` (the last
/// tick handled; `None`: none yet, so nothing before `started` is due) up to `now`,
/// the missed ones by `catch_up`.
pub fn due_ticks(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: CatchUp,
) -> Result<Vec<DateTime<Utc>>, String> {
    let after = last.unwrap_or(started - Duration::seconds(1));
    if now <= after {
        // The clock went backwards: nothing is due twice.
        return Ok(Vec::new());
    }
    let mut ticks = Vec::new();
    let mut from = after;
    loop {
        let batch = next_fires(schedule, None, from, 64)?;
        let within: Vec<_> = batch.iter().copied().take_while(|t| *t <= now).collect();
        let done = within.len() < batch.len();
        ticks.extend(within);
        if done || ticks.len() > MAX_CATCH_UP_TICKS {
            break;
        }
        from = *ticks.last().expect("a tick");
    }
    let on_time = |t: &DateTime<Utc>| (now - *t).num_seconds() < ON_TIME_SECONDS;
    let (missed, current): (Vec<_>, Vec<_>) = ticks.into_iter().partition(|t| !on_time(t));
    let caught_up: Vec<_> = match catch_up {
        CatchUp::None => Vec::new(),
        // The latest missed tick, unless a tick is on time now (which is later still).
        CatchUp::Last if current.is_empty() => missed.last().copied().into_iter().collect(),
        CatchUp::Last => Vec::new(),
        CatchUp::All => missed.into_iter().rev().take(MAX_CATCH_UP_TICKS).rev().collect(),
    };
    Ok(caught_up.into_iter().chain(current).collect())
}

/// When the scheduler must wake next for `schedule`: its first tick after `now`.
pub fn next_wake(schedule: &Schedule, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    next_fires(schedule, None, now, 1).map(|fires| fires[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::{CronSchedule, schedule::Kind};

    fn every(cron: &str) -> Schedule {
        Schedule {
            kind: Some(Kind::Cron(CronSchedule { expression: cron.into(), timezone: String::new() })),
            kickoff_time_input: String::new(),
            catch_up: None,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// A simulated clock: the scheduler wakes at each of its wake times (plus a
    /// little lateness) and handles what is due, as `updraft schedule` does.
    fn drive(schedule: &Schedule, from: &str, until: &str, lateness_ms: i64) -> Vec<DateTime<Utc>> {
        let (started, until) = (at(from), at(until));
        let mut now = started;
        let mut last = None;
        let mut ran = Vec::new();
        while now < until {
            let due = due_ticks(schedule, last, started, now, CatchUp::Last).unwrap();
            if let Some(latest) = due.last() {
                last = Some(*latest);
            }
            ran.extend(due);
            now = next_wake(schedule, now).unwrap() + Duration::milliseconds(lateness_ms);
        }
        ran
    }

    #[test]
    fn a_day_of_half_hourly_ticks_runs_each_tick_once_on_a_simulated_clock() {
        let started = std::time::Instant::now();
        let ran = drive(&every("*/30 * * * *"), "2027-03-29T00:00:05Z", "2027-03-30T00:00:05Z", 250);
        assert_eq!(ran.len(), 48, "00:30 … 23:30 and the next midnight: 00:00 was before the start");
        assert_eq!(ran[0], at("2027-03-29T00:30:00Z"));
        let with_midnight = drive(&every("*/30 * * * *"), "2027-03-28T23:59:59Z", "2027-03-29T23:59:59Z", 250);
        assert_eq!(with_midnight.len(), 48);
        assert!(with_midnight.windows(2).all(|w| (w[1] - w[0]).num_minutes() == 30), "none twice, none skipped");
        assert!(started.elapsed().as_millis() < 2000, "a day in milliseconds, not in a day");
    }

    #[test]
    fn missed_ticks_follow_the_catch_up_rule() {
        let hourly = every("0 * * * *");
        let last = Some(at("2027-03-29T01:00:00Z"));
        let started = at("2027-03-29T00:30:00Z");
        // The scheduler was down from 01:30 to 05:20: 02:00, 03:00, 04:00, 05:00 were missed.
        let now = at("2027-03-29T05:20:00Z");
        assert_eq!(due_ticks(&hourly, last, started, now, CatchUp::None).unwrap(), Vec::<DateTime<Utc>>::new());
        assert_eq!(due_ticks(&hourly, last, started, now, CatchUp::Last).unwrap(), [at("2027-03-29T05:00:00Z")]);
        assert_eq!(due_ticks(&hourly, last, started, now, CatchUp::All).unwrap().len(), 4);
        // A tick on time now makes the missed one unneeded under `last`.
        let on_time = at("2027-03-29T05:00:20Z");
        assert_eq!(
            due_ticks(&hourly, Some(at("2027-03-29T03:00:00Z")), started, on_time, CatchUp::Last).unwrap(),
            [at("2027-03-29T05:00:00Z")]
        );
    }

    #[test]
    fn nothing_before_the_first_start_is_due_and_a_clock_going_back_fires_nothing_twice() {
        let minutely = every("* * * * *");
        let started = at("2027-03-29T01:00:30Z");
        assert_eq!(due_ticks(&minutely, None, started, started, CatchUp::All).unwrap(), Vec::<DateTime<Utc>>::new());
        let last = Some(at("2027-03-29T01:05:00Z"));
        assert_eq!(
            due_ticks(&minutely, last, started, at("2027-03-29T01:03:10Z"), CatchUp::All).unwrap(),
            Vec::<DateTime<Utc>>::new()
        );
        assert_eq!(
            due_ticks(&minutely, last, started, at("2027-03-29T01:05:40Z"), CatchUp::All).unwrap(),
            Vec::<DateTime<Utc>>::new()
        );
    }
}
