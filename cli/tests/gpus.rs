//! GPU admission in local runs, without a GPU: `UPDRAFT_GPUS` names the devices,
//! and each task reports the devices it saw and when it ran.

use crate::support::{Sandbox, text};
use serde_json::Value;

/// A task that records `CUDA_VISIBLE_DEVICES start_ns end_ns` around a short sleep.
const PROBE: &str = r#"    image: x
    command: [sh, -c, 'start=$(date +%s%N); sleep 0.4; end=$(date +%s%N); printf "\"%s %s %s\"" "$CUDA_VISIBLE_DEVICES" "$start" "$end" > "$0"', "{{outputs.seen}}"]
    outputs: {seen: string}
"#;

fn spec(gpu: u32) -> String {
    format!(
        "tasks:\n  train:\n{PROBE}    resources: {{gpu: {gpu}}}\n  prep:\n{PROBE}  item:\n{PROBE}    inputs: {{i: int}}\n    resources: {{gpu: 1}}\nworkflows:\n  four:\n    nodes:\n      a: {{task: train}}\n      b: {{task: train}}\n      c: {{task: train}}\n      d: {{task: train}}\n      p: {{task: prep}}\n  mapped:\n    nodes:\n      m: {{map: {{task: item, over: [i]}}, inputs: {{i: [1, 2, 3, 4, 5, 6]}}}}\n"
    )
}

struct Probe {
    devices: String,
    start: u128,
    end: u128,
}

fn probe(value: &Value) -> Probe {
    let text = value.as_str().unwrap_or_else(|| panic!("a probe string: {value}"));
    let parts: Vec<&str> = text.split(' ').collect();
    Probe { devices: parts[0].to_string(), start: parts[1].parse().unwrap(), end: parts[2].parse().unwrap() }
}

/// At every start, the probes running then: never more than the devices, never sharing one.
fn check_admission(probes: &[Probe], devices: &[&str]) {
    for p in probes {
        assert!(devices.contains(&p.devices.as_str()), "one device of {devices:?} each, got {:?}", p.devices);
    }
    for p in probes {
        let running: Vec<&Probe> = probes.iter().filter(|q| q.start <= p.start && p.start < q.end).collect();
        assert!(running.len() <= devices.len(), "{} GPU tasks at once on {} devices", running.len(), devices.len());
        let mut seen: Vec<&str> = running.iter().map(|q| q.devices.as_str()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), running.len(), "tasks running together share a device: {seen:?}");
    }
}

fn run(sandbox: &Sandbox, gpus: &str, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["run", "spec.yaml"];
    argv.extend_from_slice(args);
    sandbox.command(&argv).env("UPDRAFT_GPUS", gpus).output().unwrap()
}

#[test]
fn gpu_tasks_get_their_own_devices_and_wait_for_free_ones() {
    let sandbox = Sandbox::new("gpus-four", &spec(1));
    let out = run(&sandbox, "0,1", &["four"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stderr);
    assert!(
        progress.contains("GPUs: 2 GPUs (0; 1) from UPDRAFT_GPUS"),
        "the run header says what was found: {progress}"
    );
    assert!(progress.contains("a: attempt 1 on GPU "), "progress names each attempt's devices: {progress}");
    let shown = text(&out.stdout);
    assert!(shown.contains("attempt 1: GPU 0") && shown.contains("attempt 1: GPU 1"), "{shown}");
    let name = shown.lines().find_map(|l| l.strip_prefix("execution ")).unwrap().split(' ').next().unwrap();
    let get = sandbox.updraft(&["executions", "get", name, "--output", "json"]);
    let doc: Value = serde_json::from_slice(&get.stdout).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    let mut probes = Vec::new();
    for id in ["a", "b", "c", "d"] {
        let node = nodes.iter().find(|n| n["id"]["nodeId"] == id).unwrap();
        let seen = probe(&node["outputs"]["values"]["seen"]["string"]);
        assert_eq!(node["attemptDevices"][0]["gpus"][0], seen.devices.as_str(), "the record names the device");
        probes.push(seen);
    }
    check_admission(&probes, &["0", "1"]);
    let prep = nodes.iter().find(|n| n["id"]["nodeId"] == "p").unwrap();
    assert_eq!(probe(&prep["outputs"]["values"]["seen"]["string"]).devices, "", "a CPU task sees no GPU");
}

#[test]
fn map_items_spread_over_the_devices() {
    let sandbox = Sandbox::new("gpus-map", &spec(1));
    let out = run(&sandbox, "0,1", &["mapped", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = doc["nodes"].as_array().unwrap().iter().find(|n| n["id"]["nodeId"] == "m").unwrap().clone();
    let probes: Vec<Probe> = node["outputs"]["values"]["seen"]["list"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| probe(&v["string"]))
        .collect();
    assert_eq!(probes.len(), 6);
    check_admission(&probes, &["0", "1"]);
    assert!(probes.iter().any(|p| p.devices == "0") && probes.iter().any(|p| p.devices == "1"), "both devices used");
}

#[test]
fn more_gpus_than_the_machine_has_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new("gpus-too-many", &spec(3));
    let out = run(&sandbox, "0,1", &["four"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("task train asks for 3 GPU(s), but this machine offers 2 GPUs (0; 1) from UPDRAFT_GPUS"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!sandbox.dir.join("home/runs").read_dir().is_ok_and(|mut d| d.next().is_some()), "nothing ran");

    let sandbox = Sandbox::new("gpus-none", &spec(1));
    let out = run(&sandbox, "none", &["four"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("offers no GPUs (UPDRAFT_GPUS)"), "{}", text(&out.stderr));
    // `updraft run --help` says what was found.
    let out = run(&sandbox, "none", &["four", "--help"]);
    assert!(text(&out.stdout).contains("GPUs: no GPUs (UPDRAFT_GPUS)"), "{}", text(&out.stdout));
}
