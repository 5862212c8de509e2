//! Hostile input and faults, one test (or more) per class: specs and values built
//! to hurt, tasks that misbehave, a runner that is killed. Each must end in a
//! clear error or a correct result, never a hang, an abort or corrupt data.

use crate::support::{Sandbox, node, text, updraft};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command that must finish by itself within `limit`: a hang fails the test.
fn within(mut command: Command, limit: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr)))
}

fn mkfifo(path: &std::path::Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

// ---------------------------------------------------------------- cache and store integrity

/// `make` writes a file; `vandal` appends to the copy it gets; `read` must still
/// see the original, in this run and from the cache in the next.
const VANDAL: &str = r#"tasks:
  make:
    image: x
    command: [sh, -c, 'printf original > "$0"', "{{outputs.data}}"]
    outputs: {data: file}
    cache: {version: "1"}
  vandal:
    image: x
    command: [sh, -c, 'chmod u+w "$0"; printf -- "-changed" >> "$0"; echo 1 > "$1"', "{{inputs.data}}", "{{outputs.n}}"]
    inputs: {data: file}
    outputs: {n: int}
  read:
    image: x
    command: [sh, -c, 'printf "\"%s\"" "$(cat "$0")" > "$1"', "{{inputs.data}}", "{{outputs.text}}"]
    inputs: {data: file, after: int}
    outputs: {text: string}
workflows:
  w:
    outputs: {text: $read.text}
    nodes:
      make: {task: make}
      vandal: {task: vandal, inputs: {data: $make.data}}
      read: {task: read, inputs: {data: $make.data, after: $vandal.n}}
"#;

#[test]
fn a_task_cannot_change_its_inputs_in_the_store() {
    let sandbox = Sandbox::new("hostile-vandal", VANDAL);
    for run in ["first", "cached"] {
        let out = sandbox.updraft(&["run", "spec.yaml", "--output", "json"]);
        assert!(out.status.success(), "{run}: {}", text(&out.stderr));
        let doc = json(&out);
        assert_eq!(doc["outputs"]["text"], "original", "{run} run: the store kept its data");
        let stored = doc["nodes"].as_array().unwrap().iter().find(|n| n["id"]["nodeId"] == "make").unwrap();
        let path = stored["outputs"]["values"]["data"]["file"]["uri"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "original");
    }
}

#[test]
fn a_stored_blob_changed_on_disk_is_a_miss_and_recomputed() {
    let sandbox = Sandbox::new("hostile-tamper", VANDAL);
    let first = json(&sandbox.updraft(&["run", "spec.yaml", "--output", "json"]));
    let path = node(&first, "make")["outputs"]["values"]["data"]["file"]["uri"].as_str().unwrap().to_string();
    // Someone (root, or after a chmod) rewrites the stored blob in place.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, "tampered").unwrap();

    let out = sandbox.updraft(&["run", "spec.yaml", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = json(&out);
    assert_eq!(node(&second, "make")["phase"], "SUCCEEDED", "a blob that lost its digest is not a hit");
    assert_eq!(second["outputs"]["text"], "original");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "original", "the store holds the right content again");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "stored blobs are read-only: {mode:o}");
}

// ---------------------------------------------------------------- arithmetic, recursion, growth

#[test]
fn huge_numbers_nesting_and_chains_end_in_errors_not_aborts() {
    let sandbox = Sandbox::new("hostile-specs", "");
    let task = "tasks:\n  t: {image: x, command: [t]";
    let nested_type = format!("{task}, inputs: {{x: \"{}int{}\"}}}}\n", "list<".repeat(5000), ">".repeat(5000));
    let condition = vec!["$inputs.n > 1"; 2000].join(" and ");
    let branch = format!(
        "{task}}}\nworkflows:\n  w:\n    inputs: {{n: int}}\n    nodes:\n      b:\n        branch:\n          cases:\n            - {{if: \"{condition}\", then: {{task: t}}}}\n          else: {{task: t}}\n"
    );
    let mut chain = format!("{task}}}\nworkflows:\n  w0:\n    nodes:\n      a: {{task: t}}\n");
    for k in 1..2000 {
        chain.push_str(&format!("  w{k}:\n    nodes:\n      a: {{workflow: w{}}}\n", k - 1));
    }
    for (name, spec, expected) in [
        ("timeout", format!("{task}, timeout: 999999999999999d}}\n"), "too large: the maximum is 365d"),
        ("overflow", format!("{task}, timeout: 18446744073709551615s1s}}\n"), "too large: the maximum is 365d"),
        ("type", nested_type, "more than 32 levels deep"),
        ("condition", branch, "2000 comparisons; the limit is 100"),
        ("chain", chain, "the limit is 32"),
    ] {
        let path = sandbox.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, spec).unwrap();
        for command in ["validate", "compile"] {
            let out = within(sandbox.command(&[command, path.to_str().unwrap()]), Duration::from_secs(30));
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {name}: {stderr}");
            assert!(stderr.contains(expected) && stderr.contains("hint: "), "{command} {name}: {stderr}");
        }
    }
    let out = sandbox.updraft(&["run", "timeout.yaml"]);
    assert_eq!(out.status.code(), Some(2), "run refuses it before anything starts");
}

#[test]
fn out_of_range_inputs_name_the_range() {
    let sandbox = Sandbox::with_example("hostile-int", "hello/hello.yaml");
    let spec = "tasks:\n  t: {image: x, command: [t, \"{{inputs.n}}\", \"{{inputs.d}}\"], inputs: {n: int, d: duration}}\nworkflows:\n  w:\n    inputs: {n: int, d: duration}\n    nodes:\n      t: {task: t, inputs: {n: $inputs.n, d: $inputs.d}}\n";
    std::fs::write(sandbox.dir.join("typed.yaml"), spec).unwrap();
    for (args, expected) in [
        (["-i", "n=9223372036854775808", "-i", "d=1s"], "int 9223372036854775808 is too large"),
        (["-i", "n=1", "-i", "d=99999999999999999d"], "too large: the maximum is 365d"),
    ] {
        assert_run_refused(&sandbox, "typed.yaml", &args, expected);
    }
}

/// `updraft run SPEC ARGS` stops before anything runs (exit 2) saying `expected`.
fn assert_run_refused(sandbox: &Sandbox, spec: &str, args: &[&str], expected: &str) {
    let mut argv = vec!["run", spec];
    argv.extend_from_slice(args);
    let out = sandbox.updraft(&argv);
    assert_eq!(out.status.code(), Some(2), "{argv:?}");
    assert!(text(&out.stderr).contains(expected), "{argv:?}: {}", text(&out.stderr));
}

// ---------------------------------------------------------------- special files

#[test]
fn pipes_and_devices_never_block_a_run() {
    let spec = r#"tasks:
  pipe:
    image: x
    command: [mkfifo, "{{outputs.data}}"]
    outputs: {data: file}
  read:
    image: x
    command: [cat, "{{inputs.data}}"]
    inputs: {data: file}
  list:
    image: x
    command: [ls, "{{inputs.tree}}"]
    inputs: {tree: directory}
workflows:
  leaves_a_pipe:
    nodes:
      p: {task: pipe}
  takes_a_file:
    inputs: {data: file}
    nodes:
      r: {task: read, inputs: {data: $inputs.data}}
  takes_a_tree:
    inputs: {tree: directory}
    nodes:
      l: {task: list, inputs: {tree: $inputs.tree}}
"#;
    let sandbox = Sandbox::new("hostile-fifo", spec);
    let out = within(sandbox.command(&["run", "spec.yaml", "leaves_a_pipe"]), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is a named pipe, not a regular file"), "{}", text(&out.stderr));

    mkfifo(&sandbox.dir.join("input.pipe"));
    let out = within(
        sandbox.command(&["run", "spec.yaml", "takes_a_file", "-i", "data=input.pipe"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "refused before anything starts");
    assert!(text(&out.stderr).contains("named pipe"), "{}", text(&out.stderr));

    std::fs::create_dir(sandbox.dir.join("tree")).unwrap();
    mkfifo(&sandbox.dir.join("tree/inner.pipe"));
    let out =
        within(sandbox.command(&["run", "spec.yaml", "takes_a_tree", "-i", "tree=tree"]), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "a pipe inside a directory input is refused too");
    assert!(text(&out.stderr).contains("inner.pipe is a named pipe"), "{}", text(&out.stderr));

    let out = within(sandbox.command(&["validate", "/dev/zero"]), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/dev/zero is a device"), "{}", text(&out.stderr));
    let out = within(sandbox.command(&["validate", "input.pipe"]), Duration::from_secs(10));
    assert!(text(&out.stderr).contains("is a named pipe"), "{}", text(&out.stderr));
}

// ---------------------------------------------------------------- inputs and specs accepted that should not be

#[test]
fn wrong_kinds_of_input_are_refused() {
    let spec = "tasks:\n  t: {image: x, command: [cat, \"{{inputs.f}}\"], inputs: {f: file}}\nworkflows:\n  w:\n    inputs: {f: file, n: int?}\n    nodes:\n      t: {task: t, inputs: {f: $inputs.f}}\n";
    let sandbox = Sandbox::new("hostile-inputs", spec);
    for (args, expected) in [
        (vec!["-i", "f=."], "is a directory, but the input is a file"),
        (vec!["-i", "f=spec.yaml", "-i", "n=1", "-i", "n=2"], "--input n is given twice"),
    ] {
        assert_run_refused(&sandbox, "spec.yaml", &args, expected);
    }
}

#[test]
fn a_huge_value_output_is_refused_with_the_limit() {
    let spec = r#"tasks:
  big:
    image: x
    command: [sh, -c, 'printf "\"" > "$0"; head -c 3000000 /dev/zero | tr "\0" a >> "$0"; printf "\"" >> "$0"', "{{outputs.s}}"]
    outputs: {s: string}
workflows:
  w:
    nodes:
      big: {task: big}
"#;
    let sandbox = Sandbox::new("hostile-value", spec);
    let out = sandbox.updraft(&["run", "spec.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("value outputs are limited to 1048576 bytes") && stderr.contains("file output"),
        "{stderr}"
    );
}

#[test]
fn a_task_that_floods_its_log_is_stopped_at_the_limit() {
    // A shell loop floods at a few MB/s: enough to pass the limit at once, without filling the disk.
    let spec = "tasks:\n  flood:\n    image: x\n    command: [sh, -c, 'while :; do echo flood; done']\n    retries: 2\nworkflows:\n  w:\n    nodes:\n      f: {task: flood}\n";
    let sandbox = Sandbox::new("hostile-flood", spec);
    let mut command = sandbox.command(&["run", "spec.yaml", "--output", "json"]);
    command.env("UPDRAFT_MAX_LOG_BYTES", "1000000");
    let out = within(command, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    let f = node(&doc, "f");
    assert_eq!(f["error"]["code"], "LogLimit");
    assert_eq!(f["attempts"], 1, "it would flood again: not retried");
    let log = f["error"]["logUri"].as_str().unwrap().replace("stderr", "stdout");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 1_000_000 && size < 100_000_000, "stopped just past the limit: {size} bytes");
}

// ---------------------------------------------------------------- crash consistency

#[test]
fn killing_the_runner_kills_its_tasks_and_the_run_shows_aborted() {
    let spec = r#"tasks:
  slow:
    image: x
    command: [sh, -c, 'sleep 300 & sleep 300; echo 1 > "$0"', "{{outputs.n}}"]
    outputs: {n: int}
workflows:
  w:
    nodes:
      a: {task: slow}
"#;
    let sandbox = Sandbox::new("hostile-sigkill", spec);
    let mut runner =
        sandbox.command(&["run", "spec.yaml"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let marker = sandbox.dir.join("home").display().to_string();
    let task_processes = || -> Vec<String> {
        // Task processes carry the execution's id and run under the sandbox's home. A zombie
        // (killed, not yet reaped by whoever adopted it) has ended and does not count.
        let out = Command::new("ps").args(["-eo", "pid=,stat=,args="]).output().unwrap();
        text(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1).is_some_and(|stat| !stat.starts_with('Z')))
            .filter(|l| l.contains("sleep 300") || l.contains(&marker))
            .map(str::to_string)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(sandbox.dir.join("home/runs")).is_ok_and(|mut d| d.next().is_some())
        || Command::new("pgrep").args(["-f", "sleep 300"]).output().unwrap().stdout.is_empty()
    {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    runner.kill().unwrap();
    runner.wait().unwrap();

    let list = within(sandbox.command(&["executions", "list"]), Duration::from_secs(10));
    let listing = text(&list.stdout);
    assert!(listing.contains("ABORTED"), "{listing}");
    let name = listing.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let get = sandbox.updraft(&["executions", "get", &name, "--output", "json"]);
    let doc = json(&get);
    assert_eq!(doc["execution"]["phase"], "WORKFLOW_ABORTED");
    assert_eq!(doc["execution"]["error"]["code"], "RunnerDied");
    assert_eq!(node(&doc, "a")["phase"], "ABORTED");
    // Generous for a loaded machine; a passing run ends as soon as they are gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = task_processes();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "task processes outlived their runner: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_unreadable_record_does_not_hide_the_others() {
    let sandbox = Sandbox::with_example("hostile-record", "hello/hello.yaml");
    for name in ["Ada", "Grace"] {
        assert!(sandbox.updraft(&["run", "spec.yaml", "-i", &format!("name={name}")]).status.success());
    }
    let db = rusqlite::Connection::open(sandbox.dir.join("home/updraft.db")).unwrap();
    let damaged = db
        .execute("UPDATE executions SET record = '{not json' WHERE rowid = (SELECT min(rowid) FROM executions)", [])
        .unwrap();
    assert_eq!(damaged, 1);
    let out = sandbox.updraft(&["executions", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().filter(|l| l.contains("SUCCEEDED")).count(), 1, "the good one is listed");
    assert!(text(&out.stderr).contains("does not parse") && text(&out.stderr).contains("skipped"));
}

// ---------------------------------------------------------------- messages

#[test]
fn messages_show_invisible_characters_and_keep_every_attempt_log() {
    let spec = r#"tasks:
  frame:
    image: x
    command: [sh, -c, 'printf "\357\273\277a,b\n1,2\n" > "$0"', "{{outputs.df}}"]
    outputs: {df: {dataframe: {format: csv, columns: {a: int, b: int}}}}
  flaky:
    image: x
    command: [sh, -c, 'echo "attempt $UPDRAFT_ATTEMPT failed" >&2; exit 3']
    retries: 1
workflows:
  bom:
    nodes:
      f: {task: frame}
  retried:
    nodes:
      f: {task: flaky}
"#;
    let sandbox = Sandbox::new("hostile-messages", spec);
    let out = sandbox.updraft(&["run", "spec.yaml", "bom"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("\\u{feff}a"), "a byte-order mark is shown, not hidden: {stderr}");

    let out = sandbox.updraft(&["run", "spec.yaml", "retried", "--output", "json"]);
    let doc = json(&out);
    let log = node(&doc, "f")["error"]["logUri"].as_str().unwrap().to_string();
    let dir = std::path::Path::new(&log).parent().unwrap();
    for attempt in [1, 2] {
        let kept = std::fs::read_to_string(dir.join(format!("attempt-{attempt}.stderr.log"))).unwrap();
        assert_eq!(kept.trim(), format!("attempt {attempt} failed"));
    }

    std::fs::write(sandbox.dir.join("zw.yaml"), "tasks:\n  \"fit\u{200b}\": {image: x, command: [t]}\n").unwrap();
    let out = sandbox.updraft(&["validate", "zw.yaml"]);
    assert!(text(&out.stderr).contains("fit\\u{200b}"), "{}", text(&out.stderr));

    std::fs::write(sandbox.dir.join("latin1.yaml"), b"tasks:\n  t: {image: caf\xe9, command: [t]}\n").unwrap();
    let out = sandbox.updraft(&["validate", "latin1.yaml"]);
    assert!(text(&out.stderr).contains("invalid byte at offset 23"), "{}", text(&out.stderr));
}

#[test]
fn an_unusable_updraft_home_is_named() {
    let sandbox = Sandbox::with_example("hostile-home", "hello/hello.yaml");
    let file = sandbox.dir.join("not-a-directory");
    std::fs::write(&file, "").unwrap();
    let out = sandbox.command(&["run", "spec.yaml"]).env("UPDRAFT_HOME", &file).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&file.display().to_string()) && stderr.contains("UPDRAFT_HOME"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
}

#[test]
fn a_cycle_of_calls_reads_in_call_order() {
    let spec = "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  w3:\n    nodes:\n      n: {workflow: w1}\n  w1:\n    nodes:\n      n: {workflow: w2}\n  w2:\n    nodes:\n      n: {workflow: w3}\n";
    let sandbox = Sandbox::new("hostile-cycle", spec);
    let out = updraft(&["validate", sandbox.dir.join("spec.yaml").to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("w3 → w1 → w2 → w3"), "{stderr}");
    assert_eq!(stderr.matches("call each other").count(), 1, "reported once: {stderr}");
}

// ---------------------------------------------------------------- crashes found on the release binary

#[test]
fn a_task_timeout_over_the_cap_is_an_error_at_the_task_not_a_panic() {
    let spec =
        "tasks:\n  t: {image: x, command: [echo], timeout: 400d}\nworkflows:\n  w:\n    nodes:\n      a: {task: t}\n";
    let sandbox = Sandbox::new("timeout-cap", spec);
    for command in ["validate", "run", "compile"] {
        let out = sandbox.updraft(&[command, "spec.yaml"]);
        let stderr = text(&out.stderr);
        // validate and compile exit 1 on an invalid spec, run 2 (nothing ran): never 101.
        assert!(matches!(out.status.code(), Some(1 | 2)), "{command}: {:?} {stderr}", out.status);
        assert!(stderr.contains("tasks.t.timeout") && stderr.contains("365d"), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
}

/// The binary's side of `core/tests/mutated_specs.rs`: every prefix of the
/// examples, cut every 37 bytes (mid-word, mid-line, mid-structure), goes through
/// `validate` and `compile`: exit 0 or 2 (invalid) with a message, never 101.
#[test]
fn validate_and_compile_never_panic_on_a_truncated_example() {
    let sandbox = Sandbox::new("truncated", "");
    for example in ["examples/diabetes/diabetes.yaml", "examples/fanout/fanout.yaml", "examples/hello/hello.yaml"] {
        let whole = std::fs::read_to_string(crate::support::repo_root().join(example)).unwrap();
        for cut in (0..whole.len()).step_by(37).filter(|c| whole.is_char_boundary(*c)) {
            std::fs::write(sandbox.dir.join("spec.yaml"), &whole[..cut]).unwrap();
            for command in ["validate", "compile"] {
                let out = sandbox.updraft(&[command, "spec.yaml"]);
                let stderr = text(&out.stderr);
                assert!(
                    matches!(out.status.code(), Some(0 | 2)),
                    "{command} {example}[..{cut}]: {:?} {stderr}",
                    out.status
                );
                assert!(out.status.success() || stderr.contains("error:"), "{command} {example}[..{cut}]: {stderr}");
            }
        }
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_printing_commands_as_sigpipe_does_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let spec = "tasks:\n  t: {image: x, command: [echo, hi]}\nworkflows:\n  w:\n    nodes:\n      a: {task: t}\n";
    let sandbox = Sandbox::new("closed-stdout", spec);
    assert!(sandbox.updraft(&["run", "spec.yaml"]).status.success());
    for args in [&["compile", "spec.yaml"][..], &["executions", "list"], &["executions", "list", "--output", "json"]] {
        // The reader is gone before the first byte (`| head -c 0`): every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = sandbox.command(args).stdout(writer).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_store_that_is_not_a_database_is_named_in_the_error() {
    let sandbox = Sandbox::with_example("not-a-store", "hello/hello.yaml");
    let home = sandbox.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let database = home.join("updraft.db");
    std::fs::write(&database, vec![b'x'; 4096]).unwrap();
    let out = sandbox.updraft(&["executions", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("metadata store {}", database.display())), "{stderr}");
    assert!(stderr.contains("hint: move the file away"), "{stderr}");
}
