//! The spec language: what a human writes in a YAML or JSON file. `compile`
//! turns it into the IDL. Fields whose meaning depends on a declared type (types,
//! values, bindings, quantities) are kept as raw values here and read there, so
//! that every error can name its path.

use crate::diagnostics::Diagnostic;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

/// One spec document: tasks, workflows and launch plans of one project and domain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub project: Option<String>,
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub tasks: IndexMap<String, TaskSpec>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub workflows: IndexMap<String, WorkflowSpec>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub launch_plans: IndexMap<String, LaunchPlanSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub description: Option<String>,
    /// Container image; ignored by local runs.
    pub image: String,
    /// The argv, never run through a shell.
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: IndexMap<String, String>,
    /// name → type, or name → {type, default, description}.
    #[serde(default, deserialize_with = "unique_keys")]
    pub inputs: IndexMap<String, Value>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub outputs: IndexMap<String, Value>,
    /// {cpu, memory, gpu} or {requests: {...}, limits: {...}}.
    pub resources: Option<Value>,
    /// {version: "1"} (enabled) or {enabled: false}.
    pub cache: Option<Value>,
    pub retries: Option<Value>,
    pub timeout: Option<Value>,
    /// name → {secrets_manager: ARN | ssm: NAME, mount: env | file}.
    #[serde(default, deserialize_with = "unique_keys")]
    pub secrets: IndexMap<String, SecretSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub secrets_manager: Option<String>,
    pub ssm: Option<String>,
    pub mount: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub description: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub inputs: IndexMap<String, Value>,
    /// name → `$node.output`, or name → {type, from: `$node.output`}.
    #[serde(default, deserialize_with = "unique_keys")]
    pub outputs: IndexMap<String, Value>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub nodes: IndexMap<String, NodeSpec>,
    /// `fail_fast` (default) or `finish_independent`.
    pub on_failure: Option<String>,
}

/// A node: exactly one of `task`, `workflow`, `branch`, `map`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub task: Option<String>,
    pub workflow: Option<String>,
    pub branch: Option<BranchSpec>,
    pub map: Option<MapSpec>,
    /// input name → literal, `$inputs.NAME`, `$NODE.OUTPUT`, or lists/maps of those.
    #[serde(default, deserialize_with = "unique_keys")]
    pub inputs: IndexMap<String, Value>,
    /// Nodes to wait for without taking their outputs.
    #[serde(default)]
    pub after: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    pub cases: Vec<BranchCaseSpec>,
    #[serde(rename = "else")]
    pub otherwise: Option<BranchTargetSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchCaseSpec {
    /// A condition such as `$score.accuracy >= 0.8 and $inputs.publish == true`.
    #[serde(rename = "if")]
    pub condition: String,
    pub then: BranchTargetSpec,
}

/// What a branch case runs: a task or a workflow with its inputs, or `fail`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchTargetSpec {
    pub task: Option<String>,
    pub workflow: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub inputs: IndexMap<String, Value>,
    /// Fail the execution with this message (only in `else`).
    pub fail: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    pub task: String,
    /// Task inputs that receive one element of a list each.
    pub over: Vec<String>,
    pub concurrency: Option<Value>,
    pub min_success_ratio: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchPlanSpec {
    pub workflow: String,
    #[serde(default, deserialize_with = "unique_keys")]
    pub default_inputs: IndexMap<String, Value>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub fixed_inputs: IndexMap<String, Value>,
    pub schedule: Option<ScheduleSpec>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five-field cron or an alias (`@daily`).
    pub cron: Option<String>,
    /// `6h`, `30m`, `1d` or `"2 hours"`.
    pub rate: Option<String>,
    pub timezone: Option<String>,
    /// A datetime workflow input that receives each run's scheduled time.
    pub kickoff_input: Option<String>,
}

/// Deserialises a mapping into an [`IndexMap`], refusing a key given twice:
/// YAML parsers keep the last one silently, which would drop a task or node.
fn unique_keys<'de, D, V>(deserializer: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueKeys<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for UniqueKeys<V> {
        type Value = IndexMap<String, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping of names to entries")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = IndexMap::with_capacity(access.size_hint().unwrap_or(0));
            while let Some(key) = access.next_key::<String>()? {
                if map.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate name \"{key}\": each name may appear only once here"
                    )));
                }
                let value = access.next_value()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(UniqueKeys(std::marker::PhantomData))
}

/// How a spec document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// By file extension; YAML (a superset of JSON) otherwise.
    pub fn from_file_name(name: &str) -> Format {
        if name.ends_with(".json") { Format::Json } else { Format::Yaml }
    }
}

/// Reads a spec document. Structural errors (unknown field, wrong shape) name
/// the path and, for YAML, the line.
pub fn parse(text: &str, format: Format) -> Result<SpecFile, Diagnostic> {
    let result = match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.inner().to_string()))
        }
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(SpecFile::default());
            }
            serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text))
                .map_err(|e| (e.path().to_string(), e.inner().to_string()))
        }
    };
    result.map_err(|(path, message)| {
        let path = if path == "." { String::new() } else { path };
        // serde_norway already puts the path in front of its message.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.contains(' ') && path.starts_with(prefix) => rest.to_string(),
            _ => message,
        };
        let hint = if message.contains("duplicate name") {
            "rename one of the two entries"
        } else if message.contains("unknown field") {
            "see docs/spec.md for the fields each section takes"
        } else if message.contains("missing field") {
            "add the field; docs/spec.md shows a complete example"
        } else {
            "check the YAML/JSON syntax and the shape of this section against docs/spec.md"
        };
        Diagnostic::new(path, message).with_hint(hint)
    })
}
