//! `updraft run` end to end: real processes, real files, the real SQLite store.

use crate::support::{Sandbox, node, text};
use serde_json::Value;

const STEP: &str = "[python3, \"{{code_dir}}/step.py\"";

fn json_run(sandbox: &Sandbox, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["run", "spec.yaml", "--output", "json"];
    args.extend_from_slice(extra);
    let out = sandbox.updraft(&args);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("run prints JSON; stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc)
}

#[test]
fn hello_runs_and_prints_its_output() {
    let sandbox = Sandbox::with_example("hello-run", "hello/hello.yaml");
    let out = sandbox.updraft(&["run", "spec.yaml", "--input", "name=Ada"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("greeting = \"Hello, Ada!\""), "{stdout}");
    assert!(stdout.contains("SUCCEEDED"), "{stdout}");
    assert!(text(&out.stderr).contains("greet"), "live progress names the node");
}

#[test]
fn a_cached_task_is_skipped_on_the_second_run() {
    let spec = format!(
        "tasks:\n  add:\n    image: x\n    command: {STEP}, add, \"{{{{inputs.a}}}}\", \"2\", \"{{{{outputs.sum}}}}\"]\n    inputs: {{a: int}}\n    outputs: {{sum: int}}\n    cache: {{version: \"1\"}}\nworkflows:\n  w:\n    inputs: {{a: int}}\n    nodes:\n      add: {{task: add, inputs: {{a: $inputs.a}}}}\n    outputs: {{sum: $add.sum}}\n"
    );
    let sandbox = Sandbox::new("cache", &spec);
    let (code, first) = json_run(&sandbox, &["-i", "a=40"]);
    assert_eq!(code, Some(0));
    assert_eq!(first["outputs"]["sum"], 42);
    assert_eq!(node(&first, "add")["phase"], "SUCCEEDED");
    assert_eq!(node(&first, "add")["cacheStatus"], "CACHE_POPULATED");

    let (_, second) = json_run(&sandbox, &["-i", "a=40"]);
    assert_eq!(node(&second, "add")["phase"], "CACHED");
    assert_eq!(second["outputs"]["sum"], 42);
    assert_eq!(node(&second, "add")["cacheKey"], node(&first, "add")["cacheKey"]);

    let (_, other_input) = json_run(&sandbox, &["-i", "a=1"]);
    assert_eq!(node(&other_input, "add")["phase"], "SUCCEEDED", "a new input is a miss");

    let (_, no_cache) = json_run(&sandbox, &["-i", "a=40", "--no-cache"]);
    assert_eq!(node(&no_cache, "add")["phase"], "SUCCEEDED");
    assert_eq!(node(&no_cache, "add")["cacheStatus"], Value::Null, "CACHE_DISABLED is the default and omitted");

    let (_, overwrite) = json_run(&sandbox, &["-i", "a=40", "--overwrite-cache"]);
    assert_eq!(node(&overwrite, "add")["cacheStatus"], "CACHE_OVERWRITTEN");
}

#[test]
fn bad_inputs_are_refused_before_anything_runs() {
    let sandbox = Sandbox::with_example("bad-input", "hello/hello.yaml");
    let spec = "tasks:\n  t: {image: x, command: [t, \"{{inputs.seed}}\"], inputs: {seed: int}}\nworkflows:\n  w:\n    inputs: {seed: int}\n    nodes:\n      t: {task: t, inputs: {seed: $inputs.seed}}\n";
    std::fs::write(sandbox.dir.join("typed.yaml"), spec).unwrap();
    for (args, expected) in [
        (vec!["run", "typed.yaml", "--input", "seed=abc"], "--input seed=abc: expected int, found \"abc\""),
        (vec!["run", "typed.yaml"], "missing required input \"seed\" (int)"),
        (vec!["run", "typed.yaml", "-i", "sede=1"], "the workflow has no input \"sede\""),
        (vec!["run", "typed.yaml", "-i", "seed"], "is not NAME=VALUE"),
        (vec!["run", "typed.yaml", "nope"], "no workflow or task \"nope\""),
    ] {
        let out = sandbox.updraft(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in {stderr}");
        assert!(stderr.contains("hint:") || stderr.contains("defines"), "{stderr}");
    }
    let list = sandbox.updraft(&["executions", "list", "--output", "json"]);
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap(), serde_json::json!([]), "nothing was recorded");
}

#[test]
fn a_failing_task_shows_its_stderr_and_log_and_is_retried() {
    let spec = format!(
        "tasks:\n  boom:\n    image: x\n    command: {STEP}, fail, \"3\", \"the model diverged\"]\n    retries: 1\nworkflows:\n  w:\n    nodes:\n      boom: {{task: boom}}\n"
    );
    let sandbox = Sandbox::new("fail", &spec);
    let out = sandbox.updraft(&["run", "spec.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("task boom exited with code 3 (after 2 attempts)"), "{stderr}");
    assert!(stderr.contains("the model diverged"), "the tail of stderr is shown: {stderr}");
    let log = stderr.split("full log: ").nth(1).expect("the log path is named").lines().next().unwrap();
    assert!(std::fs::read_to_string(log).unwrap().contains("the model diverged"));
    assert!(text(&out.stdout).contains("FAILED"));
}

#[test]
fn a_flaky_task_succeeds_on_retry() {
    let spec = format!(
        "tasks:\n  flaky:\n    image: x\n    command: {STEP}, flaky, \"{{{{inputs.marker}}}}\", \"{{{{outputs.status}}}}\"]\n    inputs: {{marker: string}}\n    outputs: {{status: string}}\n    retries: 2\nworkflows:\n  w:\n    inputs: {{marker: string}}\n    nodes:\n      flaky: {{task: flaky, inputs: {{marker: $inputs.marker}}}}\n    outputs: {{status: $flaky.status}}\n"
    );
    let sandbox = Sandbox::new("flaky", &spec);
    let marker = sandbox.dir.join("marker").display().to_string();
    let (code, doc) = json_run(&sandbox, &["-i", &format!("marker={marker}")]);
    assert_eq!(code, Some(0));
    assert_eq!(doc["outputs"]["status"], "recovered");
    assert_eq!(node(&doc, "flaky")["attempts"], 2);
    // Each attempt on record: how the first ended, where both logged, in the order they ran.
    let attempts = node(&doc, "flaky")["attemptRecords"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!((&attempts[0]["attempt"], &attempts[0]["failureCode"]), (&Value::from(1), &Value::from("NonZeroExit")));
    assert_eq!((&attempts[1]["attempt"], attempts[1].get("failureCode")), (&Value::from(2), None));
    let time = |a: &Value, key: &str| chrono::DateTime::parse_from_rfc3339(a[key].as_str().unwrap()).unwrap();
    for a in &attempts {
        assert!(time(a, "queuedAt") <= time(a, "startedAt") && time(a, "startedAt") <= time(a, "endedAt"), "{a}");
        let log =
            std::path::Path::new(a["logDir"].as_str().unwrap()).join(format!("attempt-{}.stderr.log", a["attempt"]));
        assert!(log.exists(), "{}", log.display());
    }
    assert!(time(&attempts[0], "endedAt") <= time(&attempts[1], "queuedAt"), "the retry waited for the first to end");
}

#[test]
fn a_missing_or_mistyped_output_fails_the_node_by_name() {
    let spec = format!(
        "tasks:\n  lazy:\n    image: x\n    command: {STEP}, nothing]\n    outputs: {{model: file}}\n  liar:\n    image: x\n    command: {STEP}, raw, \"high\", \"{{{{outputs.accuracy}}}}\"]\n    outputs: {{accuracy: float}}\nworkflows:\n  lazy:\n    nodes:\n      lazy: {{task: lazy}}\n  liar:\n    nodes:\n      liar: {{task: liar}}\n"
    );
    let sandbox = Sandbox::new("outputs", &spec);
    let out = sandbox.updraft(&["run", "spec.yaml", "lazy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did not write output \"model\" (file)"), "{}", text(&out.stderr));
    let out = sandbox.updraft(&["run", "spec.yaml", "liar"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("output \"accuracy\": expected float as JSON, found \"high\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn parquet_outputs_are_checked_against_the_declared_columns() {
    // The task hands over a Parquet file written by pyarrow (tests/data/parquet/make.py).
    let fixture = crate::support::repo_root().join("tests/data/parquet/typed.parquet");
    let task = |name: &str, columns: &str| {
        format!(
            "  {name}:\n    image: x\n    command: [cp, {fixture:?}, \"{{{{outputs.table}}}}\"]\n    outputs:\n      table: {{dataframe: {{format: parquet, columns: {{{columns}}}}}}}\n"
        )
    };
    let spec = format!(
        "tasks:\n{}{}{}workflows:\n  good:\n    nodes: {{write: {{task: good}}}}\n  wrong:\n    nodes: {{write: {{task: wrong}}}}\n  not_parquet:\n    nodes: {{write: {{task: csv}}}}\n",
        task("good", "id: int, score: float, name: string, at: datetime"),
        task("wrong", "id: string, label: string"),
        "  csv:\n    image: x\n    command: [cp, \"{{code_dir}}/spec.yaml\", \"{{outputs.table}}\"]\n    outputs: {table: dataframe<parquet>}\n",
    );
    let sandbox = Sandbox::new("parquet", &spec);
    let out = sandbox.updraft(&["run", "spec.yaml", "good"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = sandbox.updraft(&["run", "spec.yaml", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("dataframe \"table\" lacks declared column(s) label; its schema has: id, small,"),
        "{stderr}"
    );
    assert!(stderr.contains("column \"id\" is declared string, but the file holds INT64"), "{stderr}");

    let out = sandbox.updraft(&["run", "spec.yaml", "not_parquet"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "output \"table\" has the wrong type: expected dataframe<parquet>, found a file that is not Parquet"
        ),
        "{stderr}"
    );
}

#[test]
fn a_timeout_kills_the_task_and_is_reported() {
    let spec = format!(
        "tasks:\n  slow:\n    image: x\n    command: {STEP}, sleep, \"30\", \"{{{{inputs.pidfile}}}}\"]\n    inputs: {{pidfile: string}}\n    timeout: 1s\nworkflows:\n  w:\n    inputs: {{pidfile: string}}\n    nodes:\n      slow: {{task: slow, inputs: {{pidfile: $inputs.pidfile}}}}\n"
    );
    let sandbox = Sandbox::new("timeout", &spec);
    let pidfile = sandbox.dir.join("pid").display().to_string();
    let (code, doc) = json_run(&sandbox, &["-i", &format!("pidfile={pidfile}")]);
    assert_eq!(code, Some(1));
    assert_eq!(node(&doc, "slow")["phase"], "TIMED_OUT");
    assert!(doc["execution"]["error"]["message"].as_str().unwrap().contains("ran past its timeout of 1s"));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the task process was killed");
}

/// A sandbox whose workflow's one task sleeps for a minute after writing its pid,
/// its `updraft run` started (`extra` arguments added), and the task's pid once it runs.
fn start_slow_run(name: &str, extra: &[&str]) -> (Sandbox, std::process::Child, String) {
    let spec = format!(
        "tasks:\n  slow:\n    image: x\n    command: {STEP}, sleep, \"60\", \"{{{{inputs.pidfile}}}}\"]\n    inputs: {{pidfile: string}}\nworkflows:\n  w:\n    inputs: {{pidfile: string}}\n    nodes:\n      slow: {{task: slow, inputs: {{pidfile: $inputs.pidfile}}}}\n"
    );
    let sandbox = Sandbox::new(name, &spec);
    let pidfile = sandbox.dir.join("pid");
    let input = format!("pidfile={}", pidfile.display());
    let mut args = vec!["run", "spec.yaml", "-i", input.as_str()];
    args.extend_from_slice(extra);
    let child = sandbox
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the task never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let task_pid = std::fs::read_to_string(&pidfile).unwrap();
    (sandbox, child, task_pid)
}

#[test]
fn ctrl_c_kills_the_tasks_and_records_the_execution_aborted() {
    let (sandbox, child, task_pid) = start_slow_run("abort", &["--output", "json"]);
    // SAFETY: sends SIGINT to the child we spawned, as Ctrl-C would.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["execution"]["phase"], "WORKFLOW_ABORTED");
    assert_eq!(node(&doc, "slow")["phase"], "ABORTED");
    assert!(!std::path::Path::new(&format!("/proc/{task_pid}")).exists(), "the task process was killed");

    let name = doc["execution"]["id"]["name"].as_str().unwrap();
    let stored = sandbox.updraft(&["executions", "get", name, "--output", "json"]);
    let stored: Value = serde_json::from_slice(&stored.stdout).unwrap();
    assert_eq!(stored["execution"]["phase"], "WORKFLOW_ABORTED", "the store agrees");
}

#[test]
fn executions_abort_stops_a_local_run_from_another_process() {
    let (sandbox, child, task_pid) = start_slow_run("abort-verb", &[]);
    let listed = sandbox.updraft(&["executions", "list", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["phase"], "WORKFLOW_RUNNING");
    let name = listed[0]["id"]["name"].as_str().unwrap().to_string();
    let out = sandbox.updraft(&["executions", "abort", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{name}: ABORTED"));
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(130), "the runner ends as on Ctrl-C");
    assert!(!std::path::Path::new(&format!("/proc/{task_pid}")).exists(), "the task process was killed");
    let stored = sandbox.updraft(&["executions", "get", &name, "--output", "json"]);
    let stored: Value = serde_json::from_slice(&stored.stdout).unwrap();
    assert_eq!(node(&stored, "slow")["phase"], "ABORTED");

    // Again: it has ended ABORTED, which is what was asked.
    assert!(sandbox.updraft(&["executions", "abort", &name]).status.success());
    let unknown = sandbox.updraft(&["executions", "abort", "no-such-run"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no execution \"no-such-run\""), "{}", text(&unknown.stderr));
}

#[test]
fn a_run_past_its_workflow_timeout_ends_timed_out_and_its_tasks_are_killed() {
    let spec = format!(
        "tasks:\n  slow:\n    image: x\n    command: {STEP}, sleep, \"60\", \"{{{{inputs.pidfile}}}}\"]\n    inputs: {{pidfile: string}}\nworkflows:\n  w:\n    timeout: 2s\n    inputs: {{pidfile: string}}\n    nodes:\n      slow: {{task: slow, inputs: {{pidfile: $inputs.pidfile}}}}\n"
    );
    let sandbox = Sandbox::new("workflow-timeout", &spec);
    let pidfile = sandbox.dir.join("pid");
    let (code, doc) = json_run(&sandbox, &["-i", &format!("pidfile={}", pidfile.display())]);
    assert_eq!(code, Some(1));
    assert_eq!(doc["execution"]["phase"], "WORKFLOW_TIMED_OUT", "{doc}");
    assert_eq!(doc["execution"]["error"]["code"], "TimedOut");
    assert_eq!(doc["execution"]["error"]["message"], "the run ran past its timeout of 2s");
    assert_eq!(node(&doc, "slow")["phase"], "ABORTED");
    let task_pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{task_pid}")).exists(), "the task process was killed");
}

#[test]
fn map_branch_and_subworkflow_nodes_run() {
    let spec = format!(
        r#"tasks:
  square:
    image: x
    command: {STEP}, square, "{{{{inputs.x}}}}", "{{{{outputs.y}}}}"]
    inputs: {{x: int}}
    outputs: {{y: int}}
  echo:
    image: x
    command: {STEP}, echo, "{{{{inputs.v}}}}", "{{{{outputs.v}}}}"]
    inputs: {{v: string}}
    outputs: {{v: string}}
workflows:
  squares:
    inputs: {{xs: list<int>}}
    nodes:
      sq:
        map: {{task: square, over: [x], concurrency: 2, min_success_ratio: 0.5}}
        inputs: {{x: $inputs.xs}}
    outputs: {{ys: $sq.ys}}
  main:
    inputs: {{xs: list<int>, big: int}}
    nodes:
      sub: {{workflow: squares, inputs: {{xs: $inputs.xs}}}}
      pick:
        branch:
          cases:
            - if: $inputs.big > 10
              then: {{task: echo, inputs: {{v: big}}}}
          else: {{task: echo, inputs: {{v: small}}}}
    outputs: {{ys: $sub.ys, size: $pick.v}}
"#
    )
    .replace("$sq.ys", "$sq.y");
    let sandbox = Sandbox::new("kinds", &spec);
    let (code, doc) = json_run(&sandbox, &["main", "-i", "xs=[1,2,3,4]", "-i", "big=11"]);
    assert_eq!(code, Some(0), "{doc}");
    // Item 3 fails; a ratio of 0.5 lets the map succeed with a gap.
    assert_eq!(doc["outputs"]["ys"], serde_json::json!([1, 4, null, 16]));
    assert_eq!(doc["outputs"]["size"], "big");
    assert_eq!(node(&doc, "pick")["branchTaken"], "pick-case-0", "the record names the case that ran");
    assert_eq!(node(&doc, "sub/sq")["itemsDone"], 3);
    assert_eq!(node(&doc, "sub/sq")["itemsTotal"], 4);
    assert_eq!(node(&doc, "sub")["phase"], "SUCCEEDED");

    let (_, small) = json_run(&sandbox, &["main", "-i", "xs=[5]", "-i", "big=1"]);
    assert_eq!(small["outputs"]["size"], "small");
    assert_eq!(node(&small, "pick")["branchTaken"], "pick-else");
}

#[test]
fn independent_nodes_run_in_parallel_unless_limited() {
    let spec = format!(
        "tasks:\n  span:\n    image: x\n    command: {STEP}, span, \"{{{{inputs.log}}}}\", \"0.6\"]\n    inputs: {{log: string}}\nworkflows:\n  w:\n    inputs: {{log: string}}\n    nodes:\n      a: {{task: span, inputs: {{log: $inputs.log}}}}\n      b: {{task: span, inputs: {{log: $inputs.log}}}}\n"
    );
    let sandbox = Sandbox::new("parallel", &spec);
    let spans = |log: &std::path::Path| -> Vec<(f64, f64)> {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect()
    };
    let overlap = |s: &[(f64, f64)]| s[0].0 < s[1].1 && s[1].0 < s[0].1;

    let parallel_log = sandbox.dir.join("parallel.log");
    let (code, _) = json_run(&sandbox, &["-i", &format!("log={}", parallel_log.display())]);
    assert_eq!(code, Some(0));
    assert!(overlap(&spans(&parallel_log)), "a and b ran at the same time");

    let serial_log = sandbox.dir.join("serial.log");
    let (code, _) = json_run(&sandbox, &["-i", &format!("log={}", serial_log.display()), "--max-parallel", "1"]);
    assert_eq!(code, Some(0));
    assert!(!overlap(&spans(&serial_log)), "--max-parallel 1 runs one at a time");
}

#[test]
fn fail_fast_and_finish_independent() {
    let body = |policy: &str| {
        format!(
            "tasks:\n  boom: {{image: x, command: {STEP}, fail, \"1\", boom]}}\n  slow: {{image: x, command: {STEP}, span, \"{{{{inputs.log}}}}\", \"0.3\"], inputs: {{log: string}}}}\nworkflows:\n  w:\n    on_failure: {policy}\n    inputs: {{log: string}}\n    nodes:\n      boom: {{task: boom}}\n      after_boom: {{task: slow, inputs: {{log: $inputs.log}}, after: [boom]}}\n      first: {{task: slow, inputs: {{log: $inputs.log}}}}\n      second: {{task: slow, inputs: {{log: $inputs.log}}, after: [first]}}\n"
        )
    };
    let sandbox = Sandbox::new("policy-fast", &body("fail_fast"));
    let log = sandbox.dir.join("log").display().to_string();
    let (code, doc) = json_run(&sandbox, &["-i", &format!("log={log}")]);
    assert_eq!(code, Some(1));
    assert_eq!(node(&doc, "after_boom")["phase"], "SKIPPED");
    assert_eq!(node(&doc, "second")["phase"], "SKIPPED", "fail-fast starts nothing new");

    let sandbox = Sandbox::new("policy-independent", &body("finish_independent"));
    let (code, doc) = json_run(&sandbox, &["-i", &format!("log={log}-2")]);
    assert_eq!(code, Some(1));
    assert_eq!(node(&doc, "after_boom")["phase"], "SKIPPED");
    assert_eq!(node(&doc, "second")["phase"], "SUCCEEDED", "independent nodes finish");
}

#[test]
fn executions_are_listed_and_shown() {
    let sandbox = Sandbox::with_example("executions", "hello/hello.yaml");
    let (_, doc) = json_run(&sandbox, &[]);
    let name = doc["execution"]["id"]["name"].as_str().unwrap().to_string();
    let list = text(&sandbox.updraft(&["executions", "list"]).stdout);
    assert!(list.contains(&name) && list.contains("hello") && list.contains("SUCCEEDED"), "{list}");
    let get = sandbox.updraft(&["executions", "get", &name]);
    assert!(text(&get.stdout).contains("greeting = \"Hello, world!\""), "{}", text(&get.stdout));
    let missing = sandbox.updraft(&["executions", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no execution \"nope\""));
}

#[test]
fn task_contract_environment_is_set() {
    let spec = format!(
        "tasks:\n  env:\n    image: x\n    command: {STEP}, env, UPDRAFT_NODE_ID, \"{{{{outputs.v}}}}\"]\n    outputs: {{v: string}}\n    env: {{MODE: fast}}\nworkflows:\n  w:\n    nodes:\n      probe: {{task: env}}\n    outputs: {{v: $probe.v}}\n"
    );
    let sandbox = Sandbox::new("contract", &spec);
    let (_, doc) = json_run(&sandbox, &[]);
    assert_eq!(doc["outputs"]["v"], "probe");
}

/// The README's first command: the seed pipeline, then the same again from cache.
/// Needs the example's Python requirements (scripts/test installs them).
#[test]
fn the_diabetes_pipeline_trains_then_reruns_from_cache() {
    let sandbox = Sandbox::new("diabetes", "");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["run", "examples/diabetes/diabetes.yaml", "--output", "json"])
            .current_dir(crate::support::repo_root())
            .env("UPDRAFT_HOME", sandbox.dir.join("home"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run();
    let accuracy = first["outputs"]["accuracy"].as_f64().expect("an accuracy");
    assert!((0.5..=1.0).contains(&accuracy), "a classifier better than chance: {accuracy}");
    let model = first["outputs"]["model"].as_str().unwrap();
    assert!(std::fs::metadata(model).unwrap().len() > 1000, "the model file is stored");

    let second = run();
    for id in ["split", "fit", "predict", "score"] {
        assert_eq!(node(&second, id)["phase"], "CACHED", "{id}");
    }
    assert_eq!(second["outputs"], first["outputs"]);
}

/// A broken output contract fails the same way every time: `updraft run` does not
/// retry it, and neither does Batch (core's failure table, in the job definition).
#[test]
fn a_wrong_typed_output_is_not_retried() {
    let spec = "tasks:\n  t:\n    image: x\n    command: [sh, -c, 'echo \\\"high\\\" > \"$0\"', \"{{outputs.accuracy}}\"]\n    outputs: {accuracy: float}\n    retries: 2\nworkflows:\n  w:\n    nodes:\n      t: {task: t}\n";
    let sandbox = Sandbox::new("wrong-type-no-retry", spec);
    let (code, doc) = json_run(&sandbox, &[]);
    assert_eq!(code, Some(1));
    let t = node(&doc, "t");
    assert_eq!(t["error"]["code"], "BadOutputs");
    assert_eq!(t["attempts"], 1, "retries: 2 and yet one attempt: {t}");
    assert!(t["error"]["message"].as_str().unwrap().contains("output \"accuracy\" has the wrong type"), "{t}");
}

/// `executions list` filters by workflow, phase and age, and refuses a bad filter with the choices.
#[test]
fn executions_list_filters_by_workflow_phase_and_age() {
    let spec = "tasks:\n  ok: {image: python:3.11-slim, command: [python3, -c, \"pass\"]}\n\
                \x20 bad: {image: python:3.11-slim, command: [python3, -c, \"raise SystemExit(3)\"]}\n\
                workflows:\n  good:\n    nodes:\n      a: {task: ok}\n  broken:\n    nodes:\n      a: {task: bad}\n";
    let sandbox = Sandbox::new("list-filters", spec);
    for workflow in ["good", "broken", "good"] {
        sandbox.updraft(&["run", "spec.yaml", workflow, "--no-cache"]);
    }
    let listed = |args: &[&str]| {
        let mut all = vec!["executions", "list", "--output", "json"];
        all.extend_from_slice(args);
        let out = sandbox.updraft(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        runs.iter()
            .map(|r| format!("{} {}", r["workflowId"]["name"].as_str().unwrap(), r["phase"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&[]).len(), 3);
    assert_eq!(listed(&["--workflow", "good"]), ["good WORKFLOW_SUCCEEDED", "good WORKFLOW_SUCCEEDED"]);
    assert_eq!(listed(&["--phase", "failed"]), ["broken WORKFLOW_FAILED"]);
    assert_eq!(listed(&["--workflow", "good", "--limit", "1"]).len(), 1, "the limit counts matches");
    assert_eq!(listed(&["--since", "1h"]).len(), 3);
    assert!(listed(&["--since", "2999-01-01"]).is_empty());
    assert!(listed(&["--project", "elsewhere"]).is_empty(), "local runs are filtered by project too");
    assert!(listed(&["--domain", "production"]).is_empty(), "and by domain");
    assert_eq!(listed(&["--project", "default", "--domain", "development"]).len(), 3);
    let out = sandbox.updraft(&["executions", "list", "--phase", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("one of RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT"),
        "{}",
        text(&out.stderr)
    );
}

/// `executions logs` prints what a run's tasks wrote, by node and attempt, and
/// names what exists when asked for what does not.
#[test]
fn executions_logs_prints_each_nodes_output_and_names_what_exists() {
    let sandbox = Sandbox::with_example("logs", "hello/hello.yaml");
    let out = sandbox.updraft(&["run", "spec.yaml", "--input", "name=Ada", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["execution"]["id"]["name"].as_str().unwrap_or_else(|| panic!("an id: {doc}")).to_string();
    let logs = |args: &[&str]| {
        let mut all = vec!["executions", "logs", id.as_str()];
        all.extend_from_slice(args);
        sandbox.updraft(&all)
    };
    let all = logs(&[]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let printed = text(&all.stdout);
    assert!(printed.contains("==> greet attempt 1 stdout <==\ngreeted Ada"), "{printed}");
    assert_eq!(text(&logs(&["greet"]).stdout), printed, "the run's only node");
    let missing = logs(&["nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("node \"nope\" of") && text(&missing.stderr).contains("nodes with logs: greet")
    );
    let attempt = logs(&["greet", "--attempt", "2"]);
    assert_eq!(attempt.status.code(), Some(1));
    assert!(text(&attempt.stderr).contains("its attempts: 1"), "{}", text(&attempt.stderr));
    let shown = text(&sandbox.updraft(&["executions", "get", id.as_str()]).stdout);
    assert!(shown.contains("logs (updraft logs") && shown.contains("greet/attempt-1.{stdout,stderr}.log"), "{shown}");
    let unknown = sandbox.updraft(&["executions", "logs", "no-such-run"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no execution \"no-such-run\""));
}

#[test]
fn task_output_is_shown_line_by_line_while_the_task_runs() {
    let spec = "tasks:\n  talk:\n    image: x\n    command: [sh, -c, \"echo first; sleep 1; echo second; printf last; echo warned >&2\"]\n\
                workflows:\n  w:\n    nodes:\n      talk: {task: talk}\n";
    let sandbox = Sandbox::new("task-output", spec);
    let out = sandbox.updraft(&["run", "spec.yaml", "--task-output", "on"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let at = |needle: &str| stderr.find(needle).unwrap_or_else(|| panic!("{needle:?} in:\n{stderr}"));
    // Each line after its node, in the order printed, before the node's end — the last one without a newline too.
    assert!(at("talk | first") < at("talk | second") && at("talk | second") < at("talk | last"), "{stderr}");
    assert!(at("talk | warned") < at("SUCCEEDED"), "{stderr}");
    let seconds = |needle: &str| -> f64 {
        let line = stderr.lines().find(|l| l.contains(needle)).unwrap();
        line.trim_start_matches('[').split('s').next().unwrap().trim().parse().unwrap()
    };
    assert!(seconds("talk | second") - seconds("talk | first") >= 0.8, "shown as printed, not at the end: {stderr}");
    let quiet = sandbox.updraft(&["run", "spec.yaml"]);
    assert!(!text(&quiet.stderr).contains("talk | first"), "off when stderr is not a terminal (auto)");
    let quiet = sandbox.updraft(&["run", "spec.yaml", "--task-output", "on", "--quiet"]);
    let stderr = text(&quiet.stderr);
    assert!(!stderr.contains("talk | first") && stderr.contains("talk"), "-q keeps only the progress: {stderr}");
}

#[test]
fn a_task_runs_alone_with_its_inputs_as_the_runs() {
    let sandbox = Sandbox::with_example("task-alone", "fanout/fanout.yaml");
    let out = sandbox.updraft(&["run", "spec.yaml", "square", "--input", "x=7", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["execution"]["outputs"]["values"]["y"]["integer"], "49");
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 1, "one node: the task");

    let missing = sandbox.updraft(&["run", "spec.yaml", "square"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("hint: task square takes --input NAME=VALUE for: x: int"),
        "{}",
        text(&missing.stderr)
    );
    let unknown = sandbox.updraft(&["run", "spec.yaml", "cube"]);
    let stderr = text(&unknown.stderr);
    assert!(stderr.contains("no workflow or task \"cube\"") && stderr.contains("tasks: numbers, square"), "{stderr}");
}

/// Declared dataframe columns are checked on the files a run is given (CSV header,
/// Parquet schema) before anything runs: exit 2 naming what is missing, no execution.
#[test]
fn declared_columns_are_checked_on_given_dataframes_before_anything_runs() {
    let parquet = crate::support::repo_root().join("tests/data/parquet/typed.parquet");
    let spec = "tasks:\n  t:\n    image: x\n    command: [\"true\"]\n    inputs:\n      table: {dataframe: {columns: {id: int, label: string}}}\n      \
                typed: {dataframe: {format: parquet, columns: {id: int, label: string}}}\nworkflows:\n  w:\n    inputs:\n      \
                table: {dataframe: {columns: {id: int, label: string}}}\n      typed: {type: {dataframe: {format: parquet, columns: {id: int, label: string}}}, default: typed.parquet}\n    \
                nodes: {n: {task: t, inputs: {table: $inputs.table, typed: $inputs.typed}}}\n";
    let sandbox = Sandbox::new("given-columns", spec);
    std::fs::copy(&parquet, sandbox.dir.join("typed.parquet")).unwrap();
    std::fs::write(sandbox.dir.join("good.csv"), "id,label\n1,a\n").unwrap();
    std::fs::write(sandbox.dir.join("bad.csv"), "id,name\n1,a\n").unwrap();

    let out = sandbox.updraft(&["run", "spec.yaml", "--input", "table=bad.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--input table: dataframe \"table\" lacks declared column(s) label; its header has: id, name"),
        "{stderr}"
    );
    // The CSV is right; the Parquet default lacks `label`.
    let out = sandbox.updraft(&["run", "spec.yaml", "--input", "table=good.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("default of input typed: dataframe \"typed\" lacks declared column(s) label"), "{stderr}");
    let listed = sandbox.updraft(&["executions", "list", "-o", "json"]);
    assert_eq!(text(&listed.stdout).trim(), "[]", "nothing ran");
}

/// `updraft logs`: `-f` follows a running run to its end, `--stdout`/`--stderr` pick a
/// stream, `--item` a map item.
#[test]
fn logs_follows_a_running_run_and_picks_streams_and_items() {
    let spec = "tasks:\n  talk:\n    image: x\n    command: [sh, -c, \"echo one; sleep 1; echo two; echo err >&2\"]\n  \
                item:\n    image: x\n    command: [sh, -c, \"echo item $0\", \"{{inputs.x}}\"]\n    inputs: {x: int}\n\
                workflows:\n  w:\n    nodes:\n      talk: {task: talk}\n      m: {map: {task: item, over: [x]}, inputs: {x: [1, 2, 3]}}\n";
    let sandbox = Sandbox::new("logs-follow", spec);
    let mut run = sandbox
        .command(&["run", "spec.yaml", "--name", "followed"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !sandbox.dir.join("home/runs/followed/talk").exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the run started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let followed = sandbox.updraft(&["logs", "followed", "talk", "-f"]);
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    let printed = text(&followed.stdout);
    assert!(printed.contains("one\ntwo\n") && printed.contains("err"), "followed to the end: {printed}");
    assert!(run.try_wait().unwrap().is_some() || run.wait().unwrap().success(), "-f returned as the run ended");
    let _ = run.wait();

    let stderr_only = text(&sandbox.updraft(&["logs", "followed", "talk", "--stderr"]).stdout);
    assert!(stderr_only.contains("talk attempt 1 stderr") && stderr_only.contains("err"), "{stderr_only}");
    assert!(!stderr_only.contains("one"), "{stderr_only}");
    let item = text(&sandbox.updraft(&["logs", "followed", "m", "--item", "2", "--stdout"]).stdout);
    assert_eq!(item, "==> m/2 attempt 1 stdout <==\nitem 3\n", "items count from 0");
    let no_node = sandbox.updraft(&["logs", "followed", "--item", "2"]);
    assert_eq!(no_node.status.code(), Some(2), "--item needs the map node");
}

/// `run --recover NAME`: the failed run's inputs, its succeeded nodes RECOVERED
/// without running (here an uncached task whose output is a timestamp, so a rerun
/// would differ), the rest run.
#[test]
fn a_recovery_keeps_what_succeeded_in_the_failed_run_and_runs_the_rest() {
    let spec = "tasks:\n  \
        stamp: {image: x, command: [sh, -c, 'echo \"$1-$(date +%s%N)\" > \"$0\"', \"{{outputs.t}}\", \"{{inputs.tag}}\"], \
        inputs: {tag: string}, outputs: {t: string}}\n  \
        check: {image: x, command: [sh, -c, 'test -e \"$0/fixed\" && echo ok > \"$1\"', \"{{code_dir}}\", \"{{outputs.ok}}\"], \
        inputs: {t: string}, outputs: {ok: string}}\n\
        workflows:\n  w:\n    inputs: {tag: string}\n    nodes:\n      a: {task: stamp, inputs: {tag: $inputs.tag}}\n      \
        b: {task: check, inputs: {t: $a.t}}\n";
    let sandbox = Sandbox::new("recover", spec);
    let (code, failed) = json_run(&sandbox, &["-i", "tag=nightly"]);
    assert_eq!((code, node(&failed, "b")["phase"].as_str()), (Some(1), Some("FAILED")), "{failed}");
    let name = failed["execution"]["id"]["name"].as_str().expect("the run's name").to_string();
    std::fs::write(sandbox.dir.join("fixed"), "").unwrap();
    let (code, recovered) = json_run(&sandbox, &["--recover", &name]);
    assert_eq!(code, Some(0), "{recovered}");
    let a = node(&recovered, "a");
    assert_eq!(
        (a["phase"].as_str(), &a["outputs"]),
        (Some("RECOVERED"), &node(&failed, "a")["outputs"]),
        "{recovered}"
    );
    assert!(a["outputs"]["values"]["t"]["string"].as_str().is_some_and(|t| t.starts_with("nightly-")), "its inputs");
    assert_eq!(node(&recovered, "b")["phase"], "SUCCEEDED");
    assert_eq!(
        (recovered["execution"]["mode"].as_str(), recovered["execution"]["recoveredFrom"].as_str()),
        (Some("RECOVER"), Some(name.as_str()))
    );
    let succeeded = recovered["execution"]["id"]["name"].as_str().unwrap().to_string();
    let out = sandbox.updraft(&["run", "spec.yaml", "--recover", &succeeded]);
    assert_eq!(out.status.code(), Some(2), "nothing to recover in a run that succeeded");
    assert!(text(&out.stderr).contains("there is nothing to recover"), "{}", text(&out.stderr));
    let out = sandbox.updraft(&["executions", "recover", &name]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("updraft run SPEC --recover {name}")), "{}", text(&out.stderr));
}
