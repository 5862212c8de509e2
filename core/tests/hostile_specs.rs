//! Specs built to hurt: sizes and nestings that grew output, memory or the stack
//! faster than the input. Each must compile in linear space or be refused with
//! an error that names the limit.

use updraft_core::compile::{Compiled, MAX_WORKFLOW_NESTING, Options, compile_text};
use updraft_core::spec::Format;

fn compile(text: &str, format: Format) -> Result<Compiled, String> {
    compile_text(text, format, &Options::default()).map_err(|d| d.to_string())
}

/// `w0` runs a task; each `wK` runs `w(K-1)` as a subworkflow.
fn chain(levels: usize) -> String {
    let mut spec = String::from(
        "tasks:\n  t:\n    image: x\n    command: [t, \"{{inputs.n}}\"]\n    inputs: {n: int}\n    outputs: {o: int}\nworkflows:\n",
    );
    spec.push_str(
        "  w0:\n    inputs: {n: int}\n    outputs: {o: $a.o}\n    nodes:\n      a: {task: t, inputs: {n: $inputs.n}}\n",
    );
    for k in 1..levels {
        spec.push_str(&format!(
            "  w{k}:\n    inputs: {{n: int}}\n    outputs: {{o: $a.o}}\n    nodes:\n      a: {{workflow: w{}, inputs: {{n: $inputs.n}}}}\n",
            k - 1
        ));
    }
    spec
}

#[test]
fn a_chain_of_subworkflows_compiles_each_workflow_once() {
    let compiled = compile(&chain(MAX_WORKFLOW_NESTING), Format::Yaml).unwrap();
    let size = serde_json::to_string(&compiled.workflows).unwrap().len();
    let one = serde_json::to_string(&compiled.workflows[1]).unwrap().len();
    assert!(size < one * MAX_WORKFLOW_NESTING * 2, "the document is linear: {size} bytes for {MAX_WORKFLOW_NESTING}");
    assert!(compiled.workflows.iter().all(|w| w.subworkflows.is_empty() && w.tasks.is_empty()));

    let top = format!("w{}", MAX_WORKFLOW_NESTING - 1);
    let closure = compiled.closure(&top).unwrap();
    let names: Vec<String> =
        closure.subworkflows.iter().map(|w| w.template.as_ref().unwrap().id.as_ref().unwrap().name.clone()).collect();
    let expected: Vec<String> = (0..MAX_WORKFLOW_NESTING - 1).map(|k| format!("w{k}")).collect();
    assert_eq!(names, expected, "every callee once, callees first");
    assert_eq!(closure.tasks.len(), 1, "the task used at the bottom is hoisted to the top");
    assert!(closure.subworkflows.iter().all(|w| w.subworkflows.is_empty()), "referenced by id, not nested");
}

#[test]
fn nesting_past_the_limit_is_refused_once_with_the_limit() {
    let error = compile(&chain(2000), Format::Yaml).unwrap_err();
    assert!(error.contains("subworkflows nest 33 levels deep here; the limit is 32"), "{error}");
    assert_eq!(error.matches("levels deep").count(), 1, "reported once, not for every caller: {error}");
    assert!(error.contains("hint: "), "{error}");
}

#[test]
fn yaml_aliases_cannot_expand_past_the_limit() {
    // A 1 MiB string replayed 5,000 times: 5 GiB from a 1 MiB file.
    let big = "x".repeat(1 << 20);
    let refs = vec!["*big"; 5000].join(", ");
    let spec = format!("tasks:\n  t:\n    image: &big \"{big}\"\n    command: [{refs}]\n");
    let error = compile(&spec, Format::Yaml).unwrap_err();
    assert!(error.contains("expands to more than 64 MiB once its YAML aliases are replayed"), "{error}");
    // The classic nested form: nine levels of ten aliases each, 10^9 strings from a few hundred bytes.
    let mut spec =
        String::from("tasks:\n  t:\n    image: x\n    command: [t]\n    resources:\n      a0: &a0 [\"x\"]\n");
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 10].join(", ");
        spec.push_str(&format!("      a{level}: &a{level} [{refs}]\n"));
    }
    let error = compile(&spec, Format::Yaml).unwrap_err();
    assert!(error.contains("repetition limit exceeded") || error.contains("expands to more than 64 MiB"), "{error}");
    // A few aliases, as people use them for shared settings, are fine.
    let shared = "tasks:\n  a: {image: x, command: [a], resources: &r {cpu: 1, memory: 1Gi}}\n  b: {image: x, command: [b], resources: *r}\n";
    assert!(compile(shared, Format::Yaml).is_ok());
}

#[test]
fn deep_documents_are_refused_with_the_limit() {
    let deep = |open: &str, close: &str| {
        format!(
            "{{\"tasks\": {{\"t\": {{\"image\": \"x\", \"command\": [\"t\"], \"resources\": {}{}}}}}}}",
            open.repeat(10_000),
            close.repeat(10_000)
        )
    };
    for format in [Format::Yaml, Format::Json] {
        let error = compile(&deep("[", "]"), format).unwrap_err();
        assert!(error.contains("recursion limit exceeded") && error.contains("deeper than 128 levels"), "{error}");
    }
}

#[test]
fn a_json_spec_is_one_document() {
    let spec = r#"{"tasks": {"t": {"image": "x", "command": ["t"]}}}"#;
    assert!(compile(spec, Format::Json).is_ok());
    let error = compile(&format!("{spec} {{\"tasks\": {{}}}}"), Format::Json).unwrap_err();
    assert!(error.contains("trailing content after the JSON document"), "{error}");
}

#[test]
fn huge_numbers_in_specs_are_too_large_not_wrapped() {
    let spec = |timeout: &str| format!("tasks:\n  t: {{image: x, command: [t], timeout: {timeout}}}\n");
    for timeout in ["999999999999999d", "18446744073709551615s1s", "18446744073709551615"] {
        let error = compile(&spec(timeout), Format::Yaml).unwrap_err();
        assert!(error.contains("too large") && error.contains("maximum is 365d"), "{timeout}: {error}");
    }
    let compiled = compile(&spec("365d"), Format::Yaml).unwrap();
    assert_eq!(compiled.tasks[0].timeout.unwrap().seconds, 365 * 86_400, "never negative");
    let wf = "tasks:\n  t: {image: x, command: [t, \"{{inputs.n}}\"], inputs: {n: int}}\nworkflows:\n  w:\n    nodes:\n      a: {task: t, inputs: {n: 9223372036854775808}}\n";
    let error = compile(wf, Format::Yaml).unwrap_err();
    assert!(error.contains("int 9223372036854775808 is too large"), "{error}");
}

#[test]
fn a_secret_cannot_take_a_name_the_task_contract_sets() {
    for name in ["UPDRAFT_INPUTS_URI", "AWS_SECRET_ACCESS_KEY", "AWS_BATCH_JOB_ARRAY_INDEX"] {
        let spec =
            format!("tasks:\n  t:\n    image: x\n    command: [t]\n    secrets: {{{name}: {{ssm: /team/key}}}}\n");
        let error = compile(&spec, Format::Yaml).unwrap_err();
        assert!(error.contains(&format!("tasks.t.secrets.{name}: the secret name \"{name}\" is reserved")), "{error}");
        assert!(error.contains("mount: file"), "the way out is named: {error}");
        // Mounted as a file the name is only a file name: allowed.
        let as_file = format!(
            "tasks:\n  t:\n    image: x\n    command: [t]\n    secrets: {{{name}: {{ssm: /k, mount: file}}}}\n"
        );
        assert!(compile(&as_file, Format::Yaml).is_ok(), "{name} as a file");
    }
    let fine = "tasks:\n  t:\n    image: x\n    command: [t]\n    secrets: {DB_PASSWORD: {ssm: /team/db}}\n";
    assert!(compile(fine, Format::Yaml).is_ok());
}

#[test]
fn an_invalid_min_success_ratio_is_reported_once() {
    for ratio in ["0", "1.5", "\"half\""] {
        let spec = format!(
            "tasks:\n  t: {{image: x, command: [t], inputs: {{x: int}}}}\nworkflows:\n  w:\n    nodes:\n\
             \x20     m:\n        map: {{task: t, over: [x], min_success_ratio: {ratio}}}\n        inputs: {{x: [1, 2]}}\n"
        );
        let error = compile(&spec, Format::Yaml).unwrap_err();
        assert_eq!(error.matches("min_success_ratio must be in (0, 1]").count(), 1, "{ratio}: {error}");
    }
}

#[test]
fn dollar_rule_a_leading_double_dollar_is_one_literal_dollar_and_elsewhere_dollars_are_kept() {
    let spec = "tasks:\n  t:\n    image: x\n    command: [t]\n    inputs:\n      a: {type: string, default: \"$$5\"}\n\
                \x20     b: {type: string, default: \"a $$ b\"}\n      c: {type: string, default: \"cost $5\"}\n\
                \x20     d: {type: string, default: \"$$$$x\"}\n";
    let compiled = compile(spec, Format::Yaml).unwrap();
    let defaults = &compiled.tasks[0].input_defaults;
    let text = |name: &str| match &defaults[name].value {
        Some(updraft_core::proto::core::literal::Value::String(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(text("a"), "$5", "a value that starts with $$ starts with one literal $");
    assert_eq!(text("b"), "a $$ b", "only a leading $ makes a reference, so only a leading $$ is an escape");
    assert_eq!(text("c"), "cost $5");
    assert_eq!(text("d"), "$$$x", "one $ is taken off the front, once");
}
