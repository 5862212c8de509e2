//! `updraft exec` figures against the emulator's S3 (`./bench/run` starts it
//! and stores the small inputs): the wrapper's overhead beyond the task, and
//! the upload throughput of a 200 MiB output.

use std::path::{Path, PathBuf};
use std::process::Command;

const SMALL_INTERFACE: &str = r#"{"inputs":[{"name":"n","type":{"simple":"INTEGER"}},{"name":"raw","type":{"file":{}}}],"outputs":[{"name":"out","type":{"simple":"INTEGER"}}]}"#;
const BIG_INTERFACE: &str = r#"{"outputs":[{"name":"blob","type":{"file":{}}}]}"#;

pub fn run_all(updraft: &Path, scratch: &Path) {
    let (Ok(endpoint), Ok(bucket)) = (std::env::var("UPDRAFT_BENCH_ENDPOINT"), std::env::var("UPDRAFT_BENCH_BUCKET"))
    else {
        eprintln!("UPDRAFT_BENCH_ENDPOINT/UPDRAFT_BENCH_BUCKET are not set; skipping the exec benchmarks");
        return;
    };
    let exec = |interface: &str, inputs: Option<&str>, argv: &[&str]| {
        let mut command = Command::new(updraft);
        command
            .arg("exec")
            .arg("--")
            .args(argv)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("UPDRAFT_INTERFACE", interface)
            .env("UPDRAFT_OUTPUT_PREFIX", format!("s3://{bucket}/bench/out/"));
        if let Some(key) = inputs {
            command.env("UPDRAFT_INPUTS_URI", format!("s3://{bucket}/{key}"));
        }
        let out = command.output().expect("updraft starts");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // The same small task with and without the wrapper: an int and a 1 KiB file in, an int out.
    let write_n = ["sh", "-c", "cat \"$0\" > /dev/null; echo \"$1\" > \"$2\""];
    let direct_out: PathBuf = scratch.join("direct-out");
    let local_input = scratch.join("input.txt");
    std::fs::write(&local_input, vec![b'x'; 1024]).unwrap();
    let direct = crate::median_ms(9, || {
        let status =
            Command::new(write_n[0]).args(&write_n[1..]).arg(&local_input).arg("7").arg(&direct_out).status().unwrap();
        assert!(status.success());
    });
    let mut argv = write_n.to_vec();
    argv.extend(["{{inputs.raw}}", "{{inputs.n}}", "{{outputs.out}}"]);
    let wrapped = crate::median_ms(9, || {
        exec(SMALL_INTERFACE, Some("bench/inputs.json"), &argv);
    });
    crate::report("exec_overhead_ms", wrapped - direct);

    // Throughput of the upload phase alone, as exec reports it.
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let stderr =
                exec(BIG_INTERFACE, None, &["sh", "-c", "head -c 209715200 /dev/zero > \"$0\"", "{{outputs.blob}}"]);
            let rate = stderr.rsplit('(').next().and_then(|s| s.split_whitespace().next()).and_then(|v| v.parse().ok());
            rate.unwrap_or_else(|| panic!("no rate in exec's summary: {stderr}"))
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    println!("exec_upload_mib_s: {:.1} MiB/s", rates[1]);
}
