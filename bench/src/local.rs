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

    crate::exec::run_all(&bench.updraft, &scratch);
    crate::api::run_all(&bench.updraft);

    let _ = std::fs::remove_dir_all(&scratch);
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
        let out = Command::new(&self.updraft)
            .arg("run")
            .arg(spec)
            .args(extra)
            .args(["--output", "json"])
            .env("UPDRAFT_HOME", self.scratch.join("home"))
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
