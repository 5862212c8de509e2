//! The Step Functions definition of a workflow version: a pure function of the
//! compiled workflow (docs/cloud-execution.md explains the design).
//!
//! Every node is one `lambda:invoke.waitForTaskToken` state, all of them in the
//! branches of one `Parallel` state: the execution holds one task token per node.
//! A branch is a chain: a node whose only upstream node it is the first to follow
//! comes after that node's state (`steps::chained_after`); every other node heads
//! a branch of its own. The node function "arms" a node with its token; the node
//! starts when its last upstream node completes (or at once, without upstream
//! nodes), whichever comes second, decided by conditional writes in the metadata
//! table; its completion answers the token. So any DAG runs without barriers (a node never waits for nodes it
//! does not depend on), each node costs one state transition and at most two
//! Lambda invocations (arm, and the completion of its job; the run's end is a
//! DynamoDB write by Step Functions itself), and a cache hit
//! answers its token without starting a job. The DAG's edges live in the
//! registered workflow, which the node function reads; the definition only
//! enumerates the nodes, which keeps it linear in their number.

use crate::execution::steps::{chained_after, chained_child};
use crate::proto::core::{CompiledWorkflow, Identifier, Node, TaskTemplate, branch_node, node};
use serde_json::{Value, json};

/// Step Functions' limit on a definition's size.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;

/// What a CreateStateMachine request holds beside its definition: name, role ARN,
/// type, logging and tracing settings, tags (a generous bound).
const REQUEST_OVERHEAD_BYTES: usize = 4 * 1024;

/// How long an execution may run before Step Functions stops it: nothing
/// waits forever, even if a completion is lost (a standard execution may run a year).
pub const EXECUTION_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// What a definition refers to in the deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The node function (arms, starts and completes nodes).
    pub node_function_arn: String,
    /// The metadata table: the run's end is recorded there directly (no Lambda).
    pub table: String,
    /// How long a job may wait in its queue for capacity (the stack's
    /// JobStartTimeoutSeconds): part of each task node's time limit.
    pub job_start_timeout_seconds: u64,
}

/// Added to a node's time limit for what is neither the job's run nor its wait:
/// submission, the end event's delivery, the reconciler's minute.
pub const NODE_TIMEOUT_MARGIN_SECONDS: u64 = 300;

/// How long a task may run, all attempts, waits and margin included; `None`
/// without a task timeout (the job could run as long as the execution).
fn task_node_seconds(task: &TaskTemplate, targets: &Targets) -> Option<u64> {
    let timeout = task.timeout.as_ref()?;
    let attempt = timeout.seconds.max(0) as u64 + u64::from(timeout.nanos > 0);
    let attempts = u64::from(task.retries) + 1;
    Some(attempt * attempts + targets.job_start_timeout_seconds * attempts + NODE_TIMEOUT_MARGIN_SECONDS)
}

/// A node state's `TimeoutSeconds`: the backstop for a node whose end never comes
/// (a lost event the reconciler could not repair), so that it fails the node
/// instead of waiting for the execution's timeout. Task nodes and branches whose
/// every case is a timed task; maps run as capacity allows and subworkflows have
/// their own execution timeout, so they have none.
fn node_seconds(node: &Node, workflow: &CompiledWorkflow, targets: &Targets) -> Option<u64> {
    let task = |id: &Option<Identifier>| {
        let id = id.as_ref()?;
        workflow.tasks.iter().find(|t| t.id.as_ref().is_some_and(|t| t.name == id.name && t.version == id.version))
    };
    match node.target.as_ref()? {
        node::Target::Task(t) => task_node_seconds(task(&t.task_id)?, targets),
        node::Target::Branch(b) => {
            let mut cases: Vec<&Node> = b.cases.iter().filter_map(|c| c.then_node.as_ref()).collect();
            if let Some(branch_node::Otherwise::ElseNode(other)) = &b.otherwise {
                cases.push(other);
            }
            cases.iter().map(|n| node_seconds(n, workflow, targets)).collect::<Option<Vec<_>>>()?.into_iter().max()
        }
        node::Target::Workflow(_) | node::Target::Map(_) => None,
    }
}

/// Why a workflow cannot become a state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateMachineError {
    #[error(
        "the state machine of {workflow} would take {bytes} bytes to create; Step Functions takes at most \
         {MAX_DEFINITION_BYTES} (about 1,100 nodes): split the workflow into subworkflows"
    )]
    TooLarge { workflow: String, bytes: usize },
}

/// The state machine's name: `<prefix>-<project>-<domain>-<workflow>-<version>`
/// in Step Functions' alphabet, at most 80 characters; a long one keeps its
/// start and a digest of the whole, so distinct versions never share a name.
pub fn state_machine_name(prefix: &str, id: &Identifier) -> String {
    let raw = format!("{prefix}-{}-{}-{}-{}", id.project, id.domain, id.name, id.version);
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if clean.len() <= 80 {
        return clean;
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    format!("{}-{}", &clean[..63], &digest[..16])
}

/// Task state names: node ids are unique in a workflow and already in a safe alphabet.
fn state_name(node_id: &str) -> String {
    format!("node {node_id}")
}

/// The node function's error type for failures a retry can help with
/// (throttling, 5xx answers, a node's start held by another call).
pub const TRANSIENT_ERROR: &str = "Updraft.Transient";

/// Retries of a node function invoke: Lambda's own transient errors, an invocation
/// that died, and the function's `Updraft.Transient`. Every step of the node
/// protocol converges when repeated (`execution::steps`), so repeating is always
/// safe; the delays add up to minutes, past a claim's lease
/// (`steps::CLAIM_LEASE_MS`, 90 s) and a minute of throttling.
fn lambda_retry() -> Value {
    json!([{
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                        "Lambda.TooManyRequestsException", "Lambda.Unknown", TRANSIENT_ERROR],
        "IntervalSeconds": 5,
        "MaxAttempts": 12,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL"
    }])
}

/// The workflow version a state machine runs: a constant of its payloads, so the
/// node function knows which registered closure to read.
fn workflow_constant(id: &Identifier) -> Value {
    json!({"project": id.project, "domain": id.domain, "name": id.name, "version": id.version})
}

fn node_state(node_id: &str, workflow: &Value, targets: &Targets, timeout: Option<u64>) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Comment": "armed by the node function; answered when the node ends (docs/cloud-execution.md)",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": targets.node_function_arn,
            "Payload": {
                "action": "arm",
                "workflow": workflow,
                "execution.$": "$$.Execution.Name",
                "node": node_id,
                "token.$": "$$.Task.Token"
            }
        },
        "Retry": lambda_retry(),
        // Node results live in the metadata table; the state carries nothing on, and
        // its branch ends with `{}`: the Parallel's result is then N empty objects, not
        // N copies of the execution's input (a state's data is capped at 256 KiB).
        "ResultPath": null,
        "OutputPath": null,
        "End": true
    });
    if let Some(seconds) = timeout {
        state["TimeoutSeconds"] = json!(seconds);
        state["Catch"] = json!([{"ErrorEquals": ["States.Timeout"], "Next": timed_out_state_name(node_id)}]);
    }
    state
}

/// The error a node past its `TimeoutSeconds` fails its run with (the status
/// function records that node TIMED_OUT).
pub const NODE_TIMED_OUT: &str = "NodeTimedOut";

fn timed_out_state_name(node_id: &str) -> String {
    format!("{} timed out", state_name(node_id))
}

/// Where a node past its time limit goes: its branch fails with the reason.
fn timed_out_state(node_id: &str, seconds: u64) -> Value {
    json!({
        "Type": "Fail",
        "Error": NODE_TIMED_OUT,
        "Cause": format!(
            "node {node_id} ran past its time limit of {seconds} s (the task's timeout × attempts, the queue wait, a margin) \
             without its end being recorded"
        )
    })
}

/// Records the run's end on its execution item with Step Functions' own DynamoDB
/// integration: one transition, no Lambda invocation per execution. Only a
/// RUNNING run is ended: an end written before (an abort, a fail-fast failure
/// recorded by the node function) stands, and the state goes on to `next`.
fn finish_state(outcome: &str, id: &Identifier, targets: &Targets, next: Option<&str>) -> Value {
    let partition = format!("EXEC#{}#{}#{{}}", id.project, id.domain);
    let mut values = json!({
        ":phase": {"S": if outcome == "failed" { "FAILED" } else { "SUCCEEDED" }},
        ":at": {"S.$": "$$.State.EnteredTime"},
        ":running": {"S": "RUNNING"}
    });
    let mut expression = "SET run_phase = :phase, ended_at = :at".to_string();
    if outcome == "failed" {
        values[":error"] = json!({"S.$": "States.JsonToString($.error)"});
        expression.push_str(", run_error = :error");
    }
    // The run leaves the runs in flight (the reconciler's index, docs/storage.md).
    expression.push_str(" REMOVE gsi2pk, gsi2sk");
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            "TableName": targets.table,
            "Key": {
                "pk": {"S.$": format!("States.Format('{partition}', $$.Execution.Name)")},
                "sk": {"S": "EXEC"}
            },
            "UpdateExpression": expression,
            "ConditionExpression": RUN_IS_RUNNING,
            "ExpressionAttributeValues": values
        },
        "Retry": [{
            "ErrorEquals": ["DynamoDB.ProvisionedThroughputExceededException", "DynamoDB.ThrottlingException",
                            "DynamoDB.InternalServerErrorException", "States.Timeout"],
            "IntervalSeconds": 1,
            "MaxAttempts": 5,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL"
        }],
        "ResultPath": null
    });
    match next {
        Some(next) => {
            state["Next"] = json!(next);
            state["Catch"] = json!([{"ErrorEquals": [CONDITION_FAILED], "ResultPath": null, "Next": next}]);
        }
        None => state["End"] = json!(true),
    }
    state
}

/// The condition of every write of a run's end.
const RUN_IS_RUNNING: &str = "run_phase = :running";

/// How Step Functions' DynamoDB integration names a failed condition.
const CONDITION_FAILED: &str = "DynamoDB.ConditionalCheckFailedException";

/// Where Finish goes when a node failed while independent nodes finished.
const NODES_FAILED: &str = "Nodes failed";

/// The error of a run whose nodes all ended but some failed (`finish_independent`).
fn nodes_failed_state() -> Value {
    json!({
        "Type": "Pass",
        "Result": {
            "Error": "NodesFailed",
            "Cause": "a node failed; the nodes independent of it ran to their end (on_failure: finish_independent)"
        },
        "ResultPath": "$.error",
        "Next": "Record failure"
    })
}

/// A subworkflow's run (its input carries `parent`) tells its parent node how it
/// ended; a top-level run goes straight to `otherwise`.
fn parent_choice(tell: &str, otherwise: &str) -> Value {
    json!({
        "Type": "Choice",
        "Choices": [{"Variable": "$.parent", "IsPresent": true, "Next": tell}],
        "Default": otherwise
    })
}

fn tell_parent(succeeded: bool, workflow: &Value, targets: &Targets, next: &str) -> Value {
    let mut payload = json!({
        "action": "child_ended",
        "workflow": workflow,
        "execution.$": "$$.Execution.Name",
        "parent.$": "$.parent",
        "succeeded": succeeded
    });
    if !succeeded {
        payload["error.$"] = json!("$.error");
    }
    json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": targets.node_function_arn, "Payload": payload},
        "Retry": lambda_retry(),
        "ResultPath": null,
        "Next": next
    })
}

/// The workflow's own timeout in whole seconds (rounded up: Step Functions counts
/// seconds), or the 7-day default.
fn execution_timeout_seconds(template: &crate::proto::core::WorkflowTemplate) -> u64 {
    match &template.timeout {
        Some(d) => (d.seconds.max(0) as u64 + u64::from(d.nanos > 0)).max(1),
        None => EXECUTION_TIMEOUT_SECONDS,
    }
}

/// The definition (Amazon States Language) of `workflow`'s state machine.
pub fn definition(workflow: &CompiledWorkflow, targets: &Targets) -> Result<Value, StateMachineError> {
    let template = workflow.template.clone().unwrap_or_default();
    let id = template.id.clone().unwrap_or_default();
    let workflow_id = workflow_constant(&id);
    // A branch per node that heads a chain: a node chained after another follows it in
    // its branch (`steps::chained_after`), armed once that node's state succeeded.
    let by_id: std::collections::HashMap<&str, &Node> = template.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let branches: Vec<Value> = template
        .nodes
        .iter()
        .filter(|node| chained_after(workflow, &node.id).is_none())
        .map(|head| {
            let mut states = serde_json::Map::new();
            let mut next = Some(head);
            while let Some(node) = next {
                let name = state_name(&node.id);
                let timeout = node_seconds(node, workflow, targets);
                let mut state = node_state(&node.id, &workflow_id, targets, timeout);
                next = chained_child(workflow, &node.id).and_then(|child| by_id.get(child).copied());
                if let Some(child) = next {
                    state.as_object_mut().expect("a state is an object").remove("End");
                    state["Next"] = json!(state_name(&child.id));
                }
                states.insert(name, state);
                if let Some(seconds) = timeout {
                    states.insert(timed_out_state_name(&node.id), timed_out_state(&node.id, seconds));
                }
            }
            json!({"StartAt": state_name(&head.id), "States": states})
        })
        .collect();
    let mut states = serde_json::Map::new();
    if !branches.is_empty() {
        states.insert(
            "Nodes".into(),
            json!({
                "Type": "Parallel",
                "Comment": "one branch per chain of nodes; each node starts when its upstream nodes have ended",
                "Branches": branches,
                "ResultPath": null,
                "Next": "Finish",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record failure"}]
            }),
        );
        states.insert(NODES_FAILED.into(), nodes_failed_state());
        states.insert("Record failure".into(), finish_state("failed", &id, targets, Some("Failed parent?")));
        states.insert("Failed parent?".into(), parent_choice("Tell parent of failure", "Failed"));
        states.insert("Tell parent of failure".into(), tell_parent(false, &workflow_id, targets, "Failed"));
        states.insert(
            "Failed".into(),
            json!({"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}),
        );
    }
    let mut finish = finish_state("succeeded", &id, targets, Some("Has parent?"));
    if !branches.is_empty() {
        // Success only if no node failed: the node function writes `failed_node`
        // when a node fails under `finish_independent`; then the run ends FAILED.
        // (A run that has ended already fails the condition too; Record failure then keeps its end.)
        finish["Parameters"]["ConditionExpression"] =
            json!(format!("{RUN_IS_RUNNING} AND attribute_not_exists(failed_node)"));
        finish["Catch"] = json!([{"ErrorEquals": [CONDITION_FAILED], "ResultPath": null, "Next": NODES_FAILED}]);
    }
    states.insert("Finish".into(), finish);
    states.insert("Has parent?".into(), parent_choice("Tell parent", "Done"));
    states.insert("Tell parent".into(), tell_parent(true, &workflow_id, targets, "Done"));
    states.insert("Done".into(), json!({"Type": "Succeed"}));
    let start = if template.nodes.is_empty() { "Finish" } else { "Nodes" };
    let definition = json!({
        "Comment": format!(
            "Updraft workflow {}/{}/{} version {} (generated by updraft_core::state_machine)",
            id.project, id.domain, id.name, id.version
        ),
        "StartAt": start,
        "TimeoutSeconds": execution_timeout_seconds(&template),
        "States": states
    });
    // What counts is the request: the definition travels as a JSON string (its quotes
    // escaped, about 11 % more), beside the name, role and logging settings.
    let bytes = serde_json::to_string(&definition.to_string()).map_or(usize::MAX, |s| s.len()) + REQUEST_OVERHEAD_BYTES;
    if bytes > MAX_DEFINITION_BYTES {
        return Err(StateMachineError::TooLarge { workflow: id.name, bytes });
    }
    Ok(definition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile_text};
    use crate::spec::Format;

    fn targets() -> Targets {
        Targets {
            node_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:updraft-node".into(),
            table: "updraft-metadata".into(),
            job_start_timeout_seconds: 1800,
        }
    }

    fn compiled(spec: &str, workflow: &str) -> CompiledWorkflow {
        let options = Options { version: "v1".into(), ..Default::default() };
        compile_text(spec, Format::Yaml, &options).unwrap().closure(workflow).unwrap()
    }

    const N_SHAPE: &str = "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  n:\n    nodes:\n\
        \x20     a: {task: t}\n      b: {task: t}\n      c: {task: t, after: [a]}\n      d: {task: t, after: [a, b]}\n";

    #[test]
    fn every_node_is_one_armed_task_state_in_one_parallel_state() {
        let definition = definition(&compiled(N_SHAPE, "n"), &targets()).unwrap();
        let branches = definition["States"]["Nodes"]["Branches"].as_array().unwrap();
        // c's only upstream node is a: it follows a in a's branch; d waits for two, in its own.
        let chains: Vec<Vec<&str>> =
            branches.iter().map(|b| b["States"].as_object().unwrap().keys().map(String::as_str).collect()).collect();
        assert_eq!(chains, [vec!["node a", "node c"], vec!["node b"], vec!["node d"]]);
        assert_eq!(branches[0]["StartAt"], "node a");
        assert_eq!(
            (&branches[0]["States"]["node a"]["Next"], branches[0]["States"]["node a"].get("End")),
            (&json!("node c"), None)
        );
        assert_eq!(branches[0]["States"]["node c"]["End"], true);
        for (branch, node) in [(0, "a"), (0, "c"), (1, "b"), (2, "d")] {
            let state = &branches[branch]["States"][format!("node {node}")];
            assert_eq!(state["Resource"], "arn:aws:states:::lambda:invoke.waitForTaskToken");
            assert_eq!(state["Parameters"]["Payload"]["node"], node);
            assert_eq!(state["Parameters"]["Payload"]["token.$"], "$$.Task.Token");
        }
        assert_eq!(definition["States"]["Nodes"]["Catch"][0]["Next"], "Record failure");
        assert_eq!(definition["States"]["Failed"]["Type"], "Fail");
    }

    #[test]
    fn a_timed_task_node_has_a_time_limit_that_fails_its_branch_with_the_reason() {
        let spec = "tasks:\n  slow: {image: x, command: [t], timeout: 10m, retries: 2}\n  open: {image: x, command: [t]}\n\
                    workflows:\n  w:\n    nodes:\n      a: {task: slow}\n      b: {task: open}\n";
        let definition = definition(&compiled(spec, "w"), &targets()).unwrap();
        let branches = definition["States"]["Nodes"]["Branches"].as_array().unwrap();
        let timed = &branches[0]["States"];
        // 3 attempts × (600 s + 1,800 s in the queue) + 300 s.
        assert_eq!(timed["node a"]["TimeoutSeconds"], 7500);
        assert_eq!(timed["node a"]["Catch"][0]["Next"], "node a timed out");
        assert_eq!(timed["node a timed out"]["Error"], NODE_TIMED_OUT);
        assert!(
            timed["node a timed out"]["Cause"]
                .as_str()
                .unwrap()
                .starts_with("node a ran past its time limit of 7500 s")
        );
        let open = &branches[1]["States"];
        assert!(open["node b"].get("TimeoutSeconds").is_none(), "no task timeout: the execution's own bounds it");
        assert_eq!(open.as_object().unwrap().len(), 1);
    }

    #[test]
    fn names_fit_step_functions_and_stay_distinct_when_shortened() {
        let id = |version: &str| Identifier {
            project: "p".into(),
            domain: "development".into(),
            name: "train".into(),
            version: version.into(),
            ..Default::default()
        };
        assert_eq!(state_machine_name("updraft", &id("v1")), "updraft-p-development-train-v1");
        let (a, b) = (
            state_machine_name("updraft", &id(&"a".repeat(100))),
            state_machine_name("updraft", &id(&format!("{}b", "a".repeat(99)))),
        );
        assert!(a.len() <= 80 && b.len() <= 80 && a != b, "{a} {b}");
        assert_eq!(state_machine_name("updraft", &id("1.0+x")), "updraft-p-development-train-1_0_x");
    }

    #[test]
    fn a_workflow_too_large_for_one_definition_is_refused_with_the_way_out() {
        let mut spec = String::from("tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  big:\n    nodes:\n");
        for i in 0..4000 {
            spec.push_str(&format!("      node_with_a_long_name_{i:05}: {{task: t}}\n"));
        }
        let error = definition(&compiled(&spec, "big"), &targets()).unwrap_err();
        assert!(error.to_string().contains("split the workflow into subworkflows"), "{error}");
    }

    /// The limit is measured as the request carries the definition (a JSON string, its
    /// quotes escaped): about 940 bytes a node, so 1,000 nodes fit and 1,200 do not.
    #[test]
    fn the_size_limit_counts_the_definition_as_sent() {
        let spec = |n: usize| {
            let mut spec = String::from(
                "tasks:\n  t: {image: x, command: [t, \"{{inputs.x}}\"], inputs: {x: int}, outputs: {y: int}}\n\
                 workflows:\n  big:\n    nodes:\n",
            );
            for i in 0..n {
                spec.push_str(&format!("      train_step_{i:05}: {{task: t, inputs: {{x: 1}}}}\n"));
            }
            spec
        };
        let fits = definition(&compiled(&spec(1_000), "big"), &targets()).unwrap();
        let plain = fits.to_string().len();
        assert!(plain < MAX_DEFINITION_BYTES, "{plain}");
        let Err(StateMachineError::TooLarge { bytes, .. }) = definition(&compiled(&spec(1_200), "big"), &targets())
        else {
            panic!("1,200 nodes are refused");
        };
        assert!(bytes > MAX_DEFINITION_BYTES && bytes > plain * 6 / 5, "the escaped size: {bytes}");
    }
}
