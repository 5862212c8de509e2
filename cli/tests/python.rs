//! Python specs and warm Python workers, end to end: the SDK's translation, the
//! real `updraft` binary, a real fork server and real task processes. Needs the
//! SDK and the diabetes example's requirements (scripts/test installs them).

use crate::support::{Sandbox, node, repo_root, text};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A sandbox holding one of `tests/data/python/*.py`.
fn sandbox(name: &str, file: &str) -> Sandbox {
    let sandbox = Sandbox::new(name, "");
    std::fs::copy(repo_root().join("tests/data/python").join(file), sandbox.dir.join(file)).unwrap();
    sandbox
}

fn json_run(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--output", "json"]);
    let out = sandbox.updraft(&all);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("run prints JSON; stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc, text(&out.stderr))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: &str) -> bool {
    // A zombie has ended; only its parent has not collected it yet.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
        !matches!(stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next()), Some(Some('Z')))
    })
}

/// The warm workers (still running) whose code directory is this sandbox.
fn live_workers(sandbox: &Sandbox) -> Vec<String> {
    let code_dir = sandbox.dir.canonicalize().unwrap().display().to_string();
    let out = Command::new("pgrep").args(["-f", &format!("updraft worker --code-dir {code_dir}")]).output().unwrap();
    text(&out.stdout).lines().map(str::to_string).filter(|pid| alive(pid)).collect()
}

/// The README's first command, in Python: the same tasks as diabetes.yaml, so the
/// same cache keys and outputs; a second run is all CACHED.
#[test]
fn the_python_diabetes_pipeline_matches_the_yaml_one() {
    let sandbox = Sandbox::new("py-diabetes", "");
    let run = |file: &str, home: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["run", file, "--output", "json"])
            .current_dir(repo_root())
            .env("UPDRAFT_HOME", sandbox.dir.join(home))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let python = run("examples/diabetes/diabetes.py", "python-home");
    let yaml = run("examples/diabetes/diabetes.yaml", "yaml-home");
    let accuracy = python["outputs"]["accuracy"].as_f64().expect("an accuracy");
    assert!((0.5..=1.0).contains(&accuracy), "a classifier better than chance: {accuracy}");
    assert_eq!(python["outputs"]["accuracy"], yaml["outputs"]["accuracy"]);
    let blob = |doc: &Value| Path::new(doc["outputs"]["model"].as_str().unwrap()).file_name().unwrap().to_owned();
    assert_eq!(blob(&python), blob(&yaml), "the same model bytes (the store names blobs by digest)");
    for id in ["split", "fit", "predict", "score"] {
        assert_eq!(node(&python, id)["phase"], "SUCCEEDED", "{id}");
        let key = &node(&python, id)["cacheKey"];
        assert!(key.as_str().is_some_and(|k| k.len() == 64), "{id}: {key}");
        assert_eq!(key, &node(&yaml, id)["cacheKey"], "{id}: the same cache key from Python and YAML");
    }
    let again = run("examples/diabetes/diabetes.py", "python-home");
    for id in ["split", "fit", "predict", "score"] {
        assert_eq!(node(&again, id)["phase"], "CACHED", "{id}");
    }
    assert_eq!(again["outputs"], python["outputs"]);
}

/// Each task is a fresh child of the warm worker: what one task does to module
/// globals or the environment is gone for the next, though the module was imported once.
#[test]
fn a_task_never_sees_what_an_earlier_task_changed() {
    let sandbox = sandbox("py-isolation", "probes.py");
    let (code, doc, stderr) = json_run(&sandbox, &["probes.py:isolation"]);
    assert_eq!(code, Some(0), "{stderr}");
    let outputs = &doc["outputs"];
    assert_eq!((outputs["first"].as_i64(), outputs["second"].as_i64()), (Some(1), Some(1)), "{outputs}");
    assert_eq!(outputs["look"], "||1,1", "no global and no environment variable survived a task");
    let warm = outputs["warm"].as_str().unwrap();
    assert!(warm.contains("-m updraft worker"), "a warm task is forked from the worker: {warm}");
    let fresh = outputs["fresh"].as_str().unwrap();
    assert!(fresh.contains("updraft run"), "fresh_process=True starts its own interpreter: {fresh}");
}

/// CUDA cannot start in a process forked after its parent initialised it: a GPU
/// task gets an interpreter of its own (and its device).
#[test]
fn a_gpu_task_starts_its_own_interpreter() {
    let sandbox = sandbox("py-gpu", "probes.py");
    let out =
        sandbox.command(&["run", "probes.py:on_gpu", "--output", "json"]).env("UPDRAFT_GPUS", "0").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = doc["outputs"]["o0"].as_str().unwrap();
    assert!(seen.contains("updraft run") && seen.ends_with("|0"), "{seen}");
}

/// A YAML spec may name the SDK's argv: its worker starts at the first such task
/// and imports the module then; a module that hangs while imported meets the timeout.
#[test]
fn a_module_that_hangs_on_import_meets_the_tasks_timeout() {
    let spec = "tasks:\n  never:\n    image: x\n    command: [python3, -m, updraft.task, \"hangs:never\"]\n    outputs: {o0: int}\n    timeout: 1s\nworkflows:\n  w:\n    nodes:\n      never: {task: never}\n";
    let sandbox = Sandbox::new("py-hangs", spec);
    std::fs::write(
        sandbox.dir.join("hangs.py"),
        "import time\nimport updraft\n\ntime.sleep(300)\n\n@updraft.task\ndef never() -> int:\n    return 1\n",
    )
    .unwrap();
    let started = Instant::now();
    let (code, doc, _) = json_run(&sandbox, &["spec.yaml"]);
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(node(&doc, "never")["phase"], "TIMED_OUT");
    let left = live_workers(&sandbox);
    assert!(left.is_empty(), "the worker ended with the run: {left:?}");
}

#[test]
fn python_failures_retries_and_timeouts_follow_the_task_contract() {
    let sandbox = sandbox("py-failures", "probes.py");
    let (code, doc, _) = json_run(&sandbox, &["probes.py:failures"]);
    assert_eq!(code, Some(1));
    let flaky = node(&doc, "flaky");
    assert_eq!((flaky["phase"].as_str(), flaky["attempts"].as_i64()), (Some("SUCCEEDED"), Some(2)), "{flaky}");
    let boom = node(&doc, "boom");
    assert_eq!(boom["phase"], "FAILED");
    let message = boom["error"]["message"].as_str().unwrap();
    assert!(message.contains("ValueError: no good: 2"), "the traceback's last line: {message}");
    assert!(message.contains("probes.py"), "and where it was raised: {message}");
    assert_eq!(node(&doc, "double")["phase"], "SKIPPED", "what depends on a failure never starts");

    let pidfile = sandbox.dir.join("pid").display().to_string();
    let started = Instant::now();
    let (code, doc, _) = json_run(&sandbox, &["probes.py:slow", "-i", &format!("pidfile={pidfile}")]);
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(20), "the timeout stopped it");
    assert_eq!(node(&doc, "stuck")["phase"], "TIMED_OUT");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    wait_for("the timed-out task's process to end", || !alive(&pid));
}

#[test]
fn ctrl_c_stops_a_warm_task_and_the_run_is_aborted() {
    let sandbox = sandbox("py-ctrl-c", "probes.py");
    let pidfile = sandbox.dir.join("pid");
    let runner = sandbox
        .command(&["run", "probes.py:asleep", "--output", "json", "-i", &format!("pidfile={}", pidfile.display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the task to start", || std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.is_empty()));
    let task = std::fs::read_to_string(&pidfile).unwrap();
    // SAFETY: sends SIGINT to the child we spawned, as Ctrl-C would.
    unsafe { libc::kill(runner.id() as i32, libc::SIGINT) };
    let out = runner.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["execution"]["phase"], "WORKFLOW_ABORTED");
    assert_eq!(node(&doc, "sleeper")["phase"], "ABORTED");
    wait_for("the task's process to end", || !alive(&task));
}

/// SIGKILL leaves no handler to run: the watchdog finds the worker and the task
/// forked from it by the runner's identity in their environment.
#[test]
fn killing_the_runner_kills_its_warm_worker_and_their_tasks() {
    let sandbox = sandbox("py-sigkill", "probes.py");
    let pidfile = sandbox.dir.join("pid");
    let mut runner = sandbox
        .command(&["run", "probes.py:asleep", "-i", &format!("pidfile={}", pidfile.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the task to start", || std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.is_empty()));
    let task = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!live_workers(&sandbox).is_empty(), "the run has a warm worker");
    runner.kill().unwrap();
    runner.wait().unwrap();
    wait_for("the task to end", || !alive(&task));
    wait_for("the worker and its spare children to end", || live_workers(&sandbox).is_empty());
}

#[test]
fn a_wrong_type_between_python_tasks_is_reported_at_its_line() {
    let sandbox = sandbox("py-mistyped", "mistyped.py");
    let out = sandbox.updraft(&["validate", "mistyped.py"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("mistyped.py:19: workflows.wrong.nodes.double.inputs.x: type mismatch"),
        "the call's line, then the spec path: {stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    let run = sandbox.updraft(&["run", "mistyped.py"]);
    assert_eq!(run.status.code(), Some(2), "nothing runs");
    assert!(!sandbox.dir.join("home/runs").exists());
}

#[test]
fn an_interpreter_without_the_sdk_is_named_with_the_fix() {
    let sandbox = sandbox("py-no-sdk", "probes.py");
    let out = sandbox.command(&["validate", "probes.py"]).env("UPDRAFT_PYTHON", "false").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("false -m updraft worker did not answer"), "{stderr}");
    assert!(stderr.contains("pip install ./sdk/python"), "{stderr}");
}

#[test]
fn a_module_that_starts_threads_runs_its_tasks_in_fresh_processes() {
    let sandbox = sandbox("py-threads", "threads.py");
    let (code, doc, stderr) = json_run(&sandbox, &["threads.py"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(doc["outputs"]["o0"], 1);
    // The second run reuses the translation: the task's worker, started for it, imports the module.
    let out = sandbox.updraft(&["run", "threads.py", "--no-cache"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("runs in a fresh process: importing threads"), "{stderr}");
    assert!(stderr.contains("started threads, after which forking is unsafe"), "{stderr}");
}

/// One semantics: the Python diabetes pipeline compiles to exactly the IDL of the YAML one.
#[test]
fn the_python_and_yaml_diabetes_specs_compile_to_the_same_idl() {
    let compile = |file: &str| {
        let out = crate::support::updraft(&["compile", file, "--version", "v1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let yaml = compile("examples/diabetes/diabetes.yaml");
    assert_eq!(compile("examples/diabetes/diabetes.py"), yaml);
    // The SDK's own entry point gives the same IDL (it runs `updraft compile`).
    let python = std::env::var("UPDRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-m", "updraft", "compile", "examples/diabetes/diabetes.py", "--version", "v1"])
        .current_dir(repo_root())
        .env("UPDRAFT_BIN", env!("CARGO_BIN_EXE_updraft"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), yaml);
}

#[test]
fn compile_and_run_read_python_as_they_read_yaml() {
    let python = crate::support::updraft(&["compile", "examples/fanout/fanout.py", "--version", "v1"]);
    assert!(python.status.success(), "{}", text(&python.stderr));
    let doc: Value = serde_json::from_slice(&python.stdout).unwrap();
    let workflow = &doc["workflows"][0]["template"];
    let nodes: Vec<&str> = workflow["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["numbers", "square", "total", "verdict"]);
    let sandbox = Sandbox::new("py-fanout", "");
    let run = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["run", file, "--input", "count=12", "--output", "json"])
            .current_dir(repo_root())
            .env("UPDRAFT_HOME", sandbox.dir.join("home"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(run("examples/fanout/fanout.py")["outputs"], run("examples/fanout/fanout.yaml")["outputs"]);
}

/// A `.py` spec's translation is reused while nothing it was made from changed: a
/// second, fully cached run does not import the spec at all (its helper module
/// prints when imported), and an edit to the imported helper is seen by the next run.
#[test]
fn a_python_specs_translation_is_reused_until_an_imported_module_changes() {
    let sandbox = Sandbox::new("py-translations", "");
    let helper = |start: i64| format!("import sys\nprint('importing helper', file=sys.stderr)\nSTART = {start}\n");
    std::fs::write(sandbox.dir.join("helper.py"), helper(1)).unwrap();
    let flow = "import updraft\nimport helper\n\n\n\
                @updraft.task(cache=True, cache_version=\"1\")\ndef inc(x: int) -> int:\n    return x + 1\n\n\n\
                @updraft.workflow\ndef flow(x: int = helper.START) -> int:\n    return inc(x=x)\n";
    std::fs::write(sandbox.dir.join("flow.py"), flow).unwrap();
    let run = || {
        let (code, doc, stderr) = json_run(&sandbox, &["flow.py"]);
        assert_eq!(code, Some(0), "{stderr}");
        (doc["outputs"]["o0"].as_i64().unwrap_or_else(|| panic!("an output: {doc}")), stderr)
    };
    let (first, stderr) = run();
    assert_eq!(first, 2);
    assert!(stderr.contains("importing helper"), "the first run translates: {stderr}");
    let (again, stderr) = run();
    assert_eq!(again, 2);
    assert!(!stderr.contains("importing helper"), "the translation and the cached task need no Python: {stderr}");
    std::fs::write(sandbox.dir.join("helper.py"), helper(10)).unwrap();
    let (edited, stderr) = run();
    assert_eq!(edited, 11, "the edited helper's default is used");
    assert!(stderr.contains("importing helper"), "{stderr}");
    // Switched off, every run translates.
    let out = sandbox.command(&["run", "flow.py"]).env("UPDRAFT_TRANSLATION_CACHE", "off").output().unwrap();
    assert!(text(&out.stderr).contains("importing helper"), "{}", text(&out.stderr));
}

/// `updraft validate dir/*.py` meets task scripts too: one that does not import
/// updraft is refused before any of it runs (the hello example's script would
/// otherwise write a file named after the worker's own arguments).
#[test]
fn a_task_script_given_as_a_spec_is_refused_without_running_it() {
    let sandbox = Sandbox::new("py-script", "");
    std::fs::copy(repo_root().join("examples/hello/greet.py"), sandbox.dir.join("greet.py")).unwrap();
    let before: Vec<_> = std::fs::read_dir(&sandbox.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let out = sandbox.updraft(&["validate", "greet.py"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is not an Updraft spec: it does not import updraft, so it was not run"), "{stderr}");
    let after: Vec<_> = std::fs::read_dir(&sandbox.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "the script wrote nothing");
}

/// YAML tasks written as scripts (`python3 FILE.py ARGS…`) run forked from a script
/// worker, which imported what they import once; the script's own modules are read
/// fresh in every child (an edit between runs is seen), the worker's SDK stays out of
/// the script's sight, and an interpreter option (`-X fresh_process`) opts a task out.
#[test]
fn yaml_script_tasks_run_forked_from_a_script_worker() {
    let spec = r#"
tasks:
  probe:
    image: python:3.11-slim
    command: [python3, "{{code_dir}}/probe.py", "{{inputs.x}}", "{{outputs.seen}}"]
    inputs: {x: int}
    outputs: {seen: string}
  fresh:
    image: python:3.11-slim
    command: [python3, -X, fresh_process, "{{code_dir}}/probe.py", "{{inputs.x}}", "{{outputs.seen}}"]
    inputs: {x: int}
    outputs: {seen: string}
workflows:
  scripts:
    nodes:
      a: {task: probe, inputs: {x: 1}}
      b: {task: probe, inputs: {x: 2}}
      c: {task: fresh, inputs: {x: 3}}
    outputs: {a: $a.seen, b: $b.seen, c: $c.seen}
"#;
    let sandbox = Sandbox::new("py-scripts", spec);
    let probe = "import decimal, json, os, sys\nimport helper\n\
                 parent = open(f'/proc/{os.getppid()}/cmdline').read().replace('\\0', ' ')\n\
                 seen = {'x': sys.argv[1], 'word': helper.WORD, 'parent': parent, 'sdk': 'updraft' in sys.modules}\n\
                 open(sys.argv[2], 'w').write(json.dumps(json.dumps(seen)))\n";
    std::fs::write(sandbox.dir.join("probe.py"), probe).unwrap();
    let run = |word: &str| {
        std::fs::write(sandbox.dir.join("helper.py"), format!("WORD = {word:?}\n")).unwrap();
        let (code, doc, stderr) = json_run(&sandbox, &["spec.yaml", "--no-cache"]);
        assert_eq!(code, Some(0), "{stderr}");
        let seen = |node: &str| -> Value { serde_json::from_str(doc["outputs"][node].as_str().unwrap()).unwrap() };
        (seen("a"), seen("b"), seen("c"))
    };
    let (a, b, c) = run("one");
    for (x, warm) in [("1", &a), ("2", &b)] {
        assert_eq!((warm["x"].as_str(), warm["word"].as_str()), (Some(x), Some("one")), "{warm}");
        let parent = warm["parent"].as_str().unwrap();
        assert!(parent.contains("-m updraft worker") && parent.contains("--scripts"), "forked: {parent}");
        assert_eq!(warm["sdk"], false, "the worker's SDK is not the script's: {warm}");
    }
    let parent = c["parent"].as_str().unwrap();
    assert!(parent.contains("updraft run"), "-X fresh_process starts its own interpreter: {parent}");
    let (a, _, c) = run("two");
    assert_eq!((a["word"].as_str(), c["word"].as_str()), (Some("two"), Some("two")), "the edited helper is read");
}

/// `cache_version="auto"`: the cache version is a digest of the task's code, so an
/// edit to a cached task's body is computed afresh instead of served stale.
#[test]
fn an_edited_task_with_an_auto_cache_version_is_not_served_from_the_cache() {
    let sandbox = Sandbox::new("py-auto-version", "");
    let source = "import updraft\n\n\ndef scale() -> int:\n    return 2\n\n\n\
                  @updraft.task(cache=True, cache_version=\"auto\")\ndef double(x: int) -> int:\n    return x * scale()\n\n\n\
                  @updraft.workflow\ndef w(x: int = 3) -> int:\n    return double(x=x)\n";
    let spec = sandbox.dir.join("auto.py");
    std::fs::write(&spec, source).unwrap();
    let run = || {
        let (code, doc, stderr) = json_run(&sandbox, &["auto.py"]);
        assert_eq!(code, Some(0), "{stderr}");
        (doc["outputs"]["o0"].as_i64().unwrap(), node(&doc, "double")["cacheStatus"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(run(), (6, "CACHE_POPULATED".to_string()));
    assert_eq!(run(), (6, "CACHE_HIT".to_string()), "unchanged code: a hit");
    std::fs::write(&spec, source.replace("return x * scale()", "return x * scale() + 1")).unwrap();
    assert_eq!(run(), (7, "CACHE_POPULATED".to_string()), "the task's body changed: computed afresh");
    std::fs::write(&spec, source.replace("return 2", "return 10")).unwrap();
    assert_eq!(run(), (30, "CACHE_POPULATED".to_string()), "a function it calls changed: computed afresh");
}

/// A forked script meets its task's timeout as a fresh process does: its process
/// group is killed, the node is TIMED_OUT, and nothing of it (or its worker) is left.
#[test]
fn a_warm_script_meets_its_timeout_and_leaves_nothing_behind() {
    let spec = "tasks:\n  slow:\n    image: x\n    command: [python3, \"{{code_dir}}/slow.py\"]\n    timeout: 1s\n\
                workflows:\n  w:\n    nodes:\n      slow: {task: slow}\n";
    let sandbox = Sandbox::new("py-script-timeout", spec);
    let pid_file = sandbox.dir.join("slow.pid");
    let script = format!(
        "import os, time\nparent = open(f'/proc/{{os.getppid()}}/cmdline').read().replace('\\0', ' ')\n\
         open({:?}, 'w').write(f'{{os.getpid()}} {{parent}}')\ntime.sleep(300)\n",
        pid_file.display().to_string()
    );
    std::fs::write(sandbox.dir.join("slow.py"), script).unwrap();
    let started = Instant::now();
    let (code, doc, _) = json_run(&sandbox, &["spec.yaml"]);
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(20), "stopped at its timeout");
    assert_eq!(node(&doc, "slow")["phase"], "TIMED_OUT");
    let written = std::fs::read_to_string(&pid_file).unwrap();
    let (pid, parent) = written.split_once(' ').unwrap();
    assert!(parent.contains("--scripts"), "it ran forked from a script worker: {parent}");
    wait_for("the script's process is gone", || !alive(pid));
    let left = live_workers(&sandbox);
    assert!(left.is_empty(), "the worker ended with the run: {left:?}");
}
