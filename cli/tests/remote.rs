//! The remote commands' edge: where the endpoint comes from and what a missing
//! or broken configuration, an unreachable API or a missing stack prints. Each
//! is one line with the file and what to run, an exit code of 1, never a panic.
//! (Registration itself runs end to end in localstack/emulator/tests/test_registry_api.py.)

use crate::support::{Scratch, repo_root, text};
use std::process::{Command, Output};

fn updraft_with(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
    command
        .args(args)
        .current_dir(repo_root())
        .env("UPDRAFT_CONFIG", config)
        .env_remove("UPDRAFT_ENDPOINT")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the updraft binary starts")
}

fn one_line_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: ") && !stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn without_a_config_file_the_error_says_which_file_and_what_to_run() {
    let dir = Scratch::new("remote-missing");
    let config = dir.join("config.toml");
    for args in [&["get", "tasks"][..], &["register", "examples/hello/hello.yaml", "--version", "v1"]] {
        let stderr = one_line_error(&updraft_with(&config, args, &[]));
        assert!(stderr.contains(&config.display().to_string()), "{stderr}");
        assert!(stderr.contains("updraft config init --stack"), "{stderr}");
    }
}

#[test]
fn a_broken_config_file_is_reported_with_its_line() {
    let dir = Scratch::new("remote-broken");
    let config = dir.join("config.toml");
    std::fs::write(&config, "endpoint = \"https://x/live\"\nregion = 5\n").unwrap();
    let stderr = one_line_error(&updraft_with(&config, &["get", "tasks"], &[]));
    assert!(stderr.contains("config.toml line 2") && stderr.contains("updraft config init"), "{stderr}");
    std::fs::write(&config, "\u{0}\u{1}binary").unwrap();
    one_line_error(&updraft_with(&config, &["get", "tasks"], &[]));
    std::fs::write(&config, "endpoint = \"\"\n").unwrap();
    let stderr = one_line_error(&updraft_with(&config, &["get", "tasks"], &[]));
    assert!(stderr.contains("`endpoint` is empty"), "{stderr}");
}

#[test]
fn an_explicit_endpoint_wins_and_an_unreachable_one_is_named() {
    let dir = Scratch::new("remote-unreachable");
    let config = dir.join("config.toml");
    std::fs::write(&config, "endpoint = \"https://from-the-file.invalid/live\"\n").unwrap();
    let unreachable = "http://127.0.0.1:9/live";
    let out = updraft_with(&config, &["get", "tasks"], &[("UPDRAFT_ENDPOINT", unreachable)]);
    let stderr = one_line_error(&out);
    assert!(stderr.contains("cannot reach http://127.0.0.1:9/live/v1/tasks/default/development"), "{stderr}");
    let out = updraft_with(&config, &["get", "tasks", "--endpoint", "ftp://nowhere"], &[]);
    assert!(one_line_error(&out).contains("is not a URL like https://host/stage"));
}

#[test]
fn config_init_names_a_missing_stack_and_writes_nothing() {
    let dir = Scratch::new("remote-init");
    let config = dir.join("config.toml");
    let endpoint = crate::emulator::endpoint();
    let out = updraft_with(&config, &["config", "init", "--stack", "no-such-stack", "--endpoint-url", endpoint], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read stack no-such-stack") && stderr.contains("updraft deploy"), "{stderr}");
    assert!(!config.exists());
}

#[test]
fn config_show_says_which_file_and_which_setting_chose_the_endpoint() {
    let dir = Scratch::new("remote-show");
    let config = dir.join("config.toml");
    std::fs::write(&config, "endpoint = \"https://api.example/live\"\nsandbox = true\n").unwrap();
    let out = updraft_with(&config, &["config", "show"], &[]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains(&format!("endpoint          https://api.example/live (from {})", config.display())),
        "{shown}"
    );
    assert!(shown.contains("the sandbox's test key"), "{shown}");
    let out = updraft_with(&config, &["config", "show", "-o", "json"], &[("UPDRAFT_ENDPOINT", "https://other/live")]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (shown["endpoint"].as_str(), shown["endpoint_from"].as_str()),
        (Some("https://other/live"), Some("UPDRAFT_ENDPOINT"))
    );
}

#[test]
fn updraft_home_moves_the_config_file_with_the_local_store() {
    let dir = Scratch::new("remote-home");
    std::fs::write(dir.join("config.toml"), "endpoint = \"https://in-home/live\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["config", "show", "--output", "json"])
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("UPDRAFT_ENDPOINT")
        .env("UPDRAFT_HOME", &*dir)
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["endpoint"], "https://in-home/live");
    assert_eq!(shown["file"].as_str(), Some(dir.join("config.toml").to_str().unwrap()));
}

#[test]
fn completion_scripts_cover_every_visible_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = crate::support::updraft(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for command in ["run", "register", "launch", "sandbox", "executions", "completion"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let bash = text(&crate::support::updraft(&["completion", "bash"]).stdout);
    assert!(bash.starts_with("_updraft()") && bash.contains("--task-output"), "options of subcommands too");
}
