//! The task I/O contract (docs/task-contract.md): how a task process gets its
//! inputs and gives back its outputs. The same for a local process and for
//! `updraft exec` in a container; only where files live differs.

use crate::literal;
use crate::proto::core::{Column, Literal, LiteralType, SimpleType, literal::Value as LV};
use crate::types::{Kind, display, kind};
use std::collections::BTreeMap;

/// Path of the inputs document (JSON: input name → value, files as local paths).
pub const ENV_INPUTS: &str = "UPDRAFT_INPUTS";
/// Directory where the task writes each output NAME as the file or directory `NAME`.
pub const ENV_OUTPUTS_DIR: &str = "UPDRAFT_OUTPUTS_DIR";
/// Where the task's code is: the image's working directory, or locally the spec's directory.
pub const ENV_CODE_DIR: &str = "UPDRAFT_CODE_DIR";
pub const ENV_EXECUTION_ID: &str = "UPDRAFT_EXECUTION_ID";

/// The Python SDK's task runner: `python3 -m updraft.task [--fresh-process] MODULE:FUNCTION`.
pub const PYTHON_TASK_MODULE: &str = "updraft.task";

/// `MODULE:FUNCTION` when an argv runs a task of the Python SDK, and whether it
/// asked for a fresh process (`--fresh-process`: no warm worker locally).
pub fn python_task(argv: &[String]) -> Option<(&str, bool)> {
    let (python, rest) = argv.split_first()?;
    let program = std::path::Path::new(python).file_name()?.to_str()?;
    match rest {
        [m, module, entry] if program.starts_with("python") && m == "-m" && module == PYTHON_TASK_MODULE => {
            entry.contains(':').then_some((entry.as_str(), false))
        }
        [m, module, fresh, entry]
            if program.starts_with("python")
                && m == "-m"
                && module == PYTHON_TASK_MODULE
                && fresh == "--fresh-process" =>
        {
            entry.contains(':').then_some((entry.as_str(), true))
        }
        _ => None,
    }
}

/// Whether a task's argv runs code that is not in its image's own programs: it
/// names `{{code_dir}}` or runs a Python SDK task. Such tasks get the spec
/// directory's code bundle at registration (docs/task-contract.md, "Code bundles").
pub fn needs_code(argv: &[String]) -> bool {
    let placeholder = format!("{{{{{}}}}}", crate::compile::CODE_DIR_PLACEHOLDER);
    python_task(argv).is_some() || argv.iter().any(|arg| arg.contains(&placeholder))
}

pub const ENV_NODE_ID: &str = "UPDRAFT_NODE_ID";
/// 1 for the first attempt.
pub const ENV_ATTEMPT: &str = "UPDRAFT_ATTEMPT";
/// Directory holding the secrets declared with `mount: file`, one file per secret.
pub const ENV_SECRETS_DIR: &str = "UPDRAFT_SECRETS_DIR";

// The job description `updraft exec` reads in a container (docs/task-contract.md).
/// The task's typed interface as proto JSON; fixed per task version, so it sits in the job definition.
pub const ENV_INTERFACE: &str = "UPDRAFT_INTERFACE";
/// `s3://` URI of the inputs (a `LiteralMap` as proto JSON); per run, as a container override.
pub const ENV_INPUTS_URI: &str = "UPDRAFT_INPUTS_URI";
/// `s3://` prefix that receives the outputs and, last, `outputs.json`; per run.
pub const ENV_OUTPUT_PREFIX: &str = "UPDRAFT_OUTPUT_PREFIX";
/// `s3://` prefix of a map node's items, set instead of the inputs URI and output
/// prefix on its array job: item `j` reads its inputs from the prefix's
/// [`MAP_INPUTS`] by the byte range [`MapManifest::inputs_offsets`] gives (a job
/// started before that file existed: `<prefix><j>/inputs.json`) and writes under
/// `<prefix><j>/`, its `j` from `AWS_BATCH_JOB_ARRAY_INDEX` (0 without one).
pub const ENV_ARRAY_PREFIX: &str = "UPDRAFT_ARRAY_PREFIX";
/// A map job's manifest under its items prefix ([`MapManifest`]).
pub const MAP_MANIFEST: &str = "manifest.json";
/// Every item's inputs under a map job's items prefix: one `LiteralMap` (proto
/// JSON) per line, item `j` on line `j`, so the map's start writes one object
/// however many items it has, and each item reads its own line by range.
pub const MAP_INPUTS: &str = "inputs.jsonl";

/// The results of one strided child of a map's array job, `children/<k>.json`
/// under the items prefix: written once the child has run its items, so the map's
/// gather reads one object per child instead of one per item. Each item also wrote
/// its own `outputs.json` (or `error.json`) under `<j>/` as it ended, which a retried
/// child's skip and a gather for any item this summary lacks still read.
pub fn map_child_results(k: usize) -> String {
    format!("children/{k}.json")
}

/// [`map_child_results`]'s document: item `j` of the job to what it ended with.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChildResults {
    pub items: BTreeMap<usize, ItemDocument>,
}

/// What one map item ended with: the outputs document it published, or why it failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemDocument {
    Outputs(OutputsDocument),
    Error(ErrorDocument),
}

/// What a map's job runs: `items[j]` is the map index of its `j`-th item to run
/// (inputs on line `j` of [`MAP_INPUTS`], results under `j/`), and child `k` of
/// its array job runs `j = k, k + children, …`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapManifest {
    pub items: Vec<usize>,
    pub children: usize,
    /// Where each line of [`MAP_INPUTS`] starts, and (last) the file's length:
    /// item `j`'s inputs are bytes `inputs_offsets[j]..inputs_offsets[j + 1]`.
    /// Empty in a manifest written before the file existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs_offsets: Vec<u64>,
}

impl MapManifest {
    /// The array child that ran the map's item `index` and the item's position in
    /// the job; `None` for an item the job did not run (reused from the cache).
    pub fn child_of(&self, index: usize) -> Option<(usize, usize)> {
        let j = self.items.iter().position(|&i| i == index)?;
        Some((j % self.children.max(1), j))
    }

    /// The byte range of item `j`'s line in [`MAP_INPUTS`] (end exclusive), if the
    /// manifest has one for it.
    pub fn inputs_range(&self, j: usize) -> Option<(u64, u64)> {
        Some((*self.inputs_offsets.get(j)?, *self.inputs_offsets.get(j + 1)?))
    }
}

/// The [`MAP_INPUTS`] file of items whose inputs are `documents` (each a
/// `LiteralMap` as proto JSON, without newlines) and the offsets of its lines.
pub fn map_inputs_file<'a>(documents: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, Vec<u64>) {
    let (mut file, mut offsets) = (Vec::new(), vec![0]);
    for document in documents {
        file.extend_from_slice(document);
        file.push(b'\n');
        offsets.push(file.len() as u64);
    }
    (file, offsets)
}
/// Striding, when a map has more items to run than children (its `concurrency`, or
/// Batch's 10,000): child `k` runs items `k`, `k + stride`, `k + 2 stride`, … below
/// the item count, one after another, each as if it were a child of its own.
pub const ENV_ARRAY_STRIDE: &str = "UPDRAFT_ARRAY_STRIDE";
pub const ENV_ARRAY_ITEMS: &str = "UPDRAFT_ARRAY_ITEMS";
/// The item a strided child is running now (set by `updraft exec` itself for each).
pub const ENV_ITEM_INDEX: &str = "UPDRAFT_ITEM_INDEX";
/// `s3://` URI of the task's code bundle and its `sha256:` digest (job definition):
/// `updraft exec` unpacks it into a fresh directory that becomes `{{code_dir}}`.
pub const ENV_CODE_BUNDLE: &str = "UPDRAFT_CODE_BUNDLE";
pub const ENV_CODE_DIGEST: &str = "UPDRAFT_CODE_DIGEST";
/// Secrets meant as files arrive in variables with this prefix (see `job_definition`).
pub const SECRET_FILE_PREFIX: &str = "UPDRAFT_SECRET_FILE_";

/// How every content digest is written: `sha256:` and 64 hex digits.
pub const DIGEST_PREFIX: &str = "sha256:";

/// A digest as records and documents write it.
pub fn digest_string(hex: &str) -> String {
    format!("{DIGEST_PREFIX}{hex}")
}

/// The hex part of a recorded digest (`sha256:<hex>`), if it is one.
pub fn digest_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix(DIGEST_PREFIX)
}

/// `outputs.json`, which `updraft exec` writes last under the attempt's output
/// prefix: its presence means every output is in place (docs/task-contract.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputsDocument {
    pub execution_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub outputs: BTreeMap<String, OutputEntry>,
}

/// One output in [`OutputsDocument`]: the value itself (files as S3 blobs), or
/// for a large value the URI of the object holding it; always its digest and size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Literal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub digest: String,
    pub size_bytes: u64,
}

/// `error.json`, written by `updraft exec` when an attempt fails (not when it is
/// stopped by SIGTERM), so the control plane can say why without reading logs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorDocument {
    /// A [`FailureCode`](super::failure::FailureCode), as `as_str` spells it.
    pub code: String,
    pub message: String,
    /// Whether another attempt could help (`FailureCode::retryable`, refined by the data error).
    pub retryable: bool,
    pub attempt: u32,
}

/// The largest value output (an int, a string, a list as JSON) a task may write:
/// values are kept in metadata records (in the cloud, over 64 KiB, in the bucket
/// by digest) and answered by the executions API, so anything larger belongs in a
/// file output. Values never travel in Step Functions state.
pub const MAX_VALUE_OUTPUT_BYTES: u64 = 1024 * 1024;

/// A value as it appears in argv: strings as they are, numbers and booleans as
/// JSON writes them, collections as compact JSON, files as their local path,
/// absent values as the empty string.
pub fn render_value(value: &Literal) -> String {
    match &value.value {
        Some(LV::String(s)) => s.clone(),
        Some(LV::None(_)) | None => String::new(),
        Some(LV::File(b)) | Some(LV::Directory(b)) | Some(LV::Dataframe(b)) => b.uri.clone(),
        _ => match literal::to_json(value) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
    }
}

/// Fills `{{inputs.NAME}}`, `{{outputs.NAME}}` and `{{code_dir}}` in the argv.
/// Compilation has checked the names, so an unknown one here is a bug upstream.
pub fn render_argv(
    args: &[String],
    inputs: &BTreeMap<String, Literal>,
    output_paths: &BTreeMap<String, String>,
    code_dir: &str,
) -> Result<Vec<String>, String> {
    args.iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find("}}").ok_or_else(|| format!("unclosed placeholder in \"{arg}\""))?;
                let placeholder = after[..end].trim();
                let value = match placeholder.split_once('.') {
                    Some(("inputs", name)) => inputs.get(name).map(render_value),
                    Some(("outputs", name)) => output_paths.get(name).cloned(),
                    _ if placeholder == crate::compile::CODE_DIR_PLACEHOLDER => Some(code_dir.to_string()),
                    _ => None,
                };
                out.push_str(&value.ok_or_else(|| format!("no value for {{{{{placeholder}}}}} in \"{arg}\""))?);
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

/// The inputs document: every input as plain JSON.
pub fn inputs_document(inputs: &BTreeMap<String, Literal>) -> serde_json::Value {
    serde_json::Value::Object(inputs.iter().map(|(k, v)| (k.clone(), literal::to_json(v))).collect())
}

/// Whether an output of this type is data on disk (a file, directory or table)
/// rather than a value written as JSON.
pub fn is_blob(t: &LiteralType) -> bool {
    match kind(t) {
        Kind::File(_) | Kind::Directory | Kind::DataFrame(_) => true,
        Kind::Optional(inner) => is_blob(inner),
        _ => false,
    }
}

/// Reads a value output from the text the task wrote: JSON of the declared
/// type. A string output may also be plain text (one trailing newline dropped).
pub fn parse_value_output(name: &str, text: &str, t: &LiteralType) -> Result<Literal, String> {
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(text);
    let value = match (parsed, kind(t)) {
        (Ok(v @ serde_json::Value::String(_)), _) => v,
        (_, Kind::Simple(SimpleType::String)) => {
            serde_json::Value::String(text.strip_suffix('\n').unwrap_or(text).to_string())
        }
        (Ok(v), _) => v,
        (Err(_), _) => {
            let shown: String = text.chars().take(60).collect();
            return Err(format!("output \"{name}\": expected {} as JSON, found {shown:?}", display(t)));
        }
    };
    literal::from_json(&value, t).map_err(|e| format!("output \"{name}\" has the wrong type: {e}"))
}

/// Checks a CSV header against the columns a dataframe type declares.
pub fn check_csv_header(name: &str, header: &str, columns: &[Column]) -> Result<(), String> {
    let present: Vec<&str> =
        header.trim_end_matches(['\r', '\n']).split(',').map(|c| c.trim().trim_matches('"')).collect();
    let missing: Vec<&str> = columns.iter().map(|c| c.name.as_str()).filter(|c| !present.contains(c)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::diagnostics::visible(&format!(
            "dataframe \"{name}\" lacks declared column(s) {}; its header has: {}",
            missing.join(", "),
            present.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types;
    use serde_json::json;

    #[test]
    fn each_map_item_reads_its_own_line_of_the_inputs_file() {
        let documents =
            [br#"{"values":{"x":{"integer":"1"}}}"#.as_slice(), b"{}", br#"{"values":{"s":{"string":"a\nb"}}}"#];
        let (file, offsets) = map_inputs_file(documents);
        let manifest = MapManifest { items: vec![4, 7, 9], children: 2, inputs_offsets: offsets };
        for (j, document) in documents.iter().enumerate() {
            let (start, end) = manifest.inputs_range(j).unwrap();
            let line = &file[start as usize..end as usize];
            assert_eq!(&line[..line.len() - 1], *document, "line {j}");
            assert!(serde_json::from_slice::<serde_json::Value>(line).is_ok(), "a line parses as JSON");
        }
        assert_eq!(manifest.inputs_range(3), None, "no line past the last item");
        let old: MapManifest = serde_json::from_str(r#"{"items": [1], "children": 1}"#).unwrap();
        assert_eq!((old.inputs_offsets.len(), old.inputs_range(0)), (0, None), "a manifest from before the file");
        assert!(
            !serde_json::to_string(&old).unwrap().contains("inputsOffsets")
                && !serde_json::to_string(&old).unwrap().contains("inputs_offsets")
        );
    }

    #[test]
    fn python_sdk_tasks_are_recognised_by_their_argv() {
        let argv = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(python_task(&argv(&["python3", "-m", "updraft.task", "m:f"])), Some(("m:f", false)));
        assert_eq!(
            python_task(&argv(&["/venv/bin/python", "-m", "updraft.task", "--fresh-process", "m:f"])),
            Some(("m:f", true))
        );
        for other in [
            &["python3", "steps.py", "m:f"][..],
            &["sh", "-m", "updraft.task", "m:f"],
            &["python3", "-m", "updraft.task", "m"],
        ] {
            assert_eq!(python_task(&argv(other)), None, "{other:?}");
        }
    }

    #[test]
    fn tasks_that_run_the_spec_directory_s_code_need_a_bundle() {
        let argv = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(needs_code(&argv(&["python3", "-m", "updraft.task", "m:f"])));
        assert!(needs_code(&argv(&["python3", "{{code_dir}}/train.py", "--seed", "{{inputs.seed}}"])));
        assert!(needs_code(&argv(&["sh", "-c", "cd {{code_dir}} && make"])));
        assert!(!needs_code(&argv(&["python3", "-c", "print(1)"])));
        assert!(!needs_code(&argv(&["/usr/local/bin/trainer", "{{inputs.data}}"])));
    }

    fn t(text: &str) -> LiteralType {
        types::parse(&json!(text)).unwrap()
    }

    #[test]
    fn contract_documents_round_trip_in_their_documented_shape() {
        let document = OutputsDocument {
            execution_id: "e1".into(),
            node_id: "fit".into(),
            attempt: 2,
            outputs: [
                (
                    "accuracy".to_string(),
                    OutputEntry {
                        value: Some(literal::float(0.5)),
                        uri: None,
                        digest: digest_string("ab"),
                        size_bytes: 14,
                    },
                ),
                (
                    "big".to_string(),
                    OutputEntry {
                        value: None,
                        uri: Some("s3://b/values/big.json".into()),
                        digest: digest_string("cd"),
                        size_bytes: 70000,
                    },
                ),
            ]
            .into(),
        };
        let json = serde_json::to_value(&document).unwrap();
        assert_eq!(
            json["outputs"]["accuracy"],
            json!({"value": {"float": 0.5}, "digest": "sha256:ab", "size_bytes": 14})
        );
        assert_eq!(json["outputs"]["big"]["uri"], "s3://b/values/big.json");
        assert_eq!(serde_json::from_value::<OutputsDocument>(json).unwrap(), document);
        let error = ErrorDocument { code: "BadOutputs".into(), message: "m".into(), retryable: false, attempt: 1 };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"code": "BadOutputs", "message": "m", "retryable": false, "attempt": 1})
        );
        assert_eq!(digest_hex("sha256:ab"), Some("ab"));
        assert_eq!(digest_hex("md5:ab"), None);
    }

    #[test]
    fn argv_is_templated_without_a_shell() {
        let inputs: BTreeMap<String, Literal> = [
            ("seed".to_string(), literal::integer(7)),
            ("name".to_string(), literal::string("a b; rm -rf /")),
            ("sizes".to_string(), literal::list(vec![literal::integer(1), literal::integer(2)])),
        ]
        .into();
        let outputs: BTreeMap<String, String> = [("model".to_string(), "/out/model".to_string())].into();
        let args: Vec<String> = [
            "{{code_dir}}/fit.py",
            "--seed={{inputs.seed}}",
            "{{inputs.name}}",
            "{{ inputs.sizes }}",
            "{{outputs.model}}",
        ]
        .map(String::from)
        .to_vec();
        let argv = render_argv(&args, &inputs, &outputs, "/code").unwrap();
        assert_eq!(argv, ["/code/fit.py", "--seed=7", "a b; rm -rf /", "[1,2]", "/out/model"]);
        assert!(render_argv(&["{{inputs.nope}}".into()], &inputs, &outputs, "/").is_err());
    }

    #[test]
    fn value_outputs_are_json_of_their_type() {
        assert_eq!(parse_value_output("a", "0.75\n", &t("float")), Ok(literal::float(0.75)));
        assert_eq!(parse_value_output("s", "hello\n", &t("string")), Ok(literal::string("hello")));
        assert_eq!(parse_value_output("s", "\"hi\"", &t("string")), Ok(literal::string("hi")));
        let err = parse_value_output("accuracy", "\"high\"", &t("float")).unwrap_err();
        assert!(err.contains("output \"accuracy\" has the wrong type: expected float, found string"), "{err}");
        assert!(parse_value_output("n", "seven", &t("int")).unwrap_err().contains("expected int as JSON"));
    }

    #[test]
    fn csv_headers_are_checked_against_declared_columns() {
        let columns = vec![Column { name: "age".into(), r#type: 1 }, Column { name: "bmi".into(), r#type: 2 }];
        assert!(check_csv_header("t", "age,bmi,outcome\n", &columns).is_ok());
        assert!(
            check_csv_header("t", "\"age\",glucose", &columns).unwrap_err().contains("lacks declared column(s) bmi")
        );
    }
}
