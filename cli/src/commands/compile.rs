//! `updraft compile FILE...`: the compiled IDL as canonical proto3 JSON.

use crate::spec_file;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use updraft_core::compile::{Compiled, Options};

pub fn run(files: &[PathBuf], options: &Options) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut documents = Vec::new();
    let mut failed = false;
    for path in files {
        match spec_file::load(path, options) {
            Ok(compiled) => documents.push(to_json(&compiled)?),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    let out = if documents.len() == 1 { documents.remove(0) } else { Value::Array(documents) };
    // The translating workers are done: a reader that stops early (`| head`) just ends us.
    crate::end_quietly_on_closed_stdout();
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

pub fn to_json(c: &Compiled) -> Result<Value, serde_json::Error> {
    Ok(json!({
        "project": c.project,
        "domain": c.domain,
        "tasks": serde_json::to_value(&c.tasks)?,
        "workflows": serde_json::to_value(&c.workflows)?,
        "launchPlans": serde_json::to_value(&c.launch_plans)?,
    }))
}
