//! Which Batch job queue a task runs on, and whether it can run there at all.
//! GPU tasks go to the GPU queue; Fargate has no GPUs, so a GPU task whose
//! queue can only reach Fargate is rejected before it runs (`updraft validate
//! --stack` today, registration later), not after it has sat in RUNNABLE forever.

use crate::Diagnostic;
use crate::proto::core::TaskTemplate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Fargate,
    Ec2,
}

/// A job queue and the platforms of its compute environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub arn: String,
    pub platforms: Vec<Platform>,
}

/// The stack's queues (its `CpuJobQueueArn` and `GpuJobQueueArn` outputs).
#[derive(Debug, Clone)]
pub struct Queues {
    pub cpu: Queue,
    pub gpu: Option<Queue>,
}

/// The queue for a task, or why it cannot run on this stack. `path` names the
/// task in diagnostics (`tasks.train`).
pub fn route<'q>(task: &TaskTemplate, queues: &'q Queues, path: &str) -> Result<&'q Queue, Diagnostic> {
    let gpu = task.resources.and_then(|r| r.requests).map(|r| r.gpu).unwrap_or(0);
    if gpu == 0 {
        return Ok(&queues.cpu);
    }
    let at = format!("{path}.resources.gpu");
    let Some(queue) = &queues.gpu else {
        return Err(Diagnostic::new(at, format!("requests {gpu} GPU(s), but this stack has no GPU job queue"))
            .with_hint("deploy the stack with its GPU compute environment (GpuInstanceTypes), or remove `gpu:`"));
    };
    if !queue.platforms.contains(&Platform::Ec2) {
        return Err(Diagnostic::new(
            at,
            format!("requests {gpu} GPU(s), but job queue {} runs on Fargate only, which has no GPUs", queue.arn),
        )
        .with_hint("give the GPU queue an EC2 compute environment with GPU instance types (e.g. g5.xlarge)"));
    }
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::{ResourceQuantities, Resources};

    fn task(gpu: u32) -> TaskTemplate {
        TaskTemplate {
            resources: Some(Resources {
                requests: Some(ResourceQuantities { gpu, ..Default::default() }),
                limits: None,
            }),
            ..Default::default()
        }
    }

    fn queue(name: &str, platforms: &[Platform]) -> Queue {
        Queue { arn: format!("arn:aws:batch:us-east-1:1:job-queue/{name}"), platforms: platforms.to_vec() }
    }

    #[test]
    fn cpu_tasks_go_to_the_cpu_queue_and_gpu_tasks_to_the_gpu_queue() {
        let queues = Queues { cpu: queue("cpu", &[Platform::Fargate]), gpu: Some(queue("gpu", &[Platform::Ec2])) };
        assert!(route(&task(0), &queues, "tasks.prep").unwrap().arn.ends_with("/cpu"));
        assert!(route(&TaskTemplate::default(), &queues, "tasks.prep").unwrap().arn.ends_with("/cpu"));
        assert!(route(&task(1), &queues, "tasks.train").unwrap().arn.ends_with("/gpu"));
    }

    #[test]
    fn a_gpu_task_is_rejected_where_only_fargate_can_run_it() {
        let fargate_only =
            Queues { cpu: queue("cpu", &[Platform::Fargate]), gpu: Some(queue("gpu", &[Platform::Fargate])) };
        let err = route(&task(2), &fargate_only, "tasks.train").unwrap_err();
        assert_eq!(err.path, "tasks.train.resources.gpu");
        assert!(err.message.contains("requests 2 GPU(s), but job queue"), "{err}");
        assert!(err.message.contains("runs on Fargate only, which has no GPUs"), "{err}");
        assert!(err.hint.unwrap().contains("EC2 compute environment"));

        let no_gpu_queue = Queues { cpu: queue("cpu", &[Platform::Fargate, Platform::Ec2]), gpu: None };
        let err = route(&task(1), &no_gpu_queue, "tasks.train").unwrap_err();
        assert!(err.message.contains("this stack has no GPU job queue"), "{err}");
    }
}
