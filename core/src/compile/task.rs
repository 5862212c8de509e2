//! Tasks: names, interface, command placeholders, resources, cache, retries,
//! timeout, secrets.

use super::*;

impl Compiler<'_> {
    pub(super) fn task(&mut self, name: &str, spec: &TaskSpec) -> Option<TaskTemplate> {
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
        // Names as declared, valid types or not: a bad type is reported once, at the type.
        let declared = |vars: &IndexMap<String, Value>| vars.keys().cloned().collect::<Vec<_>>();
        self.check_placeholders(
            &join(&path, "command"),
            &spec.command,
            &declared(&spec.inputs),
            &declared(&spec.outputs),
        );

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
        let timeout = spec.timeout.as_ref().and_then(|t| self.timeout(&join(&path, "timeout"), t, "an attempt"));
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
            code: None,
        })
    }

    /// Reads `name: type` or `name: {type, default, description}` entries.
    pub(super) fn variables(
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

    pub(super) fn check_placeholders(&mut self, path: &str, command: &[String], inputs: &[String], outputs: &[String]) {
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
                    Some(("inputs", n)) => inputs.iter().any(|v| v == n),
                    Some(("outputs", n)) => outputs.iter().any(|v| v == n),
                    _ => placeholder == CODE_DIR_PLACEHOLDER,
                };
                if !known {
                    let names = |vars: &[String], prefix: &str| {
                        vars.iter().map(|v| format!("{{{{{prefix}.{v}}}}}")).collect::<Vec<_>>()
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

    pub(super) fn resources(&mut self, path: &str, value: &Value) -> Option<Resources> {
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

    pub(super) fn quantities(
        &mut self,
        path: &str,
        map: &serde_json::Map<String, Value>,
    ) -> Option<ResourceQuantities> {
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

    pub(super) fn cache(&mut self, path: &str, value: &Value) -> Option<CacheConfig> {
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
                    // The Python SDK derives `auto` from the task's code before the spec is
                    // written; in a spec it would be a label that never changes.
                    Some(Value::String(s)) if s.trim() == "auto" => {
                        self.error(
                            join(path, "version"),
                            "cache version \"auto\" is derived from a Python task's code by the SDK \
                             (cache_version=\"auto\"); a spec file has no function to derive it from",
                            "write a version such as \"1\" and bump it when the task's behaviour changes",
                        );
                        return None;
                    }
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

    /// A timeout of `subject` (what it limits: "an attempt", "a run").
    pub(super) fn timeout(&mut self, path: &str, value: &Value, subject: &str) -> Option<crate::proto::Duration> {
        let parsed = match value {
            Value::String(s) => quantity::parse_duration(s),
            Value::Number(n) => n
                .as_u64()
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| format!("timeout {n} is not a whole number of seconds"))
                .and_then(quantity::check_duration),
            other => Err(format!("timeout must be a duration, found {other}")),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.error(
                    path,
                    "timeout is zero",
                    format!("give the longest {subject} may run, e.g. 30m; leave timeout out for no limit"),
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

    pub(super) fn secrets(&mut self, path: &str, spec: &TaskSpec) -> Vec<Secret> {
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
            // The task contract sets these itself (UPDRAFT_INPUTS_URI, AWS_BATCH_JOB_ARRAY_INDEX,
            // the job role's AWS_* credentials): a secret must not shadow them.
            if mount == SecretMount::Env && (name.starts_with("UPDRAFT_") || name.starts_with("AWS_")) {
                self.error(
                    &p,
                    format!("the secret name \"{name}\" is reserved"),
                    "UPDRAFT_* and AWS_* variables are set by Updraft and AWS Batch; name the secret otherwise, \
                     or mount it as a file (mount: file)",
                );
                continue;
            }
            out.push(Secret { name: name.clone(), source: Some(source), mount: mount as i32 });
        }
        out
    }
}
