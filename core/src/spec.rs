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
    /// The longest a run may take (`6h`); past it the run ends TIMED_OUT.
    pub timeout: Option<Value>,
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
    /// How late a tick may still start its run (`1h` default, at most `24h`).
    pub catch_up: Option<Value>,
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
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de)
                .map_err(|e| (e.path().to_string(), e.inner().to_string()))
                .and_then(|spec| {
                    de.end().map(|()| spec).map_err(|e| {
                        (
                            String::new(),
                            format!("trailing content after the JSON document ({e}); a spec is one document"),
                        )
                    })
                })
        }
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(SpecFile::default());
            }
            // Only anchors (`&name`) can be replayed: a spec without any is parsed once.
            if text.contains('&') {
                check_expansion(text)?;
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
        let hint = if message.contains("recursion limit exceeded") {
            "the document nests deeper than 128 levels, the limit for specs; flatten it"
        } else if message.contains("repetition limit exceeded") {
            "YAML aliases are replayed too often; write the repeated parts out or use fewer aliases"
        } else if message.contains("duplicate name") {
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

/// The most a YAML spec may expand to once its aliases (`*name`) are replayed,
/// counted as scalar bytes plus 16 per node: the same as the file size limit, so
/// a small file of nested aliases (a "billion laughs") cannot take the memory.
pub const MAX_EXPANDED_BYTES: u64 = 64 * 1024 * 1024;

/// Walks the document as the real parse will, aliases replayed, counting its
/// expanded size without keeping anything; stops at [`MAX_EXPANDED_BYTES`].
fn check_expansion(text: &str) -> Result<(), Diagnostic> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;

    #[derive(Clone, Copy)]
    struct Budget<'a>(&'a Cell<u64>);

    impl Budget<'_> {
        fn spend<E: Error>(self, bytes: usize) -> Result<(), E> {
            let total = self.0.get().saturating_add(bytes as u64 + 16);
            self.0.set(total);
            if total > MAX_EXPANDED_BYTES {
                return Err(E::custom(EXPANSION_MESSAGE));
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for Budget<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Budget<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any YAML value")
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
            self.spend(v.len())
        }
        fn visit_unit<E: Error>(self) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_none<E: Error>(self) -> Result<(), E> {
            self.spend(0)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.spend(0)?;
            while seq.next_element_seed(self)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            self.spend(0)?;
            while map.next_key_seed(self)?.is_some() {
                map.next_value_seed(self)?;
            }
            Ok(())
        }
        fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
            use serde::de::VariantAccess;
            let ((), variant) = data.variant_seed(self)?;
            variant.newtype_variant_seed(self)
        }
    }

    const EXPANSION_MESSAGE: &str = "the document expands to more than 64 MiB once its YAML aliases are replayed";
    let used = Cell::new(0);
    match Budget(&used).deserialize(serde_norway::Deserializer::from_str(text)) {
        Err(e) if e.to_string().contains(EXPANSION_MESSAGE) => Err(Diagnostic::new("", EXPANSION_MESSAGE).with_hint(
            "specs are limited to 64 MiB expanded; write the repeated parts out once, or use fewer nested aliases",
        )),
        // Syntax and shape errors are reported by the real parse, with their paths.
        _ => Ok(()),
    }
}
