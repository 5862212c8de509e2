//! Which nodes of a workflow may start, and what a failure does to the rest,
//! under the workflow's failure policy. Pure bookkeeping over node indices:
//! executors ask `ready()`, run what it returns, and report back.

use crate::proto::core::{FailurePolicy, NodePhase, WorkflowTemplate};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Scheduler {
    ids: Vec<String>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    phase: Vec<NodePhase>,
    policy: FailurePolicy,
    failed: bool,
}

impl Scheduler {
    pub fn new(template: &WorkflowTemplate) -> Scheduler {
        let ids: Vec<String> = template.nodes.iter().map(|n| n.id.clone()).collect();
        let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let upstream: Vec<Vec<usize>> = template
            .nodes
            .iter()
            .map(|n| n.upstream_node_ids.iter().filter_map(|u| index.get(u.as_str()).copied()).collect())
            .collect();
        let mut downstream = vec![Vec::new(); ids.len()];
        for (node, ups) in upstream.iter().enumerate() {
            for &u in ups {
                downstream[u].push(node);
            }
        }
        Scheduler {
            phase: vec![NodePhase::Undefined; ids.len()],
            ids,
            upstream,
            downstream,
            policy: FailurePolicy::try_from(template.failure_policy).unwrap_or(FailurePolicy::FailImmediately),
            failed: false,
        }
    }

    pub fn phase(&self, node: usize) -> NodePhase {
        self.phase[node]
    }

    /// Nodes whose upstream nodes all succeeded and that have not started; marks them QUEUED.
    pub fn ready(&mut self) -> Vec<usize> {
        if self.failed && self.policy == FailurePolicy::FailImmediately {
            return Vec::new();
        }
        let ready: Vec<usize> = (0..self.ids.len())
            .filter(|&n| self.phase[n] == NodePhase::Undefined && self.upstream[n].iter().all(|&u| done(self.phase[u])))
            .collect();
        for &n in &ready {
            self.phase[n] = NodePhase::Queued;
        }
        ready
    }

    pub fn running(&mut self, node: usize) {
        self.phase[node] = NodePhase::Running;
    }

    /// Records how a node ended. A failure skips everything downstream of it and,
    /// under fail-fast, everything not yet started.
    pub fn finished(&mut self, node: usize, phase: NodePhase) {
        self.phase[node] = phase;
        if matches!(phase, NodePhase::Failed | NodePhase::TimedOut | NodePhase::Aborted) {
            self.failed = true;
            let mut stack = self.downstream[node].clone();
            while let Some(d) = stack.pop() {
                if self.phase[d] == NodePhase::Undefined {
                    self.phase[d] = NodePhase::Skipped;
                    stack.extend(self.downstream[d].iter().copied());
                }
            }
            if self.policy == FailurePolicy::FailImmediately {
                for p in self.phase.iter_mut().filter(|p| **p == NodePhase::Undefined) {
                    *p = NodePhase::Skipped;
                }
            }
        }
    }

    /// No node is waiting or running.
    pub fn is_finished(&self) -> bool {
        self.phase.iter().all(|p| !matches!(p, NodePhase::Undefined | NodePhase::Queued | NodePhase::Running))
    }

    pub fn has_failed(&self) -> bool {
        self.failed
    }
}

fn done(phase: NodePhase) -> bool {
    matches!(phase, NodePhase::Succeeded | NodePhase::Cached | NodePhase::Recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::Node;

    fn template(edges: &[(&str, &[&str])], policy: FailurePolicy) -> WorkflowTemplate {
        WorkflowTemplate {
            nodes: edges
                .iter()
                .map(|(id, ups)| Node {
                    id: id.to_string(),
                    upstream_node_ids: ups.iter().map(|u| u.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
            failure_policy: policy as i32,
            ..Default::default()
        }
    }

    #[test]
    fn nodes_start_when_their_inputs_are_ready() {
        let mut s = Scheduler::new(&template(
            &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])],
            FailurePolicy::FailImmediately,
        ));
        assert_eq!(s.ready(), vec![0]);
        assert!(s.ready().is_empty(), "a is queued, not ready again");
        s.finished(0, NodePhase::Succeeded);
        assert_eq!(s.ready(), vec![1, 2]);
        s.finished(1, NodePhase::Cached);
        assert!(s.ready().is_empty());
        s.finished(2, NodePhase::Succeeded);
        assert_eq!(s.ready(), vec![3]);
        s.finished(3, NodePhase::Succeeded);
        assert!(s.is_finished() && !s.has_failed());
    }

    #[test]
    fn fail_fast_skips_everything_not_started() {
        let mut s = Scheduler::new(&template(&[("a", &[]), ("b", &[]), ("c", &["b"])], FailurePolicy::FailImmediately));
        assert_eq!(s.ready(), vec![0, 1]);
        s.running(0);
        s.finished(1, NodePhase::Failed);
        assert_eq!(s.phase(2), NodePhase::Skipped);
        assert!(s.ready().is_empty());
        assert!(!s.is_finished(), "a still runs");
        s.finished(0, NodePhase::Succeeded);
        assert!(s.is_finished() && s.has_failed());
    }

    #[test]
    fn finish_independent_lets_other_branches_run() {
        let mut s = Scheduler::new(&template(
            &[("a", &[]), ("b", &["a"]), ("x", &[]), ("y", &["x"])],
            FailurePolicy::FailAfterExecutableNodesComplete,
        ));
        assert_eq!(s.ready(), vec![0, 2]);
        s.finished(0, NodePhase::Failed);
        assert_eq!(s.phase(1), NodePhase::Skipped);
        s.finished(2, NodePhase::Succeeded);
        assert_eq!(s.ready(), vec![3], "y does not depend on the failure");
        s.finished(3, NodePhase::Succeeded);
        assert!(s.is_finished() && s.has_failed());
    }
}
