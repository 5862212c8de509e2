//! Snapshot tests of generated state machines: every example workflow and the
//! DAG shapes of tests/data/state_machines/shapes.yaml. CI also runs
//! asl-validator over the snapshots (`.ci/run`), a check stricter than the
//! emulator's interpreter.

mod support;

use serde_json::Value;
use support::{check_snapshot, repo};
use updraft_core::compile::{Options, compile_text};
use updraft_core::spec::Format;
use updraft_core::state_machine::{Targets, definition};

const SPECS: [&str; 4] = [
    "examples/diabetes/diabetes.yaml",
    "examples/hello/hello.yaml",
    "examples/fanout/fanout.yaml",
    "tests/data/state_machines/shapes.yaml",
];

fn targets() -> Targets {
    Targets {
        node_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:updraft-node".into(),
        table: "updraft-metadata".into(),
        job_start_timeout_seconds: 1800,
    }
}

/// (project-workflow, definition) for every workflow of the specs.
fn definitions() -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for spec in SPECS {
        let text = std::fs::read_to_string(repo().join(spec)).unwrap();
        let compiled = compile_text(&text, Format::Yaml, &Options { version: "v1".into(), ..Default::default() })
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        for workflow in &compiled.workflows {
            let name = workflow.template.as_ref().unwrap().id.as_ref().unwrap().name.clone();
            let closure = compiled.closure(&name).unwrap();
            all.push((format!("{}-{name}", compiled.project), definition(&closure, &targets()).unwrap()));
        }
    }
    all
}

#[test]
fn state_machines_match_their_snapshots() {
    let snapshots = repo().join("tests/data/state_machines/snapshots");
    let mut mismatches = Vec::new();
    let all = definitions();
    for (name, definition) in &all {
        check_snapshot(&snapshots.join(format!("{name}.json")), definition, &mut mismatches);
    }
    assert_eq!(all.len(), 7, "every example workflow and every shape");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_node_follows_only_its_one_upstream_node_so_no_node_waits_for_a_level() {
    let (_, n_shape) = definitions().into_iter().find(|(name, _)| name == "shapes-n_shape").unwrap();
    let branches = n_shape["States"]["Nodes"]["Branches"].as_array().unwrap();
    let starts: Vec<&str> = branches.iter().map(|b| b["StartAt"].as_str().unwrap()).collect();
    assert_eq!(starts, ["node a", "node b", "node d"], "c follows a, its only upstream node, and nothing else");
    assert_eq!(branches[0]["States"]["node a"]["Next"], "node c", "c does not sit behind b in any state");
}
