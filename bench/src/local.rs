//! `updraft run` figures: orchestration overhead, fan-out, cached rerun.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run_all() {
    let Some(updraft) = std::env::var_os("UPDRAFT_BIN").map(PathBuf::from) else {
        eprintln!("UPDRAFT_BIN is not set; skipping the local execution benchmarks");
        return;
    };
    let scratch = std::env::temp_dir().join(format!("updraft-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let bench = Bench { updraft, scratch: scratch.clone() };

    // A 50-node chain of `true`: everything but the process itself is overhead.
    let chain = bench.spec("chain50.yaml", &chain_spec(50));
    let spawn_ms = crate::median_ms(5, || spawn_true(50)) / 50.0;
    let run_ms = crate::median_ms(5, || bench.run(&chain, &["--no-cache"])) / 50.0;
    crate::report("local_chain50_per_node_ms", run_ms - spawn_ms);

    let fanout = bench.spec("fanout100.yaml", FANOUT_SPEC);
    let fanout_ms = crate::median_ms(3, || bench.run(&fanout, &["--no-cache"]));
    println!("local_fanout100_s: {:.2} s", fanout_ms / 1000.0);

    let diabetes = Path::new("examples/diabetes/diabetes.yaml");
    bench.run(diabetes, &[]); // fills the cache
    crate::report("local_diabetes_cached_rerun_ms", crate::median_ms(5, || bench.run(diabetes, &[])));

    python_tasks(&bench);
    home_growth(&bench);
    live_output_latency(&bench);

    crate::console::list_10000_runs(&bench.updraft, &scratch);
    crate::exec::run_all(&bench.updraft, &scratch);
    crate::api::run_all(&bench.updraft);

    let _ = std::fs::remove_dir_all(&scratch);
}

/// Python tasks through the warm workers (docs/python.md), and the limit: the
/// diabetes functions called one after another in one plain Python process.
/// Both use the interpreter itself (`sys.executable`), not a launcher script such
/// as a pyenv shim, which alone costs tens of milliseconds per start here.
fn python_tasks(bench: &Bench) {
    let which = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python = String::from_utf8(which.stdout).unwrap().trim().to_string();
    let pipelines = Path::new("bench/python/pipelines.py");
    let run = |target: &str| {
        let spec = format!("{}:{target}", pipelines.display());
        bench.run_with(Path::new(&spec), &["--no-cache"], &[("UPDRAFT_PYTHON", &python)])
    };
    let chain = crate::median_ms(5, || run("chain50"));
    println!("local_py_chain50_s: {:.3} s", chain / 1000.0);
    let one = crate::median_ms(5, || run("one"));
    crate::report("local_py_task_overhead_ms", (chain - one) / 49.0);
    let fanout = crate::median_ms(5, || run("fanout100"));
    println!("local_py_fanout100_s: {:.3} s", fanout / 1000.0);

    let diabetes = Path::new("examples/diabetes/diabetes.py");
    let cold = crate::median_ms(3, || bench.run_with(diabetes, &["--no-cache"], &[("UPDRAFT_PYTHON", &python)]));
    let scratch = bench.scratch.join("limit");
    std::fs::create_dir_all(&scratch).unwrap();
    let example = std::fs::canonicalize("examples/diabetes").unwrap();
    let script = std::fs::canonicalize("bench/python/diabetes_limit.py").unwrap();
    let limit = crate::median_ms(3, || {
        let out = Command::new(&python).arg(&script).arg(&example).current_dir(&scratch).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    // Every task cached and the translation reused: no Python starts at all.
    let with_python = [("UPDRAFT_PYTHON", python.as_str())];
    bench.run_with(diabetes, &[], &with_python);
    let cached = crate::median_ms(5, || bench.run_with(diabetes, &[], &with_python));
    println!("local_py_diabetes_cached_s: {:.3} s", cached / 1000.0);
    println!("local_py_diabetes_cold_s: {:.3} s", cold / 1000.0);
    println!("local_py_diabetes_limit_s: {:.3} s", limit / 1000.0);
    println!("local_py_diabetes_cold_over_limit: {:.2} x", cold / limit);

    script_tasks(bench, &python, limit);
}

/// Python tasks written as scripts in YAML (`python3 FILE.py ARGS…`), forked from a
/// script worker (docs/python.md, "Script tasks"); the interpreter is named by its
/// path in the specs, as the SDK cases name it through `UPDRAFT_PYTHON`.
fn script_tasks(bench: &Bench, python: &str, limit: f64) {
    let dir = bench.scratch.join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("bench/python/scripts/inc.py", dir.join("inc.py")).unwrap();
    let mut chain = format!(
        "tasks:\n  inc:\n    image: python:3.11-slim\n    command: [{python}, \"{{{{code_dir}}}}/inc.py\", \"{{{{inputs.x}}}}\", \"{{{{outputs.y}}}}\"]\n    inputs: {{x: int}}\n    outputs: {{y: int}}\nworkflows:\n  chain:\n    inputs: {{start: {{type: int, default: 0}}}}\n    nodes:\n"
    );
    for i in 0..50 {
        let x = if i == 0 { "$inputs.start".to_string() } else { format!("$n{}.y", i - 1) };
        chain.push_str(&format!("      n{i}: {{task: inc, inputs: {{x: {x}}}}}\n"));
    }
    chain.push_str("    outputs: {y: $n49.y}\n");
    let chain = bench.spec("scripts/chain50.yaml", &chain);
    let chain = crate::median_ms(5, || bench.run(&chain, &["--no-cache"]));
    println!("local_script_chain50_s: {:.3} s", chain / 1000.0);

    // The diabetes pipeline as four scripts, next to their spec (their code directory).
    let diabetes_dir = dir.join("diabetes");
    std::fs::create_dir_all(&diabetes_dir).unwrap();
    for entry in std::fs::read_dir("bench/python/diabetes_scripts").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, diabetes_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let dataset = std::fs::canonicalize("examples/diabetes/data/pima-sample.csv").unwrap();
    let spec = std::fs::read_to_string("bench/python/diabetes_scripts/diabetes.yaml")
        .unwrap()
        .replace("[python3,", &format!("[{python},"))
        .replace("../../../examples/diabetes/data/pima-sample.csv", &dataset.display().to_string());
    let diabetes = bench.spec("scripts/diabetes/diabetes.yaml", &spec);
    let cold = crate::median_ms(3, || bench.run(&diabetes, &["--no-cache"]));
    println!("local_script_diabetes_cold_s: {:.3} s", cold / 1000.0);
    println!("local_script_diabetes_cold_over_limit: {:.2} x", cold / limit);
}

/// The home's size after a 2-node workflow given a 20 MB file ran three times
/// without the cache (docs/storage.md, "The local home"): each file counted once,
/// however many links it has, as `du` counts.
fn home_growth(bench: &Bench) {
    let dir = bench.scratch.join("growth");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("size.py"),
        "import os, sys\nopen(sys.argv[2], 'w').write(str(os.path.getsize(sys.argv[1])))\n",
    )
    .unwrap();
    let spec = bench.spec(
        "growth/two.yaml",
        "tasks:\n  size:\n    image: python:3.11-slim\n    command: [python3, \"{{code_dir}}/size.py\", \"{{inputs.data}}\", \"{{outputs.bytes}}\"]\n    inputs: {data: file}\n    outputs: {bytes: int}\nworkflows:\n  two:\n    inputs: {data: file}\n    nodes:\n      a: {task: size, inputs: {data: $inputs.data}}\n      b: {task: size, inputs: {data: $inputs.data}}\n",
    );
    let input = dir.join("input.bin");
    // Incompressible and unlike anything else in the home.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..20_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&input, data).unwrap();
    let home = dir.join("home");
    let given = format!("data={}", input.display());
    for _ in 0..3 {
        let out = Command::new(&bench.updraft)
            .args(["run", spec.to_str().unwrap(), "--input", &given, "--no-cache", "--output", "json"])
            .env("UPDRAFT_HOME", &home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    println!("local_home_bytes_after_3_runs_20mb_input: {:.1} MB", disk_bytes(&home) as f64 / 1e6);
}

/// From a task writing a line to that line on `updraft run`'s stderr (`--task-output`):
/// the task prints its wall-clock time, this reads the run's stderr as it comes.
fn live_output_latency(bench: &Bench) {
    use std::io::BufRead;
    let dir = bench.scratch.join("live");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stamps.py"),
        "import sys, time\nfor _ in range(40):\n    print(repr(time.time()), flush=True)\n    time.sleep(0.05)\nopen(sys.argv[1], 'w').write('1')\n",
    )
    .unwrap();
    let spec = bench.spec(
        "live/stamps.yaml",
        "tasks:\n  stamps:\n    image: python:3.11-slim\n    command: [python3, \"{{code_dir}}/stamps.py\", \"{{outputs.done}}\"]\n    outputs: {done: int}\nworkflows:\n  w:\n    nodes:\n      stamps: {task: stamps}\n",
    );
    let mut child = Command::new(&bench.updraft)
        .args(["run", spec.to_str().unwrap(), "--no-cache", "--task-output", "on"])
        .env("UPDRAFT_HOME", bench.scratch.join("home"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut latencies = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let received = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let line = line.unwrap();
        if let Some(stamp) = line.split("stamps | ").nth(1).and_then(|s| s.trim().parse::<f64>().ok()) {
            latencies.push((received - stamp) * 1000.0);
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(latencies.len(), 40, "every line reached stderr");
    latencies.sort_by(f64::total_cmp);
    println!("live_output_latency_ms: {:.1} ms", latencies[latencies.len() / 2]);
    println!("live_output_latency_max_ms: {:.1} ms", latencies[latencies.len() - 1]);
}

fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
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

struct Bench {
    updraft: PathBuf,
    scratch: PathBuf,
}

impl Bench {
    fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.scratch.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, spec: &Path, extra: &[&str]) {
        self.run_with(spec, extra, &[]);
    }

    fn run_with(&self, spec: &Path, extra: &[&str], env: &[(&str, &str)]) {
        let out = Command::new(&self.updraft)
            .arg("run")
            .arg(spec)
            .args(extra)
            .args(["--output", "json"])
            .env("UPDRAFT_HOME", self.scratch.join("home"))
            .envs(env.iter().copied())
            .output()
            .expect("updraft starts");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn spawn_true(n: usize) {
    for _ in 0..n {
        assert!(Command::new("true").status().unwrap().success());
    }
}

fn chain_spec(n: usize) -> String {
    let mut spec =
        String::from("tasks:\n  noop: {image: busybox, command: [\"true\"]}\nworkflows:\n  chain:\n    nodes:\n");
    for i in 0..n {
        if i == 0 {
            spec.push_str("      n0: {task: noop}\n");
        } else {
            spec.push_str(&format!("      n{i}: {{task: noop, after: [n{}]}}\n", i - 1));
        }
    }
    spec
}

/// Map over 100 items whose task only copies its input to its output (`sh` is
/// the task's own program here; the executor never adds a shell).
const FANOUT_SPEC: &str = r#"
tasks:
  numbers:
    image: busybox
    command: [sh, -c, 'seq -s, 1 "$1" | sed "s/^/[/; s/$/]/" > "$2"', sh, "{{inputs.n}}", "{{outputs.values}}"]
    inputs: {n: int}
    outputs: {values: list<int>}
  copy:
    image: busybox
    command: [sh, -c, 'printf %s "$1" > "$2"', sh, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    resources: {cpu: "100m", memory: 16Mi}
workflows:
  fanout:
    nodes:
      numbers: {task: numbers, inputs: {n: 100}}
      copies:
        map: {task: copy, over: [x], concurrency: 32}
        inputs: {x: $numbers.values}
    outputs: {ys: $copies.y}
"#;
