//! What registering a version creates in the cloud besides its registry entry:
//! a Batch job definition per task version and a state machine per workflow
//! version, each named by the version, so that creating them is idempotent and a
//! launch never waits for one (Step Functions creates at most one state machine
//! per second). A pure plan here; the `Provisioner` port creates them.

use crate::job_definition::{self, job_definition, job_definition_name};
use crate::ports::Entity;
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
    /// A `RegisterJobDefinition` request body.
    JobDefinition { name: String, body: Value },
    /// An Amazon States Language definition.
    StateMachine { name: String, definition: Value },
}

impl Resource {
    pub fn name(&self) -> &str {
        match self {
            Resource::JobDefinition { name, .. } | Resource::StateMachine { name, .. } => name,
        }
    }
}

/// The resources of `entities` (launch plans have none of their own), tasks
/// first. Fails, before anything is created, when a workflow cannot become a state machine.
pub fn plan(entities: &[Entity], settings: &CloudSettings) -> Result<Vec<Resource>, StateMachineError> {
    let mut resources = Vec::new();
    for entity in entities {
        match entity {
            Entity::Task(task) => {
                let id = task.id.clone().unwrap_or_default();
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
    resources.sort_by_key(|r| matches!(r, Resource::StateMachine { .. }));
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
                job_role_arn: "arn:aws:iam::123456789012:role/updraft-job".into(),
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
                "updraft-examples-development-split-v1",
                "updraft-examples-development-fit-v1",
                "updraft-examples-development-predict-v1",
                "updraft-examples-development-score-v1",
                "updraft-examples-development-diabetes-v1",
            ],
            "tasks first, the launch plan has no resource of its own"
        );
    }
}
