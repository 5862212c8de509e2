//! `updraft exec -- ARGV...`: run one task attempt inside a container (see `crate::exec`).

use crate::exec::{self, EXIT_BAD_JOB, Job};
use std::collections::BTreeMap;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

pub fn run(argv: Vec<String>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let job = match Job::from_env(&vars) {
        Ok(job) => job,
        Err(problems) => {
            eprintln!("updraft exec: bad job description:\n  {problems}");
            return Ok(ExitCode::from(EXIT_BAD_JOB));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let (terminate, terminated) = tokio::sync::watch::channel(false);
        let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("updraft exec: stopping the task; no outputs will be published");
            let _ = terminate.send(true);
        });
        let config = updraft_aws::config::sdk_config(None, None).await;
        let s3 = updraft_aws::config::s3_client(&config);
        Ok::<_, std::io::Error>(exec::run(&s3, &job, &argv, terminated).await)
    })?;
    if !vars.contains_key("UPDRAFT_WORK_DIR") {
        let _ = std::fs::remove_dir_all(&job.work_dir);
    }
    match result {
        Ok(report) => {
            let seconds = report.outputs.as_secs_f64();
            let mib = report.output_bytes as f64 / (1024.0 * 1024.0);
            eprintln!(
                "updraft exec: inputs {:.3}s, task {:.3}s, outputs {} bytes in {seconds:.3}s ({:.1} MiB/s)",
                report.inputs.as_secs_f64(),
                report.task.as_secs_f64(),
                report.output_bytes,
                if seconds > 0.0 { mib / seconds } else { 0.0 },
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!("updraft exec: {}", failure);
            Ok(ExitCode::from(failure.exit_code()))
        }
    }
}
