//! `updraft validate FILE...`: a one-screen summary per valid file, every
//! problem of every invalid one.

use crate::spec_file;
use std::path::PathBuf;
use std::process::ExitCode;
use updraft_core::compile::{Compiled, Options};
use updraft_core::literal;
use updraft_core::proto::core::LiteralType;
use updraft_core::proto::core::{CompiledWorkflow, schedule};
use updraft_core::types::{Kind, display, kind};

pub fn run(files: &[PathBuf], options: &Options) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut failed = 0;
    for path in files {
        match spec_file::load(path, options) {
            Ok(compiled) => print!("{}", summary(&path.display().to_string(), &compiled)),
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file(s) invalid", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
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

fn workflow_summary(w: &CompiledWorkflow) -> String {
    let t = w.template.clone().unwrap_or_default();
    let dag = w.dag.clone().unwrap_or_default();
    let name = t.id.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
    let mut out = format!(
        "  workflow {name}: {} nodes, {} levels, max parallelism {}\n",
        t.nodes.len(),
        dag.levels.len(),
        dag.max_parallelism
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
