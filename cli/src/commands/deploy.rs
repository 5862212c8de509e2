//! `updraft deploy`: create or update the stack, print its outputs.

use super::executions::OutputFormat;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use updraft_aws::deploy::{self, ComputeEnvironments, DeployRequest, StackChange};

#[derive(clap::Args)]
pub struct DeployArgs {
    /// Name of the CloudFormation stack.
    #[arg(long, default_value = "updraft")]
    stack_name: String,
    /// Prefix of every named resource (lower case, 2-21 characters).
    #[arg(long, default_value = "updraft")]
    name_prefix: String,
    /// Template to deploy instead of the one built into this binary (infra/template.yaml).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Directory of the function packages: <function>/bootstrap.zip as `cargo lambda build
    /// --output-format zip` writes them, or <function>.zip.
    #[arg(long, default_value = "target/lambda")]
    packages: PathBuf,
    /// Bucket for the packages (created if missing); default <prefix>-deploy-<account>-<region>.
    #[arg(long)]
    code_bucket: Option<String>,
    /// Subnet for the compute environments the stack creates. Repeatable.
    #[arg(long = "subnet", value_name = "ID")]
    subnets: Vec<String>,
    /// Security group for the compute environments the stack creates. Repeatable.
    #[arg(long = "security-group", value_name = "ID")]
    security_groups: Vec<String>,
    /// Use this existing Batch compute environment for CPU jobs.
    #[arg(long, value_name = "ARN")]
    cpu_compute_environment: Option<String>,
    /// Use this existing Batch compute environment for GPU jobs.
    #[arg(long, value_name = "ARN")]
    gpu_compute_environment: Option<String>,
    /// Who creates the compute environments; default: the stack, or the Batch API when an
    /// endpoint URL (an emulator) is set.
    #[arg(long, value_enum)]
    compute_environments: Option<ComputeEnvironmentsArg>,
    /// Any other template parameter. Repeatable.
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    parameters: Vec<String>,
    /// Send every AWS call here (LocalStack, the offline emulator); AWS_ENDPOINT_URL works too.
    #[arg(long)]
    endpoint_url: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Give up waiting after this many minutes (the stack operation goes on).
    #[arg(long, default_value_t = 60)]
    timeout_minutes: u64,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
}

/// Bad input (exit 2): nothing was created.
const EXIT_BAD_INPUT: u8 = crate::exit::USAGE;

/// `--compute-environments`, as `deploy::ComputeEnvironments` (the adapter crate has no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeEnvironmentsArg {
    /// The stack creates them (Fargate for CPU, EC2 GPU instances for GPU).
    Stack,
    /// Created through the Batch API as UNMANAGED environments (emulators).
    Api,
}

pub fn run(args: DeployArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let bad_input = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(EXIT_BAD_INPUT))
    };
    let template = match &args.template {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return bad_input(format!("cannot read template {}: {e}", path.display())),
        },
        None => deploy::BUNDLED_TEMPLATE.to_string(),
    };
    let mut parameters = BTreeMap::new();
    for p in &args.parameters {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => parameters.insert(k.to_string(), v.to_string()),
            _ => return bad_input(format!("--parameter {p:?}: expected KEY=VALUE")),
        };
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let config = updraft_aws::config::sdk_config(args.endpoint_url.as_deref(), args.region.as_deref()).await;
        let emulated = config.endpoint_url().is_some();
        let request = DeployRequest {
            stack_name: args.stack_name.clone(),
            name_prefix: args.name_prefix.clone(),
            template,
            packages: args.packages.clone(),
            code_bucket: args.code_bucket.clone(),
            subnets: args.subnets.clone(),
            security_groups: args.security_groups.clone(),
            cpu_compute_environment: args.cpu_compute_environment.clone(),
            gpu_compute_environment: args.gpu_compute_environment.clone(),
            compute_environments: match args.compute_environments {
                Some(ComputeEnvironmentsArg::Stack) => ComputeEnvironments::Stack,
                Some(ComputeEnvironmentsArg::Api) => ComputeEnvironments::Api,
                None if emulated => ComputeEnvironments::Api,
                None => ComputeEnvironments::Stack,
            },
            parameters,
            timeout: Duration::from_secs(args.timeout_minutes * 60),
            // Emulators finish at once; CloudFormation takes minutes and limits DescribeStacks calls.
            poll_every: if emulated { Duration::from_millis(200) } else { Duration::from_secs(5) },
        };
        deploy::deploy(&config, request).await
    });
    let deployed = match result {
        Ok(d) => d,
        Err(e) if e.is_input() => return bad_input(e.to_string()),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let change = match deployed.change {
        StackChange::Created => "created",
        StackChange::Updated => "updated",
        StackChange::Unchanged => "unchanged",
    };
    if args.output == OutputFormat::Json {
        let json = serde_json::json!({
            "stack": args.stack_name,
            "stack_id": deployed.stack_id,
            "status": deployed.status,
            "change": change,
            "outputs": deployed.outputs,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("stack {}: {change} ({})", args.stack_name, deployed.status);
        let width = deployed.outputs.keys().map(|k| k.len()).max().unwrap_or(0);
        for (key, value) in &deployed.outputs {
            println!("  {key:<width$}  {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
