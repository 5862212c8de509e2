//! Keeping a home's size in check, through the real binary: task inputs linked
//! from the store, `executions delete` and `updraft gc` (docs/storage.md).

use crate::support::{Sandbox, node, text};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const FILES: &str = r#"
tasks:
  make:
    image: python:3.11-slim
    command: [python3, "{{code_dir}}/make.py", "{{inputs.n}}", "{{outputs.data}}"]
    inputs: {n: int}
    outputs: {data: file}
    cache: {version: "1"}
  size:
    image: python:3.11-slim
    command: [python3, "{{code_dir}}/make.py", size, "{{inputs.data}}", "{{outputs.bytes}}"]
    inputs: {data: file}
    outputs: {bytes: int}
workflows:
  made:
    inputs: {n: int}
    nodes:
      make: {task: make, inputs: {n: $inputs.n}}
    outputs: {data: $make.data}
  two:
    inputs: {data: file}
    nodes:
      a: {task: size, inputs: {data: $inputs.data}}
      b: {task: size, inputs: {data: $inputs.data}}
    outputs: {a: $a.bytes, b: $b.bytes}
"#;

const MAKE: &str = "import os, sys\n\
if sys.argv[1] == 'size':\n    open(sys.argv[3], 'w').write(str(os.path.getsize(sys.argv[2])))\n\
else:\n    open(sys.argv[2], 'w').write(sys.argv[1] * 100_000)\n";

fn sandbox(name: &str) -> Sandbox {
    let sandbox = Sandbox::new(name, FILES);
    std::fs::write(sandbox.dir.join("make.py"), MAKE).unwrap();
    sandbox
}

fn json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = sandbox.updraft(&all);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{args:?} prints JSON: {}", text(&out.stdout)))
}

fn name(run: &Value) -> String {
    run["execution"]["id"]["name"].as_str().unwrap().to_string()
}

/// Bytes under a directory, each file once however many links it has (as `du`).
fn disk_bytes(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut total = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// A 2 MB input given to two nodes, three runs without the cache: the home holds it once.
#[test]
fn an_input_file_is_stored_once_and_linked_into_every_node() {
    let sandbox = sandbox("cleanup-links");
    let input = sandbox.dir.join("input.bin");
    std::fs::write(&input, vec![7u8; 2_000_000]).unwrap();
    for _ in 0..3 {
        let run = json(&sandbox, &["run", "spec.yaml", "two", "--input", "data=input.bin", "--no-cache"]);
        assert_eq!(run["outputs"]["a"], 2_000_000);
    }
    let home = disk_bytes(&sandbox.dir.join("home"));
    assert!(home < 2_000_000 + 500_000, "the home holds the input once, not six times: {home} bytes");
    let mode = std::fs::metadata(&input).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o644, "the user's own file is neither moved nor made read-only");
}

/// After deleting executions, gc frees the blobs only they named and keeps what a
/// remaining execution or a cache entry needs: those runs still read, the cache still hits.
#[test]
fn gc_frees_what_deleted_executions_held_and_nothing_still_needed() {
    let sandbox = sandbox("cleanup-gc");
    let made = |n: &str, extra: &[&str]| {
        let mut args = vec!["run", "spec.yaml", "made", "--input"];
        let input = format!("n={n}");
        args.push(&input);
        args.extend_from_slice(extra);
        json(&sandbox, &args)
    };
    let cached = made("1", &[]); // its output is the cache entry's
    let deleted = made("2", &["--no-cache"]); // named only by its execution
    let kept = made("3", &["--no-cache"]);
    let blob = |run: &Value| run["outputs"]["data"].as_str().unwrap().to_string();
    // And the fan-out example, twenty times: its run directories are what deleting frees.
    let fanout = Sandbox::with_example("cleanup-fanout", "fanout/fanout.yaml");
    for count in 1..=20 {
        let out = fanout.updraft(&["run", "spec.yaml", "--input", &format!("count={count}"), "--no-cache"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let runs = |s: &Sandbox| std::fs::read_dir(s.dir.join("home/runs")).unwrap().count();
    assert_eq!(runs(&fanout), 20);
    let gone = json(&fanout, &["executions", "delete", "--keep", "5"]);
    assert_eq!(gone["executions"].as_array().unwrap().len(), 15);
    assert!(gone["bytes"].as_u64().unwrap() > 0);
    assert_eq!(runs(&fanout), 5, "the deleted executions' run directories are gone");
    let listed = json(&fanout, &["executions", "list", "--limit", "100"]);
    assert_eq!(listed.as_array().unwrap().len(), 5);

    json(&sandbox, &["executions", "delete", &name(&cached), &name(&deleted)]);
    let dry = json(&sandbox, &["gc", "--dry-run"]);
    assert_eq!((dry["blobs"].as_u64(), dry["dryRun"].as_bool()), (Some(1), Some(true)), "{dry}");
    assert!(Path::new(&blob(&deleted)).exists(), "a dry run removes nothing");
    let freed = json(&sandbox, &["gc"]);
    assert_eq!(freed["blobs"], 1, "only the deleted run's own output: {freed}");
    assert_eq!(freed["bytes"], 100_000, "its bytes: {freed}");
    assert!(!Path::new(&blob(&deleted)).exists());
    assert_eq!(std::fs::read_to_string(blob(&kept)).unwrap(), "3".repeat(100_000), "a remaining run's output");
    let rerun = made("1", &[]);
    assert_eq!(node(&rerun, "make")["cacheStatus"], "CACHE_HIT", "the cache entry's blob was kept");
    assert_eq!(std::fs::read_to_string(blob(&rerun)).unwrap(), "1".repeat(100_000));
    assert_eq!(json(&sandbox, &["gc"])["blobs"], 0, "nothing more to collect");

    let refused = sandbox.updraft(&["executions", "delete"]);
    assert_eq!(refused.status.code(), Some(2), "nothing chosen is a usage error");
    let unknown = sandbox.updraft(&["executions", "delete", "20200101-000000-00000000"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no execution named 20200101-000000-00000000"));
}

/// `updraft cache list|delete TASK` on this machine, in the stack's shape: a deleted
/// task's entries make its next run compute again; other tasks keep theirs.
#[test]
fn the_local_cache_is_listed_and_deleted_by_task() {
    let sandbox = sandbox("cleanup-cache");
    for n in ["1", "2"] {
        json(&sandbox, &["run", "spec.yaml", "made", "--input", &format!("n={n}")]);
    }
    let listed = json(&sandbox, &["cache", "list", "make"]);
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{listed}");
    assert_eq!((entries[0]["cacheVersion"].as_str(), entries[0]["project"].as_str()), (Some("1"), Some("default")));
    assert!(entries.iter().all(|e| e["key"].as_str().unwrap().len() == 64 && e["createdAt"].is_string()));
    assert_eq!(json(&sandbox, &["cache", "list", "make", "--version", "2"])["entries"], serde_json::json!([]));
    assert_eq!(json(&sandbox, &["cache", "list", "size"])["entries"], serde_json::json!([]), "other tasks: none");

    assert_eq!(json(&sandbox, &["cache", "delete", "make"])["deleted"], 2);
    assert_eq!(json(&sandbox, &["cache", "list", "make"])["entries"], serde_json::json!([]));
    let rerun = json(&sandbox, &["run", "spec.yaml", "made", "--input", "n=1"]);
    assert_eq!(node(&rerun, "make")["cacheStatus"], "CACHE_POPULATED", "computed again, cached again");
    let refused = sandbox.updraft(&["cache", "list", "make", "--remote"]);
    assert_eq!(refused.status.code(), Some(2), "the stack's cache is by registered version");
}
