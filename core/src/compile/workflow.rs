//! Workflows: node interfaces, bindings and references, branches, maps,
//! subworkflows, the DAG and its outputs.

use super::*;

impl Compiler<'_> {
    /// Workflows in an order where subworkflows come first; reports recursion.
    pub(super) fn workflow_order(&mut self) -> Vec<String> {
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
            Ok(a) => {
                // How deep each workflow nests subworkflows; callees come first in `order`.
                let mut depth = vec![1usize; names.len()];
                for &i in &a.order {
                    depth[i] = 1 + upstream[i].iter().map(|&callee| depth[callee]).max().unwrap_or(0);
                    if depth[i] == MAX_WORKFLOW_NESTING + 1 {
                        self.error(
                            join("workflows", names[i]),
                            format!(
                                "subworkflows nest {} levels deep here; the limit is {MAX_WORKFLOW_NESTING}",
                                depth[i]
                            ),
                            "flatten the chain: call the inner workflows' nodes directly, or split the pipeline",
                        );
                    }
                }
                // Too deep: reported once above; marked invalid so their users are not reported again.
                for (name, _) in names.iter().zip(&depth).filter(|(_, d)| **d > MAX_WORKFLOW_NESTING) {
                    self.workflows.insert((*name).clone(), None);
                }
                a.order.iter().filter(|&&i| depth[i] <= MAX_WORKFLOW_NESTING).map(|&i| names[i].clone()).collect()
            }
            Err(cycle) => {
                // The DAG runs callee before caller; people read a cycle of calls caller first.
                let chain: Vec<&str> = cycle.iter().rev().map(|&i| names[i].as_str()).collect();
                self.error(
                    join("workflows", chain[0]),
                    format!("workflows call each other in a cycle: {} (each calls the next)", chain.join(" → ")),
                    "a workflow cannot contain itself; break the cycle",
                );
                Vec::new()
            }
        }
    }

    pub(super) fn workflow(&mut self, name: &str, spec: &WorkflowSpec) -> Option<CompiledWorkflow> {
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

        let timeout = spec.timeout.as_ref().and_then(|t| self.timeout(&join(&path, "timeout"), t, "a run"));

        if self.diags.len() > errors_before {
            return None;
        }
        let analysis = analysis?;
        // A node can be left uncompiled by an error reported elsewhere (on its task,
        // say): the workflow is not compiled then, and that error says why.
        let nodes: Vec<Node> = nodes.into_iter().collect::<Option<_>>()?;
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
                timeout,
            }),
            dag: Some(dag),
            // A document holds each task and workflow once; `Compiled::closure` assembles
            // one workflow with everything it calls, so output stays linear in the spec.
            tasks: Vec::new(),
            subworkflows: Vec::new(),
        })
    }

    pub(super) fn task_interface(&self, task: &TaskTemplate) -> NodeInterface {
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

    pub(super) fn workflow_interface(&self, workflow: &CompiledWorkflow) -> NodeInterface {
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

    pub(super) fn invalid_interface() -> NodeInterface {
        NodeInterface { inputs: Vec::new(), outputs: None, description: String::new() }
    }

    /// Looks up a task (`task: NAME`) or workflow (`workflow: NAME`) target.
    pub(super) fn target_interface(
        &mut self,
        path: &str,
        task: Option<&String>,
        workflow: Option<&String>,
    ) -> NodeInterface {
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

    pub(super) fn node_interface(&mut self, path: &str, node: &NodeSpec) -> NodeInterface {
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
            // Checked (and reported) here, once; the node's compilation reads it quietly.
            let ratio = self.min_success_ratio(&map_path, map.min_success_ratio.as_ref());
            let inner = self.target_interface(&map_path, Some(&map.task), None);
            let Some(outputs) = inner.outputs else { return inner };
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

    pub(super) fn min_success_ratio(&mut self, path: &str, value: Option<&Value>) -> f64 {
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
    pub(super) fn branch_interface(&mut self, path: &str, node: &NodeSpec, branch: &spec::BranchSpec) -> NodeInterface {
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

    pub(super) fn node(
        &mut self,
        path: &str,
        id: &str,
        spec: &NodeSpec,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<Node> {
        let interface = &scope.nodes[id];
        if interface.outputs.is_none() {
            // Its target is invalid (reported there). Its references are still checked,
            // so that one validation reports every problem, not one layer at a time.
            let inputs_path = join(path, "inputs");
            let mut stack: Vec<(String, &Value)> =
                spec.inputs.iter().map(|(name, value)| (join(&inputs_path, name), value)).collect();
            while let Some((at, value)) = stack.pop() {
                match value {
                    Value::String(text) => {
                        if let Some(reference) = text.strip_prefix('$').filter(|r| !r.starts_with('$')) {
                            let _ = self.reference(&at, reference, scope);
                        }
                    }
                    Value::Array(items) => {
                        stack.extend(items.iter().enumerate().map(|(i, v)| (format!("{at}[{i}]"), v)));
                    }
                    Value::Object(entries) => stack.extend(entries.iter().map(|(k, v)| (join(&at, k), v))),
                    _ => {}
                }
            }
            return None;
        }
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
                // Its interface reported a bad value already (`min_success_ratio`).
                min_success_ratio: map
                    .min_success_ratio
                    .as_ref()
                    .and_then(Value::as_f64)
                    .filter(|r| *r > 0.0 && *r <= 1.0)
                    .unwrap_or(1.0),
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
    pub(super) fn bindings(
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

    pub(super) fn binding(
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
    pub(super) fn reference(
        &mut self,
        path: &str,
        text: &str,
        scope: &Scope,
    ) -> Option<(Reference, Option<LiteralType>)> {
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

    pub(super) fn unknown_node(&mut self, path: &str, name: &str, scope: &Scope) {
        let hint = suggest(name, scope.nodes.keys()).map_or_else(
            || format!("nodes of workflow {}: {}", scope.workflow, list(scope.nodes.keys())),
            |s| format!("did you mean \"{s}\"?"),
        );
        self.error(path, format!("unknown node \"{name}\" in workflow {}", scope.workflow), hint);
    }

    pub(super) fn branch(
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

    pub(super) fn branch_target(
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

    pub(super) fn condition(
        &mut self,
        path: &str,
        text: &str,
        scope: &Scope,
        deps: &mut Vec<usize>,
    ) -> Option<BooleanExpression> {
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

    pub(super) fn boolean_expression(
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

    pub(super) fn operand(
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

    pub(super) fn workflow_outputs(
        &mut self,
        path: &str,
        spec: &WorkflowSpec,
        scope: &Scope,
    ) -> (Vec<Variable>, Vec<Binding>) {
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
}
