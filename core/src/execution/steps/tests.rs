//! The protocol against in-memory ports, driven by a simulated clock: Step
//! Functions arms every node at time 0 (in a scrambled order), each job ends
//! after its node's duration, in time order.

use super::*;
use crate::compile::{Options, compile_text};
use crate::literal;
use crate::ports::StoredBlob;
use crate::ports::memory::{MemoryCache, block_on};
use crate::proto::core::literal::Value as LV;
use crate::spec::Format;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

#[derive(Default)]
struct Slots {
    slots: HashMap<String, NodeSlot>,
    claimed: HashSet<String>,
    ended: BTreeMap<String, NodeEnd>,
}

/// A run store that keeps its contract with one lock, as DynamoDB's conditional writes do.
struct MemoryRun {
    state: Mutex<Slots>,
    inputs: Outputs,
}

impl MemoryRun {
    fn new(workflow: &CompiledWorkflow, inputs: Outputs) -> MemoryRun {
        let mut state = Slots::default();
        for node in &workflow.template.as_ref().unwrap().nodes {
            let slot = NodeSlot { pending: node.upstream_node_ids.len() as u32, ..Default::default() };
            state.slots.insert(node.id.clone(), slot);
        }
        MemoryRun { state: Mutex::new(state), inputs }
    }

    fn phases(&self) -> BTreeMap<String, NodePhase> {
        self.state.lock().unwrap().ended.iter().map(|(k, v)| (k.clone(), v.phase)).collect()
    }
}

impl RunStore for MemoryRun {
    async fn arm(&self, node: &str, token: &str) -> Result<NodeSlot, PortError> {
        let mut state = self.state.lock().unwrap();
        let slot = state.slots.get_mut(node).unwrap();
        slot.token = Some(token.into());
        Ok(slot.clone())
    }
    async fn upstream_ended(&self, node: &str, failed: bool) -> Result<NodeSlot, PortError> {
        let mut state = self.state.lock().unwrap();
        let slot = state.slots.get_mut(node).unwrap();
        slot.pending -= 1;
        slot.skip |= failed;
        Ok(slot.clone())
    }
    async fn slot(&self, node: &str) -> Result<NodeSlot, PortError> {
        Ok(self.state.lock().unwrap().slots[node].clone())
    }
    async fn claim(&self, node: &str) -> Result<bool, PortError> {
        Ok(self.state.lock().unwrap().claimed.insert(node.to_string()))
    }
    async fn end(&self, node: &str, end: &NodeEnd) -> Result<bool, PortError> {
        let mut state = self.state.lock().unwrap();
        if state.ended.contains_key(node) {
            return Ok(false);
        }
        state.ended.insert(node.to_string(), end.clone());
        Ok(true)
    }
    async fn values(&self) -> Result<RunValues, PortError> {
        let state = self.state.lock().unwrap();
        let outputs = state.ended.iter().map(|(k, v)| (k.clone(), v.outputs.clone())).collect();
        Ok(RunValues { inputs: self.inputs.clone(), outputs })
    }
}

/// Jobs that run for their node's duration: `submitted` holds (node, inputs).
#[derive(Default)]
struct RecordedJobs {
    submitted: Mutex<Vec<(String, Outputs)>>,
    maps: Mutex<Vec<(String, Vec<Outputs>)>>,
}

impl Jobs for RecordedJobs {
    async fn submit(&self, node: &str, _task: &TaskTemplate, inputs: &Outputs) -> Result<String, PortError> {
        let mut submitted = self.submitted.lock().unwrap();
        submitted.push((node.to_string(), inputs.clone()));
        Ok(format!("job-{}", submitted.len()))
    }
    async fn submit_map(&self, node: &str, _task: &TaskTemplate, items: &[Outputs]) -> Result<String, PortError> {
        self.maps.lock().unwrap().push((node.to_string(), items.to_vec()));
        Ok(format!("map-{node}"))
    }
    async fn start_subworkflow(
        &self,
        node: &str,
        _: &CompiledWorkflow,
        inputs: &Outputs,
        _: bool,
    ) -> Result<String, PortError> {
        self.submitted.lock().unwrap().push((node.to_string(), inputs.clone()));
        Ok(format!("child-{node}"))
    }
}

/// Answers by token: (token, Ok(phase) | Err(failure code)).
#[derive(Default)]
struct RecordedTokens {
    answers: Mutex<Vec<(String, Result<NodePhase, FailureCode>)>>,
}

impl Tokens for RecordedTokens {
    async fn succeed(&self, token: &str, _node: &str, phase: NodePhase) -> Result<(), PortError> {
        self.answers.lock().unwrap().push((token.into(), Ok(phase)));
        Ok(())
    }
    async fn fail(&self, token: &str, failure: &NodeFailure) -> Result<(), PortError> {
        self.answers.lock().unwrap().push((token.into(), Err(failure.code)));
        Ok(())
    }
}

/// Blobs whose URIs are in `gone` are missing.
#[derive(Default)]
struct Blobs {
    gone: Mutex<HashSet<String>>,
}

impl BlobStore for Blobs {
    async fn put(&self, _: &Path, _: bool) -> Result<StoredBlob, PortError> {
        unreachable!("the node steps store nothing")
    }
    async fn holds(&self, uri: &str, _: &str, _: bool) -> bool {
        !self.gone.lock().unwrap().contains(uri)
    }
}

/// A task whose output `y` is `x + 1` (or a file when `file` is set), computed by the simulated job.
const SPEC: &str = r"tasks:
  inc: {image: x, command: [inc], inputs: {x: int}, outputs: {y: int}, cache: {version: '1'}}
  fails: {image: x, command: [fail], inputs: {x: int}, outputs: {y: int}}
";

fn workflow(nodes: &str, policy: &str) -> CompiledWorkflow {
    let spec =
        format!("{SPEC}workflows:\n  w:\n    inputs: {{x: {{type: int, default: 0}}}}\n{policy}    nodes:\n{nodes}");
    let options = Options { version: "v1".into(), ..Default::default() };
    compile_text(&spec, Format::Yaml, &options).unwrap_or_else(|e| panic!("{e}")).closure("w").unwrap()
}

/// What happened in one simulated run.
struct Run {
    starts: BTreeMap<String, u64>,
    ends: BTreeMap<String, u64>,
    phases: BTreeMap<String, NodePhase>,
    jobs: usize,
    answers: Vec<(String, Result<NodePhase, FailureCode>)>,
}

/// Runs `workflow` with each node's job taking `durations[node]` time units.
fn simulate(workflow: &CompiledWorkflow, durations: &[(&str, u64)], cache: &MemoryCache, blobs: &Blobs) -> Run {
    let durations: HashMap<&str, u64> = durations.iter().copied().collect();
    let run = MemoryRun::new(workflow, [("x".to_string(), literal::integer(1))].into());
    let (jobs, tokens) = (RecordedJobs::default(), RecordedTokens::default());
    let steps = Steps { workflow, store: &run, cache, blobs, jobs: &jobs, tokens: &tokens, overwrite_cache: false };
    let mut starts = BTreeMap::new();
    let mut ends = BTreeMap::new();
    // In flight: (end time, node, result).
    let mut running: Vec<(u64, String, Result<Outputs, NodeFailure>)> = Vec::new();
    let mut seen_jobs = 0;
    let mut now = 0;
    let mut note_new_jobs = |now: u64, running: &mut Vec<_>, starts: &mut BTreeMap<String, u64>| {
        let submitted = jobs.submitted.lock().unwrap();
        for (node, inputs) in submitted.iter().skip(seen_jobs) {
            starts.insert(node.clone(), now);
            let x = match inputs.get("x").and_then(|l| l.value.clone()) {
                Some(LV::Integer(x)) => x,
                _ => 0,
            };
            let result = if node.starts_with("bad") {
                Err(NodeFailure::new(FailureCode::NonZeroExit, "exit 1"))
            } else {
                Ok([("y".to_string(), literal::integer(x + 1))].into())
            };
            running.push((now + durations.get(node.as_str()).copied().unwrap_or(1), node.clone(), result));
        }
        seen_jobs = submitted.len();
    };
    let mut ids: Vec<String> = workflow.template.as_ref().unwrap().nodes.iter().map(|n| n.id.clone()).collect();
    ids.reverse(); // Step Functions arms branches in no particular order
    for id in &ids {
        block_on(steps.arm(id, &format!("token-{id}"))).unwrap();
    }
    note_new_jobs(now, &mut running, &mut starts);
    while !running.is_empty() {
        running.sort_by_key(|(end, node, _)| (std::cmp::Reverse(*end), std::cmp::Reverse(node.clone())));
        let (end, node, result) = running.pop().unwrap();
        now = end;
        ends.insert(node.clone(), now);
        block_on(steps.job_ended(&node, result)).unwrap();
        note_new_jobs(now, &mut running, &mut starts);
    }
    let answers = tokens.answers.lock().unwrap().clone();
    Run { starts, ends, phases: run.phases(), jobs: seen_jobs, answers }
}

const N_SHAPE: &str = r"      a: {task: inc, inputs: {x: $inputs.x}}
      b: {task: inc, inputs: {x: 10}}
      c: {task: inc, inputs: {x: $a.y}}
      d: {task: inc, inputs: {x: $b.y}, after: [a]}
";

#[test]
fn in_an_n_shaped_dag_c_starts_when_a_ends_not_when_b_does() {
    let w = workflow(N_SHAPE, "");
    let run = simulate(&w, &[("a", 1), ("b", 5), ("c", 1), ("d", 1)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.starts["c"], 1, "c waits for a only");
    assert_eq!(run.starts["d"], 5, "d waits for a and b");
    let makespan = run.ends.values().max().copied().unwrap();
    assert_eq!(makespan, 6, "the critical path b→d, not the sum of levels (5 + 1 + 1)");
    assert!(run.phases.values().all(|p| *p == NodePhase::Succeeded), "{:?}", run.phases);
}

#[test]
fn each_token_is_answered_once_and_a_cached_rerun_submits_no_job() {
    let w = workflow(N_SHAPE, "");
    let cache = MemoryCache::default();
    let first = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(first.jobs, 4);
    let mut tokens: Vec<&str> = first.answers.iter().map(|(t, _)| t.as_str()).collect();
    tokens.sort();
    assert_eq!(tokens, ["token-a", "token-b", "token-c", "token-d"]);
    let again = simulate(&w, &[], &cache, &Blobs::default());
    assert_eq!(again.jobs, 0, "every node a verified cache hit");
    assert!(again.phases.values().all(|p| *p == NodePhase::Cached), "{:?}", again.phases);
    assert_eq!(again.answers.len(), 4);
}

#[test]
fn values_flow_along_the_edges() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n      b: {task: inc, inputs: {x: $a.y}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(40))].into());
    let (jobs, tokens, cache, blobs) =
        (RecordedJobs::default(), RecordedTokens::default(), MemoryCache::default(), Blobs::default());
    let steps = Steps {
        workflow: &w,
        store: &run,
        cache: &cache,
        blobs: &blobs,
        jobs: &jobs,
        tokens: &tokens,
        overwrite_cache: false,
    };
    block_on(steps.arm("b", "tb")).unwrap();
    block_on(steps.arm("a", "ta")).unwrap();
    block_on(steps.job_ended("a", Ok([("y".to_string(), literal::integer(41))].into()))).unwrap();
    let submitted = jobs.submitted.lock().unwrap().clone();
    assert_eq!(submitted[1], ("b".to_string(), [("x".to_string(), literal::integer(41))].into()));
}

#[test]
fn a_cache_entry_whose_blob_is_gone_is_a_miss() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let cache = MemoryCache::default();
    simulate(&w, &[], &cache, &Blobs::default());
    // Point the entry at a file that has since disappeared.
    let key = cache_key::for_task(&w.tasks[0], &[("x".to_string(), literal::integer(1))].into()).unwrap();
    let file = Literal {
        value: Some(LV::File(crate::proto::core::Blob {
            uri: "s3://b/gone".into(),
            digest: "sha256:00".into(),
            ..Default::default()
        })),
    };
    block_on(cache.put(&key, &[("y".to_string(), file)].into())).unwrap();
    let blobs = Blobs::default();
    blobs.gone.lock().unwrap().insert("s3://b/gone".into());
    let run = simulate(&w, &[], &cache, &blobs);
    assert_eq!((run.jobs, run.phases["a"]), (1, NodePhase::Succeeded), "rerun, not failed");
}

const FAILING: &str = r"      bad: {task: fails, inputs: {x: $inputs.x}}
      after_bad: {task: inc, inputs: {x: $bad.y}}
      beyond: {task: inc, inputs: {x: $after_bad.y}}
      free: {task: inc, inputs: {x: $inputs.x}}
";

#[test]
fn a_failure_fails_the_run_at_once_by_default() {
    let w = workflow(FAILING, "");
    let run = simulate(&w, &[("free", 3)], &MemoryCache::default(), &Blobs::default());
    assert!(run.answers.contains(&("token-bad".to_string(), Err(FailureCode::NonZeroExit))));
    assert!(!run.phases.contains_key("after_bad"), "nothing downstream starts: {:?}", run.phases);
}

#[test]
fn with_fail_after_executable_nodes_complete_independent_nodes_finish_and_descendants_are_skipped() {
    let w = workflow(FAILING, "    on_failure: finish_independent\n");
    let run = simulate(&w, &[("free", 3)], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.phases["bad"], NodePhase::Failed);
    assert_eq!(run.phases["after_bad"], NodePhase::Skipped);
    assert_eq!(run.phases["beyond"], NodePhase::Skipped, "skips travel down the graph");
    assert_eq!(run.phases["free"], NodePhase::Succeeded);
    assert_eq!(run.answers.len(), 4, "every token answered, so the Parallel state ends and Finish decides");
    assert_eq!(run.jobs, 2, "no job for skipped nodes");
}

#[test]
fn a_completion_delivered_twice_and_an_arm_after_the_end_change_nothing() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n      b: {task: inc, inputs: {x: $a.y}}\n", "");
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let (jobs, tokens, cache, blobs) =
        (RecordedJobs::default(), RecordedTokens::default(), MemoryCache::default(), Blobs::default());
    let steps = Steps {
        workflow: &w,
        store: &run,
        cache: &cache,
        blobs: &blobs,
        jobs: &jobs,
        tokens: &tokens,
        overwrite_cache: false,
    };
    block_on(steps.arm("a", "ta")).unwrap();
    block_on(steps.arm("a", "ta")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "arming twice starts once");
    let done = || Ok([("y".to_string(), literal::integer(2))].into());
    block_on(steps.job_ended("a", done())).unwrap();
    block_on(steps.job_ended("a", done())).unwrap();
    assert_eq!(tokens.answers.lock().unwrap().len(), 1, "one answer for two deliveries");
    block_on(steps.arm("b", "tb")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 2, "b starts when armed after a ended");
}

#[test]
fn a_branch_runs_its_chosen_case_as_the_node() {
    let nodes = r"      pick:
        branch:
          cases:
            - if: $inputs.x > 0
              then: {task: inc, inputs: {x: $inputs.x}}
          else: {task: fails, inputs: {x: 0}}
";
    let w = workflow(nodes, "");
    let run = simulate(&w, &[], &MemoryCache::default(), &Blobs::default());
    assert_eq!(run.phases["pick"], NodePhase::Succeeded, "x = 1 takes the first case, not the failing else");
}

#[test]
fn a_map_node_runs_its_items_as_one_submission_and_a_rerun_of_all_hits_starts_none() {
    let nodes = r"      each:
        map: {task: inc, over: [x]}
        inputs: {x: [1, 2, 3]}
";
    let w = workflow(nodes, "");
    let cache = MemoryCache::default();
    let (tokens, blobs) = (RecordedTokens::default(), Blobs::default());
    for (run_name, expect_map) in [("first", true), ("again", false)] {
        let run = MemoryRun::new(&w, Outputs::new());
        let jobs = RecordedJobs::default();
        let steps = Steps {
            workflow: &w,
            store: &run,
            cache: &cache,
            blobs: &blobs,
            jobs: &jobs,
            tokens: &tokens,
            overwrite_cache: false,
        };
        block_on(steps.arm("each", "t")).unwrap();
        let maps = jobs.maps.lock().unwrap().clone();
        assert_eq!(maps.len(), usize::from(expect_map), "{run_name}");
        if expect_map {
            assert_eq!(maps[0].1.len(), 3, "one submission of three items");
            let results =
                (2..5).map(|y| node::ItemResult::Succeeded([("y".to_string(), literal::integer(y))].into())).collect();
            block_on(steps.map_reported("each", results, 1, String::new())).unwrap();
        }
        let state = run.state.lock().unwrap();
        let end = &state.ended["each"];
        assert_eq!(end.phase, if expect_map { NodePhase::Succeeded } else { NodePhase::Cached }, "{run_name}");
        let expected = literal::list(vec![literal::integer(2), literal::integer(3), literal::integer(4)]);
        assert_eq!(end.outputs["y"], expected, "{run_name}");
    }
}

#[test]
fn overwrite_cache_runs_every_task_even_on_a_hit() {
    let w = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n", "");
    let cache = MemoryCache::default();
    simulate(&w, &[], &cache, &Blobs::default());
    let run = MemoryRun::new(&w, [("x".to_string(), literal::integer(1))].into());
    let (jobs, tokens, blobs) = (RecordedJobs::default(), RecordedTokens::default(), Blobs::default());
    let steps = Steps {
        workflow: &w,
        store: &run,
        cache: &cache,
        blobs: &blobs,
        jobs: &jobs,
        tokens: &tokens,
        overwrite_cache: true,
    };
    block_on(steps.arm("a", "t")).unwrap();
    assert_eq!(jobs.submitted.lock().unwrap().len(), 1, "the entry exists, but overwrite_cache runs the task");
}
