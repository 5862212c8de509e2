//! Snapshot tests of generated Batch job definitions: every example task, a GPU
//! task and a task with secrets. `UPDATE_SNAPSHOTS=1` rewrites the snapshots;
//! review the diff before committing it.

mod support;

use support::{check_snapshot, repo};
use updraft_core::compile::{Options, compile_text};
use updraft_core::job_definition::{Settings, job_definition};
use updraft_core::spec::Format;

fn settings() -> Settings {
    Settings {
        name_prefix: "updraft".into(),
        role_arn_prefix: "arn:aws:iam::123456789012:role/".into(),
        partition: "aws".into(),
        bucket: "data".into(),
        execution_role_arn: "arn:aws:iam::123456789012:role/updraft-job-execution".into(),
        log_group: "/aws/batch/updraft".into(),
        exec_path: "/updraft/updraft".into(),
    }
}

#[test]
fn job_definitions_match_their_snapshots() {
    let specs = [
        "examples/diabetes/diabetes.yaml",
        "examples/hello/hello.yaml",
        "examples/fanout/fanout.yaml",
        "tests/data/job_definitions/gpu_and_secret.yaml",
    ];
    let snapshots = repo().join("tests/data/job_definitions/snapshots");
    let mut mismatches = Vec::new();
    let mut seen = 0;
    for spec in specs {
        let text = std::fs::read_to_string(repo().join(spec)).unwrap();
        let compiled = compile_text(&text, Format::Yaml, &Options { version: "v1".into(), ..Default::default() })
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        for task in &compiled.tasks {
            let name = task.id.as_ref().unwrap().name.clone();
            let file = snapshots.join(format!("{}-{name}.json", compiled.project));
            check_snapshot(&file, &job_definition(task, &settings()), &mut mismatches);
            seen += 1;
        }
    }
    assert_eq!(seen, 11, "every example task and the two extra tasks");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The job definition carries core's failure table: Batch stops on the exit codes
/// `updraft exec` uses for failures that would fail again (a wrong-typed output among them).
#[test]
fn batch_does_not_retry_what_updraft_run_does_not() {
    use updraft_core::execution::failure::FailureCode;
    let text = "tasks:\n  t: {image: x, command: [t], retries: 2}\n";
    let compiled = compile_text(text, Format::Yaml, &Options { version: "v1".into(), ..Default::default() }).unwrap();
    let definition = job_definition(&compiled.tasks[0], &settings());
    let strategy = &definition["retryStrategy"];
    assert_eq!(strategy["attempts"], 3);
    let stops: Vec<&str> = strategy["evaluateOnExit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| rule["action"] == "EXIT")
        .map(|rule| rule["onExitCode"].as_str().unwrap())
        .collect();
    for code in FailureCode::ALL.into_iter().filter(|c| c.exit_code().is_some()) {
        let exit = code.exit_code().unwrap().to_string();
        assert_eq!(stops.contains(&exit.as_str()), !code.retryable(), "{code} exits {exit}");
    }
    assert!(stops.contains(&FailureCode::BadOutputs.exit_code().unwrap().to_string().as_str()));
}

/// The policy a project's job role gets, as infra/tests/test_project_access.py
/// evaluates it (with the template's permissions boundary) offline: kept current here.
#[test]
fn the_job_role_policy_matches_its_snapshot() {
    // The bucket's name as the template names it, with infra/lint_policies.py's example account.
    let policy = updraft_core::project_access::job_role_policy("aws", "updraft-data-123456789012-us-east-1", "ml-team");
    let mut mismatches = Vec::new();
    check_snapshot(&repo().join("tests/data/job_roles/ml-team.json"), &policy, &mut mismatches);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
