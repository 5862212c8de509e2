//! `updraft validate FILE...`: a one-screen summary per valid file, every
//! problem of every invalid one.

use super::executions::OutputFormat;
use crate::spec_file;
use std::path::PathBuf;
use std::process::ExitCode;
use updraft_core::compile::{Compiled, Options};
use updraft_core::compute::{self, Queues};
use updraft_core::literal;
use updraft_core::proto::core::LiteralType;
use updraft_core::proto::core::{CompiledWorkflow, schedule};
use updraft_core::types::{Kind, display, kind};

/// The stack could not be read (exit code 2): nothing was checked against it.
const EXIT_NO_STACK: u8 = crate::exit::USAGE;

pub fn run(
    files: &[PathBuf],
    options: &Options,
    stack: Option<&str>,
    output: OutputFormat,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let queues = match stack {
        None => None,
        Some(stack) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let found = runtime.block_on(async {
                let config = updraft_aws::config::sdk_config(None, None).await;
                updraft_aws::queues::of_stack(&config, stack).await
            });
            match found {
                Ok(queues) => Some(queues),
                Err(message) => {
                    eprintln!(
                        "error: --stack: {message}\n  hint: name a stack made by `updraft deploy`; credentials, region and AWS_ENDPOINT_URL as for any AWS tool"
                    );
                    return Ok(ExitCode::from(EXIT_NO_STACK));
                }
            }
        }
    };
    let mut failed = 0;
    let mut reports = Vec::new();
    for path in files {
        let checked = spec_file::load(path, options).and_then(|compiled| match &queues {
            Some(queues) => routes(&compiled, queues)
                .map(|routes| (compiled, routes))
                .map_err(|problems| spec_file::SpecFileError::new(path, problems)),
            None => Ok((compiled, String::new())),
        });
        match (checked, output) {
            (Ok((compiled, routes)), OutputFormat::Text) => {
                print!("{}{routes}", summary(&path.display().to_string(), &compiled))
            }
            (Ok((compiled, _)), OutputFormat::Json) => reports.push(json_summary(path, &compiled)),
            (Err(e), OutputFormat::Text) => {
                eprintln!("{e}");
                failed += 1;
            }
            (Err(e), OutputFormat::Json) => {
                let problems: Vec<serde_json::Value> = e
                    .problems
                    .iter()
                    .enumerate()
                    .map(|(i, problem)| {
                        let at = e.locations.get(i).cloned().flatten().unwrap_or_else(|| path.display().to_string());
                        serde_json::json!({"at": at, "problem": problem})
                    })
                    .collect();
                reports.push(serde_json::json!({"file": path, "valid": false, "problems": problems}));
                failed += 1;
            }
        }
    }
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if failed > 0 {
        if output == OutputFormat::Text {
            eprintln!("{failed} of {} file(s) invalid", files.len());
        }
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the text summary says, as one JSON object per file.
fn json_summary(path: &std::path::Path, c: &Compiled) -> serde_json::Value {
    let name = |id: Option<&updraft_core::proto::core::Identifier>| id.map(|i| i.name.clone()).unwrap_or_default();
    let workflows: Vec<serde_json::Value> = c
        .workflows
        .iter()
        .map(|w| {
            let t = w.template.clone().unwrap_or_default();
            let dag = w.dag.clone().unwrap_or_default();
            serde_json::json!({
                "name": name(t.id.as_ref()),
                "nodes": t.nodes.len(),
                "levels": dag.levels.len(),
                // Tasks at once, a map counting as its concurrency; null: a map without a limit.
                "max_parallelism": parallelism(w).ok(),
                "critical_path": dag.critical_path,
            })
        })
        .collect();
    serde_json::json!({
        "file": path,
        "valid": true,
        "project": c.project,
        "domain": c.domain,
        "tasks": c.tasks.iter().map(|t| name(t.id.as_ref())).collect::<Vec<_>>(),
        "workflows": workflows,
        "launch_plans": c.launch_plans.iter().map(|p| name(p.id.as_ref())).collect::<Vec<_>>(),
    })
}

/// Where each task would run on the stack, or every task that cannot run there.
fn routes(compiled: &Compiled, queues: &Queues) -> Result<String, Vec<String>> {
    let mut lines = String::new();
    let mut problems = Vec::new();
    for task in &compiled.tasks {
        let name = task.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
        match compute::route(task, queues, &format!("tasks.{name}")) {
            Ok(queue) => lines.push_str(&format!("  task {name}: job queue {}\n", queue.arn)),
            Err(diagnostic) => problems.push(diagnostic.to_string()),
        }
    }
    if problems.is_empty() { Ok(lines) } else { Err(problems) }
}

pub fn summary(file: &str, c: &Compiled) -> String {
    let mut out = format!("{file}: ok (project {}, domain {})\n", c.project, c.domain);
    if !c.tasks.is_empty() {
        let names: Vec<&str> = c.tasks.iter().filter_map(|t| t.id.as_ref()).map(|i| i.name.as_str()).collect();
        out.push_str(&format!("  tasks: {}\n", abbreviate(&names, 8)));
    }
    for w in &c.workflows {
        out.push_str(&workflow_summary(w));
    }
    for lp in &c.launch_plans {
        let name = lp.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
        let workflow = lp.workflow_id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
        let schedule = match lp.schedule.as_ref().and_then(|s| s.kind.as_ref()) {
            Some(schedule::Kind::Cron(c)) => {
                let zone = if c.timezone.is_empty() { "UTC" } else { &c.timezone };
                format!(", cron \"{}\" ({zone})", c.expression)
            }
            Some(schedule::Kind::Rate(r)) => {
                let unit =
                    updraft_core::proto::core::RateUnit::try_from(r.unit).map(|u| u.as_str_name()).unwrap_or("?");
                format!(", every {} {}", r.value, unit.to_lowercase())
            }
            None => String::new(),
        };
        let active = if lp.active { "" } else { ", inactive" };
        out.push_str(&format!("  launch plan {name}: workflow {workflow}{schedule}{active}\n"));
    }
    out
}

/// How many tasks a workflow can run at once: the widest level, a map node counting
/// as its `concurrency` (items at once). `Err(map)`: that map, on the widest
/// level, has no limit, so the width is its item count, known only at run time.
fn parallelism(w: &CompiledWorkflow) -> Result<u32, String> {
    use updraft_core::proto::core::node::Target;
    let t = w.template.clone().unwrap_or_default();
    let dag = w.dag.clone().unwrap_or_default();
    let width = |id: &str| match t.nodes.iter().find(|n| n.id == id).and_then(|n| n.target.as_ref()) {
        Some(Target::Map(map)) if map.concurrency == 0 => Err(id.to_string()),
        Some(Target::Map(map)) => Ok(map.concurrency),
        _ => Ok(1),
    };
    let mut widest = Ok(0);
    for level in &dag.levels {
        let level: Result<u32, String> = level.node_ids.iter().map(|id| width(id)).sum();
        widest = match (widest, level) {
            (Err(map), _) | (_, Err(map)) => return Err(map),
            (Ok(a), Ok(b)) => Ok(a.max(b)),
        };
    }
    widest
}

fn parallelism_text(w: &CompiledWorkflow) -> String {
    match parallelism(w) {
        Ok(n) => n.to_string(),
        Err(map) => format!("unbounded (map {map} runs all its items at once; set map.concurrency to bound it)"),
    }
}

fn workflow_summary(w: &CompiledWorkflow) -> String {
    let t = w.template.clone().unwrap_or_default();
    let dag = w.dag.clone().unwrap_or_default();
    let name = t.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
    let mut out = format!(
        "  workflow {name}: {} nodes, {} levels, max parallelism {}\n",
        t.nodes.len(),
        dag.levels.len(),
        parallelism_text(w)
    );
    let path: Vec<&str> = dag.critical_path.iter().map(String::as_str).collect();
    out.push_str(&format!("    critical path: {}\n", abbreviate_chain(&path)));
    let inputs: Vec<String> = t
        .inputs
        .iter()
        .map(|p| {
            let var = p.var.clone().unwrap_or_default();
            let default = p.default.as_ref().map(|d| format!(" = {}", literal::to_json(d))).unwrap_or_default();
            format!("{}: {}{default}", var.name, short(&var.r#type.unwrap_or_default()))
        })
        .collect();
    if !inputs.is_empty() {
        out.push_str(&format!(
            "    inputs: {}\n",
            abbreviate(&inputs.iter().map(String::as_str).collect::<Vec<_>>(), 8)
        ));
    }
    let outputs: Vec<String> =
        t.outputs.iter().map(|v| format!("{}: {}", v.name, short(&v.r#type.clone().unwrap_or_default()))).collect();
    if !outputs.is_empty() {
        out.push_str(&format!(
            "    outputs: {}\n",
            abbreviate(&outputs.iter().map(String::as_str).collect::<Vec<_>>(), 8)
        ));
    }
    out
}

fn abbreviate(items: &[&str], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{}, … ({} more)", items[..max].join(", "), items.len() - max)
    }
}

fn abbreviate_chain(items: &[&str]) -> String {
    if items.len() <= 8 {
        items.join(" → ")
    } else {
        format!("{} → … ({} more) → {}", items[..3].join(" → "), items.len() - 6, items[items.len() - 3..].join(" → "))
    }
}

/// A type for a one-line summary: a dataframe's columns are counted, not listed.
fn short(t: &LiteralType) -> String {
    match kind(t) {
        Kind::DataFrame(d) if !d.columns.is_empty() => {
            let format = if d.format.is_empty() { String::new() } else { format!("<{}>", d.format) };
            format!("dataframe{format}{{{} columns}}", d.columns.len())
        }
        _ => display(t),
    }
}
