//! `updraft sandbox up|down|status`: the cloud path on this machine, offline, in
//! one command. `up` starts the offline emulator (moto plus Updraft's patch
//! layer, `localstack/emulator/`) in the background, deploys the stack with
//! this machine's function binaries (building them if they are missing), and
//! points the config file at it with the emulator's fixed test key, so
//! `register`, `launch` and `executions` work with no AWS account.
//!
//! Its state lives in `$UPDRAFT_HOME/sandbox/`: `sandbox.toml` (port, stack,
//! pid), `emulator.log`. The config file the sandbox replaces is kept as
//! `config.toml.before-sandbox` and put back by `down`.

use crate::remote::{self, Config};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use updraft_engine::home::Home;

#[derive(clap::Subcommand)]
pub enum SandboxCommand {
    /// Start the emulator, deploy the stack into it, write the config (a no-op when one is running).
    Up {
        /// The emulator's port on 127.0.0.1 (another free one is taken, and said, when it is in use).
        #[arg(long, default_value_t = 4599)]
        port: u16,
    },
    /// Stop the emulator and put the previous config file back.
    Down,
    /// Is it running and healthy: the endpoint, the stack, the API.
    Status,
}

const STACK: &str = "updraft-sandbox";
const NAME_PREFIX: &str = "sandbox";
const FUNCTIONS: [&str; 4] = ["health", "api", "node", "status"];
/// The emulator starts in about 2 s; the first start may install its pinned requirements.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// What `up` left running.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    pid: u32,
    port: u16,
    endpoint: String,
    stack: String,
}

fn state_dir() -> Result<PathBuf, String> {
    let home = Home::from_env().map_err(|e| e.to_string())?;
    Ok(home.root().join("sandbox"))
}

fn read_state(dir: &Path) -> Option<State> {
    toml::from_str(&std::fs::read_to_string(dir.join("sandbox.toml")).ok()?).ok()
}

pub fn run(command: SandboxCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let dir = state_dir()?;
    match command {
        SandboxCommand::Up { port } => up(&dir, port),
        SandboxCommand::Down => down(&dir),
        SandboxCommand::Status => status(&dir),
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks the process exists; a zombie of ours does not count.
    let exists = unsafe { libc::kill(pid as i32, 0) == 0 };
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(true)
}

/// Whether the emulator answers on `endpoint`.
fn healthy(endpoint: &str) -> bool {
    let address = endpoint.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &address.parse().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /moto-api/updraft/counters HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.") && &answer[9..12] == b"200"
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The source checkout the sandbox is made from: the emulator and the function
/// binaries come from it. Found above this executable (`cargo run`,
/// `target/*/updraft`) or the working directory; `UPDRAFT_SOURCE` names it otherwise.
fn source_root() -> Result<PathBuf, String> {
    let marker = Path::new("localstack/emulator/updraft_emulator.py");
    let mut starts: Vec<PathBuf> = std::env::var_os("UPDRAFT_SOURCE").map(PathBuf::from).into_iter().collect();
    starts.extend(std::env::current_exe().ok());
    starts.extend(std::env::current_dir().ok());
    for start in starts {
        if let Some(root) = start.ancestors().find(|dir| dir.join(marker).is_file()) {
            return Ok(root.to_path_buf());
        }
    }
    Err("the sandbox is made from a source checkout of Updraft (its emulator and functions), and none is \
         above this executable or the working directory\n  hint: run it from the checkout, or set UPDRAFT_SOURCE to it"
        .into())
}

/// The function packages for this machine, zipped from the binaries beside this
/// executable. They are (re)built first with cargo — a no-op in a second when they
/// are current — so a checkout that moved on never deploys stale functions;
/// without cargo, binaries that are there are used as they are. The build names the
/// same packages as `./scripts/test` (the functions and this CLI): cargo unifies
/// dependencies' features over the packages named, so building the functions alone
/// would compile the AWS SDK a second time with other features.
fn packages(root: &Path) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("cannot tell where this executable is")?.to_path_buf();
    let release = bin_dir.file_name().is_some_and(|n| n == "release");
    let missing = FUNCTIONS.iter().any(|f| !bin_dir.join(f).is_file());
    let cargo_here = Command::new("cargo").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if missing && !cargo_here {
        return Err(format!("the Lambda functions are not in {} and cargo is not installed", bin_dir.display()));
    }
    if cargo_here {
        if missing {
            eprintln!("building the Lambda functions for this machine (once; a few minutes)…");
        }
        let mut cargo = Command::new("cargo");
        cargo.current_dir(root).args([
            "build",
            "--quiet",
            "-p",
            "updraft-functions",
            "--bins",
            "-p",
            "updraft-cli",
            "--bin",
            "updraft",
        ]);
        if release {
            cargo.arg("--release");
        }
        if let Some(target) = bin_dir.parent() {
            cargo.env("CARGO_TARGET_DIR", target);
        }
        let status = cargo.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("building the functions failed (above)".into());
        }
    }
    let out = bin_dir.join("sandbox-packages");
    let script = root.join("localstack/emulator/package_functions.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&bin_dir)
        .arg(&out)
        .args(FUNCTIONS)
        .status()
        .map_err(|e| format!("cannot run python3 {}: {e}", script.display()))?;
    if !status.success() {
        return Err("packaging the functions failed (above)".into());
    }
    Ok(out)
}

fn config_for(endpoint: &str) -> Config {
    Config {
        aws_endpoint_url: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        sandbox: true,
        ..Default::default()
    }
}

fn up(dir: &Path, wanted_port: u16) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Some(state) = read_state(dir)
        && alive(state.pid)
        && healthy(&state.endpoint)
    {
        println!("a sandbox is running already: {} (stack {})", state.endpoint, state.stack);
        print_next_steps();
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(state) = read_state(dir) {
        // Its emulator died (or hangs): its state went with it, so start afresh.
        eprintln!("the sandbox's emulator (pid {}) is gone; starting a new one", state.pid);
        stop(state.pid);
    }
    let started = Instant::now();
    let root = source_root()?;
    let port = if port_free(wanted_port) {
        wanted_port
    } else {
        let free = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        eprintln!("port {wanted_port} is in use; the sandbox takes port {free}");
        free
    };
    std::fs::create_dir_all(dir)?;
    let log_path = dir.join("emulator.log");
    let log = std::fs::File::create(&log_path)?;
    let mut emulator = Command::new(root.join("localstack/emulator/run"));
    emulator.arg(port.to_string()).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // Its own process group: it outlives this command, and `down` stops it with the jobs it runs.
    std::os::unix::process::CommandExt::process_group(&mut emulator, 0);
    let mut child = emulator.spawn().map_err(|e| format!("cannot start the emulator: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let state = State { pid: child.id(), port, endpoint: endpoint.clone(), stack: STACK.into() };
    std::fs::write(dir.join("sandbox.toml"), toml::to_string(&state)?)?;
    while !healthy(&endpoint) {
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(format!("the emulator exited ({exit}) before answering; see {}", log_path.display()).into());
        }
        if started.elapsed() > START_TIMEOUT {
            stop(state.pid);
            return Err(
                format!("the emulator did not answer within {START_TIMEOUT:?}; see {}", log_path.display()).into()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let packages = packages(&root)?;
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sdk = runtime.block_on(remote::sdk_config(&config_for(&endpoint)));
    let request = updraft_aws::deploy::DeployRequest {
        stack_name: STACK.into(),
        name_prefix: NAME_PREFIX.into(),
        template: updraft_aws::deploy::BUNDLED_TEMPLATE.to_string(),
        packages,
        code_bucket: None,
        subnets: Vec::new(),
        security_groups: Vec::new(),
        cpu_compute_environment: None,
        gpu_compute_environment: None,
        compute_environments: updraft_aws::deploy::ComputeEnvironments::Api,
        // Jobs run as host processes here, so their command starts with this machine's `updraft`.
        parameters: [("TaskExecPath".to_string(), exe.display().to_string())].into(),
        timeout: Duration::from_secs(300),
        poll_every: Duration::from_millis(200),
    };
    runtime.block_on(updraft_aws::deploy::deploy(&sdk, request)).map_err(|e| format!("deploying the stack: {e}"))?;

    let config_path = remote::config_path()?;
    let backup = config_path.with_extension("toml.before-sandbox");
    if let Ok(Some(previous)) = remote::read_config(&config_path)
        && !previous.sandbox
    {
        std::fs::copy(&config_path, &backup)?;
        eprintln!("kept your config as {} (`updraft sandbox down` puts it back)", backup.display());
    }
    let (path, _) = runtime.block_on(super::registry::write_stack_config(&sdk, STACK, true))?;
    println!(
        "sandbox up in {:.1} s: emulator {endpoint} (log {}), stack {STACK}, config {}",
        started.elapsed().as_secs_f64(),
        log_path.display(),
        path.display()
    );
    print_next_steps();
    Ok(ExitCode::SUCCESS)
}

fn print_next_steps() {
    println!("next:");
    println!("  updraft register examples/diabetes/diabetes.py --version v1");
    println!("  updraft launch examples/diabetes/diabetes.py --version v1 --watch");
    println!("  updraft sandbox status | updraft sandbox down");
}

/// Every process below `pid`, read from /proc (children, grandchildren…).
fn descendants(pid: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid …": the name may hold spaces and parentheses, so read after the last ')'.
        let parent = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for &child in children.get(&p).into_iter().flatten() {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// Stops the emulator and everything it started: its Lambda functions and Batch
/// jobs run in process groups of their own, so they are found by ancestry
/// first — left running, they would call the next emulator on the same port.
fn stop(pid: u32) {
    let mut family = descendants(pid);
    family.push(pid);
    let signal_all = |signal| {
        for &p in &family {
            unsafe {
                libc::kill(p as i32, signal);
            }
        }
    };
    signal_all(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while family.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_all(libc::SIGKILL);
}

fn down(dir: &Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(state) = read_state(dir) else {
        println!("no sandbox is running");
        return Ok(ExitCode::SUCCESS);
    };
    stop(state.pid);
    std::fs::remove_file(dir.join("sandbox.toml"))?;
    let config_path = remote::config_path()?;
    let backup = config_path.with_extension("toml.before-sandbox");
    if backup.is_file() {
        std::fs::rename(&backup, &config_path)?;
        println!("sandbox stopped; {} is your previous config again", config_path.display());
    } else {
        if remote::read_config(&config_path).ok().flatten().is_some_and(|c| c.sandbox) {
            std::fs::remove_file(&config_path)?;
        }
        println!("sandbox stopped");
    }
    Ok(ExitCode::SUCCESS)
}

fn status(dir: &Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(state) = read_state(dir) else {
        println!("no sandbox (start one with `updraft sandbox up`)");
        return Ok(ExitCode::from(crate::exit::NOT_RUNNING));
    };
    let running = alive(state.pid);
    let answering = running && healthy(&state.endpoint);
    println!(
        "emulator  {} (pid {}): {}",
        state.endpoint,
        state.pid,
        match (running, answering) {
            (true, true) => "running",
            (true, false) => "running but not answering",
            (false, _) => "gone (run `updraft sandbox up` to start it again)",
        }
    );
    if !answering {
        return Ok(ExitCode::FAILURE);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sdk = runtime.block_on(remote::sdk_config(&config_for(&state.endpoint)));
    let stack = match runtime.block_on(updraft_aws::deploy::stack_outputs(&sdk, &state.stack)) {
        Ok(outputs) => {
            println!(
                "stack     {}: deployed (bucket {})",
                state.stack,
                outputs.get("DataBucketName").cloned().unwrap_or_default()
            );
            true
        }
        Err(e) => {
            println!("stack     {}: {e}", state.stack);
            false
        }
    };
    let config = remote::read_config(&remote::config_path()?).ok().flatten();
    let api = match config.filter(|c| c.sandbox) {
        Some(config) => {
            let health = runtime.block_on(async {
                let client = remote::client(&config).await?;
                client.send("GET", "/v1/projects", &[], None).await.map_err(|e| e.to_string())
            });
            let ok = matches!(&health, Ok(answer) if answer.status == 200);
            println!(
                "api       {}: {}",
                config.endpoint,
                match &health {
                    Ok(answer) if ok => format!("answering (HTTP {})", answer.status),
                    Ok(answer) => format!("HTTP {}", answer.status),
                    Err(e) => e.clone(),
                }
            );
            ok
        }
        None => {
            println!("config    {} does not point at the sandbox", remote::config_path()?.display());
            false
        }
    };
    Ok(if stack && api { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
