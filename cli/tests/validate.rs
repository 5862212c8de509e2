use crate::support::{Scratch, files_under, repo_root, text, updraft};

#[test]
fn every_example_is_valid() {
    let examples = files_under("examples", "yaml");
    assert!(examples.len() >= 3, "examples/ holds the diabetes, hello and fanout specs");
    let args: Vec<String> = examples.iter().map(|p| p.display().to_string()).collect();
    let mut argv = vec!["validate"];
    argv.extend(args.iter().map(String::as_str));
    let out = updraft(&argv);
    assert!(out.status.success(), "validate failed:\n{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("workflow diabetes: 4 nodes, 4 levels, max parallelism 1"), "{stdout}");
    assert!(stdout.contains("critical path: split → fit → predict → score"), "{stdout}");
    // A map counts as its concurrency: 16 squares at once, not one node.
    assert!(stdout.contains("workflow fanout: 4 nodes, 4 levels, max parallelism 16"), "{stdout}");
    assert!(stdout.contains("launch plan diabetes_nightly: workflow diabetes, cron \"0 3 * * *\" (Europe/Paris)"));
}

/// Each broken spec names what it expects in its first line (`# expect: ...`);
/// validation must fail and say exactly that.
#[test]
fn every_invalid_spec_fails_with_its_expected_error() {
    let files = files_under("tests/data/invalid", "yaml");
    assert!(files.len() >= 30, "one broken spec per error class");
    let mut failures = Vec::new();
    for file in &files {
        let content = std::fs::read_to_string(file).unwrap();
        let expected = content
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks its '# expect: ' line", file.display()));
        let out = updraft(&["validate", &file.display().to_string()]);
        let stderr = text(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(expected) {
            failures.push(format!(
                "{}: exit {:?}, expected {expected:?} in:\n{stderr}",
                file.display(),
                out.status.code()
            ));
        }
        assert!(stderr.contains(&file.display().to_string()), "the error names the file: {stderr}");
        assert!(stderr.contains("hint: "), "every error says what to do: {stderr}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_of_a_file_are_reported_at_once() {
    let dir = Scratch::new("many-problems");
    let spec = dir.join("spec.yaml");
    std::fs::write(&spec, "tasks:\n  fit: {image: x, command: [fit], retries: -2, timeout: 0s, cache: true}\n")
        .unwrap();
    let out = updraft(&["validate", &spec.display().to_string()]);
    let stderr = text(&out.stderr);
    for expected in ["tasks.fit.retries", "tasks.fit.timeout", "tasks.fit.cache"] {
        assert!(stderr.contains(expected), "missing {expected} in:\n{stderr}");
    }
}

#[test]
fn one_bad_file_fails_the_run_but_the_good_ones_are_still_checked() {
    let good = repo_root().join("examples/hello/hello.yaml");
    let bad = repo_root().join("tests/data/invalid/cycle.yaml");
    let out = updraft(&["validate", &good.display().to_string(), &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("hello.yaml: ok"));
    assert!(text(&out.stderr).contains("1 of 2 file(s) invalid"));
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = updraft(&["validate", "no/such/spec.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/spec.yaml: cannot read"), "{}", text(&out.stderr));
}

#[test]
fn validate_speaks_json_for_valid_and_invalid_files_alike() {
    let dir = Scratch::new("validate-json");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "tasks:\n  t: {image: busybox, command: [true], retries: -1}\n").unwrap();
    let out = updraft(&["validate", "-o", "json", "examples/fanout/fanout.yaml", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "one file is invalid");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    let fanout = &reports[0];
    assert_eq!((fanout["valid"].as_bool(), fanout["workflows"][0]["name"].as_str()), (Some(true), Some("fanout")));
    assert_eq!(fanout["workflows"][0]["nodes"], 4);
    assert_eq!(reports[1]["valid"], false);
    let problem = &reports[1]["problems"][0];
    assert!(problem["problem"].as_str().unwrap().contains("tasks.t.retries"), "{problem}");
}

/// spec.md: validation reports every problem at once. A node whose task is invalid
/// still has its references checked, beside the task's own error.
#[test]
fn task_and_node_errors_are_reported_together() {
    let dir = Scratch::new("validate-together");
    let spec = dir.join("both.yaml");
    std::fs::write(
        &spec,
        "tasks:\n  t:\n    image: busybox\n    command: [echo, \"{{inputs.x}}\"]\n    inputs: {x: int}\n    \
         resources: {cpu: -1}\n  u: {image: busybox, command: [\"true\"]}\nworkflows:\n  w:\n    nodes:\n      \
         a: {task: t, inputs: {x: [$nope.y]}}\n      b: {task: u, after: [ghost]}\n",
    )
    .unwrap();
    let out = updraft(&["validate", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for expected in [
        "tasks.t.resources.cpu: cpu must be more than zero",
        "workflows.w.nodes.a.inputs.x[0]: unknown node \"nope\" in workflow w",
        "workflows.w.nodes.b.after: unknown node \"ghost\" in workflow w",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

/// A map without `concurrency` runs all its items at once: the summary says so.
#[test]
fn a_map_without_a_limit_makes_parallelism_unbounded() {
    let dir = Scratch::new("validate-unbounded");
    let spec = dir.join("map.yaml");
    std::fs::write(
        &spec,
        "tasks:\n  t: {image: busybox, command: [echo, \"{{inputs.x}}\"], inputs: {x: int}}\nworkflows:\n  w:\n    \
         nodes:\n      m: {map: {task: t, over: [x]}, inputs: {x: [1, 2, 3]}}\n",
    )
    .unwrap();
    let out = updraft(&["validate", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("max parallelism unbounded (map m runs all its items at once"));
    let json = updraft(&["validate", spec.to_str().unwrap(), "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc[0]["workflows"][0]["max_parallelism"], serde_json::Value::Null, "{doc}");
}
