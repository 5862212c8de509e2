//! `updraft`: validate, compile and run workflows; deploy the stack; run a task in a container.

mod bundle;
mod commands;
mod console;
mod exec;
mod exit;
mod reference;
mod remote;
mod spec_file;
mod translations;

use clap::{Parser, Subcommand};
use commands::executions::OutputFormat;
use std::path::PathBuf;
use std::process::ExitCode;
use updraft_engine::executor::CacheMode;

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
    /// Check spec files and print a summary of each (exit 2 if any is invalid).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check every task against this deployed stack's job queues (a GPU task
        /// needs a GPU queue with EC2 capacity) and show where each would run.
        #[arg(long, value_name = "STACK_NAME")]
        stack: Option<String>,
        #[command(flatten)]
        namespace: Namespace,
        /// json: one object per file (valid, problems with their place, summary), on stdout.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Run a workflow on this machine: local processes, local cache, no cloud.
    Run {
        /// The spec file.
        file: PathBuf,
        /// The workflow to run; optional when the file defines one.
        workflow: Option<String>,
        /// A workflow input, NAME=VALUE (lists, maps and structs as JSON). Repeatable.
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Neither read nor write the cache.
        #[arg(long, conflicts_with = "overwrite_cache")]
        no_cache: bool,
        /// Run every task and replace its cache entry.
        #[arg(long)]
        overwrite_cache: bool,
        /// At most this many tasks at once (they are also limited by CPU and memory requests).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_parallel: Option<u32>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
        /// Keep task outputs in S3 under this prefix (s3://bucket/prefix) instead of on this
        /// machine; AWS credentials and AWS_ENDPOINT_URL as for any AWS tool.
        #[arg(long, value_name = "S3_URI")]
        blob_store: Option<String>,
        /// Name the execution (letters, digits, `-`, `_`); a name taken before is refused.
        #[arg(long)]
        name: Option<String>,
        /// Show what tasks print as they print it, each line after its node (auto: when stderr is a terminal).
        #[arg(long, value_enum, default_value = "auto")]
        task_output: commands::run::TaskOutput,
        /// Only the progress lines: what tasks print stays in their logs (`--task-output off`).
        #[arg(short, long)]
        quiet: bool,
        /// Recover local run NAME, which failed, was aborted or timed out: its inputs (unless
        /// given), and every node that succeeded there on the same inputs ends RECOVERED
        /// without running (cached task or not); the rest run.
        #[arg(long, value_name = "NAME", conflicts_with = "remote")]
        recover: Option<String>,
        /// The launch plan whose tick this run is (`updraft schedule` sets it): recorded as
        /// the run's plan, with `--scheduled-at` as its tick.
        #[arg(long, value_name = "PLAN", hide = true, requires = "scheduled_at", conflicts_with_all = ["remote", "recover"])]
        launch_plan: Option<String>,
        #[arg(long, value_name = "TIME", hide = true, requires = "launch_plan")]
        scheduled_at: Option<String>,
        /// Run it in the cloud instead: `updraft launch FILE --register --watch` (the version
        /// derived from the spec and its code), as `pyflyte run --remote`.
        #[arg(long, conflicts_with_all = ["no_cache", "max_parallel", "blob_store"])]
        remote: bool,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Run launch plans' schedules on this machine: each tick starts a local run named by
    /// the plan and the tick, with its kickoff time; ticks are recorded, so a restart knows what ran.
    Schedule {
        /// The spec file (.yaml, .json or .py).
        file: PathBuf,
        /// The plans to schedule (default: every scheduled plan of the file).
        plans: Vec<String>,
        /// Ticks missed while not running: none, the latest one only (never a burst), or all.
        #[arg(long, value_enum, default_value = "last")]
        catch_up: commands::scheduler::CatchUpArg,
        /// A tick while the plan's previous run still runs: skip it, queue it, or run alongside.
        #[arg(long, value_enum, default_value = "skip")]
        overlap: commands::scheduler::OverlapArg,
    },
    /// Inspect local executions.
    Executions {
        #[command(subcommand)]
        command: ExecutionsCommand,
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
    /// Create or update the Updraft stack (infra/template.yaml) in AWS, LocalStack or the emulator.
    Deploy(commands::deploy::DeployArgs),
    /// Run one task attempt inside a container: inputs from S3, the argv without a shell,
    /// outputs checked and uploaded with their digests (the job definition's entrypoint).
    Exec {
        /// The task's argv, placeholders ({{inputs.x}}, {{outputs.y}}, {{code_dir}}) unfilled.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGV")]
        argv: Vec<String>,
    },
    /// Run a registered workflow version in the cloud (the stack's API); --watch follows it.
    Launch {
        /// A spec file (its workflow's types read locally) or the name of a registered workflow.
        target: String,
        /// The workflow, when the spec file defines several.
        workflow: Option<String>,
        /// The registered version to run; with --register, derived from the content when not given.
        #[arg(long, required_unless_present = "register")]
        version: Option<String>,
        /// A workflow input, NAME=VALUE (lists, maps and structs as JSON). Repeatable.
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// The execution's name: launching the same name and inputs again is the same run.
        #[arg(long)]
        name: Option<String>,
        /// Run every task and replace its cache entry.
        #[arg(long)]
        overwrite_cache: bool,
        /// Follow the run to its end with progress lines and the summary table.
        #[arg(long)]
        watch: bool,
        /// Register the spec file under --version first (its code bundle too), then launch:
        /// one step, as `pyflyte run --remote`. Unchanged content registers as a no-op;
        /// without --version, the version is `c-` and a digest of the spec and its code.
        #[arg(long)]
        register: bool,
        /// Runs in the cloud (what launch always does; `updraft run` runs locally).
        #[arg(long)]
        remote: bool,
        #[command(flatten)]
        remote_settings: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Register the tasks, workflows and launch plans of spec files with the stack's API
    /// under a version (one all-or-nothing request per file).
    Register {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The version label of every entity, e.g. a git commit. Versions are immutable:
        /// the same content again is a no-op, different content is refused.
        #[arg(long)]
        version: String,
        /// Make each launch plan of the files its name's active version: a scheduled one
        /// starts firing. Without it a scheduled plan is registered inactive unless its
        /// spec says `active: true`.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        remote: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// List or show registered entities: names, a name's versions (newest first), or one version.
    Get {
        #[arg(value_enum)]
        kind: commands::registry::Kind,
        name: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// Only names that start with this (when listing names).
        #[arg(long, conflicts_with = "name")]
        prefix: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        remote: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Activate or deactivate a registered launch plan version (one version of a name is active).
    Launchplan {
        #[command(subcommand)]
        command: LaunchPlanCommand,
    },
    /// The task-output cache, this machine's or the stack's (--remote): list or delete a task's entries.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// A web page over this machine's runs (list, graph, timeline, nodes, logs), served on
    /// 127.0.0.1 only; it reads the store and never changes it. Ctrl-C stops it.
    Console {
        /// The port to listen on; 0 picks a free one (the URL is printed).
        #[arg(long, default_value_t = 8575)]
        port: u16,
        /// Also open the page in the default browser.
        #[arg(long)]
        open: bool,
        /// Show the stack's cloud runs (its API, signed with your AWS credentials) instead of this machine's.
        #[arg(long)]
        remote: bool,
        #[command(flatten)]
        remote_settings: commands::registry::Remote,
    },
    /// The cloud path offline on this machine: an emulator with the stack deployed, and the config pointing at it.
    Sandbox {
        #[command(subcommand)]
        command: commands::sandbox::SandboxCommand,
    },
    /// Settings of the remote commands ($UPDRAFT_HOME/config.toml, default ~/.updraft; or UPDRAFT_CONFIG).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A local run's task logs, as its tasks wrote them: every node's, or one node's
    /// (`sub/a` inside a subworkflow), the last attempt unless told; `-f` follows a running run.
    Logs(LogsArgs),
    /// Free the local store of what nothing references: blobs no execution or cache entry
    /// names, run directories of deleted executions, staging leftovers (docs/storage.md).
    Gc {
        /// Report what would be freed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Print a shell completion script: `source <(updraft completion bash)`, or save it where your shell loads completions.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print this command reference as Markdown (docs/cli-reference.md is its output).
    #[command(hide = true)]
    Reference,
    /// Internal: the watchdog of one local execution (see updraft_engine::runner).
    #[command(name = "__watch-runner", hide = true)]
    WatchRunner { execution: String, runner: Option<String> },
}

#[derive(Subcommand)]
enum LaunchPlanCommand {
    /// Make this version the launch plan's active one (its schedule fires).
    Activate(LaunchPlanArgs),
    /// Make this version inactive.
    Deactivate(LaunchPlanArgs),
    /// Each firing of a launch plan's schedule in the cloud, newest first: launched, skipped or failed.
    Ticks {
        name: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        remote: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Run the ticks a plan's schedule fires between two times, each under its tick's
    /// name and kickoff time; a tick that ran before (scheduled or backfilled) is not run again.
    Backfill {
        name: String,
        #[arg(long)]
        version: String,
        /// The first time (RFC 3339, or a date), inclusive.
        #[arg(long)]
        from: String,
        /// The last time, inclusive.
        #[arg(long)]
        to: String,
        /// At most this many launches at once.
        #[arg(long, default_value_t = 4)]
        max_parallel: usize,
        /// List the ticks; launch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refuse a range of more ticks than this.
        #[arg(long, default_value_t = 1000)]
        max: usize,
        #[command(flatten)]
        remote: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// When a launch plan's schedule fires next: the zone's wall clock and UTC, by
    /// EventBridge Scheduler's rules (a time skipped by a clock change does not fire).
    Next {
        /// A spec file (.yaml, .json or .py).
        file: PathBuf,
        /// The launch plan, when the file schedules several.
        plan: Option<String>,
        /// How many fire times (at most 1,000).
        #[arg(short = 'n', default_value_t = 10)]
        count: usize,
        /// List the fires after this time (RFC 3339, or a date); default: now.
        #[arg(long)]
        after: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
}

#[derive(clap::Args)]
struct LaunchPlanArgs {
    name: String,
    #[arg(long)]
    version: String,
    #[command(flatten)]
    remote: commands::registry::Remote,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(clap::Args)]
struct LogsArgs {
    /// The execution (`updraft executions list` names them).
    id: String,
    /// One node: `fit`, `sub/a` inside a subworkflow, `squares/3` a map's item 3 (from 0).
    node: Option<String>,
    /// This attempt (from 1) instead of the last.
    #[arg(long)]
    attempt: Option<u32>,
    /// One item of a map node, from 0: `updraft logs ID squares --item 3` is `squares/3`.
    #[arg(long)]
    item: Option<u32>,
    /// Keep printing what the tasks write until the run ends.
    #[arg(short, long)]
    follow: bool,
    /// Only what the tasks wrote to stdout.
    #[arg(long, conflicts_with = "stderr")]
    stdout: bool,
    /// Only what the tasks wrote to stderr.
    #[arg(long)]
    stderr: bool,
    /// A cloud run's (the stack's API, from CloudWatch): every node's or NODE's, `-f` until it ends.
    #[arg(long, conflicts_with_all = ["stdout", "stderr"])]
    remote: bool,
    #[command(flatten)]
    remote_settings: commands::registry::Remote,
}

impl LogsArgs {
    fn request(&self) -> commands::executions::LogsRequest<'_> {
        use commands::executions::Streams;
        commands::executions::LogsRequest {
            id: &self.id,
            node: self.node.as_deref(),
            attempt: self.attempt,
            item: self.item,
            streams: match (self.stdout, self.stderr) {
                (true, _) => Streams::Stdout,
                (_, true) => Streams::Stderr,
                _ => Streams::Both,
            },
            follow: self.follow,
        }
    }
}

#[derive(Subcommand)]
enum CacheCommand {
    /// A task version's cache entries, newest first.
    List(CacheArgs),
    /// Delete every cache entry of a task version: its next runs execute it again.
    Delete(CacheArgs),
}

#[derive(clap::Args)]
struct CacheArgs {
    /// The task's name.
    task: String,
    /// The stack: the registered version (required with --remote). Locally, where tasks
    /// have no registered versions: the task's cache version (all of them if not given).
    #[arg(long)]
    version: Option<String>,
    /// The stack's cache (the API) instead of this machine's.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    remote_settings: commands::registry::Remote,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings the remote commands would use, and where each came from.
    Show {
        /// As the remote commands' --endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Write the API endpoint of a deployed stack into the config file.
    Init {
        /// The CloudFormation stack `updraft deploy` created.
        #[arg(long)]
        stack: String,
        /// Read the stack from this AWS endpoint (LocalStack, the emulator); AWS_ENDPOINT_URL works too.
        #[arg(long)]
        endpoint_url: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExecutionsCommand {
    /// The most recent executions, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs in this phase: running, succeeded, failed, aborted, timed_out.
        #[arg(long, value_parser = commands::executions::parse_phase)]
        phase: Option<updraft_core::proto::core::WorkflowPhase>,
        /// Only runs started since then: an age (90m, 6h, 2d) or a time (2027-03-28, RFC 3339).
        #[arg(long, value_parser = |s: &str| commands::executions::parse_since(s, chrono::Utc::now()))]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// List the stack's runs (the API) instead of this machine's.
        #[arg(long)]
        remote: bool,
        #[command(flatten)]
        remote_settings: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// One execution with its nodes, outputs and error (a cloud run that ended: its usage and cost).
    Get {
        id: String,
        /// Read it from the stack's API (a cloud run) instead of this machine's store.
        #[arg(long)]
        remote: bool,
        /// Price a cloud run's usage with this JSON price table instead of the built-in
        /// list prices (docs/cost.md names its fields).
        #[arg(long, value_name = "FILE", requires = "remote")]
        prices: Option<std::path::PathBuf>,
        #[command(flatten)]
        remote_settings: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Stop a run: its tasks are killed (Batch jobs terminated, child runs stopped) and it ends ABORTED.
    Abort {
        id: String,
        /// Why; recorded on a cloud run with your identity.
        #[arg(long, default_value = "")]
        reason: String,
        /// Abort a cloud run (the stack's API) instead of one running on this machine.
        #[arg(long)]
        remote: bool,
        #[command(flatten)]
        remote_settings: commands::registry::Remote,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Recover a cloud run that failed, was aborted or timed out: a new run on its
    /// inputs (of --version, a fixed one, if given) in which every node that
    /// succeeded there on the same task and inputs ends RECOVERED without running.
    Recover(commands::launch::RerunArgs),
    /// Launch a cloud run again: a new run on its inputs (of --version if given), everything
    /// run again but what the cache holds.
    Relaunch(commands::launch::RerunArgs),
    /// Delete local executions (records and run directories); `updraft gc` then frees
    /// the blobs only they named. Name them, or select by age and count.
    Delete {
        names: Vec<String>,
        /// Every execution created before then: an age (30d, 12h) or a time (2027-03-28).
        #[arg(long, value_parser = |s: &str| commands::executions::parse_since(s, chrono::Utc::now()))]
        older_than: Option<chrono::DateTime<chrono::Utc>>,
        /// Every execution but the newest N.
        #[arg(long)]
        keep: Option<usize>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// A local run's task logs, as its tasks wrote them (the same as `updraft logs`).
    Logs(LogsArgs),
}

/// Lets a closed standard output (`updraft compile … | head`) end the process as
/// the shell's own tools end, by SIGPIPE (exit status 141, no message), instead of
/// a panic in `println!`. Only for commands that print and no longer talk to child
/// processes through pipes: there, a dead child must stay an error to report.
pub(crate) fn end_quietly_on_closed_stdout() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = parse_arguments();
    if matches!(cli.command, Command::Executions { .. } | Command::Get { .. } | Command::Cache { .. }) {
        end_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Validate { files, stack, namespace, output } => {
            commands::validate::run(&files, &namespace.into(), stack.as_deref(), output)
        }
        Command::Run {
            file,
            workflow,
            inputs,
            no_cache,
            overwrite_cache,
            max_parallel,
            output,
            blob_store,
            name,
            task_output,
            quiet,
            recover,
            launch_plan,
            scheduled_at,
            remote,
            namespace,
        } => {
            let task_output = if quiet { commands::run::TaskOutput::Off } else { task_output };
            if remote {
                return exit_with(commands::launch::launch(commands::launch::LaunchArgs {
                    target: file.display().to_string(),
                    workflow,
                    version: String::new(),
                    inputs,
                    name,
                    overwrite_cache,
                    watch: true,
                    register: true,
                    remote: commands::registry::Remote {
                        endpoint: None,
                        project: namespace.project,
                        domain: namespace.domain,
                    },
                    output,
                }));
            }
            let cache_mode = match (no_cache, overwrite_cache) {
                (true, _) => CacheMode::Disabled,
                (_, true) => CacheMode::Overwrite,
                _ => CacheMode::Use,
            };
            commands::run::run(commands::run::RunArgs {
                file,
                workflow,
                inputs,
                cache_mode,
                max_parallel: max_parallel.map(|n| n as usize),
                output,
                blob_store,
                options: namespace.into(),
                name,
                task_output,
                recover,
                scheduled: launch_plan.zip(scheduled_at),
            })
        }
        Command::Executions {
            command: ExecutionsCommand::List { limit, workflow, phase, since, remote, remote_settings, output },
        } => {
            let mut filter = commands::executions::Filter { workflow, phase, since, project: None, domain: None };
            if remote {
                commands::launch::list_remote(limit, &filter, &remote_settings, output)
            } else {
                filter.project = remote_settings.project.clone();
                filter.domain = remote_settings.domain.clone();
                commands::executions::list(limit, &filter, output)
            }
        }
        Command::Executions { command: ExecutionsCommand::Get { id, remote, prices, remote_settings, output } } => {
            if remote {
                commands::launch::get_remote(&id, &remote_settings, prices.as_deref(), output)
            } else {
                commands::executions::get(&id, output)
            }
        }
        Command::Executions { command: ExecutionsCommand::Abort { id, reason, remote, remote_settings, output } } => {
            if remote {
                commands::launch::abort_remote(&id, &reason, &remote_settings, output)
            } else {
                commands::executions::abort(&id, output)
            }
        }
        Command::Executions { command: ExecutionsCommand::Recover(args) } => {
            commands::launch::rerun_remote("recover", &args)
        }
        Command::Executions { command: ExecutionsCommand::Relaunch(args) } => {
            commands::launch::rerun_remote("relaunch", &args)
        }
        Command::Executions { command: ExecutionsCommand::Delete { names, older_than, keep, output } } => {
            commands::executions::delete(&names, older_than, keep, output)
        }
        Command::Gc { dry_run, output } => commands::executions::gc(dry_run, output),
        Command::Executions { command: ExecutionsCommand::Logs(args) } | Command::Logs(args) => {
            if args.remote {
                commands::launch::logs_remote(
                    &args.id,
                    args.node.as_deref(),
                    args.item,
                    args.attempt,
                    args.follow,
                    &args.remote_settings,
                )
            } else {
                commands::executions::logs(&args.request())
            }
        }
        Command::Schedule { file, plans, catch_up, overlap } => {
            commands::scheduler::run(&commands::scheduler::ScheduleArgs { file, plans, catch_up, overlap })
        }
        Command::Compile { files, version, namespace } => {
            commands::compile::run(&files, &updraft_core::compile::Options { version, ..namespace.into() })
        }
        Command::Deploy(args) => commands::deploy::run(args),
        Command::Exec { argv } => commands::exec::run(argv),
        Command::Launch {
            target,
            workflow,
            version,
            inputs,
            name,
            overwrite_cache,
            watch,
            register,
            remote: _,
            remote_settings,
            output,
        } => commands::launch::launch(commands::launch::LaunchArgs {
            target,
            workflow,
            version: version.unwrap_or_default(),
            inputs,
            name,
            overwrite_cache,
            watch,
            register,
            remote: remote_settings,
            output,
        }),
        Command::Register { files, version, activate, remote, output } => {
            commands::registry::register(&files, &version, activate, &remote, output)
        }
        Command::Get { kind, name, version, prefix, limit, remote, output } => {
            let what = commands::registry::Wanted { kind, name, version, prefix, limit };
            commands::registry::get(&what, &remote, output)
        }
        Command::Launchplan { command: LaunchPlanCommand::Next { file, plan, count, after, output } } => {
            commands::schedule::next(&file, plan.as_deref(), count, after.as_deref(), output)
        }
        Command::Launchplan { command: LaunchPlanCommand::Ticks { name, limit, remote, output } } => {
            commands::registry::ticks(&name, limit, &remote, output)
        }
        Command::Launchplan {
            command: LaunchPlanCommand::Backfill { name, version, from, to, max_parallel, dry_run, max, remote, output },
        } => commands::backfill::backfill(&commands::backfill::BackfillArgs {
            plan: name,
            version,
            from,
            to,
            max_parallel,
            dry_run,
            max,
            remote,
            output,
        }),
        Command::Launchplan { command } => {
            let (args, active) = match command {
                LaunchPlanCommand::Activate(args) => (args, true),
                LaunchPlanCommand::Deactivate(args) => (args, false),
                LaunchPlanCommand::Next { .. }
                | LaunchPlanCommand::Ticks { .. }
                | LaunchPlanCommand::Backfill { .. } => {
                    unreachable!("answered above")
                }
            };
            commands::registry::set_active(&args.name, &args.version, active, &args.remote, args.output)
        }
        Command::Cache { command } => {
            let (args, delete) = match command {
                CacheCommand::List(args) => (args, false),
                CacheCommand::Delete(args) => (args, true),
            };
            match (args.remote, &args.version) {
                (true, Some(version)) => {
                    commands::registry::cache(&args.task, version, delete, &args.remote_settings, args.output)
                }
                (true, None) => {
                    eprintln!("error: --remote needs the task's registered --version");
                    Ok(ExitCode::from(exit::USAGE))
                }
                (false, version) => commands::executions::local_cache(
                    &args.task,
                    version.as_deref(),
                    &args.remote_settings,
                    delete,
                    args.output,
                ),
            }
        }
        Command::Sandbox { command } => commands::sandbox::run(command),
        Command::Console { port, open, remote: false, .. } => console::serve_local(port, open),
        Command::Console { port, open, remote: true, remote_settings } => {
            console::serve_remote(port, open, &remote_settings)
        }
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "updraft", &mut script);
            // `updraft completion bash | head` ends quietly, as every command's output does.
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Config { command: ConfigCommand::Show { endpoint, output } } => {
            commands::registry::config_show(endpoint.as_deref(), output)
        }
        Command::Config { command: ConfigCommand::Init { stack, endpoint_url, region } } => {
            commands::registry::config_init(&stack, endpoint_url.as_deref(), region.as_deref())
        }
        Command::Reference => {
            let text = reference::markdown(&<Cli as clap::CommandFactory>::command());
            match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::WatchRunner { execution, runner } => {
            updraft_engine::runner::watch(&execution, runner.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    };
    exit_with(result)
}

/// A command's exit status; an error is printed and is a failure (docs/cli.md).
fn exit_with(result: Result<ExitCode, Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line; `updraft run --help` also says which GPUs this machine offers
/// (found only then: detection may start `nvidia-smi`).
fn parse_arguments() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    // As the OS gave them (`args()` would panic on an argument that is not UTF-8).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is = |a: &std::ffi::OsString, words: &[&str]| a.to_str().is_some_and(|a| words.contains(&a));
    let mut command = Cli::command();
    if args.get(1).is_some_and(|a| is(a, &["run"])) && args.iter().any(|a| is(a, &["--help", "-h"])) {
        let found = updraft_engine::gpus::Gpus::detect().describe();
        command = command.mut_subcommand("run", |run| {
            run.after_help(format!(
                "GPUs: {found}. A task with resources.gpu: N waits for N free devices and sees only them \
                 (CUDA_VISIBLE_DEVICES); tasks without a GPU request see none. UPDRAFT_GPUS=0,1 or \
                 UPDRAFT_GPUS=none sets the devices to use."
            ))
        });
    }
    Cli::from_arg_matches(&command.get_matches_from(args)).unwrap_or_else(|e| e.exit())
}

impl From<Namespace> for updraft_core::compile::Options {
    fn from(n: Namespace) -> Self {
        updraft_core::compile::Options { project: n.project, domain: n.domain, version: String::new() }
    }
}
