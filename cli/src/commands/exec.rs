//! `updraft exec -- ARGV...`: run one task attempt inside a container (see `crate::exec`).
//! A strided child of a map's array job runs its items one after another, each as
//! its own attempt under its own prefix (`exec::strided_items`).

use crate::exec::{self, EXIT_BAD_JOB, Job};
use std::collections::BTreeMap;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use updraft_core::execution::contract::{ChildResults, ENV_ITEM_INDEX, ErrorDocument, ItemDocument, map_child_results};

pub fn run(argv: Vec<String>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let strided = match exec::strided_items(&vars) {
        Ok(strided) => strided,
        Err(problem) => return Ok(bad_job(&problem)),
    };
    // Each strided item is its own job description, with its own work directory.
    let jobs: Vec<(Option<usize>, BTreeMap<String, String>)> = match &strided {
        None => vec![(None, vars.clone())],
        Some(items) => items
            .iter()
            .map(|&item| {
                let mut vars = vars.clone();
                vars.insert(ENV_ITEM_INDEX.into(), item.to_string());
                if let Some(dir) = vars.get("UPDRAFT_WORK_DIR") {
                    let dir = format!("{dir}/item-{item}");
                    vars.insert("UPDRAFT_WORK_DIR".into(), dir);
                }
                (Some(item), vars)
            })
            .collect(),
    };
    let mut described = Vec::with_capacity(jobs.len());
    for (item, vars) in &jobs {
        match Job::from_env(vars) {
            Ok(job) => described.push((*item, job)),
            Err(problems) => return Ok(bad_job(&problems)),
        }
    }
    let owns_work_dirs = !vars.contains_key("UPDRAFT_WORK_DIR");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let exit = runtime.block_on(async {
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
        // The first failure's exit code is the child's: Batch's retry policy (the
        // failure table) decides on it; a retried child skips the items already done.
        let mut first_failure = None;
        let mut results = ChildResults::default();
        if strided.is_some() {
            // A first attempt runs every item of the child; a retried one may skip some,
            // and then reads lines it does not need, a small price against a request each.
            let jobs: Vec<&Job> = described.iter().map(|(_, job)| job).collect();
            exec::read_map_inputs_span(&s3, &jobs).await;
        }
        for (item, job) in &described {
            if *terminated.borrow() {
                break;
            }
            if let Some(item) = item {
                // Only a retried child can find an item published (its first attempt did it);
                // a first attempt saves the request.
                if job.attempt > 1 && exec::already_done(&s3, job).await {
                    eprintln!("updraft exec: item {item} ran in an earlier attempt; skipped");
                    continue;
                }
                eprintln!("updraft exec: item {item}");
            }
            let result = exec::run(&s3, job, &argv, terminated.clone()).await;
            if owns_work_dirs {
                let _ = std::fs::remove_dir_all(&job.work_dir);
            }
            if let Some(item) = item {
                match &result {
                    Ok(report) => {
                        if let Some(document) = &report.document {
                            results.items.insert(*item, ItemDocument::Outputs(document.clone()));
                        }
                    }
                    Err(failure) if !matches!(failure, exec::Failure::Terminated) => {
                        let (code, message, retryable) = failure.describe();
                        let error =
                            ErrorDocument { code: code.as_str().into(), message, retryable, attempt: job.attempt };
                        results.items.insert(*item, ItemDocument::Error(error));
                    }
                    Err(_) => {}
                }
            }
            if let Err(code) = report(result) {
                first_failure.get_or_insert(code);
            }
        }
        // A strided child sums its items up in one object: the map's gather reads one per child
        // (its index `k` is its first item's position; every item knows the items prefix).
        let child = strided.as_ref().and_then(|items| items.first()).zip(described.first());
        if let Some((&k, (_, job))) = child
            && let Some((prefix, _)) = &job.map_item
            && !*terminated.borrow()
            && !results.items.is_empty()
        {
            publish_child_results(&s3, prefix, k, &results).await;
        }
        Ok::<_, std::io::Error>(first_failure.unwrap_or(0))
    })?;
    Ok(ExitCode::from(exit))
}

fn bad_job(problems: &str) -> ExitCode {
    eprintln!("updraft exec: bad job description:\n  {problems}");
    ExitCode::from(EXIT_BAD_JOB)
}

/// Writes strided child `k`'s [`ChildResults`] under the map's items `prefix`; one
/// that cannot be written only costs the gather a read per item (each item
/// published its own documents).
async fn publish_child_results(
    s3: &aws_sdk_s3::Client,
    prefix: &updraft_aws::s3::S3Uri,
    k: usize,
    results: &ChildResults,
) {
    let at = prefix.join(&map_child_results(k));
    let bytes = serde_json::to_vec(results).expect("results serialize");
    if let Err(e) = updraft_aws::s3::put_bytes(s3, &at, bytes, "application/json").await {
        eprintln!("updraft exec: the child's results could not be written to {at} ({e}); each item's are in place");
    }
}

/// Prints how an attempt went; a failure's exit code.
fn report(result: Result<exec::Report, exec::Failure>) -> Result<(), u8> {
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
            Ok(())
        }
        Err(failure) => {
            eprintln!("updraft exec: {}", failure);
            Err(failure.exit_code())
        }
    }
}
