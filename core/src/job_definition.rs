//! AWS Batch job definitions from task templates: a pure function, so that the
//! register Lambda, `updraft deploy` and the tests produce the same document.
//! The result is the `RegisterJobDefinition` request body (the API's JSON casing).
//!
//! The container runs the task's argv through `updraft exec` (the task
//! contract's implementation for containers). CPU-only tasks go to Fargate, with
//! the request rounded up to a valid Fargate size; GPU tasks need EC2.

use crate::execution::contract;
use crate::proto::core::{SecretMount, TaskTemplate, secret};
use serde_json::{Value, json};

/// Stack-level settings a job definition refers to.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every job definition name; the stack's roles are scoped to it.
    pub name_prefix: String,
    /// `arn:<partition>:iam::<account>:role/`: a task's job role is its project's
    /// (`project_access::job_role_name`) under it.
    pub role_arn_prefix: String,
    /// The partition (`aws`) and the data bucket, for the job roles' policies.
    pub partition: String,
    pub bucket: String,
    pub execution_role_arn: String,
    pub log_group: String,
    /// Where `updraft exec` sits in the image (see docs/task-contract.md).
    pub exec_path: String,
}

impl Settings {
    /// The role a task of `project` runs as.
    pub fn job_role_arn(&self, project: &str) -> String {
        format!("{}{}", self.role_arn_prefix, crate::project_access::job_role_name(&self.name_prefix, project))
    }
}

/// Batch counts at most 10 attempts; the compiler already caps retries at 9.
const MAX_ATTEMPTS: u32 = 10;
/// Batch refuses attempt timeouts under 60 s.
const MIN_TIMEOUT_SECONDS: i64 = 60;

/// Environment variable that carries a secret meant as a file; `updraft exec`
/// writes it to `$UPDRAFT_SECRETS_DIR/<name>` and removes it from the task's environment.
pub fn secret_file_variable(name: &str) -> String {
    format!("{}{name}", contract::SECRET_FILE_PREFIX)
}

pub fn job_definition(task: &TaskTemplate, settings: &Settings) -> Value {
    let id = task.id.clone().unwrap_or_default();
    let container = task.container.clone().unwrap_or_default();
    let requests = task.resources.and_then(|r| r.requests).unwrap_or_default();
    let gpu = requests.gpu;
    let (vcpu, memory) = if gpu > 0 {
        (format_vcpus(requests.cpu_millis.max(1000).div_ceil(1000) * 1000), requests.memory_mib.max(1024))
    } else {
        fargate_size(requests.cpu_millis, requests.memory_mib)
    };
    let mut resources =
        vec![json!({"type": "VCPU", "value": vcpu}), json!({"type": "MEMORY", "value": memory.to_string()})];
    if gpu > 0 {
        resources.push(json!({"type": "GPU", "value": gpu.to_string()}));
    }

    let mut command = vec![settings.exec_path.clone(), "exec".into(), "--".into()];
    command.extend(container.args.iter().cloned());
    let mut environment: Vec<Value> = container.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    // `updraft exec` checks the outputs against the interface; inputs and output prefix vary per run.
    let interface = serde_json::to_string(&task.interface.clone().unwrap_or_default()).unwrap_or_default();
    environment.push(json!({"name": contract::ENV_INTERFACE, "value": interface}));
    // A Python SDK task's prints reach the job's log as they happen, not when the buffer fills.
    if contract::python_task(&container.args).is_some() && !container.env.contains_key("PYTHONUNBUFFERED") {
        environment.push(json!({"name": "PYTHONUNBUFFERED", "value": "1"}));
    }
    // The code comes with the registration, not the image: exec fetches and checks it.
    if let Some(code) = &task.code {
        environment.push(json!({"name": contract::ENV_CODE_BUNDLE, "value": code.uri}));
        environment.push(json!({"name": contract::ENV_CODE_DIGEST, "value": code.digest}));
    }
    let secrets: Vec<Value> = task
        .secrets
        .iter()
        .map(|s| {
            let value_from = match &s.source {
                Some(secret::Source::SecretsManager(arn)) => arn.clone(),
                Some(secret::Source::SsmParameter(name)) => name.clone(),
                None => String::new(),
            };
            let name = match SecretMount::try_from(s.mount) {
                Ok(SecretMount::File) => secret_file_variable(&s.name),
                _ => s.name.clone(),
            };
            json!({"name": name, "valueFrom": value_from})
        })
        .collect();

    let mut container_properties = json!({
        "image": container.image,
        "command": command,
        "jobRoleArn": settings.job_role_arn(&id.project),
        "executionRoleArn": settings.execution_role_arn,
        "resourceRequirements": resources,
        "environment": environment,
        "secrets": secrets,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": settings.log_group, "awslogs-stream-prefix": id.name},
        },
    });
    if gpu == 0 {
        container_properties["fargatePlatformConfiguration"] = json!({"platformVersion": "LATEST"});
        container_properties["networkConfiguration"] = json!({"assignPublicIp": "DISABLED"});
    }

    let mut definition = json!({
        "jobDefinitionName": job_definition_name(&settings.name_prefix, &id.project, &id.domain, &id.name, &id.version),
        "type": "container",
        "platformCapabilities": [if gpu > 0 { "EC2" } else { "FARGATE" }],
        "containerProperties": container_properties,
        // Batch retries what `updraft run` retries: not a broken output contract, a bad job or corrupt data.
        "retryStrategy": {
            "attempts": (task.retries + 1).min(MAX_ATTEMPTS),
            "evaluateOnExit": crate::execution::failure::batch_evaluate_on_exit(),
        },
        "propagateTags": true,
        "tags": {
            "updraft:project": id.project,
            "updraft:domain": id.domain,
            "updraft:task": id.name,
            "updraft:version": id.version,
        },
    });
    if let Some(timeout) = task.timeout {
        definition["timeout"] = json!({"attemptDurationSeconds": timeout.seconds.max(MIN_TIMEOUT_SECONDS)});
    }
    definition
}

/// `<prefix>-<project>-<domain>-<task>-<version>`, in Batch's alphabet
/// (letters, digits, `-`, `_`; at most 128 characters).
pub fn job_definition_name(prefix: &str, project: &str, domain: &str, task: &str, version: &str) -> String {
    let raw = format!("{prefix}-{project}-{domain}-{task}-{version}");
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    clean.chars().take(128).collect()
}

fn format_vcpus(millis: u32) -> String {
    let whole = millis / 1000;
    match millis % 1000 {
        0 => whole.to_string(),
        rest => format!("{whole}.{}", format!("{rest:03}").trim_end_matches('0')),
    }
}

/// The smallest Fargate size that holds the request (defaults: 0.25 vCPU, 512 MiB).
/// Fargate accepts only these vCPU values, each with its own memory range and step.
fn fargate_size(cpu_millis: u32, memory_mib: u64) -> (String, u64) {
    // (vCPU in millis, min MiB, max MiB, step MiB)
    const SIZES: [(u32, u64, u64, u64); 7] = [
        (250, 512, 2048, 512),
        (500, 1024, 4096, 1024),
        (1000, 2048, 8192, 1024),
        (2000, 4096, 16384, 1024),
        (4000, 8192, 30720, 1024),
        (8000, 16384, 61440, 4096),
        (16000, 32768, 122880, 8192),
    ];
    let memory_mib = memory_mib.max(1);
    for (cpu, min, max, step) in SIZES {
        if cpu >= cpu_millis && max >= memory_mib {
            let memory = memory_mib.max(min).div_ceil(step) * step;
            return (format_vcpus(cpu), memory.min(max));
        }
    }
    // Larger than Fargate offers: the largest size; validation against queues flags it.
    (format_vcpus(16000), 122880)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_sizes_round_up_to_valid_combinations() {
        assert_eq!(fargate_size(0, 0), ("0.25".into(), 512));
        assert_eq!(fargate_size(250, 600), ("0.25".into(), 1024));
        assert_eq!(fargate_size(1000, 1024), ("1".into(), 2048));
        assert_eq!(fargate_size(1500, 2048), ("2".into(), 4096));
        assert_eq!(fargate_size(1000, 9000), ("2".into(), 9216), "memory beyond 1 vCPU's range needs 2 vCPUs");
        assert_eq!(fargate_size(500, 3000), ("0.5".into(), 3072));
    }

    #[test]
    fn a_task_with_a_code_bundle_tells_exec_where_it_is_and_its_digest() {
        let settings = Settings {
            name_prefix: "updraft".into(),
            role_arn_prefix: "arn:aws:iam::123456789012:role/".into(),
            partition: "aws".into(),
            bucket: "data".into(),
            execution_role_arn: "execution".into(),
            log_group: "logs".into(),
            exec_path: "/updraft".into(),
        };
        let mut task = TaskTemplate::default();
        let plain = job_definition(&task, &settings);
        let names = |definition: &Value| -> Vec<String> {
            definition["containerProperties"]["environment"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(!names(&plain).iter().any(|n| n.starts_with("UPDRAFT_CODE")));
        task.code = Some(crate::proto::core::CodeBundle {
            uri: "s3://data/bundles/sha256/ab.tar.gz".into(),
            digest: "sha256:ab".into(),
            size_bytes: 1,
        });
        let environment = job_definition(&task, &settings)["containerProperties"]["environment"].clone();
        assert!(
            environment
                .as_array()
                .unwrap()
                .contains(&json!({"name": contract::ENV_CODE_BUNDLE, "value": "s3://data/bundles/sha256/ab.tar.gz"}))
        );
        assert!(
            environment.as_array().unwrap().contains(&json!({"name": contract::ENV_CODE_DIGEST, "value": "sha256:ab"}))
        );
    }

    #[test]
    fn names_fit_batch() {
        assert_eq!(
            job_definition_name("updraft", "demo", "development", "fit", "v1.2"),
            "updraft-demo-development-fit-v1_2"
        );
        assert_eq!(job_definition_name("p", "x", "y", &"t".repeat(200), "v").len(), 128);
    }
}
