//! `updraft`: validate, compile and run workflows.

mod commands;
mod spec_file;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "updraft",
    version,
    about = "Typed, cached, versioned workflows on serverless AWS — or on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where compiled entities belong; defaults come from the spec file.
#[derive(clap::Args, Clone, Default)]
struct Namespace {
    /// Project (overrides the spec's `project:`).
    #[arg(long)]
    project: Option<String>,
    /// Domain: development, staging or production (overrides the spec's `domain:`).
    #[arg(long)]
    domain: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check spec files and print a summary of each (exit 1 if any is invalid).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Print the compiled IDL of spec files as JSON (one object per file; an array for several).
    Compile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Version label to stamp on every entity.
        #[arg(long, default_value = "")]
        version: String,
        #[command(flatten)]
        namespace: Namespace,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files, namespace } => commands::validate::run(&files, &namespace.into()),
        Command::Compile { files, version, namespace } => {
            commands::compile::run(&files, &updraft_core::compile::Options { version, ..namespace.into() })
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl From<Namespace> for updraft_core::compile::Options {
    fn from(n: Namespace) -> Self {
        updraft_core::compile::Options { project: n.project, domain: n.domain, version: String::new() }
    }
}
