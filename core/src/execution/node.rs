//! What a node means, decided once for every executor: which inputs a task or
//! subworkflow gets, which branch case runs, how a map node ends, whether a
//! failed attempt is retried and after how long, the resources a task asks for
//! by default, and how executions are named. The local executor and the cloud's
//! node steps are drivers around these pure functions: they schedule, run
//! processes or jobs, and store; they decide nothing here again.

use super::condition;
use super::failure::FailureCode;
use super::map;
use super::resolve::{ResolveError, Values, resolve_inputs};
use super::retry::Backoff;
use crate::literal;
use crate::proto::core::{
    Binding, BranchNode, Literal, MapNode, Node, ResourceQuantities, TaskTemplate, WorkflowTemplate, branch_node,
};
use crate::types;
use std::collections::BTreeMap;
use std::time::Duration;

pub type Outputs = BTreeMap<String, Literal>;

/// Why a node failed, in the shared vocabulary, with the message people read.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFailure {
    pub code: FailureCode,
    pub message: String,
}

impl NodeFailure {
    pub fn new(code: FailureCode, message: impl Into<String>) -> NodeFailure {
        NodeFailure { code, message: message.into() }
    }
}

impl From<ResolveError> for NodeFailure {
    fn from(e: ResolveError) -> NodeFailure {
        NodeFailure::new(FailureCode::InputUnavailable, e.to_string())
    }
}

/// The inputs of a task node: its bindings, then the task's defaults for inputs
/// left unbound, then `none` for unbound optional inputs.
pub fn task_inputs(task: &TaskTemplate, bindings: &[Binding], values: &impl Values) -> Result<Outputs, NodeFailure> {
    let interface = task.interface.clone().unwrap_or_default();
    let optional =
        interface.inputs.iter().filter(|v| v.r#type.as_ref().is_some_and(types::is_optional)).map(|v| v.name.clone());
    Ok(resolve_inputs(bindings, &task.input_defaults, optional, values)?)
}

/// The inputs of a subworkflow node, by the same rule with the workflow's parameters.
pub fn workflow_inputs(
    workflow: &WorkflowTemplate,
    bindings: &[Binding],
    values: &impl Values,
) -> Result<Outputs, NodeFailure> {
    let defaults: Outputs =
        workflow.inputs.iter().filter_map(|p| Some((p.var.as_ref()?.name.clone(), p.default.clone()?))).collect();
    let optional = workflow
        .inputs
        .iter()
        .filter_map(|p| p.var.as_ref())
        .filter(|v| v.r#type.as_ref().is_some_and(types::is_optional))
        .map(|v| v.name.clone());
    Ok(resolve_inputs(bindings, &defaults, optional, values)?)
}

/// A launch's inputs: the given values over the workflow's defaults; optional
/// inputs left out are `none`; a required input left out is an error naming it.
pub fn launch_inputs(workflow: &WorkflowTemplate, mut given: Outputs) -> Result<Outputs, String> {
    for param in &workflow.inputs {
        let var = param.var.clone().unwrap_or_default();
        if given.contains_key(&var.name) {
            continue;
        }
        let t = var.r#type.clone().unwrap_or_default();
        match &param.default {
            Some(default) => {
                given.insert(var.name, default.clone());
            }
            None if types::is_optional(&t) => {
                given.insert(var.name, literal::none());
            }
            None => return Err(format!("missing required input \"{}\" ({})", var.name, types::display(&t))),
        }
    }
    Ok(given)
}

/// A launch's inputs checked before anything starts: every given name is an
/// input of the workflow and its value has the declared type; then
/// [`launch_inputs`] fills in defaults and optionals.
pub fn checked_launch_inputs(workflow: &WorkflowTemplate, given: Outputs) -> Result<Outputs, String> {
    for (name, value) in &given {
        let Some(var) = workflow.inputs.iter().filter_map(|p| p.var.as_ref()).find(|v| &v.name == name) else {
            let known: Vec<&str> =
                workflow.inputs.iter().filter_map(|p| p.var.as_ref()).map(|v| v.name.as_str()).collect();
            return Err(format!("the workflow has no input \"{name}\" (its inputs: {})", known.join(", ")));
        };
        let t = var.r#type.clone().unwrap_or_default();
        literal::check_type(value, &t).map_err(|e| format!("input \"{name}\": {e}"))?;
    }
    launch_inputs(workflow, given)
}

/// A task's inputs as a job received them (the cloud path: inputs document
/// written by the node step): absent optional inputs become `none`; returns the
/// names of absent required ones.
pub fn fill_optional_inputs(interface: &crate::proto::core::TypedInterface, inputs: &mut Outputs) -> Vec<String> {
    let mut missing = Vec::new();
    for var in &interface.inputs {
        if inputs.contains_key(&var.name) {
            continue;
        }
        if var.r#type.as_ref().is_some_and(types::is_optional) {
            inputs.insert(var.name.clone(), literal::none());
        } else {
            missing.push(var.name.clone());
        }
    }
    missing
}

/// The case a branch takes: the first whose condition holds, else the `else`
/// node; `else: {fail: ...}` and a branch with no case taken and no else fail.
pub fn choose_branch<'a>(branch: &'a BranchNode, values: &impl Values) -> Result<&'a Node, NodeFailure> {
    for case in &branch.cases {
        let condition = case.condition.clone().unwrap_or_default();
        if condition::evaluate(&condition, values)? {
            return case
                .then_node
                .as_ref()
                .ok_or_else(|| NodeFailure::new(FailureCode::UnknownTarget, "the branch case has no node"));
        }
    }
    match &branch.otherwise {
        Some(branch_node::Otherwise::ElseNode(node)) => Ok(node),
        Some(branch_node::Otherwise::ElseFail(message)) => {
            Err(NodeFailure::new(FailureCode::BranchFailed, message.clone()))
        }
        None => Err(NodeFailure::new(FailureCode::NoBranchTaken, "no case of the branch matched and it has no else")),
    }
}

/// The items of a map node, or why its inputs cannot be split.
pub fn map_items(map_node: &MapNode, inputs: &Outputs) -> Result<Vec<Outputs>, NodeFailure> {
    map::split_items(inputs, &map_node.mapped_inputs)
        .map_err(|e| NodeFailure::new(FailureCode::MapInputs, e.to_string()))
}

/// How one map item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemResult {
    Succeeded(Outputs),
    Failed(NodeFailure),
}

/// How a map node ends once every item has: an aborted item aborts the node;
/// otherwise the outputs gathered into lists if enough items succeeded (failed
/// ones become `none`), else MapFailed naming the first failure by index.
pub fn map_outcome(
    items: &[ItemResult],
    output_names: &[String],
    min_success_ratio: f64,
) -> Result<Outputs, NodeFailure> {
    let failed = || {
        items.iter().enumerate().filter_map(|(i, r)| match r {
            ItemResult::Failed(f) => Some((i, f)),
            ItemResult::Succeeded(_) => None,
        })
    };
    if let Some((_, aborted)) = failed().find(|(_, f)| f.code == FailureCode::Aborted) {
        return Err(aborted.clone());
    }
    let results: Vec<Option<Outputs>> = items
        .iter()
        .map(|r| match r {
            ItemResult::Succeeded(o) => Some(o.clone()),
            ItemResult::Failed(_) => None,
        })
        .collect();
    map::gather(&results, output_names, min_success_ratio).map_err(|e| {
        let first =
            failed().next().map(|(i, f)| format!("; first failure, item {i}: {}", f.message)).unwrap_or_default();
        NodeFailure::new(FailureCode::MapFailed, format!("{e}{first}"))
    })
}

/// When a failed attempt is tried again: at most `max_attempts` in all, only
/// for failures that another attempt could fix, after an exponential backoff
/// with jitter (so that many items failing together do not retry together).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryDecision {
    /// Start attempt `attempt` after waiting `after`.
    Retry {
        attempt: u32,
        after: Duration,
    },
    GiveUp,
}

impl RetryPolicy {
    /// The task's `retries:` extra attempts.
    pub fn for_task(task: &TaskTemplate, backoff: Backoff) -> RetryPolicy {
        RetryPolicy { max_attempts: task.retries.saturating_add(1), backoff }
    }

    /// After attempt `attempt` (1-based) failed with `code`. `jitter` in [0, 1)
    /// comes from the caller's randomness: the wait is between half and all of
    /// the backoff.
    pub fn decide(&self, attempt: u32, code: FailureCode, jitter: f64) -> RetryDecision {
        if !code.retryable() || attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let full = self.backoff.delay(attempt + 1);
        let after = full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        RetryDecision::Retry { attempt: attempt + 1, after }
    }
}

/// A task without a request takes a quarter CPU and 256 MiB, so that trivial
/// steps run side by side. Returns (CPU thousandths, MiB).
pub fn default_requests(requests: Option<ResourceQuantities>) -> (u64, u64) {
    let requests = requests.unwrap_or_default();
    let cpu = if requests.cpu_millis > 0 { requests.cpu_millis as u64 } else { 250 };
    let memory = if requests.memory_mib > 0 { requests.memory_mib } else { 256 };
    (cpu, memory)
}

/// `20261123-141758-3fa2c01b`: sortable by start time, 32 random bits against
/// clashes, valid as a Step Functions execution name (at most 80 characters of
/// `[A-Za-z0-9_-]`).
pub fn execution_name(now: chrono::DateTime<chrono::Utc>, random: u32) -> String {
    format!("{}-{random:08x}", now.format("%Y%m%d-%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::resolve::Values;
    use crate::proto::core::{
        BooleanExpression, Comparison, ComparisonOperator, IfBlock, Operand, Parameter, TypedInterface, Variable,
        boolean_expression, operand,
    };
    use std::collections::HashMap;

    struct Inputs(HashMap<String, Literal>);

    impl Values for Inputs {
        fn workflow_input(&self, name: &str) -> Option<&Literal> {
            self.0.get(name)
        }
        fn node_output(&self, _: &str, _: &str) -> Option<&Literal> {
            None
        }
    }

    fn t(text: &str) -> crate::proto::core::LiteralType {
        types::parse(&serde_json::json!(text)).unwrap()
    }

    fn var(name: &str, ty: &str) -> Variable {
        Variable { name: name.into(), r#type: Some(t(ty)), ..Default::default() }
    }

    fn node(id: &str) -> Node {
        Node { id: id.into(), ..Default::default() }
    }

    fn above(threshold: i64) -> BooleanExpression {
        BooleanExpression {
            expr: Some(boolean_expression::Expr::Comparison(Comparison {
                operator: ComparisonOperator::Gt as i32,
                left: Some(Operand { value: Some(operand::Value::WorkflowInput("n".into())) }),
                right: Some(Operand { value: Some(operand::Value::Literal(literal::integer(threshold))) }),
            })),
        }
    }

    fn branch(otherwise: Option<branch_node::Otherwise>) -> BranchNode {
        BranchNode {
            cases: vec![
                IfBlock { condition: Some(above(10)), then_node: Some(node("big")) },
                IfBlock { condition: Some(above(5)), then_node: Some(node("medium")) },
            ],
            otherwise,
        }
    }

    fn n(value: i64) -> Inputs {
        Inputs([("n".to_string(), literal::integer(value))].into())
    }

    #[test]
    fn the_first_matching_case_wins_then_else() {
        let b = branch(Some(branch_node::Otherwise::ElseNode(Box::new(node("small")))));
        assert_eq!(choose_branch(&b, &n(20)).unwrap().id, "big");
        assert_eq!(choose_branch(&b, &n(7)).unwrap().id, "medium");
        assert_eq!(choose_branch(&b, &n(1)).unwrap().id, "small");
    }

    #[test]
    fn else_fail_and_no_case_taken_fail_with_their_codes() {
        let b = branch(Some(branch_node::Otherwise::ElseFail("n is too small".into())));
        assert_eq!(choose_branch(&b, &n(1)), Err(NodeFailure::new(FailureCode::BranchFailed, "n is too small")));
        let failure = choose_branch(&branch(None), &n(1)).unwrap_err();
        assert_eq!(failure.code, FailureCode::NoBranchTaken);
        let failure = choose_branch(&branch(None), &Inputs(HashMap::new())).unwrap_err();
        assert_eq!(failure.code, FailureCode::InputUnavailable, "{failure:?}");
    }

    #[test]
    fn unbound_inputs_take_defaults_then_none_for_optionals() {
        let task = TaskTemplate {
            interface: Some(TypedInterface {
                inputs: vec![var("seed", "int"), var("label", "string?"), var("rate", "float")],
                outputs: vec![],
            }),
            input_defaults: [("seed".to_string(), literal::integer(7))].into(),
            ..Default::default()
        };
        let rate = Binding {
            var: "rate".into(),
            binding: Some(crate::proto::core::BindingData {
                value: Some(crate::proto::core::binding_data::Value::Literal(literal::float(0.5))),
            }),
        };
        let inputs = task_inputs(&task, &[rate], &Inputs(HashMap::new())).unwrap();
        assert_eq!(inputs["seed"], literal::integer(7));
        assert_eq!(inputs["label"], literal::none());
        assert_eq!(inputs["rate"], literal::float(0.5));

        let workflow = WorkflowTemplate {
            inputs: vec![
                Parameter { var: Some(var("seed", "int")), default: Some(literal::integer(1)) },
                Parameter { var: Some(var("note", "string?")), default: None },
                Parameter { var: Some(var("data", "file")), default: None },
            ],
            ..Default::default()
        };
        let inputs = workflow_inputs(&workflow, &[], &Inputs(HashMap::new())).unwrap();
        assert_eq!((inputs["seed"].clone(), inputs["note"].clone()), (literal::integer(1), literal::none()));
        let error = launch_inputs(&workflow, Outputs::new()).unwrap_err();
        assert_eq!(error, "missing required input \"data\" (file)");
    }

    fn ok(v: i64) -> ItemResult {
        ItemResult::Succeeded([("y".to_string(), literal::integer(v))].into())
    }

    fn failed(code: FailureCode, message: &str) -> ItemResult {
        ItemResult::Failed(NodeFailure::new(code, message))
    }

    #[test]
    fn a_map_ends_by_its_min_success_ratio() {
        let names = ["y".to_string()];
        let items = [ok(1), failed(FailureCode::NonZeroExit, "boom"), ok(3), ok(4)];
        let outputs = map_outcome(&items, &names, 0.75).unwrap();
        assert_eq!(
            outputs["y"],
            literal::list(vec![literal::integer(1), literal::none(), literal::integer(3), literal::integer(4)])
        );
        let failure = map_outcome(&items, &names, 1.0).unwrap_err();
        assert_eq!(failure.code, FailureCode::MapFailed);
        assert!(failure.message.contains("3 of 4 items succeeded") && failure.message.contains("item 1: boom"));
        assert_eq!(map_outcome(&[], &names, 1.0).unwrap()["y"], literal::list(vec![]), "an empty map succeeds");
    }

    #[test]
    fn an_aborted_item_aborts_the_map_whatever_the_ratio() {
        let items = [failed(FailureCode::NonZeroExit, "boom"), failed(FailureCode::Aborted, "cancelled"), ok(3)];
        assert_eq!(map_outcome(&items, &["y".to_string()], 0.0).unwrap_err().code, FailureCode::Aborted);
    }

    #[test]
    fn retries_follow_the_failure_kind_and_the_attempt_count() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff { initial: Duration::from_secs(2), max: Duration::from_secs(60) },
        };
        assert_eq!(
            policy.decide(1, FailureCode::NonZeroExit, 0.0),
            RetryDecision::Retry { attempt: 2, after: Duration::from_secs(1) }
        );
        assert_eq!(
            policy.decide(2, FailureCode::Timeout, 0.999_999),
            RetryDecision::Retry { attempt: 3, after: Duration::from_secs(4).mul_f64(0.5 + 0.5 * 0.999_999) }
        );
        assert_eq!(policy.decide(3, FailureCode::NonZeroExit, 0.5), RetryDecision::GiveUp, "attempts used up");
        for permanent in
            [FailureCode::BadOutputs, FailureCode::CannotStart, FailureCode::BadJob, FailureCode::DataError]
        {
            assert_eq!(policy.decide(1, permanent, 0.5), RetryDecision::GiveUp, "{permanent}");
        }
        assert_eq!(policy.decide(1, FailureCode::Aborted, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn defaults_and_names() {
        assert_eq!(default_requests(None), (250, 256));
        let asked = ResourceQuantities { cpu_millis: 2000, memory_mib: 4096, gpu: 0 };
        assert_eq!(default_requests(Some(asked)), (2000, 4096));
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let name = execution_name(now, 0x3fa2c01b);
        assert_eq!(name, "20261118-110640-3fa2c01b");
        assert!(name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
