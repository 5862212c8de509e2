//! `updraft schedule`, the local scheduler, as a user runs it: a real process on the
//! wall clock, local runs it starts, its records in the store, a kill and a restart.

use crate::support::{Sandbox, text};
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SPEC: &str = "tasks:\n  stamp:\n    image: x\n    command: [python3, -c, \"import sys; open(sys.argv[2], 'w').write(sys.argv[1])\", \"{{inputs.at}}\", \"{{outputs.seen}}\"]\n    inputs: {at: datetime}\n    outputs: {seen: string}\nworkflows:\n  stamped:\n    inputs: {at: datetime}\n    nodes:\n      stamp: {task: stamp, inputs: {at: $inputs.at}}\nlaunch_plans:\n  minutely:\n    workflow: stamped\n    schedule: {cron: \"* * * * *\", kickoff_input: at}\n";

fn second_of_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() % 60
}

/// Sleeps until the wall clock's second is `second` (of this minute or the next).
fn until_second(second: u64) {
    while second_of_minute() != second {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scheduler(sandbox: &Sandbox, extra: &[&str]) -> Child {
    let mut args = vec!["schedule", "spec.yaml"];
    args.extend_from_slice(extra);
    sandbox.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The scheduler's runs: (name, created-at seconds of minute, kickoff input).
fn runs(sandbox: &Sandbox) -> Vec<(String, i64, String)> {
    let listed = sandbox.updraft(&["executions", "list", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut runs: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let created = chrono::DateTime::parse_from_rfc3339(e["createdAt"].as_str().unwrap()).unwrap();
            let kickoff = e["inputs"]["values"]["at"]["datetime"].as_str().unwrap_or_default().to_string();
            (e["id"]["name"].as_str().unwrap().to_string(), created.timestamp() % 60, kickoff)
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn the_local_scheduler_runs_each_minute_on_time_and_catches_up_once_after_a_restart() {
    let sandbox = Sandbox::new("schedule", SPEC);
    // Start just after a minute boundary, so 130 s hold exactly two ticks.
    until_second(3);
    let mut first = scheduler(&sandbox, &[]);
    std::thread::sleep(Duration::from_secs(130));
    let on_time = runs(&sandbox);
    assert_eq!(on_time.len(), 2, "{on_time:?}");
    for (name, second, kickoff) in &on_time {
        assert!(*second <= 5, "{name} started {second} s after its minute");
        let tick = name.rsplit('-').next().unwrap();
        assert_eq!(&kickoff[11..16], &format!("{}:{}", &tick[9..11], &tick[11..13]), "the kickoff is the tick");
    }
    // Killed outright (no chance to record anything), and kept down across a whole tick.
    first.kill().unwrap();
    let log = first.wait_with_output().unwrap();
    let log = text(&log.stdout);
    assert_eq!(log.matches(" started run ").count(), 2, "{log}");
    // Back 40 s after the next tick: that tick was missed (on time is within 30 s).
    until_second(0);
    until_second(40);
    let second = scheduler(&sandbox, &["--catch-up", "last"]);
    std::thread::sleep(Duration::from_secs(5));
    // SAFETY: sends SIGTERM to the child we started, which stops it as Ctrl-C does.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let out = second.wait_with_output().unwrap();
    let log = text(&out.stdout);
    assert!(out.status.success(), "{log}{}", text(&out.stderr));
    let all = runs(&sandbox);
    assert_eq!(all.len(), 3, "exactly one catch-up run: {all:?}\n{log}");
    let caught_up: Vec<_> = all.iter().filter(|r| !on_time.contains(r)).collect();
    assert!(caught_up[0].1 >= 40, "the missed minute ran when the scheduler came back: {caught_up:?}");
    assert!(log.contains("started run"), "{log}");
    assert_eq!(log.matches(" started run ").count(), 1, "{log}");
}
