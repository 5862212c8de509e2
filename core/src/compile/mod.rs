//! Validation and compilation: a [`SpecFile`] becomes the IDL's task templates,
//! compiled workflows and launch plans, or a list of [`Diagnostic`]s each naming
//! its path and what to do. Every spec check lives here, so the CLI, the local
//! executor and the register Lambda agree on what a valid spec is.

mod launch_plan;
mod task;
mod workflow;

use crate::dag;
use crate::diagnostics::{Diagnostic, Diagnostics, join};
use crate::expr::{self, Condition, Operand as ExprOperand};
use crate::literal;
use crate::proto::core::{
    Binding, BindingCollection, BindingData, BindingMap, BooleanExpression, BranchNode, CacheConfig, Comparison,
    CompiledWorkflow, Conjunction, Container, DagSummary, FailurePolicy, Identifier, IfBlock, LaunchPlanSpec,
    LiteralMap, LiteralType, MapNode, Node, NodeIds, NodeLevel, Operand, OutputReference, Parameter,
    ResourceQuantities, ResourceType, Resources, Schedule, Secret, SecretMount, TaskNode, TaskTemplate, TypedInterface,
    Variable, WorkflowNode, WorkflowTemplate, binding_data, boolean_expression, branch_node, node, operand, schedule,
    secret,
};
use crate::quantity;
use crate::schedule as sched;
use crate::spec::{self, BranchTargetSpec, Format, NodeSpec, SpecFile, TaskSpec, WorkflowSpec};
use crate::types::{self, Kind, check_assignable, display, kind};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub const DOMAINS: [&str; 3] = ["development", "staging", "production"];
pub const DEFAULT_PROJECT: &str = "default";
pub const DEFAULT_DOMAIN: &str = "development";
/// `{{code_dir}}` in a command: where the task's code is (the image's working
/// directory in a container, the spec file's directory in a local run).
pub const CODE_DIR_PLACEHOLDER: &str = "code_dir";
/// Batch allows at most 10 attempts per job.
pub const MAX_RETRIES: i64 = 9;
/// How deep subworkflows may nest (a workflow calling a workflow calling ...):
/// node paths, log directories and the cloud's child executions grow with it.
pub const MAX_WORKFLOW_NESTING: usize = 32;

/// Where compiled entities are registered. `None` takes the spec's own
/// `project:`/`domain:` (or the defaults).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub version: String,
}

/// Everything one spec document compiles to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compiled {
    pub project: String,
    pub domain: String,
    pub tasks: Vec<TaskTemplate>,
    pub workflows: Vec<CompiledWorkflow>,
    pub launch_plans: Vec<LaunchPlanSpec>,
}

impl Compiled {
    /// A workflow of the document as written: its template and DAG, with empty
    /// `tasks` and `subworkflows` (the document holds each entity once).
    pub fn workflow(&self, name: &str) -> Option<&CompiledWorkflow> {
        self.workflows
            .iter()
            .find(|w| w.template.as_ref().and_then(|t| t.id.as_ref()).is_some_and(|id| id.name == name))
    }

    /// Records `bundle` as the code of every task that needs code
    /// ([`needs_code`](crate::execution::contract::needs_code)); returns how many.
    /// Workflow closures copy their tasks from here, so call it before [`registrable`](Self::registrable).
    pub fn attach_code(&mut self, bundle: &crate::proto::core::CodeBundle) -> usize {
        let mut attached = 0;
        for task in &mut self.tasks {
            let needs = task.container.as_ref().is_some_and(|c| crate::execution::contract::needs_code(&c.args));
            if needs {
                task.code = Some(bundle.clone());
                attached += 1;
            }
        }
        attached
    }

    /// Whether any task of the document needs its code shipped.
    pub fn needs_code(&self) -> bool {
        self.tasks.iter().any(|t| t.container.as_ref().is_some_and(|c| crate::execution::contract::needs_code(&c.args)))
    }

    /// What registering this document stores: every task, every workflow as its
    /// closure, every launch plan (tasks first, so a reader meets callees first).
    pub fn registrable(&self) -> Vec<crate::ports::Entity> {
        use crate::ports::Entity;
        let workflows = self.workflows.iter().filter_map(|w| {
            let name = &w.template.as_ref()?.id.as_ref()?.name;
            self.closure(name).map(Entity::Workflow)
        });
        let tasks = self.tasks.iter().cloned().map(Entity::Task);
        let plans = self.launch_plans.iter().cloned().map(Entity::LaunchPlan);
        tasks.chain(workflows).chain(plans).collect()
    }

    /// One workflow with everything it runs, as registration stores it and an
    /// executor needs it (Flyte's compiled closure): every task it uses directly or
    /// through subworkflows, and every subworkflow once, callees first, each
    /// referenced by id and not nested again. Linear in the size of the spec.
    pub fn closure(&self, name: &str) -> Option<CompiledWorkflow> {
        let mut primary = self.workflow(name)?.clone();
        let mut task_names: Vec<String> = Vec::new();
        let mut workflow_names: Vec<String> = Vec::new();
        // Depth-first, callees before callers; nesting is bounded by MAX_WORKFLOW_NESTING.
        fn visit(doc: &Compiled, w: &CompiledWorkflow, tasks: &mut Vec<String>, workflows: &mut Vec<String>) {
            for (kind, callee) in references(w) {
                match kind {
                    ResourceType::Task if !tasks.contains(&callee) => tasks.push(callee),
                    ResourceType::Workflow if !workflows.contains(&callee) => {
                        // Callees first; the graph is acyclic, so `callee` is not added meanwhile.
                        if let Some(sub) = doc.workflow(&callee) {
                            visit(doc, sub, tasks, workflows);
                        }
                        workflows.push(callee);
                    }
                    _ => {}
                }
            }
        }
        visit(self, &primary, &mut task_names, &mut workflow_names);
        let task_id = |t: &TaskTemplate| t.id.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        primary.tasks =
            task_names.iter().filter_map(|n| self.tasks.iter().find(|t| task_id(t) == *n).cloned()).collect();
        primary.subworkflows = workflow_names.iter().filter_map(|n| self.workflow(n).cloned()).collect();
        Some(primary)
    }
}

/// The tasks and workflows a workflow's nodes (branch cases included) call, in node order.
fn references(w: &CompiledWorkflow) -> Vec<(ResourceType, String)> {
    let mut out = Vec::new();
    let nodes = w.template.as_ref().map(|t| t.nodes.as_slice()).unwrap_or_default();
    for n in nodes {
        let mut targets = vec![n];
        if let Some(node::Target::Branch(b)) = &n.target {
            targets.extend(b.cases.iter().filter_map(|c| c.then_node.as_ref()));
            if let Some(branch_node::Otherwise::ElseNode(inner)) = &b.otherwise {
                targets.push(inner);
            }
        }
        for target in targets {
            match &target.target {
                Some(node::Target::Task(TaskNode { task_id: Some(id) }))
                | Some(node::Target::Map(MapNode { task_id: Some(id), .. })) => {
                    out.push((ResourceType::Task, id.name.clone()))
                }
                Some(node::Target::Workflow(WorkflowNode { workflow_id: Some(id) })) => {
                    out.push((ResourceType::Workflow, id.name.clone()))
                }
                _ => {}
            }
        }
    }
    out
}

/// Parses and compiles one document.
pub fn compile_text(text: &str, format: Format, options: &Options) -> Result<Compiled, Diagnostics> {
    let spec = spec::parse(text, format)?;
    compile(&spec, options)
}

pub fn compile(spec: &SpecFile, options: &Options) -> Result<Compiled, Diagnostics> {
    let mut c = Compiler {
        spec,
        diags: Diagnostics::default(),
        project: String::new(),
        domain: String::new(),
        version: options.version.clone(),
        tasks: IndexMap::new(),
        workflows: HashMap::new(),
    };
    c.project = options.project.clone().or_else(|| spec.project.clone()).unwrap_or_else(|| DEFAULT_PROJECT.into());
    c.domain = options.domain.clone().or_else(|| spec.domain.clone()).unwrap_or_else(|| DEFAULT_DOMAIN.into());
    c.check_namespace();
    if spec.tasks.is_empty() && spec.workflows.is_empty() && spec.launch_plans.is_empty() {
        c.diags.push(
            Diagnostic::new("", "the document defines no tasks, workflows or launch plans")
                .with_hint("a spec has top-level sections tasks:, workflows: and launch_plans: (docs/spec.md)"),
        );
    }

    for (name, task) in &spec.tasks {
        let compiled = c.task(name, task);
        c.tasks.insert(name.clone(), compiled);
    }
    for name in c.workflow_order() {
        let compiled = c.workflow(&name, &spec.workflows[&name]);
        c.workflows.insert(name, compiled);
    }
    let launch_plans: Vec<_> = spec.launch_plans.iter().filter_map(|(name, lp)| c.launch_plan(name, lp)).collect();
    // In the document's order, moved out rather than cloned: a workflow can be large.
    let workflows: Vec<CompiledWorkflow> =
        spec.workflows.keys().filter_map(|name| c.workflows.remove(name).flatten()).collect();

    let Compiler { diags, project, domain, tasks, .. } = c;
    diags.into_result(Compiled {
        project,
        domain,
        tasks: tasks.into_values().flatten().collect(),
        workflows,
        launch_plans,
    })
}

struct Compiler<'a> {
    spec: &'a SpecFile,
    diags: Diagnostics,
    project: String,
    domain: String,
    version: String,
    /// `None` marks an invalid entity, already reported: its users are not reported again.
    tasks: IndexMap<String, Option<TaskTemplate>>,
    workflows: HashMap<String, Option<CompiledWorkflow>>,
}

/// What a node takes and gives, known before its bindings are compiled.
struct NodeInterface {
    /// (name, type, may be left unbound)
    inputs: Vec<(String, LiteralType, bool)>,
    /// `None` when the node's target is invalid (already reported).
    outputs: Option<IndexMap<String, LiteralType>>,
    description: String,
}

/// Names visible to bindings inside one workflow.
struct Scope<'s> {
    workflow: &'s str,
    inputs: &'s IndexMap<String, LiteralType>,
    nodes: &'s IndexMap<String, NodeInterface>,
}

enum Reference {
    Input(String),
    Output { node: usize, node_id: String, var: String },
}

impl Compiler<'_> {
    pub(super) fn id(&self, resource_type: ResourceType, name: &str) -> Identifier {
        Identifier {
            resource_type: resource_type as i32,
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: name.to_string(),
            version: self.version.clone(),
        }
    }

    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.diags.push(Diagnostic::new(path, message).with_hint(hint));
    }

    pub(super) fn check_namespace(&mut self) {
        if !is_project_name(&self.project) {
            let message = format!("project \"{}\" is not a valid project name", self.project);
            self.error(
                "project",
                message,
                "use lowercase letters, digits and '-', starting with a letter (at most 63)",
            );
        }
        if !DOMAINS.contains(&self.domain.as_str()) {
            let message = format!("domain \"{}\" is not one of development, staging, production", self.domain);
            self.error("domain", message, "set domain: development (the default), staging or production");
        }
        if !self.version.is_empty() && !is_version(&self.version) {
            let message = format!("version \"{}\" is not a valid version label", self.version);
            self.error(
                "version",
                message,
                "use letters, digits, '.', '_' and '-' (at most 128), e.g. v1 or 2026-11-23.1",
            );
        }
    }

    pub(super) fn check_name(&mut self, path: &str, what: &str, name: &str) -> bool {
        if is_name(name) {
            return true;
        }
        let message = format!("\"{name}\" is not a valid {what} name");
        self.error(path, message, "start with a letter; then letters, digits, '_' or '-'; at most 63 characters");
        false
    }

    pub(super) fn check_variable_name(&mut self, path: &str, name: &str) -> bool {
        if is_variable(name) {
            return true;
        }
        let message = format!("\"{name}\" is not a valid input/output name");
        self.error(
            path,
            message,
            "use letters, digits and '_', starting with a letter or '_' (it appears in {{inputs.NAME}})",
        );
        false
    }
}

fn kind_of_simple(t: &LiteralType) -> Option<crate::proto::core::SimpleType> {
    match kind(t) {
        Kind::Simple(s) => Some(s),
        Kind::Optional(inner) => kind_of_simple(inner),
        _ => None,
    }
}

/// Whether a value holds a `$reference` anywhere (`$$` escapes a literal `$`).
fn contains_reference(value: &Value) -> bool {
    match value {
        Value::String(s) => s.starts_with('$') && !s.starts_with("$$"),
        Value::Array(items) => items.iter().any(contains_reference),
        Value::Object(entries) => entries.values().any(contains_reference),
        _ => false,
    }
}

/// Turns `$$text` into the literal `$text`, everywhere in a value.
fn unescape(value: &Value) -> Value {
    match value {
        Value::String(s) if s.starts_with("$$") => Value::String(s[1..].to_string()),
        Value::Array(items) => Value::Array(items.iter().map(unescape).collect()),
        Value::Object(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), unescape(v))).collect()),
        other => other.clone(),
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_project_name(name: &str) -> bool {
    is_name(name) && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_variable(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_env_name(name: &str) -> bool {
    is_variable(name)
}

fn is_version(version: &str) -> bool {
    version.len() <= 128 && version.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "(none)".into() } else { names.join(", ") }
}

/// The closest candidate within two edits, for "did you mean" hints.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != b[j])).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}
