//! The HTTPS API through the emulator's stage URL (`./bench/run` deploys the
//! stack with release-built functions and writes `UPDRAFT_CONFIG`): what a user
//! waits for in `updraft register` and `updraft get`, CLI start and SigV4
//! signing included, and each request's Lambda (a fresh process per invoke on
//! the emulator, where AWS keeps a warm one).

use std::path::Path;
use std::process::Command;

pub fn run_all(updraft: &Path) {
    if std::env::var_os("UPDRAFT_CONFIG").is_none() {
        eprintln!("UPDRAFT_CONFIG is not set; skipping the API benchmarks");
        return;
    }
    let run = |args: &[&str]| {
        let out = Command::new(updraft).args(args).output().expect("updraft starts");
        assert!(out.status.success(), "updraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let spec = "examples/diabetes/diabetes.yaml";
    // A new version each time: the whole write path (compile, read, transaction).
    let mut version = 0;
    let register_ms = crate::median_ms(9, || {
        version += 1;
        run(&["register", spec, "--version", &format!("bench-{}-{version}", std::process::id())]);
    });
    crate::report("api_register_ms", register_ms);
    let latest = format!("bench-{}-{version}", std::process::id());
    let get_ms = crate::median_ms(9, || {
        run(&["get", "workflows", "diabetes", "--version", &latest, "--project", "examples"]);
    });
    crate::report("api_get_ms", get_ms);
}
