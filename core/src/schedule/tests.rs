use super::*;

fn cron(expression: &str, zone: &str) -> Schedule {
    Schedule {
        kind: Some(schedule::Kind::Cron(CronSchedule { expression: expression.into(), timezone: zone.into() })),
        kickoff_time_input: String::new(),
        catch_up: None,
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn fires(schedule: &Schedule, after: &str, n: usize) -> Vec<String> {
    next_fires(schedule, None, utc(after), n).unwrap().iter().map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string()).collect()
}

/// Expressions and their exact Scheduler translation, or the start of their refusal.
const GOLDEN: &[(&str, Result<&str, &str>)] = &[
    ("0 3 * * *", Ok("cron(0 3 * * ? *)")),
    ("30 2 * * *", Ok("cron(30 2 * * ? *)")),
    ("* * * * *", Ok("cron(* * * * ? *)")),
    ("*/15 * * * *", Ok("cron(0/15 * * * ? *)")),
    ("0 */6 * * *", Ok("cron(0 0/6 * * ? *)")),
    ("5-55/10 * * * *", Ok("cron(5-55/10 * * * ? *)")),
    ("0,30 9-17 * * *", Ok("cron(0,30 9-17 * * ? *)")),
    ("0 9 * * 1-5", Ok("cron(0 9 ? * 2-6 *)")),
    ("0 9 * * MON-FRI", Ok("cron(0 9 ? * 2-6 *)")),
    ("0 9 * * mon-fri", Ok("cron(0 9 ? * 2-6 *)")),
    ("0 9 * * 0", Ok("cron(0 9 ? * 1 *)")),
    ("0 9 * * 7", Ok("cron(0 9 ? * 1 *)")),
    ("0 9 * * SUN", Ok("cron(0 9 ? * 1 *)")),
    ("0 9 * * 6", Ok("cron(0 9 ? * 7 *)")),
    ("0 9 * * SAT,SUN", Ok("cron(0 9 ? * 7,1 *)")),
    ("0 9 * * 5-7", Ok("cron(0 9 ? * 6-7,1 *)")),
    ("0 9 * * 0-6", Ok("cron(0 9 ? * 1-7 *)")),
    ("0 9 * * */2", Ok("cron(0 9 ? * 1/2 *)")),
    ("0 9 * * 1-5/2", Ok("cron(0 9 ? * 2-6/2 *)")),
    ("0 9 * * 5#3", Ok("cron(0 9 ? * 6#3 *)")),
    ("0 9 * * 5L", Ok("cron(0 9 ? * 6L *)")),
    ("0 0 1 * *", Ok("cron(0 0 1 * ? *)")),
    ("0 0 L * *", Ok("cron(0 0 L * ? *)")),
    ("0 0 15W * *", Ok("cron(0 0 15W * ? *)")),
    ("0 0 1,15 * *", Ok("cron(0 0 1,15 * ? *)")),
    ("0 0 */2 * *", Ok("cron(0 0 1/2 * ? *)")),
    ("0 0 29 2 *", Ok("cron(0 0 29 2 ? *)")),
    ("0 12 1 JAN,JUL *", Ok("cron(0 12 1 JAN,JUL ? *)")),
    ("0 12 * */3 *", Ok("cron(0 12 * 1/3 ? *)")),
    ("0 0 1 1 *", Ok("cron(0 0 1 1 ? *)")),
    ("@daily", Ok("cron(0 0 * * ? *)")),
    ("@midnight", Ok("cron(0 0 * * ? *)")),
    ("@hourly", Ok("cron(0 * * * ? *)")),
    ("@weekly", Ok("cron(0 0 ? * 1 *)")),
    ("@monthly", Ok("cron(0 0 1 * ? *)")),
    ("@yearly", Ok("cron(0 0 1 1 ? *)")),
    ("@annually", Ok("cron(0 0 1 1 ? *)")),
    ("0 3 ? * *", Ok("cron(0 3 * * ? *)")),
    ("0 3 1 * MON", Err("cron \"0 3 1 * MON\" restricts both day-of-month (1) and day-of-week (MON)")),
    ("0 3 1-7 * 1", Err("cron \"0 3 1-7 * 1\" restricts both day-of-month")),
    ("0 3 * *", Err("cron \"0 3 * *\" has 4 fields; write five")),
    ("0 0 3 * * *", Err("cron \"0 0 3 * * *\" has 6 fields; write five")),
    ("0 25 * * *", Err("cron \"0 25 * * *\": hour field \"25\"")),
    ("60 * * * *", Err("cron \"60 * * * *\": minute field \"60\"")),
    ("0 0 32 * *", Err("cron \"0 0 32 * *\": day-of-month field \"32\"")),
    ("0 0 * 13 *", Err("cron \"0 0 * 13 *\": month field \"13\"")),
    ("0 0 * * 8", Err("cron \"0 0 * * 8\": day-of-week field \"8\"")),
    ("0 0 * foo *", Err("cron \"0 0 * foo *\": month field \"FOO\"")),
    ("@sometimes", Err("unknown alias \"@sometimes\"")),
    ("@reboot", Err("unknown alias \"@reboot\"")),
];

#[test]
fn golden_scheduler_translations_and_refusals() {
    assert!(GOLDEN.len() >= 40);
    for (expression, expected) in GOLDEN {
        let got = scheduler_cron(expression);
        match (expected, &got) {
            (Ok(want), Ok(have)) => assert_eq!(have, want, "{expression}"),
            (Err(want), Err(have)) => assert!(have.starts_with(want), "{expression}: {have}"),
            _ => panic!("{expression}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn refusals_say_the_fix() {
    let both = scheduler_cron("0 3 1 * MON").unwrap_err();
    assert!(
        both.ends_with("split it into two launch plans, one with each (\"0 3 1 * *\" and \"0 3 * * MON\")"),
        "{both}"
    );
    let never = cron_schedule("0 0 30 2 *", None).unwrap_err();
    assert!(never.contains("never fires"), "{never}");
    assert!(cron_schedule("0 0 31 4,6,9,11 *", None).unwrap_err().contains("never fires"));
    assert!(cron_schedule("0 0 29 2 *", None).is_ok(), "leap years have February 29");
    assert!(cron_schedule("0 0 31 1-3 *", None).is_ok());
    assert!(cron_schedule("0 3 * * *", Some("Europe/Pariss")).unwrap_err().contains("not an IANA time zone"));
}

#[test]
fn rates_translate_and_refuse_what_scheduler_cannot_do() {
    let expression = |text: &str| parse_rate(text).map(|r| scheduler_rate(&r));
    assert_eq!(expression("30m").unwrap(), "rate(30 minutes)");
    assert_eq!(expression("1m").unwrap(), "rate(1 minute)");
    assert_eq!(expression("6h").unwrap(), "rate(6 hours)");
    assert_eq!(expression("1 hour").unwrap(), "rate(1 hour)");
    assert_eq!(expression("1d").unwrap(), "rate(1 day)");
    assert_eq!(expression("2 days").unwrap(), "rate(2 days)");
    assert!(expression("30s").unwrap_err().contains("below a minute"));
    assert!(expression("0m").unwrap_err().contains("never fires"));
    assert!(expression("5 weeks").unwrap_err().contains("unknown rate unit"));
    assert!(expression("soon").unwrap_err().contains("cannot read rate"));
}

#[test]
fn time_zones_come_from_the_tz_database() {
    assert_eq!(time_zone("Europe/Paris").unwrap(), Tz::Europe__Paris);
    assert!(time_zone("America/Argentina/Buenos_Aires").is_ok());
    assert!(time_zone("UTC").is_ok());
    assert!(time_zone("Paris").is_err());
    assert!(time_zone("Mars/Olympus_Mons").unwrap_err().contains("not an IANA time zone"));
    assert!(time_zone("europe/paris").unwrap_err().contains("did you mean \"Europe/Paris\""));
}

#[test]
fn next_fires_cross_month_ends_and_leap_days() {
    let monthly = cron("0 0 L * *", "UTC");
    assert_eq!(
        fires(&monthly, "2028-01-15T00:00:00Z", 3),
        ["2028-01-31T00:00Z", "2028-02-29T00:00Z", "2028-03-31T00:00Z"]
    );
    let leap = cron("30 6 29 2 *", "UTC");
    assert_eq!(fires(&leap, "2026-12-05T00:00:00Z", 2), ["2028-02-29T06:30Z", "2032-02-29T06:30Z"]);
    let nightly = cron("0 3 * * *", "Europe/Paris");
    // Winter: UTC+1.
    assert_eq!(
        fires(&nightly, "2027-01-30T12:00:00Z", 3),
        ["2027-01-31T02:00Z", "2027-02-01T02:00Z", "2027-02-02T02:00Z"]
    );
    // Strictly after: a fire at exactly `after` is not repeated.
    assert_eq!(fires(&nightly, "2027-01-31T02:00:00Z", 1), ["2027-02-01T02:00Z"]);
}

#[test]
fn a_time_in_the_spring_gap_is_skipped_and_one_in_the_fall_overlap_fires_once() {
    // Europe/Paris: 2027-03-28 02:00 → 03:00; 2027-10-31 03:00 → 02:00.
    let paris = cron("30 2 * * *", "Europe/Paris");
    assert_eq!(
        fires(&paris, "2027-03-26T12:00:00Z", 3),
        ["2027-03-27T01:30Z", "2027-03-29T00:30Z", "2027-03-30T00:30Z"],
        "no 02:30 on March 28"
    );
    assert_eq!(
        fires(&paris, "2027-10-29T12:00:00Z", 3),
        ["2027-10-30T00:30Z", "2027-10-31T00:30Z", "2027-11-01T01:30Z"],
        "02:30 happens twice on October 31: it fires at the first"
    );
    // America/New_York: 2027-03-14 02:00 → 03:00; 2027-11-07 02:00 → 01:00.
    let new_york = cron("30 2 * * *", "America/New_York");
    assert_eq!(fires(&new_york, "2027-03-13T12:00:00Z", 2), ["2027-03-15T06:30Z", "2027-03-16T06:30Z"]);
    assert_eq!(
        fires(&new_york, "2027-11-06T12:00:00Z", 2),
        ["2027-11-07T07:30Z", "2027-11-08T07:30Z"],
        "02:30 exists once on November 7 (after the change)"
    );
    let one_thirty = cron("30 1 * * *", "America/New_York");
    assert_eq!(
        fires(&one_thirty, "2027-11-06T12:00:00Z", 2),
        ["2027-11-07T05:30Z", "2027-11-08T06:30Z"],
        "01:30 happens twice on November 7: once, at the first (EDT)"
    );
    // Every 30 minutes through the fall-back night: the repeated hour does not fire again.
    let half_hourly = cron("*/30 * * * *", "America/New_York");
    assert_eq!(
        fires(&half_hourly, "2027-11-07T04:45:00Z", 4),
        ["2027-11-07T05:00Z", "2027-11-07T05:30Z", "2027-11-07T07:00Z", "2027-11-07T07:30Z"]
    );
}

#[test]
fn a_rate_counts_fixed_durations_from_its_start_across_clock_changes() {
    let rate = Schedule {
        kind: Some(schedule::Kind::Rate(parse_rate("1d").unwrap())),
        kickoff_time_input: String::new(),
        catch_up: None,
    };
    let start = utc("2027-03-27T10:00:00Z");
    let got: Vec<String> = next_fires(&rate, Some(start), utc("2027-03-27T12:00:00Z"), 2)
        .unwrap()
        .iter()
        .map(|t| t.to_rfc3339())
        .collect();
    assert_eq!(got, ["2027-03-28T10:00:00+00:00", "2027-03-29T10:00:00+00:00"]);
    let before_start = next_fires(&rate, Some(start), utc("2027-03-01T00:00:00Z"), 1).unwrap();
    assert_eq!(before_start, [start], "the start date is the first fire");
}

#[test]
fn schedule_and_tick_names_are_deterministic_and_within_aws_limits() {
    assert_eq!(schedule_name("updraft", "examples", "development", "nightly"), "updraft-examples-development-nightly");
    let long = schedule_name("updraft", "examples", "development", &"n".repeat(100));
    assert_eq!(long.len(), 64);
    assert_ne!(long, schedule_name("updraft", "examples", "development", &"n".repeat(101)));
    let tick = tick_execution_name("diabetes_nightly", utc("2027-03-29T01:00:00Z"));
    assert_eq!(tick, "diabetes_nightly-20270329T0100Z");
    assert_eq!(tick_execution_name(&"p".repeat(90), utc("2027-03-29T01:00:00Z")).len(), 80);
    let mut schedule = cron("0 3 * * *", "UTC");
    assert_eq!(catch_up_seconds(&schedule), 3600);
    schedule.catch_up = Some(crate::proto::Duration { seconds: 7200, nanos: 0 });
    assert_eq!(catch_up_seconds(&schedule), 7200);
}

#[test]
fn drift_names_each_difference_between_registry_and_stack_with_its_fix() {
    let request = |version: &str, expression: &str| ScheduleRequest {
        name: "updraft-demo-development-nightly".into(),
        expression: expression.into(),
        timezone: "Europe/Paris".into(),
        catch_up_seconds: 3600,
        is_rate: false,
        plan: crate::proto::core::Identifier { name: "nightly".into(), version: version.into(), ..Default::default() },
        input: serde_json::Value::Null,
    };
    let found = |enabled: bool, version: &str, expression: &str| FoundSchedule {
        enabled,
        expression: expression.into(),
        timezone: "Europe/Paris".into(),
        version: version.into(),
    };
    let active = request("v2", "cron(0 3 * * ? *)");
    assert!(schedule_drift("nightly", Some(&active), Some(&found(true, "v2", "cron(0 3 * * ? *)"))).is_empty());
    assert!(schedule_drift("nightly", None, None).is_empty());
    assert!(schedule_drift("nightly", None, Some(&found(false, "v1", "cron(0 3 * * ? *)"))).is_empty());
    let drift = schedule_drift("nightly", Some(&active), Some(&found(false, "v1", "cron(0 4 * * ? *)")));
    assert_eq!(drift.len(), 3, "{drift:?}");
    assert!(drift[0].contains("DISABLED"), "{drift:?}");
    assert!(drift[1].contains("launches version v1 but version v2 is active"), "{drift:?}");
    assert!(drift[2].contains("fires on cron(0 4 * * ? *)"), "{drift:?}");
    assert!(drift.iter().all(|d| d.ends_with("updraft launchplan activate nightly --version v2")));
    let missing = schedule_drift("nightly", Some(&active), None);
    assert!(missing[0].contains("no schedule"), "{missing:?}");
    let stray = schedule_drift("nightly", None, Some(&found(true, "v1", "cron(0 3 * * ? *)")));
    assert!(stray[0].ends_with("updraft launchplan deactivate nightly --version v1"), "{stray:?}");
}
