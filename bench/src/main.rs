//! The figures behind `./bench/run`, each printed as `name: value unit`.
//!
//! Compile benchmarks time the whole path a spec takes in `updraft compile`
//! (parse JSON text, validate, compile, analyse the DAG), in-process. Local
//! execution benchmarks run the release `updraft` binary (`UPDRAFT_BIN`) as a
//! user would, against a scratch `UPDRAFT_HOME`; exec benchmarks run
//! `updraft exec` against the emulator's S3; API benchmarks run `updraft
//! register` and `get` against the stack deployed into the emulator.

mod api;
mod console;
mod exec;
mod local;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use updraft_core::compile::{Options, compile_text};
use updraft_core::spec::Format;

fn main() {
    // `UPDRAFT_BENCH_ONLY=console`: only the console's figures (they need UPDRAFT_BIN alone).
    if std::env::var("UPDRAFT_BENCH_ONLY").as_deref() == Ok("console") {
        let updraft = std::path::PathBuf::from(std::env::var_os("UPDRAFT_BIN").expect("UPDRAFT_BIN names updraft"));
        let scratch = std::env::temp_dir().join(format!("updraft-bench-console-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        console::list_10000_runs(&updraft, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    }
    let wide = chain_with_random_edges(10_000);
    report("compile_10k_nodes_ms", median_ms(7, || compile(&wide, 10_000)));
    let fan_in = fan_in(1_000);
    report("compile_fanin_1000_ms", median_ms(7, || compile(&fan_in, 1_001)));
    println!("schedule_next_1000_us: {:.0} us", median_ms(7, next_1000_fires) * 1000.0);
    local::run_all();
}

/// 1,000 fire times of a nightly schedule in Europe/Paris (three years, six clock changes).
fn next_1000_fires() {
    use updraft_core::proto::core::{CronSchedule, Schedule, schedule::Kind};
    let nightly = Schedule {
        kind: Some(Kind::Cron(CronSchedule { expression: "0 3 * * *".into(), timezone: "Europe/Paris".into() })),
        kickoff_time_input: String::new(),
        catch_up: None,
    };
    let after = chrono::DateTime::from_timestamp(1_796_083_200, 0).expect("a valid time"); // 2026-12-01
    let fires = updraft_core::schedule::next_fires(&nightly, None, after, 1000).expect("the schedule fires");
    assert_eq!(fires.len(), 1000);
}

pub fn report(name: &str, value: f64) {
    println!("{name}: {value:.2} ms");
}

fn compile(text: &str, expected_nodes: usize) {
    let compiled = compile_text(text, Format::Json, &Options::default()).expect("the generated spec is valid");
    let nodes = compiled.workflows[0].template.as_ref().map_or(0, |t| t.nodes.len());
    assert_eq!(nodes, expected_nodes);
}

pub fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2].as_secs_f64() * 1000.0
}

fn task() -> Value {
    json!({
        "image": "busybox",
        "command": ["step", "{{inputs.x}}", "{{outputs.y}}"],
        "inputs": {"x": "list<int>"},
        "outputs": {"y": "int"},
        "cache": {"version": "1"}
    })
}

/// `n` nodes; node i takes the outputs of up to three earlier nodes (a
/// deterministic pseudo-random choice), so the DAG is deep and irregular.
fn chain_with_random_edges(n: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut nodes = serde_json::Map::new();
    for i in 0..n {
        let parents: Vec<Value> = if i == 0 {
            Vec::new()
        } else {
            let mut p: Vec<usize> = (0..3).map(|_| (next() as usize) % i).collect();
            p.sort_unstable();
            p.dedup();
            p.into_iter().map(|j| json!(format!("$n{j}.y"))).collect()
        };
        nodes.insert(format!("n{i}"), json!({"task": "step", "inputs": {"x": parents}}));
    }
    json!({"tasks": {"step": task()}, "workflows": {"big": {"nodes": nodes}}}).to_string()
}

/// `parents` independent nodes all feeding one node's list input.
fn fan_in(parents: usize) -> String {
    let mut nodes = serde_json::Map::new();
    for i in 0..parents {
        nodes.insert(format!("p{i}"), json!({"task": "step", "inputs": {"x": []}}));
    }
    let all: Vec<Value> = (0..parents).map(|i| json!(format!("$p{i}.y"))).collect();
    nodes.insert("join".into(), json!({"task": "step", "inputs": {"x": all}}));
    json!({"tasks": {"step": task()}, "workflows": {"fanin": {"nodes": nodes}}}).to_string()
}
