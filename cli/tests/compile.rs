use crate::support::{text, updraft};
use serde_json::Value;
use updraft_proto::core::CompiledWorkflow;

fn compile(args: &[&str]) -> Value {
    let mut argv = vec!["compile"];
    argv.extend_from_slice(args);
    let out = updraft(&argv);
    assert!(out.status.success(), "compile failed:\n{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("compile prints JSON")
}

#[test]
fn compiled_diabetes_workflow_is_the_idl_in_canonical_json() {
    let doc = compile(&["examples/diabetes/diabetes.yaml", "--version", "v1"]);
    assert_eq!(doc["project"], "examples");
    let workflow = &doc["workflows"][0];
    assert_eq!(workflow["template"]["id"]["name"], "diabetes");
    assert_eq!(workflow["template"]["id"]["version"], "v1");
    assert_eq!(workflow["template"]["id"]["resourceType"], "WORKFLOW");
    let order: Vec<&str> =
        workflow["dag"]["topologicalOrder"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(order, ["split", "fit", "predict", "score"]);
    // score waits for both split and predict
    let score = workflow["template"]["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "score").unwrap();
    assert_eq!(score["upstreamNodeIds"], serde_json::json!(["split", "predict"]));
    // The document holds each task once, at its top level (closures are built per workflow).
    assert!(workflow.get("tasks").is_none_or(|t| t.as_array().unwrap().is_empty()), "{workflow}");
    assert_eq!(doc["tasks"].as_array().unwrap().len(), 4);
    let fit = doc["tasks"].as_array().unwrap().iter().find(|t| t["id"]["name"] == "fit").unwrap();
    assert_eq!(fit["resources"]["requests"]["cpuMillis"], 2000);
    assert_eq!(fit["resources"]["requests"]["memoryMib"], "2048", "uint64 is a string in proto3 JSON");
    assert_eq!(fit["timeout"], "1800s");
    assert_eq!(doc["launchPlans"][0]["schedule"]["cron"]["timezone"], "Europe/Paris");

    // The JSON reads back into the generated types unchanged.
    let parsed: CompiledWorkflow = serde_json::from_value(workflow.clone()).expect("canonical JSON parses");
    assert_eq!(serde_json::to_value(&parsed).unwrap(), *workflow);
}

#[test]
fn branch_and_map_nodes_compile() {
    let doc = compile(&["examples/fanout/fanout.yaml"]);
    let nodes = doc["workflows"][0]["template"]["nodes"].as_array().unwrap();
    let squares = nodes.iter().find(|n| n["id"] == "squares").unwrap();
    assert_eq!(squares["map"]["mappedInputs"], serde_json::json!(["x"]));
    assert_eq!(squares["map"]["concurrency"], 16);
    let verdict = nodes.iter().find(|n| n["id"] == "verdict").unwrap();
    let condition = &verdict["branch"]["cases"][0]["condition"]["comparison"];
    assert_eq!(condition["operator"], "GT");
    assert_eq!(condition["left"]["promise"]["nodeId"], "total");
    assert_eq!(condition["right"]["workflowInput"], "threshold");
    assert_eq!(verdict["branch"]["elseNode"]["id"], "verdict-else");
    assert_eq!(verdict["upstreamNodeIds"], serde_json::json!(["total"]));
}

#[test]
fn several_files_compile_to_an_array() {
    let doc = compile(&["examples/hello/hello.yaml", "examples/fanout/fanout.yaml"]);
    assert_eq!(doc.as_array().map(Vec::len), Some(2));
}

#[test]
fn an_invalid_version_label_is_refused() {
    let out = updraft(&["compile", "examples/hello/hello.yaml", "--version", "v 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("version \"v 1\" is not a valid version label"));
}
