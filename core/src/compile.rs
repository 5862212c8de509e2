//! Validation and compilation: a [`SpecFile`] becomes the IDL's task templates,
//! compiled workflows and launch plans, or a list of [`Diagnostic`]s each naming
//! its path and what to do. Every check the issue tracker calls "bad input" lives
//! here, so the CLI, the local executor and the register Lambda agree.

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
    pub fn workflow(&self, name: &str) -> Option<&CompiledWorkflow> {
        self.workflows
            .iter()
            .find(|w| w.template.as_ref().and_then(|t| t.id.as_ref()).is_some_and(|id| id.name == name))
    }
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
    let mut workflows = Vec::new();
    for name in c.workflow_order() {
        let compiled = c.workflow(&name, &spec.workflows[&name]);
        if let Some(w) = &compiled {
            workflows.push(w.clone());
        }
        c.workflows.insert(name, compiled);
    }
    // Keep the document's order in the output.
    workflows.sort_by_key(|w| spec.workflows.get_index_of(&w.template.as_ref().unwrap().id.as_ref().unwrap().name));
    let launch_plans: Vec<_> = spec.launch_plans.iter().filter_map(|(name, lp)| c.launch_plan(name, lp)).collect();

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
    fn id(&self, resource_type: ResourceType, name: &str) -> Identifier {
        Identifier {
            resource_type: resource_type as i32,
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: name.to_string(),
            version: self.version.clone(),
        }
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.diags.push(Diagnostic::new(path, message).with_hint(hint));
    }

    fn check_namespace(&mut self) {
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

    fn check_name(&mut self, path: &str, what: &str, name: &str) -> bool {
        if is_name(name) {
            return true;
        }
        let message = format!("\"{name}\" is not a valid {what} name");
        self.error(path, message, "start with a letter; then letters, digits, '_' or '-'; at most 63 characters");
        false
    }

    fn check_variable_name(&mut self, path: &str, name: &str) -> bool {
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

    // ---------------------------------------------------------------- tasks

    fn task(&mut self, name: &str, spec: &TaskSpec) -> Option<TaskTemplate> {
        let path = join("tasks", name);
        let errors_before = self.diags.len();
        self.check_name(&path, "task", name);
        if spec.image.trim().is_empty() {
            self.error(join(&path, "image"), "image is empty", "name the container image, e.g. python:3.11-slim");
        }
        if spec.command.is_empty() {
            self.error(
                join(&path, "command"),
                "command is empty",
                "give the argv, e.g. [python, train.py, \"{{inputs.seed}}\"]",
            );
        }

        let (inputs, input_defaults) = self.variables(&join(&path, "inputs"), &spec.inputs, true);
        let (outputs, _) = self.variables(&join(&path, "outputs"), &spec.outputs, false);
        self.check_placeholders(&join(&path, "command"), &spec.command, &inputs, &outputs);

        for key in spec.env.keys() {
            let env_path = join(&join(&path, "env"), key);
            if !is_env_name(key) {
                self.error(
                    env_path,
                    format!("\"{key}\" is not a valid environment variable name"),
                    "use letters, digits and '_', not starting with a digit",
                );
            } else if key.starts_with("UPDRAFT_") {
                self.error(
                    env_path,
                    format!("\"{key}\" is reserved"),
                    "UPDRAFT_* variables are set by Updraft itself; choose another name",
                );
            }
        }

        let resources = spec.resources.as_ref().and_then(|r| self.resources(&join(&path, "resources"), r));
        let cache = spec.cache.as_ref().and_then(|c| self.cache(&join(&path, "cache"), c));
        let retries = match &spec.retries {
            None => 0,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|r| (0..=MAX_RETRIES).contains(&r)) => {
                n.as_i64().unwrap() as u32
            }
            Some(other) => {
                let message = format!("retries must be a whole number from 0 to {MAX_RETRIES}, found {other}");
                self.error(
                    join(&path, "retries"),
                    message,
                    "retries counts extra attempts after a failure; 0 means run once",
                );
                0
            }
        };
        let timeout = spec.timeout.as_ref().and_then(|t| self.timeout(&join(&path, "timeout"), t));
        let secrets = self.secrets(&join(&path, "secrets"), spec);

        if self.diags.len() > errors_before {
            return None;
        }
        Some(TaskTemplate {
            id: Some(self.id(ResourceType::Task, name)),
            interface: Some(TypedInterface { inputs, outputs }),
            container: Some(Container {
                image: spec.image.trim().to_string(),
                args: spec.command.clone(),
                env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            }),
            resources,
            cache,
            retries,
            timeout,
            secrets,
            description: spec.description.clone().unwrap_or_default(),
            input_defaults,
        })
    }

    /// Reads `name: type` or `name: {type, default, description}` entries.
    fn variables(
        &mut self,
        path: &str,
        entries: &IndexMap<String, Value>,
        defaults_allowed: bool,
    ) -> (Vec<Variable>, BTreeMap<String, crate::proto::core::Literal>) {
        let mut vars = Vec::new();
        let mut defaults = BTreeMap::new();
        for (name, value) in entries {
            let var_path = join(path, name);
            if !self.check_variable_name(&var_path, name) {
                continue;
            }
            let (type_value, default, description) = match value {
                Value::Object(o) if o.contains_key("type") => {
                    if let Some(extra) = o.keys().find(|k| !["type", "default", "description"].contains(&k.as_str())) {
                        let message = format!("unknown field \"{extra}\"");
                        self.error(join(&var_path, extra), message, "an input takes type, default and description");
                    }
                    (&o["type"], o.get("default"), o.get("description").and_then(Value::as_str).unwrap_or_default())
                }
                other => (other, None, ""),
            };
            let literal_type = match types::parse(type_value) {
                Ok(t) => t,
                Err(e) => {
                    self.error(join(&var_path, "type"), e, "see the type list in docs/spec.md");
                    continue;
                }
            };
            if let Some(default) = default {
                if !defaults_allowed {
                    self.error(
                        join(&var_path, "default"),
                        "outputs cannot have defaults",
                        "remove default; the task must write every output",
                    );
                } else {
                    match literal::from_json(&unescape(default), &literal_type) {
                        Ok(l) => {
                            defaults.insert(name.clone(), l);
                        }
                        Err(e) => self.error(
                            join(&var_path, "default"),
                            format!("default does not fit the type: {e}"),
                            "give a default of the declared type",
                        ),
                    }
                }
            }
            vars.push(Variable {
                name: name.clone(),
                r#type: Some(literal_type),
                description: description.to_string(),
            });
        }
        (vars, defaults)
    }

    fn check_placeholders(&mut self, path: &str, command: &[String], inputs: &[Variable], outputs: &[Variable]) {
        for (i, arg) in command.iter().enumerate() {
            let mut rest = arg.as_str();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let Some(end) = after.find("}}") else {
                    self.error(
                        join(path, &i.to_string()),
                        format!("unclosed placeholder in \"{arg}\""),
                        "close it with }}",
                    );
                    break;
                };
                let placeholder = after[..end].trim();
                let known = match placeholder.split_once('.') {
                    Some(("inputs", n)) => inputs.iter().any(|v| v.name == n),
                    Some(("outputs", n)) => outputs.iter().any(|v| v.name == n),
                    _ => placeholder == CODE_DIR_PLACEHOLDER,
                };
                if !known {
                    let names = |vars: &[Variable], prefix: &str| {
                        vars.iter().map(|v| format!("{{{{{prefix}.{}}}}}", v.name)).collect::<Vec<_>>()
                    };
                    let mut available = vec![format!("{{{{{CODE_DIR_PLACEHOLDER}}}}}")];
                    available.extend(names(inputs, "inputs"));
                    available.extend(names(outputs, "outputs"));
                    let message = format!("unknown placeholder {{{{{placeholder}}}}} in \"{arg}\"");
                    let hint = format!("available: {}", available.join(", "));
                    self.error(join(path, &i.to_string()), message, hint);
                }
                rest = &after[end + 2..];
            }
        }
    }

    fn resources(&mut self, path: &str, value: &Value) -> Option<Resources> {
        let Value::Object(map) = value else {
            self.error(
                path,
                format!("resources must be a mapping, found {value}"),
                "write resources: {cpu: 1, memory: 2Gi, gpu: 0}",
            );
            return None;
        };
        let shorthand = ["cpu", "memory", "gpu"].iter().any(|k| map.contains_key(*k));
        let nested = map.contains_key("requests") || map.contains_key("limits");
        if shorthand && nested {
            self.error(
                path,
                "resources mixes cpu/memory/gpu with requests/limits",
                "use either {cpu, memory, gpu} or {requests: {...}, limits: {...}}",
            );
            return None;
        }
        if let Some(extra) = map.keys().find(|k| !["cpu", "memory", "gpu", "requests", "limits"].contains(&k.as_str()))
        {
            self.error(
                join(path, extra),
                format!("unknown resource \"{extra}\""),
                "resources are cpu, memory and gpu (optionally under requests and limits)",
            );
            return None;
        }
        if shorthand {
            let q = self.quantities(path, map)?;
            return Some(Resources { requests: Some(q), limits: Some(q) });
        }
        let mut part = |key: &str| -> Option<Option<ResourceQuantities>> {
            match map.get(key) {
                None => Some(None),
                Some(Value::Object(m)) => self.quantities(&join(path, key), m).map(Some),
                Some(other) => {
                    self.error(
                        join(path, key),
                        format!("{key} must be a mapping, found {other}"),
                        "write {cpu: 1, memory: 2Gi}",
                    );
                    None
                }
            }
        };
        let requests = part("requests")?;
        let limits = part("limits")?;
        let requests = requests.or(limits);
        let limits = limits.or(requests);
        if let (Some(r), Some(l)) = (requests, limits) {
            for (what, below) in [
                ("cpu", r.cpu_millis > l.cpu_millis && l.cpu_millis > 0),
                ("memory", r.memory_mib > l.memory_mib && l.memory_mib > 0),
                ("gpu", r.gpu != l.gpu && map.contains_key("limits") && map.contains_key("requests")),
            ] {
                if below {
                    self.error(
                        join(&join(path, "limits"), what),
                        format!("the {what} limit is below (or, for gpu, differs from) the request"),
                        "a limit must be at least the request; GPUs cannot be shared, so request and limit are equal",
                    );
                    return None;
                }
            }
        }
        Some(Resources { requests, limits })
    }

    fn quantities(&mut self, path: &str, map: &serde_json::Map<String, Value>) -> Option<ResourceQuantities> {
        let mut q = ResourceQuantities::default();
        let mut ok = true;
        for (key, value) in map {
            let result = match key.as_str() {
                "cpu" => quantity::parse_cpu(value).map(|v| q.cpu_millis = v),
                "memory" => quantity::parse_memory(value).map(|v| q.memory_mib = v),
                "gpu" => quantity::parse_gpu(value).map(|v| q.gpu = v),
                other => Err(format!("unknown resource \"{other}\"; resources are cpu, memory and gpu")),
            };
            if let Err(e) = result {
                self.error(join(path, key), e, "examples: cpu: 2, cpu: \"500m\", memory: 4Gi, gpu: 1");
                ok = false;
            }
        }
        ok.then_some(q)
    }

    fn cache(&mut self, path: &str, value: &Value) -> Option<CacheConfig> {
        let hint = "write cache: {version: \"1\"} to cache outputs (bump the version to invalidate), or cache: false";
        let (enabled, version) = match value {
            Value::Bool(b) => (*b, None),
            Value::Object(o) => {
                if let Some(extra) = o.keys().find(|k| *k != "enabled" && *k != "version") {
                    self.error(join(path, extra), format!("unknown field \"{extra}\""), hint);
                    return None;
                }
                let enabled = match o.get("enabled") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        self.error(
                            join(path, "enabled"),
                            format!("enabled must be true or false, found {other}"),
                            hint,
                        );
                        return None;
                    }
                };
                let version = match o.get("version") {
                    None => None,
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(other) => {
                        self.error(
                            join(path, "version"),
                            format!("cache version must be a non-empty string, found {other}"),
                            hint,
                        );
                        return None;
                    }
                };
                (enabled, version)
            }
            other => {
                self.error(path, format!("cache must be a mapping or false, found {other}"), hint);
                return None;
            }
        };
        match (enabled, version) {
            (true, None) => {
                self.error(path, "cache is enabled but has no version", "add cache: {version: \"1\"}; bump it whenever the task's logic changes in a way the image and command do not show");
                None
            }
            (enabled, version) => Some(CacheConfig { enabled, version: version.unwrap_or_default() }),
        }
    }

    fn timeout(&mut self, path: &str, value: &Value) -> Option<crate::proto::Duration> {
        let parsed = match value {
            Value::String(s) => quantity::parse_duration(s),
            Value::Number(n) => n
                .as_u64()
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| format!("timeout {n} is not a whole number of seconds")),
            other => Err(format!("timeout must be a duration, found {other}")),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.error(
                    path,
                    "timeout is zero",
                    "give the longest an attempt may run, e.g. 30m; leave timeout out for no limit",
                );
                None
            }
            Ok(d) => Some(crate::proto::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }),
            Err(e) => {
                self.error(path, e, "e.g. timeout: 30m or timeout: 2h");
                None
            }
        }
    }

    fn secrets(&mut self, path: &str, spec: &TaskSpec) -> Vec<Secret> {
        let mut out = Vec::new();
        for (name, s) in &spec.secrets {
            let p = join(path, name);
            if !is_env_name(name) {
                self.error(
                    &p,
                    format!("\"{name}\" is not a valid secret name"),
                    "the name becomes an environment variable or file name: letters, digits and '_'",
                );
                continue;
            }
            let source = match (&s.secrets_manager, &s.ssm) {
                (Some(arn), None) if !arn.trim().is_empty() => secret::Source::SecretsManager(arn.trim().to_string()),
                (None, Some(param)) if !param.trim().is_empty() => {
                    secret::Source::SsmParameter(param.trim().to_string())
                }
                _ => {
                    self.error(&p, "a secret names exactly one source", "write {secrets_manager: <ARN or name>} or {ssm: /path/to/parameter}; the value itself never goes in a spec");
                    continue;
                }
            };
            let mount = match s.mount.as_deref() {
                None | Some("env") => SecretMount::Env,
                Some("file") => SecretMount::File,
                Some(other) => {
                    self.error(
                        join(&p, "mount"),
                        format!("unknown mount \"{other}\""),
                        "mount is env (default) or file",
                    );
                    continue;
                }
            };
            out.push(Secret { name: name.clone(), source: Some(source), mount: mount as i32 });
        }
        out
    }

    // ------------------------------------------------------------ workflows

    /// Workflows in an order where subworkflows come first; reports recursion.
    fn workflow_order(&mut self) -> Vec<String> {
        let names: Vec<&String> = self.spec.workflows.keys().collect();
        let upstream: Vec<Vec<usize>> = self
            .spec
            .workflows
            .values()
            .map(|w| {
                let mut refs: Vec<usize> = Vec::new();
                for node in w.nodes.values() {
                    let mut targets: Vec<&Option<String>> = vec![&node.workflow];
                    if let Some(b) = &node.branch {
                        targets.extend(b.cases.iter().map(|c| &c.then.workflow));
                        targets.extend(b.otherwise.iter().map(|e| &e.workflow));
                    }
                    refs.extend(targets.into_iter().flatten().filter_map(|n| self.spec.workflows.get_index_of(n)));
                }
                refs
            })
            .collect();
        match dag::analyze(&upstream) {
            Ok(a) => a.order.iter().map(|&i| names[i].clone()).collect(),
            Err(cycle) => {
                let chain: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
                self.error(
                    join("workflows", chain[0]),
                    format!("workflows call each other in a cycle: {}", chain.join(" → ")),
                    "a workflow cannot contain itself; break the cycle",
                );
                Vec::new()
            }
        }
    }

    fn workflow(&mut self, name: &str, spec: &WorkflowSpec) -> Option<CompiledWorkflow> {
        let path = join("workflows", name);
        let errors_before = self.diags.len();
        self.check_name(&path, "workflow", name);

        let (input_vars, input_defaults) = self.variables(&join(&path, "inputs"), &spec.inputs, true);
        let inputs: IndexMap<String, LiteralType> =
            input_vars.iter().map(|v| (v.name.clone(), v.r#type.clone().unwrap_or_default())).collect();
        if spec.nodes.is_empty() {
            self.error(join(&path, "nodes"), "the workflow has no nodes", "add at least one node under nodes:");
        }

        // Pass 1: what each node takes and gives.
        let mut interfaces = IndexMap::with_capacity(spec.nodes.len());
        for (id, node) in &spec.nodes {
            let node_path = join(&join(&path, "nodes"), id);
            if id == "inputs" {
                self.error(&node_path, "\"inputs\" is reserved for the workflow's inputs", "rename the node");
            } else {
                self.check_name(&node_path, "node", id);
            }
            let interface = self.node_interface(&node_path, node);
            interfaces.insert(id.clone(), interface);
        }

        // Pass 2: bindings, now that every node's outputs are known.
        let scope = Scope { workflow: name, inputs: &inputs, nodes: &interfaces };
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        let mut upstream = Vec::with_capacity(spec.nodes.len());
        for (index, (id, node_spec)) in spec.nodes.iter().enumerate() {
            let node_path = join(&join(&path, "nodes"), id);
            let mut deps = Vec::new();
            let mut node = self.node(&node_path, id, node_spec, &scope, &mut deps);
            for after in &node_spec.after {
                match interfaces.get_index_of(after) {
                    Some(i) => deps.push(i),
                    None => self.unknown_node(&join(&node_path, "after"), after, &scope),
                }
            }
            deps.sort_unstable();
            deps.dedup();
            if deps.contains(&index) {
                self.error(
                    &node_path,
                    format!("node \"{id}\" depends on itself"),
                    "a node cannot consume its own outputs or wait for itself",
                );
                deps.retain(|&d| d != index);
            }
            if let Some(n) = node.as_mut() {
                n.upstream_node_ids = deps.iter().map(|&d| interfaces.get_index(d).unwrap().0.clone()).collect();
            }
            nodes.push(node);
            upstream.push(deps);
        }

        let analysis = match dag::analyze(&upstream) {
            Ok(a) => Some(a),
            Err(cycle) => {
                let chain: Vec<&str> = cycle.iter().map(|&i| interfaces.get_index(i).unwrap().0.as_str()).collect();
                self.error(
                    join(&join(&path, "nodes"), chain[0]),
                    format!("the nodes form a cycle: {}", chain.join(" → ")),
                    "a workflow is a DAG: remove one of these dependencies",
                );
                None
            }
        };

        let (outputs, output_bindings) = self.workflow_outputs(&path, spec, &scope);
        let failure_policy = match spec.on_failure.as_deref() {
            None | Some("fail_fast") => FailurePolicy::FailImmediately,
            Some("finish_independent") => FailurePolicy::FailAfterExecutableNodesComplete,
            Some(other) => {
                self.error(
                    join(&path, "on_failure"),
                    format!("unknown failure policy \"{other}\""),
                    "on_failure is fail_fast (default) or finish_independent",
                );
                FailurePolicy::FailImmediately
            }
        };

        if self.diags.len() > errors_before {
            return None;
        }
        let analysis = analysis?;
        let nodes: Vec<Node> = nodes.into_iter().map(|n| n.expect("no errors means every node compiled")).collect();
        let ids = |indices: &[usize]| -> Vec<String> { indices.iter().map(|&i| nodes[i].id.clone()).collect() };
        let dag = DagSummary {
            topological_order: ids(&analysis.order),
            levels: analysis.levels.iter().map(|l| NodeLevel { node_ids: ids(l) }).collect(),
            critical_path: ids(&analysis.critical_path),
            max_parallelism: analysis.max_parallelism as u32,
            downstream: analysis
                .downstream
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.is_empty())
                .map(|(i, d)| (nodes[i].id.clone(), NodeIds { ids: ids(d) }))
                .collect(),
        };

        let (tasks, subworkflows) = self.dependencies(&nodes);
        let parameters = input_vars
            .into_iter()
            .map(|var| {
                let default = input_defaults.get(&var.name).cloned();
                Parameter { var: Some(var), default }
            })
            .collect();
        Some(CompiledWorkflow {
            template: Some(WorkflowTemplate {
                id: Some(self.id(ResourceType::Workflow, name)),
                inputs: parameters,
                outputs,
                nodes,
                output_bindings,
                failure_policy: failure_policy as i32,
                description: spec.description.clone().unwrap_or_default(),
            }),
            dag: Some(dag),
            tasks,
            subworkflows,
        })
    }

    /// The tasks and subworkflows that the nodes refer to, each once.
    fn dependencies(&self, nodes: &[Node]) -> (Vec<TaskTemplate>, Vec<CompiledWorkflow>) {
        let mut task_names: Vec<&str> = Vec::new();
        let mut workflow_names: Vec<&str> = Vec::new();
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
                    | Some(node::Target::Map(MapNode { task_id: Some(id), .. })) => task_names.push(&id.name),
                    Some(node::Target::Workflow(WorkflowNode { workflow_id: Some(id) })) => {
                        workflow_names.push(&id.name)
                    }
                    _ => {}
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let tasks = task_names
            .into_iter()
            .filter(|n| seen.insert(*n))
            .filter_map(|n| self.tasks.get(n).cloned().flatten())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let workflows = workflow_names
            .into_iter()
            .filter(|n| seen.insert(*n))
            .filter_map(|n| self.workflows.get(n).cloned().flatten())
            .collect();
        (tasks, workflows)
    }

    fn task_interface(&self, task: &TaskTemplate) -> NodeInterface {
        let interface = task.interface.clone().unwrap_or_default();
        NodeInterface {
            inputs: interface
                .inputs
                .iter()
                .map(|v| {
                    let t = v.r#type.clone().unwrap_or_default();
                    let optional = task.input_defaults.contains_key(&v.name) || types::is_optional(&t);
                    (v.name.clone(), t, optional)
                })
                .collect(),
            outputs: Some(
                interface.outputs.iter().map(|v| (v.name.clone(), v.r#type.clone().unwrap_or_default())).collect(),
            ),
            description: format!("task {}", task.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default()),
        }
    }

    fn workflow_interface(&self, workflow: &CompiledWorkflow) -> NodeInterface {
        let template = workflow.template.clone().unwrap_or_default();
        NodeInterface {
            inputs: template
                .inputs
                .iter()
                .map(|p| {
                    let var = p.var.clone().unwrap_or_default();
                    let t = var.r#type.clone().unwrap_or_default();
                    let optional = p.default.is_some() || types::is_optional(&t);
                    (var.name, t, optional)
                })
                .collect(),
            outputs: Some(
                template.outputs.iter().map(|v| (v.name.clone(), v.r#type.clone().unwrap_or_default())).collect(),
            ),
            description: format!("workflow {}", template.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default()),
        }
    }

    fn invalid_interface() -> NodeInterface {
        NodeInterface { inputs: Vec::new(), outputs: None, description: String::new() }
    }

    /// Looks up a task (`task: NAME`) or workflow (`workflow: NAME`) target.
    fn target_interface(&mut self, path: &str, task: Option<&String>, workflow: Option<&String>) -> NodeInterface {
        match (task, workflow) {
            (Some(t), None) => match self.tasks.get(t) {
                Some(Some(task)) => self.task_interface(task),
                Some(None) => Self::invalid_interface(),
                None => {
                    let hint = suggest(t, self.spec.tasks.keys()).map_or_else(
                        || format!("define it under tasks: (known tasks: {})", list(self.spec.tasks.keys())),
                        |s| format!("did you mean \"{s}\"?"),
                    );
                    self.error(join(path, "task"), format!("unknown task \"{t}\""), hint);
                    Self::invalid_interface()
                }
            },
            (None, Some(w)) => match self.workflows.get(w) {
                Some(Some(wf)) => self.workflow_interface(wf),
                Some(None) => Self::invalid_interface(),
                None => {
                    let hint = suggest(w, self.spec.workflows.keys()).map_or_else(
                        || {
                            format!(
                                "define it under workflows: (known workflows: {})",
                                list(self.spec.workflows.keys())
                            )
                        },
                        |s| format!("did you mean \"{s}\"?"),
                    );
                    // Workflows in a cycle were reported already and are absent from `self.workflows`.
                    if !self.spec.workflows.contains_key(w) {
                        self.error(join(path, "workflow"), format!("unknown workflow \"{w}\""), hint);
                    }
                    Self::invalid_interface()
                }
            },
            _ => {
                self.error(path, "a node runs exactly one of task, workflow, branch or map", "keep one of them");
                Self::invalid_interface()
            }
        }
    }

    fn node_interface(&mut self, path: &str, node: &NodeSpec) -> NodeInterface {
        let targets = [node.task.is_some(), node.workflow.is_some(), node.branch.is_some(), node.map.is_some()];
        if targets.iter().filter(|t| **t).count() != 1 {
            self.error(
                path,
                "a node runs exactly one of task, workflow, branch or map",
                "e.g. task: fit, or map: {task: fit, over: [x]}",
            );
            return Self::invalid_interface();
        }
        if let Some(map) = &node.map {
            let map_path = join(path, "map");
            let inner = self.target_interface(&map_path, Some(&map.task), None);
            let Some(outputs) = inner.outputs else { return inner };
            let ratio = self.min_success_ratio(&map_path, map.min_success_ratio.as_ref());
            for name in &map.over {
                if !inner.inputs.iter().any(|(n, _, _)| n == name) {
                    let message = format!("map over \"{name}\", which is not an input of task {}", map.task);
                    let known = list(inner.inputs.iter().map(|(n, _, _)| n));
                    self.error(
                        join(&map_path, "over"),
                        message,
                        format!("over names task inputs that get one list element each; inputs: {known}"),
                    );
                }
            }
            if map.over.is_empty() {
                self.error(
                    join(&map_path, "over"),
                    "over is empty",
                    "name the task inputs to map over, e.g. over: [x]",
                );
            }
            return NodeInterface {
                inputs: inner
                    .inputs
                    .into_iter()
                    .map(|(n, t, opt)| if map.over.contains(&n) { (n, types::list_of(t), false) } else { (n, t, opt) })
                    .collect(),
                outputs: Some(
                    outputs
                        .into_iter()
                        .map(|(n, t)| (n, types::list_of(if ratio < 1.0 { types::optional_of(t) } else { t })))
                        .collect(),
                ),
                description: format!("map over task {}", map.task),
            };
        }
        if let Some(branch) = &node.branch {
            return self.branch_interface(path, node, branch);
        }
        self.target_interface(path, node.task.as_ref(), node.workflow.as_ref())
    }

    fn min_success_ratio(&mut self, path: &str, value: Option<&Value>) -> f64 {
        match value {
            None => 1.0,
            Some(v) => match v.as_f64() {
                Some(r) if r > 0.0 && r <= 1.0 => r,
                _ => {
                    self.error(
                        join(path, "min_success_ratio"),
                        format!("min_success_ratio must be in (0, 1], found {v}"),
                        "e.g. 0.9 lets 10% of items fail",
                    );
                    1.0
                }
            },
        }
    }

    /// A branch's outputs: those of its cases, which must agree.
    fn branch_interface(&mut self, path: &str, node: &NodeSpec, branch: &spec::BranchSpec) -> NodeInterface {
        let branch_path = join(path, "branch");
        if !node.inputs.is_empty() {
            self.error(
                join(path, "inputs"),
                "a branch node takes no inputs of its own",
                "bind inputs inside each case: then: {task: x, inputs: {...}}",
            );
        }
        if branch.cases.is_empty() {
            self.error(
                join(&branch_path, "cases"),
                "a branch needs at least one case",
                "add cases: [{if: ..., then: {task: ...}}]",
            );
            return Self::invalid_interface();
        }
        let mut targets: Vec<(String, &BranchTargetSpec)> = branch
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| (join(&join(&join(&branch_path, "cases"), &i.to_string()), "then"), &c.then))
            .collect();
        if let Some(otherwise) = &branch.otherwise {
            targets.push((join(&branch_path, "else"), otherwise));
        }
        let mut outputs: Option<(String, IndexMap<String, LiteralType>)> = None;
        let mut valid = true;
        for (target_path, target) in targets {
            if target.fail.is_some() {
                if target.task.is_some() || target.workflow.is_some() || !target.inputs.is_empty() {
                    self.error(
                        &target_path,
                        "fail cannot be combined with task, workflow or inputs",
                        "write else: {fail: \"message\"} on its own",
                    );
                }
                if !target_path.ends_with("else") {
                    self.error(&target_path, "only else can fail", "move {fail: ...} to the branch's else");
                }
                continue;
            }
            let interface = self.target_interface(&target_path, target.task.as_ref(), target.workflow.as_ref());
            let Some(these) = interface.outputs else {
                valid = false;
                continue;
            };
            match &outputs {
                None => outputs = Some((target_path, these)),
                Some((first_path, first)) => {
                    let same = first.len() == these.len()
                        && first.iter().all(|(n, t)| these.get(n).is_some_and(|u| display(u) == display(t)));
                    if !same {
                        let show = |m: &IndexMap<String, LiteralType>| {
                            m.iter().map(|(n, t)| format!("{n}: {}", display(t))).collect::<Vec<_>>().join(", ")
                        };
                        let message =
                            format!("this case outputs ({}) but {first_path} outputs ({})", show(&these), show(first));
                        self.error(&target_path, message, "every case of a branch must produce the same outputs, so that downstream nodes can rely on them");
                        valid = false;
                    }
                }
            }
        }
        NodeInterface {
            inputs: Vec::new(),
            outputs: if valid { Some(outputs.map(|(_, o)| o).unwrap_or_default()) } else { None },
            description: "branch".into(),
        }
    }

    fn node(&mut self, path: &str, id: &str, spec: &NodeSpec, scope: &Scope, deps: &mut Vec<usize>) -> Option<Node> {
        let interface = &scope.nodes[id];
        interface.outputs.as_ref()?;
        let target = if let Some(branch) = &spec.branch {
            node::Target::Branch(Box::new(self.branch(path, id, branch, scope, deps)?))
        } else if let Some(map) = &spec.map {
            let map_path = join(path, "map");
            let concurrency = match &map.concurrency {
                None => 0,
                Some(v) => match v.as_u64() {
                    Some(c) if c <= 10_000 => c as u32,
                    _ => {
                        self.error(
                            join(&map_path, "concurrency"),
                            format!("concurrency must be a whole number from 0 (no limit) to 10000, found {v}"),
                            "e.g. concurrency: 16",
                        );
                        0
                    }
                },
            };
            node::Target::Map(MapNode {
                task_id: Some(self.id(ResourceType::Task, &map.task)),
                mapped_inputs: map.over.clone(),
                concurrency,
                min_success_ratio: self.min_success_ratio(&map_path, map.min_success_ratio.as_ref()),
            })
        } else if let Some(task) = &spec.task {
            node::Target::Task(TaskNode { task_id: Some(self.id(ResourceType::Task, task)) })
        } else {
            let workflow = spec.workflow.as_ref()?;
            node::Target::Workflow(WorkflowNode { workflow_id: Some(self.id(ResourceType::Workflow, workflow)) })
        };
        let inputs = self.bindings(
            path,
            &interface.inputs,
            &interface.description,
            &spec.inputs,
            scope,
            deps,
            spec.map.as_ref(),
        );
        Some(Node { id: id.to_string(), inputs: inputs?, upstream_node_ids: Vec::new(), target: Some(target) })
    }

    /// Compiles a node's input bindings against its interface; reports unknown,
    /// missing and mistyped inputs.
    #[allow(clippy::too_many_arguments)]
    fn bindings(
        &mut self,
        path: &str,
        interface: &[(String, LiteralType, bool)],
        target: &str,
        values: &IndexMap<String, Value>,
        scope: &Scope,
        deps: &mut Vec<usize>,
        map: Option<&spec::MapSpec>,
    ) -> Option<Vec<Binding>> {
        let inputs_path = join(path, "inputs");
        let mut ok = true;
        let mut out = Vec::with_capacity(values.len());
        for (name, value) in values {
            let binding_path = join(&inputs_path, name);
            let Some((_, expected, _)) = interface.iter().find(|(n, _, _)| n == name) else {
                let known = list(interface.iter().map(|(n, _, _)| n));
                let hint = suggest(name, interface.iter().map(|(n, _, _)| n)).map_or_else(
                    || format!("its inputs are: {known}"),
                    |s| format!("did you mean \"{s}\"? its inputs are: {known}"),
                );
                self.error(&binding_path, format!("{target} has no input \"{name}\""), hint);
                ok = false;
                continue;
            };
            let mapped = map.is_some_and(|m| m.over.contains(name));
            match self.binding(&binding_path, value, expected, scope, deps, mapped) {
                Some(b) => out.push(Binding { var: name.clone(), binding: Some(b) }),
                None => ok = false,
            }
        }
        for (name, _, optional) in interface {
            if !optional && !values.contains_key(name) {
                let message = format!("required input \"{name}\" of {target} is not bound");
                self.error(
                    join(&inputs_path, name),
                    message,
                    format!("bind it, e.g. {name}: $inputs.{name} or {name}: $other_node.output"),
                );
                ok = false;
            }
        }
        ok.then_some(out)
    }

    fn binding(
        &mut self,
        path: &str,
        value: &Value,
        expected: &LiteralType,
        scope: &Scope,
        deps: &mut Vec<usize>,
        mapped: bool,
    ) -> Option<BindingData> {
        if let Value::String(text) = value
            && let Some(reference) = text.strip_prefix('$').filter(|r| !r.starts_with('$'))
        {
            let (resolved, source_type) = self.reference(path, reference, scope)?;
            if let Some(source_type) = source_type
                && let Err(e) = check_assignable(&source_type, expected)
            {
                let (message, hint) = if mapped {
                    let element = types::list_element(expected).map(display).unwrap_or_default();
                    (
                        format!(
                            "map over a non-list or mistyped list: ${reference} is {}, but this mapped input needs {}",
                            display(&source_type),
                            display(expected)
                        ),
                        format!("bind a list whose items are {element}, or remove the input from over"),
                    )
                } else {
                    (
                        format!(
                            "type mismatch: ${reference} is {}, but the input expects {}: {e}",
                            display(&source_type),
                            display(expected)
                        ),
                        "bind an output of the expected type, or change the declared types so they agree".to_string(),
                    )
                };
                self.error(path, message, hint);
                return None;
            }
            if let Reference::Output { node, .. } = &resolved {
                deps.push(*node);
            }
            return Some(BindingData {
                value: Some(match resolved {
                    Reference::Input(name) => binding_data::Value::WorkflowInput(name),
                    Reference::Output { node_id, var, .. } => {
                        binding_data::Value::Promise(OutputReference { node_id, var })
                    }
                }),
            });
        }
        if contains_reference(value) {
            return match (value, kind(expected)) {
                (Value::Array(items), Kind::List(element)) => {
                    let mut bindings = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        bindings.push(self.binding(&join(path, &i.to_string()), item, element, scope, deps, false));
                    }
                    let bindings = bindings.into_iter().collect::<Option<Vec<_>>>()?;
                    Some(BindingData { value: Some(binding_data::Value::Collection(BindingCollection { bindings })) })
                }
                (Value::Object(entries), Kind::Map(value_type)) => {
                    let mut bindings = BTreeMap::new();
                    for (k, v) in entries {
                        bindings.insert(k.clone(), self.binding(&join(path, k), v, value_type, scope, deps, false));
                    }
                    let bindings = bindings.into_iter().map(|(k, v)| v.map(|v| (k, v))).collect::<Option<_>>()?;
                    Some(BindingData { value: Some(binding_data::Value::Map(BindingMap { bindings })) })
                }
                (Value::Object(entries), Kind::Struct(schema)) => {
                    let mut bindings = BTreeMap::new();
                    let mut ok = true;
                    for field in &schema.fields {
                        let field_type = field.r#type.clone().unwrap_or_default();
                        match entries.get(&field.name) {
                            Some(v) => match self.binding(&join(path, &field.name), v, &field_type, scope, deps, false)
                            {
                                Some(b) => {
                                    bindings.insert(field.name.clone(), b);
                                }
                                None => ok = false,
                            },
                            None if types::is_optional(&field_type) => {}
                            None => {
                                self.error(
                                    join(path, &field.name),
                                    format!("field \"{}\" of {} is missing", field.name, display(expected)),
                                    "give every field of the struct",
                                );
                                ok = false;
                            }
                        }
                    }
                    if let Some(extra) = entries.keys().find(|k| !schema.fields.iter().any(|f| &f.name == *k)) {
                        self.error(
                            join(path, extra),
                            format!("{} has no field \"{extra}\"", display(expected)),
                            "remove it or add it to the struct type",
                        );
                        ok = false;
                    }
                    ok.then_some(BindingData { value: Some(binding_data::Value::Map(BindingMap { bindings })) })
                }
                _ => {
                    let shape = if value.is_array() { "a list" } else { "a mapping" };
                    self.error(
                        path,
                        format!("type mismatch: {shape} of references cannot be passed as {}", display(expected)),
                        "bind a single $reference, or change the input's type to a list or map",
                    );
                    None
                }
            };
        }
        match literal::from_json(&unescape(value), expected) {
            Ok(l) => Some(BindingData { value: Some(binding_data::Value::Literal(l)) }),
            Err(e) => {
                let hint = if mapped {
                    "a mapped input takes a list, one item per task run".to_string()
                } else {
                    format!(
                        "give a value of type {}, or a reference such as $inputs.NAME or $NODE.OUTPUT",
                        display(expected)
                    )
                };
                let message = if mapped { format!("map over a non-list: {e}") } else { format!("type mismatch: {e}") };
                self.error(path, message, hint);
                None
            }
        }
    }

    /// Resolves `inputs.NAME` or `NODE.OUTPUT` (the text after `$`). The type is
    /// `None` when the referenced node is itself invalid (already reported).
    fn reference(&mut self, path: &str, text: &str, scope: &Scope) -> Option<(Reference, Option<LiteralType>)> {
        let Some((head, var)) =
            text.split_once('.').filter(|(h, v)| !h.is_empty() && !v.is_empty() && !v.contains('.'))
        else {
            self.error(path, format!("\"${text}\" is not a reference"), "write $inputs.NAME for a workflow input or $NODE.OUTPUT for a node's output (write $$ for a literal $)");
            return None;
        };
        if head == "inputs" {
            let Some(t) = scope.inputs.get(var) else {
                let hint = suggest(var, scope.inputs.keys()).map_or_else(
                    || {
                        format!(
                            "declare it under workflows.{}.inputs (declared: {})",
                            scope.workflow,
                            list(scope.inputs.keys())
                        )
                    },
                    |s| format!("did you mean $inputs.{s}?"),
                );
                self.error(path, format!("workflow {} has no input \"{var}\"", scope.workflow), hint);
                return None;
            };
            return Some((Reference::Input(var.to_string()), Some(t.clone())));
        }
        let Some((index, _, upstream)) = scope.nodes.get_full(head) else {
            self.unknown_node(path, head, scope);
            return None;
        };
        let Some(outputs) = &upstream.outputs else {
            return Some((Reference::Output { node: index, node_id: head.into(), var: var.into() }, None));
        };
        let Some(t) = outputs.get(var) else {
            let known = list(outputs.keys());
            let hint = suggest(var, outputs.keys()).map_or_else(
                || format!("its outputs are: {known}"),
                |s| format!("did you mean ${head}.{s}? its outputs are: {known}"),
            );
            self.error(path, format!("node \"{head}\" ({}) has no output \"{var}\"", upstream.description), hint);
            return None;
        };
        Some((Reference::Output { node: index, node_id: head.into(), var: var.into() }, Some(t.clone())))
    }

    fn unknown_node(&mut self, path: &str, name: &str, scope: &Scope) {
        let hint = suggest(name, scope.nodes.keys()).map_or_else(
            || format!("nodes of workflow {}: {}", scope.workflow, list(scope.nodes.keys())),
            |s| format!("did you mean \"{s}\"?"),
        );
        self.error(path, format!("unknown node \"{name}\" in workflow {}", scope.workflow), hint);
    }

    fn branch(
        &mut self,
        path: &str,
        id: &str,
        spec: &spec::BranchSpec,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<BranchNode> {
        let branch_path = join(path, "branch");
        let mut cases = Vec::new();
        let mut ok = true;
        for (i, case) in spec.cases.iter().enumerate() {
            let case_path = join(&join(&branch_path, "cases"), &i.to_string());
            let condition = self.condition(&join(&case_path, "if"), &case.condition, scope, deps);
            let then =
                self.branch_target(&join(&case_path, "then"), &format!("{id}-case-{i}"), &case.then, scope, deps);
            match (condition, then) {
                (Some(condition), Some(then)) => {
                    cases.push(IfBlock { condition: Some(condition), then_node: Some(then) })
                }
                _ => ok = false,
            }
        }
        let otherwise = match &spec.otherwise {
            None => None,
            Some(t) if t.fail.is_some() => Some(branch_node::Otherwise::ElseFail(t.fail.clone().unwrap_or_default())),
            Some(t) => match self.branch_target(&join(&branch_path, "else"), &format!("{id}-else"), t, scope, deps) {
                Some(node) => Some(branch_node::Otherwise::ElseNode(Box::new(node))),
                None => {
                    ok = false;
                    None
                }
            },
        };
        ok.then_some(BranchNode { cases, otherwise })
    }

    fn branch_target(
        &mut self,
        path: &str,
        id: &str,
        spec: &BranchTargetSpec,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<Node> {
        let interface = self.target_interface(path, spec.task.as_ref(), spec.workflow.as_ref());
        interface.outputs.as_ref()?;
        let inputs = self.bindings(path, &interface.inputs, &interface.description, &spec.inputs, scope, deps, None)?;
        let target = match (&spec.task, &spec.workflow) {
            (Some(t), _) => node::Target::Task(TaskNode { task_id: Some(self.id(ResourceType::Task, t)) }),
            (_, Some(w)) => {
                node::Target::Workflow(WorkflowNode { workflow_id: Some(self.id(ResourceType::Workflow, w)) })
            }
            _ => return None,
        };
        Some(Node { id: id.to_string(), inputs, upstream_node_ids: Vec::new(), target: Some(target) })
    }

    fn condition(&mut self, path: &str, text: &str, scope: &Scope, deps: &mut Vec<usize>) -> Option<BooleanExpression> {
        let parsed = match expr::parse(text) {
            Ok(c) => c,
            Err(e) => {
                self.error(
                    path,
                    format!("cannot read condition \"{text}\": {e}"),
                    "e.g. if: $score.accuracy >= 0.8 and $inputs.publish == true",
                );
                return None;
            }
        };
        self.boolean_expression(path, &parsed, scope, deps)
    }

    fn boolean_expression(
        &mut self,
        path: &str,
        c: &Condition,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<BooleanExpression> {
        Some(BooleanExpression {
            expr: Some(match c {
                Condition::Logical { op, left, right } => {
                    let left = self.boolean_expression(path, left, scope, deps);
                    let right = self.boolean_expression(path, right, scope, deps);
                    boolean_expression::Expr::Conjunction(Box::new(Conjunction {
                        operator: *op as i32,
                        left: Some(Box::new(left?)),
                        right: Some(Box::new(right?)),
                    }))
                }
                Condition::Compare { op, left, right } => {
                    let (left, left_type) = self.operand(path, left, scope, deps)?;
                    let (right, right_type) = self.operand(path, right, scope, deps)?;
                    let ordering = !matches!(
                        op,
                        crate::proto::core::ComparisonOperator::Eq | crate::proto::core::ComparisonOperator::Ne
                    );
                    if let (Some(a), Some(b)) = (&left_type, &right_type)
                        && let Err(e) = types::comparable(a, b, ordering)
                    {
                        self.error(
                            path,
                            format!("incomparable types in condition: {e}"),
                            "compare outputs and literals of the same kind, e.g. $score.accuracy >= 0.8",
                        );
                        return None;
                    }
                    boolean_expression::Expr::Comparison(Comparison {
                        operator: *op as i32,
                        left: Some(left),
                        right: Some(right),
                    })
                }
            }),
        })
    }

    fn operand(
        &mut self,
        path: &str,
        o: &ExprOperand,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<(Operand, Option<LiteralType>)> {
        match o {
            ExprOperand::Reference(r) => {
                let (resolved, t) = self.reference(path, r, scope)?;
                let value = match resolved {
                    Reference::Input(name) => operand::Value::WorkflowInput(name),
                    Reference::Output { node, node_id, var } => {
                        deps.push(node);
                        operand::Value::Promise(OutputReference { node_id, var })
                    }
                };
                Some((Operand { value: Some(value) }, t))
            }
            ExprOperand::Literal(v) => {
                use crate::proto::core::SimpleType::*;
                let (literal, t) = match v {
                    Value::Bool(b) => (literal::boolean(*b), Boolean),
                    Value::Number(n) if n.is_i64() => (literal::integer(n.as_i64().unwrap_or_default()), Integer),
                    Value::Number(n) => (literal::float(n.as_f64().unwrap_or_default()), Float),
                    Value::String(s) => (literal::string(s.clone()), String),
                    _ => return None,
                };
                Some((Operand { value: Some(operand::Value::Literal(literal)) }, Some(types::simple(t))))
            }
        }
    }

    fn workflow_outputs(&mut self, path: &str, spec: &WorkflowSpec, scope: &Scope) -> (Vec<Variable>, Vec<Binding>) {
        let mut vars = Vec::new();
        let mut bindings = Vec::new();
        let mut deps = Vec::new();
        for (name, value) in &spec.outputs {
            let out_path = join(&join(path, "outputs"), name);
            if !self.check_variable_name(&out_path, name) {
                continue;
            }
            let (declared, from) = match value {
                Value::String(s) => (None, Some(s.as_str())),
                Value::Object(o) => {
                    let declared = match o.get("type").map(types::parse) {
                        None => None,
                        Some(Ok(t)) => Some(t),
                        Some(Err(e)) => {
                            self.error(join(&out_path, "type"), e, "see the type list in docs/spec.md");
                            continue;
                        }
                    };
                    (declared, o.get("from").and_then(Value::as_str))
                }
                other => {
                    self.error(
                        &out_path,
                        format!("cannot read output {other}"),
                        "write NAME: $node.output or NAME: {type: T, from: $node.output}",
                    );
                    continue;
                }
            };
            let Some(from) = from.and_then(|f| f.strip_prefix('$')) else {
                self.error(
                    &out_path,
                    format!("output \"{name}\" is declared but never bound to a node output, so it is unreachable"),
                    format!("bind it: outputs: {{{name}: $node.output}}"),
                );
                continue;
            };
            let Some((resolved, source_type)) = self.reference(&out_path, from, scope) else { continue };
            let t = match (declared, source_type) {
                (Some(d), Some(s)) => {
                    if let Err(e) = check_assignable(&s, &d) {
                        self.error(
                            &out_path,
                            format!(
                                "type mismatch: ${from} is {}, but the output is declared {}: {e}",
                                display(&s),
                                display(&d)
                            ),
                            "make the declared type match the node's output",
                        );
                        continue;
                    }
                    d
                }
                (Some(d), None) => d,
                (None, Some(s)) => s,
                (None, None) => continue,
            };
            let binding = match resolved {
                Reference::Input(n) => binding_data::Value::WorkflowInput(n),
                Reference::Output { node, node_id, var } => {
                    deps.push(node);
                    binding_data::Value::Promise(OutputReference { node_id, var })
                }
            };
            vars.push(Variable { name: name.clone(), r#type: Some(t), description: String::new() });
            bindings.push(Binding { var: name.clone(), binding: Some(BindingData { value: Some(binding) }) });
        }
        (vars, bindings)
    }

    // --------------------------------------------------------- launch plans

    fn launch_plan(&mut self, name: &str, spec: &spec::LaunchPlanSpec) -> Option<LaunchPlanSpec> {
        let path = join("launch_plans", name);
        let errors_before = self.diags.len();
        self.check_name(&path, "launch plan", name);
        let workflow = match self.workflows.get(&spec.workflow) {
            Some(Some(w)) => w.template.clone().unwrap_or_default(),
            Some(None) => return None,
            None => {
                let hint = suggest(&spec.workflow, self.spec.workflows.keys()).map_or_else(
                    || format!("known workflows: {}", list(self.spec.workflows.keys())),
                    |s| format!("did you mean \"{s}\"?"),
                );
                self.error(join(&path, "workflow"), format!("unknown workflow \"{}\"", spec.workflow), hint);
                return None;
            }
        };
        let params: IndexMap<String, &Parameter> =
            workflow.inputs.iter().map(|p| (p.var.as_ref().map(|v| v.name.clone()).unwrap_or_default(), p)).collect();
        let literal_map = |c: &mut Self, section: &str, values: &IndexMap<String, Value>| -> LiteralMap {
            let mut out = BTreeMap::new();
            for (input, value) in values {
                let p = join(&join(&path, section), input);
                let Some(param) = params.get(input) else {
                    c.error(
                        &p,
                        format!("workflow {} has no input \"{input}\"", spec.workflow),
                        format!("its inputs are: {}", list(params.keys())),
                    );
                    continue;
                };
                let t = param.var.as_ref().and_then(|v| v.r#type.clone()).unwrap_or_default();
                match literal::from_json(&unescape(value), &t) {
                    Ok(l) => {
                        out.insert(input.clone(), l);
                    }
                    Err(e) => {
                        c.error(&p, format!("type mismatch: {e}"), format!("give a value of type {}", display(&t)))
                    }
                }
            }
            LiteralMap { values: out }
        };
        let default_inputs = literal_map(self, "default_inputs", &spec.default_inputs);
        let fixed_inputs = literal_map(self, "fixed_inputs", &spec.fixed_inputs);
        for input in spec.default_inputs.keys().filter(|k| spec.fixed_inputs.contains_key(*k)) {
            self.error(
                join(&join(&path, "fixed_inputs"), input),
                format!("\"{input}\" is both a default and a fixed input"),
                "a fixed input cannot be overridden, so it needs no default; keep one",
            );
        }

        let schedule = spec.schedule.as_ref().and_then(|s| self.schedule(&join(&path, "schedule"), s, &params, spec));
        if let Some(schedule) = &schedule {
            // A scheduled run has nobody to ask for missing inputs.
            for (input, param) in &params {
                let t = param.var.as_ref().and_then(|v| v.r#type.clone()).unwrap_or_default();
                let supplied = param.default.is_some()
                    || types::is_optional(&t)
                    || default_inputs.values.contains_key(input)
                    || fixed_inputs.values.contains_key(input)
                    || schedule.kickoff_time_input == *input;
                if !supplied {
                    self.error(
                        join(&path, "schedule"),
                        format!("scheduled runs would lack required input \"{input}\""),
                        "give it under default_inputs or fixed_inputs, or make it the kickoff_input (a datetime)",
                    );
                }
            }
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(LaunchPlanSpec {
            id: Some(self.id(ResourceType::LaunchPlan, name)),
            workflow_id: workflow.id,
            default_inputs: Some(default_inputs),
            fixed_inputs: Some(fixed_inputs),
            schedule,
            active: spec.active.unwrap_or(true),
        })
    }

    fn schedule(
        &mut self,
        path: &str,
        spec: &spec::ScheduleSpec,
        params: &IndexMap<String, &Parameter>,
        lp: &spec::LaunchPlanSpec,
    ) -> Option<Schedule> {
        let kind = match (&spec.cron, &spec.rate) {
            (Some(cron), None) => match sched::cron_schedule(cron, spec.timezone.as_deref()) {
                Ok(c) => schedule::Kind::Cron(c),
                Err(e) => {
                    let field = if e.contains("time zone") { "timezone" } else { "cron" };
                    self.error(join(path, field), e, "cron fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"; or an alias such as @daily");
                    return None;
                }
            },
            (None, Some(rate)) => {
                if spec.timezone.is_some() {
                    self.error(join(path, "timezone"), "a fixed rate has no time zone", "remove timezone, or use cron");
                    return None;
                }
                match sched::parse_rate(rate) {
                    Ok(r) => schedule::Kind::Rate(r),
                    Err(e) => {
                        self.error(join(path, "rate"), e, "e.g. rate: 6h");
                        return None;
                    }
                }
            }
            _ => {
                self.error(
                    path,
                    "a schedule has exactly one of cron or rate",
                    "e.g. schedule: {cron: \"0 3 * * *\"} or schedule: {rate: 6h}",
                );
                return None;
            }
        };
        let kickoff = spec.kickoff_input.clone().unwrap_or_default();
        if !kickoff.is_empty() {
            let p = join(path, "kickoff_input");
            match params.get(&kickoff).and_then(|p| p.var.as_ref()).and_then(|v| v.r#type.as_ref()) {
                None => {
                    self.error(
                        &p,
                        format!("workflow {} has no input \"{kickoff}\"", lp.workflow),
                        "name a datetime input of the workflow, which receives each run's scheduled time",
                    );
                    return None;
                }
                Some(t) if !matches!(kind_of_simple(t), Some(crate::proto::core::SimpleType::Datetime)) => {
                    self.error(
                        &p,
                        format!("kickoff input \"{kickoff}\" is {}, not datetime", display(t)),
                        "declare the input as datetime",
                    );
                    return None;
                }
                Some(_) if lp.fixed_inputs.contains_key(&kickoff) => {
                    self.error(
                        &p,
                        format!("kickoff input \"{kickoff}\" is also a fixed input"),
                        "remove it from fixed_inputs; the scheduler sets it",
                    );
                    return None;
                }
                Some(_) => {}
            }
        }
        Some(Schedule { kind: Some(kind), kickoff_time_input: kickoff })
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
