//! What registering a version creates in the cloud besides its registry entry:
//! its project's job role (`project_access`), a Batch job definition per task
//! version and a state machine per workflow
//! version, each named by the version, so that creating them is idempotent and a
//! launch never waits for one (Step Functions creates at most one state machine
//! per second). A pure plan here; the `Provisioner` port creates them.

use crate::job_definition::{self, job_definition, job_definition_name};
use crate::ports::Entity;
use crate::project_access;
use crate::state_machine::{self, StateMachineError, state_machine_name};
use serde_json::Value;

/// The stack's settings the resources refer to.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub jobs: job_definition::Settings,
    pub state_machines: state_machine::Targets,
}

/// One resource to make sure of.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// A project's job role with its inline policy (made before the job
    /// definitions that name it; its policy is put again on every registration).
    JobRole { name: String, policy: Value },
    /// A `RegisterJobDefinition` request body.
    JobDefinition { name: String, body: Value },
    /// An Amazon States Language definition.
    StateMachine { name: String, definition: Value },
}

impl Resource {
    pub fn name(&self) -> &str {
        match self {
            Resource::JobRole { name, .. }
            | Resource::JobDefinition { name, .. }
            | Resource::StateMachine { name, .. } => name,
        }
    }
}

/// The resources of `entities` (launch plans have none of their own): the
/// job roles of the tasks' projects first, then the tasks', then the workflows'. Fails, before anything is created, when a workflow cannot become a state machine.
pub fn plan(entities: &[Entity], settings: &CloudSettings) -> Result<Vec<Resource>, StateMachineError> {
    let mut resources = Vec::new();
    for entity in entities {
        match entity {
            Entity::Task(task) => {
                let id = task.id.clone().unwrap_or_default();
                let role = project_access::job_role_name(&settings.jobs.name_prefix, &id.project);
                if !resources.iter().any(|r| matches!(r, Resource::JobRole { name, .. } if *name == role)) {
                    let policy =
                        project_access::job_role_policy(&settings.jobs.partition, &settings.jobs.bucket, &id.project);
                    resources.push(Resource::JobRole { name: role, policy });
                }
                let name =
                    job_definition_name(&settings.jobs.name_prefix, &id.project, &id.domain, &id.name, &id.version);
                resources.push(Resource::JobDefinition { name, body: job_definition(task, &settings.jobs) });
            }
            Entity::Workflow(workflow) => {
                let id = workflow.template.as_ref().and_then(|t| t.id.clone()).unwrap_or_default();
                let definition = state_machine::definition(workflow, &settings.state_machines)?;
                let name = state_machine_name(&settings.jobs.name_prefix, &id);
                resources.push(Resource::StateMachine { name, definition });
            }
            Entity::LaunchPlan(_) => {}
        }
    }
    resources.sort_by_key(|r| match r {
        Resource::JobRole { .. } => 0,
        Resource::JobDefinition { .. } => 1,
        Resource::StateMachine { .. } => 2,
    });
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile_text};
    use crate::spec::Format;

    pub fn settings() -> CloudSettings {
        CloudSettings {
            jobs: job_definition::Settings {
                name_prefix: "updraft".into(),
                role_arn_prefix: "arn:aws:iam::123456789012:role/".into(),
                partition: "aws".into(),
                bucket: "data".into(),
                execution_role_arn: "arn:aws:iam::123456789012:role/updraft-job-execution".into(),
                log_group: "/aws/batch/updraft".into(),
                exec_path: "/updraft/updraft".into(),
            },
            state_machines: state_machine::Targets {
                node_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:updraft-node".into(),
                table: "updraft-metadata".into(),
                job_start_timeout_seconds: 1800,
            },
        }
    }

    #[test]
    fn each_task_gets_a_job_definition_and_each_workflow_a_state_machine_named_by_version() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/diabetes/diabetes.yaml"))
            .unwrap();
        let compiled =
            compile_text(&text, Format::Yaml, &Options { version: "v1".into(), ..Default::default() }).unwrap();
        let resources = plan(&compiled.registrable(), &settings()).unwrap();
        let names: Vec<&str> = resources.iter().map(Resource::name).collect();
        assert_eq!(
            names,
            [
                "updraft-job-examples",
                "updraft-examples-development-split-v1",
                "updraft-examples-development-fit-v1",
                "updraft-examples-development-predict-v1",
                "updraft-examples-development-score-v1",
                "updraft-examples-development-diabetes-v1",
            ],
            "the project's job role, then tasks, the launch plan has no resource of its own"
        );
        let Resource::JobDefinition { body, .. } = &resources[1] else { panic!("{resources:?}") };
        assert_eq!(body["containerProperties"]["jobRoleArn"], "arn:aws:iam::123456789012:role/updraft-job-examples");
    }
}
