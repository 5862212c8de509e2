//! The node protocol of a cloud run (`updraft_core::execution::steps`) over the
//! real DynamoDB run store and cache (`updraft_aws::runs`) in the emulator: a
//! fresh table per test, arms and completions racing as separate Lambda
//! invocations would. Jobs and task tokens are recorded, not run (the node
//! function's Batch and Step Functions adapters come with cloud execution).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use updraft_aws::runs::{DynamoCache, DynamoRun, Launch};
use updraft_core::compile::{Options, compile_text};
use updraft_core::execution::failure::FailureCode;
use updraft_core::execution::node::{NodeFailure, Outputs};
use updraft_core::execution::steps::{CLAIM_LEASE_MS, Claim, ItemToRun, Jobs, NodeEnd, RunStore, Steps, Tokens};
use updraft_core::literal;
use updraft_core::ports::{BlobStore, CacheStore, PortError, StoredBlob};
use updraft_core::proto::core::{CompiledWorkflow, ExecutionId, Identifier, NodePhase, TaskTemplate};
use updraft_core::spec::Format;

#[derive(Default)]
struct Recorded {
    jobs: Mutex<Vec<String>>,
    answers: Mutex<Vec<(String, NodePhase)>>,
}

impl Jobs for Recorded {
    async fn submit(&self, node: &str, _: &TaskTemplate, _: &Outputs) -> Result<String, PortError> {
        self.jobs.lock().unwrap().push(node.to_string());
        Ok(node.to_string())
    }
    async fn submit_map(
        &self,
        node: &str,
        _: &TaskTemplate,
        _: &[ItemToRun<'_>],
        _: Option<usize>,
    ) -> Result<String, PortError> {
        self.jobs.lock().unwrap().push(node.to_string());
        Ok(node.to_string())
    }
    async fn start_subworkflow(
        &self,
        node: &str,
        _: &CompiledWorkflow,
        _: &Outputs,
        _: bool,
    ) -> Result<String, PortError> {
        self.jobs.lock().unwrap().push(node.to_string());
        Ok(node.to_string())
    }
    async fn cancel(&self, _: &str, _: &str, _: &str) -> Result<(), PortError> {
        Ok(())
    }
}

impl Tokens for Recorded {
    async fn succeed(&self, token: &str, _: &str, phase: NodePhase) -> Result<(), PortError> {
        self.answers.lock().unwrap().push((token.to_string(), phase));
        Ok(())
    }
    async fn fail(&self, token: &str, _: &NodeFailure) -> Result<(), PortError> {
        self.answers.lock().unwrap().push((token.to_string(), NodePhase::Failed));
        Ok(())
    }
}

struct EveryBlob;

impl BlobStore for EveryBlob {
    async fn put(&self, _: &Path, _: bool) -> Result<StoredBlob, PortError> {
        unreachable!()
    }
    async fn holds(&self, _: &str, _: &str, _: bool) -> bool {
        true
    }
}

struct Fixture {
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(crate::emulator::endpoint())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(config);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("runs-{}-{nanos}", std::process::id());
    let key =
        |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    let attribute = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    runtime
        .block_on(
            dynamo
                .create_table()
                .table_name(&table)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .attribute_definitions(attribute("pk"))
                .attribute_definitions(attribute("sk"))
                .send(),
        )
        .expect("table created");
    Fixture { dynamo, table, runtime }
}

fn workflow(nodes: &str) -> CompiledWorkflow {
    let spec = format!(
        "tasks:\n  inc: {{image: x, command: [inc], inputs: {{x: int}}, outputs: {{y: int}}, cache: {{version: '1'}}}}\n\
         workflows:\n  w:\n    inputs: {{x: {{type: int, default: 0}}}}\n    nodes:\n{nodes}"
    );
    compile_text(&spec, Format::Yaml, &Options { version: "v1".into(), ..Default::default() })
        .unwrap()
        .closure("w")
        .unwrap()
}

fn new_run(f: &Fixture, workflow: &CompiledWorkflow, name: &str) -> DynamoRun {
    let id = ExecutionId { project: "p".into(), domain: "development".into(), name: name.into() };
    let run = DynamoRun::new(f.dynamo.clone(), &f.table, &id);
    let (id, inputs) =
        (workflow.template.as_ref().unwrap().id.clone().unwrap(), [("x".to_string(), literal::integer(1))].into());
    let launch = Launch { workflow: &id, inputs: &inputs, overwrite_cache: false, origin: &Default::default() };
    f.runtime.block_on(run.create(&launch)).unwrap();
    run
}

fn y(value: i64) -> Result<Outputs, NodeFailure> {
    Ok([("y".to_string(), literal::integer(value))].into())
}

#[test]
fn a_fan_in_node_starts_once_when_its_twenty_parents_end_concurrently() {
    let f = fixture();
    let mut nodes = String::new();
    let mut parents = Vec::new();
    for i in 0..20 {
        nodes.push_str(&format!("      p{i}: {{task: inc, inputs: {{x: {i}}}}}\n"));
        parents.push(format!("p{i}"));
    }
    nodes.push_str(&format!("      child: {{task: inc, inputs: {{x: 100}}, after: [{}]}}\n", parents.join(", ")));
    let workflow = Arc::new(workflow(&nodes));
    let run = new_run(&f, &workflow, "fan-in");
    let recorded = Arc::new(Recorded::default());
    let cache = DynamoCache::new(f.dynamo.clone(), &f.table);
    f.runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        // Every node armed and every parent's job ending, all at once, in separate "invocations".
        for node in parents.iter().cloned().chain(["child".to_string()]) {
            let (run, cache, workflow, recorded) = (run.clone(), cache.clone(), workflow.clone(), recorded.clone());
            tasks.spawn(async move {
                let s = Steps {
                    workflow: &workflow,
                    store: &run,
                    cache: &cache,
                    blobs: &EveryBlob,
                    jobs: &*recorded,
                    tokens: &*recorded,
                    overwrite_cache: false,
                    now_ms: 0,
                    recovering: None,
                };
                s.arm(&node, &format!("token-{node}")).await.unwrap();
            });
        }
        while tasks.join_next().await.is_some() {}
        for (i, parent) in parents.iter().cloned().enumerate() {
            let (run, cache, workflow, recorded) = (run.clone(), cache.clone(), workflow.clone(), recorded.clone());
            tasks.spawn(async move {
                let s = Steps {
                    workflow: &workflow,
                    store: &run,
                    cache: &cache,
                    blobs: &EveryBlob,
                    jobs: &*recorded,
                    tokens: &*recorded,
                    overwrite_cache: false,
                    now_ms: 0,
                    recovering: None,
                };
                s.job_ended(&parent, y(i as i64 + 1)).await.unwrap();
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let jobs = recorded.jobs.lock().unwrap().clone();
    assert_eq!(jobs.iter().filter(|j| *j == "child").count(), 1, "claimed once: {jobs:?}");
    assert_eq!(jobs.len(), 21);
    assert_eq!(recorded.answers.lock().unwrap().len(), 20, "the child's token waits for its own job");
}

#[test]
fn a_second_run_is_answered_from_the_dynamodb_cache_without_jobs() {
    let f = fixture();
    let workflow = workflow("      a: {task: inc, inputs: {x: $inputs.x}}\n      b: {task: inc, inputs: {x: $a.y}}\n");
    let cache = DynamoCache::new(f.dynamo.clone(), &f.table);
    for (name, expected_jobs) in [("first", 2), ("second", 0)] {
        let run = new_run(&f, &workflow, name);
        let recorded = Recorded::default();
        let s = Steps {
            workflow: &workflow,
            store: &run,
            cache: &cache,
            blobs: &EveryBlob,
            jobs: &recorded,
            tokens: &recorded,
            overwrite_cache: false,
            now_ms: 0,
            recovering: None,
        };
        f.runtime.block_on(async {
            // b follows a in its branch: Step Functions arms it once a's token is answered.
            s.arm("a", "ta").await.unwrap();
            if expected_jobs > 0 {
                s.job_ended("a", y(2)).await.unwrap();
            }
            s.arm("b", "tb").await.unwrap();
            if expected_jobs > 0 {
                s.job_ended("b", y(3)).await.unwrap();
            }
        });
        assert_eq!(recorded.jobs.lock().unwrap().len(), expected_jobs, "{name}");
        let phases: Vec<NodePhase> = recorded.answers.lock().unwrap().iter().map(|(_, p)| *p).collect();
        let expected = if expected_jobs > 0 { NodePhase::Succeeded } else { NodePhase::Cached };
        assert_eq!(phases, [expected, expected], "{name}");
    }
    let again = DynamoRun::new(
        f.dynamo.clone(),
        &f.table,
        &ExecutionId { project: "p".into(), domain: "development".into(), name: "first".into() },
    );
    let (id, none) = (workflow.template.as_ref().unwrap().id.clone().unwrap(), Outputs::new());
    let launch = Launch { workflow: &id, inputs: &none, overwrite_cache: false, origin: &Default::default() };
    let created = f.runtime.block_on(again.create(&launch));
    assert!(matches!(created, Err(PortError::Conflict(_))), "execution names are never reused");
}

#[test]
fn the_dynamodb_run_store_keeps_the_protocol_contract_when_calls_repeat() {
    let f = fixture();
    let workflow = workflow(
        "      a: {task: inc, inputs: {x: 1}}\n      b: {task: inc, inputs: {x: 2}}\n      c: {task: inc, inputs: {x: 3}, after: [a, b]}\n",
    );
    let run = new_run(&f, &workflow, "repeats");
    let end = |phase, failure: Option<NodeFailure>| NodeEnd { phase, failure, attempts: 1, ..NodeEnd::default() };
    f.runtime.block_on(async {
        // No node has an item before its first write; an edge told twice (a replayed end) counts once.
        assert_eq!(run.slot("c").await.unwrap(), Default::default());
        assert_eq!(run.upstream_ended("c", "a", false, 2).await.unwrap().ended_upstream, ["a"]);
        assert_eq!(run.upstream_ended("c", "a", false, 2).await.unwrap().ended_upstream, ["a"], "the same edge again");
        let slot = run.upstream_ended("c", "b", true, 2).await.unwrap();
        assert_eq!((slot.ended_upstream.len(), slot.skip), (2, true));

        // A claim holds for its lease; a stale one is taken over; a recorded job holds for good.
        let t = 1_000_000;
        run.arm("a", "ta").await.unwrap();
        assert_eq!(run.claim("a", t, 0).await.unwrap(), Claim::Won);
        assert_eq!(run.claim("a", t + 1, t + 1 - CLAIM_LEASE_MS).await.unwrap(), Claim::Held, "fresh");
        let later = t + CLAIM_LEASE_MS + 1;
        assert_eq!(run.claim("a", later, later - CLAIM_LEASE_MS).await.unwrap(), Claim::Won, "stale: taken over");
        run.started("a", "job-1").await.unwrap();
        run.started("a", "job-2").await.unwrap();
        assert_eq!(run.slot("a").await.unwrap().job.as_deref(), Some("job-1"), "the first job id stays");
        let much_later = later + 10 * CLAIM_LEASE_MS;
        assert_eq!(run.claim("a", much_later, much_later - CLAIM_LEASE_MS).await.unwrap(), Claim::Held);

        // The first end stands; a second one reads it back.
        let (first, recorded) = run.end("a", &end(NodePhase::Succeeded, None)).await.unwrap();
        let failure = NodeFailure::new(FailureCode::NonZeroExit, "exit 1");
        let (second, again) = run.end("a", &end(NodePhase::Failed, Some(failure.clone()))).await.unwrap();
        assert_eq!((first.end.as_ref().unwrap().phase, recorded, again), (NodePhase::Succeeded, true, false));
        assert_eq!(second.end, first.end, "the first end is what a repeat sees");
        assert!(!second.settled);
        run.settled("a").await.unwrap();
        assert!(run.slot("a").await.unwrap().settled);

        // Once the run has failed, no claim starts anything (checked in the claim's own write).
        let (b_end, _) = run.end("b", &end(NodePhase::Failed, Some(failure.clone()))).await.unwrap();
        assert_eq!(b_end.end.unwrap().failure.unwrap().code, FailureCode::NonZeroExit, "failures read back typed");
        run.fail_run(&failure).await.unwrap();
        run.fail_run(&NodeFailure::new(FailureCode::SystemError, "later")).await.unwrap();
        assert_eq!(run.claim("c", much_later, 0).await.unwrap(), Claim::RunEnded);
        let (record, _) = run.record().await.unwrap().unwrap();
        assert_eq!(record["run_phase"], "FAILED");
        let error: serde_json::Value = serde_json::from_str(record["run_error"].as_str().unwrap()).unwrap();
        assert_eq!(error["Error"], "NonZeroExit", "the first failure stays the run's error");
    });
}

#[test]
fn a_root_is_armed_and_claimed_in_one_write_and_a_chain_told_and_claimed_in_one() {
    let f = fixture();
    let workflow = workflow("      a: {task: inc, inputs: {x: 1}}\n      b: {task: inc, inputs: {x: $a.y}}\n");
    let run = new_run(&f, &workflow, "folds");
    let t = 5_000_000;
    let end = NodeEnd { phase: NodePhase::Succeeded, attempts: 1, downstream: 1, ..NodeEnd::default() };
    f.runtime.block_on(async {
        // The root: its arm claims it; armed again while the claim is fresh, it only stores the token.
        let (slot, claimed) = run.arm_claiming("a", "ta", None, t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(claimed && slot.claimed_at == Some(t), "{slot:?}");
        let (slot, claimed) = run.arm_claiming("a", "ta2", None, t + 1, t + 1 - CLAIM_LEASE_MS).await.unwrap();
        assert!(!claimed && slot.token.as_deref() == Some("ta2") && slot.claimed_at == Some(t), "{slot:?}");
        // A claim is given back only by the start that made it, and only before a job.
        run.release("a", t + 1).await.unwrap();
        assert_eq!(run.slot("a").await.unwrap().claimed_at, Some(t), "another call's claim stays");
        run.release("a", t).await.unwrap();
        assert_eq!(run.slot("a").await.unwrap().claimed_at, None);
        assert_eq!(run.claim("a", t, t - CLAIM_LEASE_MS).await.unwrap(), Claim::Won, "claimed again at once");
        run.started("a", "job-a").await.unwrap();
        run.end("a", &end).await.unwrap();
        // b told before its arm: the edge only (it is not armed); the arm then starts it as usual.
        let (slot, claimed) = run.only_upstream_ended("b", "a", false, t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(!claimed && slot.ended_upstream == ["a"] && slot.claimed_at.is_none(), "{slot:?}");
        // Told again once armed: a repeated edge claims nothing (the first telling's converge does).
        run.arm("b", "tb").await.unwrap();
        let (_, claimed) = run.only_upstream_ended("b", "a", false, t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(!claimed, "the edge was told before");
        // a's end is settled by b once b has a job, not while b is ready and unclaimed.
        let settled = |states: Vec<(String, updraft_core::execution::steps::NodeSlot)>| {
            states.into_iter().find(|(n, _)| n == "a").map(|(_, s)| s.settled).unwrap()
        };
        assert!(!settled(run.node_states().await.unwrap()), "b could start and has not");
        assert_eq!(run.claim("b", t, t - CLAIM_LEASE_MS).await.unwrap(), Claim::Won);
        run.started("b", "job-b").await.unwrap();
        assert!(settled(run.node_states().await.unwrap()), "b moved on with a's end");
    });
    // A fresh run's chain: armed first, then told: one write claims it; none once the run failed.
    let run = new_run(&f, &workflow, "folds-2");
    f.runtime.block_on(async {
        run.arm("b", "tb").await.unwrap();
        let (slot, claimed) = run.only_upstream_ended("b", "a", true, t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(claimed && slot.skip && slot.claimed_at == Some(t), "{slot:?}");
        run.fail_run(&NodeFailure::new(FailureCode::NonZeroExit, "x")).await.unwrap();
        let (_, claimed) = run.arm_claiming("a", "ta", None, t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(!claimed, "nothing starts in a failed run");
        assert_eq!(run.slot("a").await.unwrap().token.as_deref(), Some("ta"), "the arm itself is kept");
    });
    // A chained node (b follows a in its branch): its arm tells it a ended and claims it, in one write.
    let run = new_run(&f, &workflow, "folds-3");
    f.runtime.block_on(async {
        let (slot, claimed) = run.arm_claiming("b", "tb", Some(("a", true)), t, t - CLAIM_LEASE_MS).await.unwrap();
        assert!(claimed && slot.skip && slot.ended_upstream == ["a"] && slot.claimed_at == Some(t), "{slot:?}");
        let stored = run.slot("b").await.unwrap();
        assert_eq!(
            (stored.token.as_deref(), stored.ended_upstream, stored.skip),
            (Some("tb"), vec!["a".to_string()], true)
        );
        // Armed again (Step Functions' retry) while the claim is fresh: token and edge kept, no claim.
        let (slot, claimed) =
            run.arm_claiming("b", "tb2", Some(("a", true)), t + 1, t + 1 - CLAIM_LEASE_MS).await.unwrap();
        assert!(!claimed && slot.token.as_deref() == Some("tb2") && slot.ended_upstream == ["a"], "{slot:?}");
        assert_eq!(slot.claimed_at, Some(t), "the first claim stands");
    });
}

/// BatchWriteItem takes 25 writes and BatchGetItem 100 distinct keys: 250 entries
/// written at once (one key twice), then asked for with repeats and misses among
/// them, come back in the keys' order, each indexed under its task version.
#[test]
fn the_dynamodb_cache_writes_and_reads_many_entries_in_batches() {
    let f = fixture();
    let cache = DynamoCache::new(f.dynamo.clone(), &f.table);
    let key = |i: i64| format!("key-{i}");
    let task = Identifier { name: "inc".into(), version: "v1".into(), ..Default::default() };
    let mut entries: Vec<(String, Outputs)> = (0..250).map(|i| (key(i), y(i).unwrap())).collect();
    entries.push((key(3), y(3).unwrap()));
    f.runtime.block_on(cache.put_many_for(&entries, &task)).unwrap();
    let stored = f
        .runtime
        .block_on(
            f.dynamo
                .get_item()
                .table_name(&f.table)
                .key("pk", AttributeValue::S("CACHE#key-7".into()))
                .key("sk", AttributeValue::S("CACHE".into()))
                .send(),
        )
        .unwrap();
    let owner = stored.item().and_then(|item| item.get("gsi2pk")).and_then(|v| v.as_s().ok()).cloned();
    assert!(owner.is_some_and(|o| o.ends_with("#inc#v1")), "indexed under the task version");
    let mut keys: Vec<String> = (0..260).rev().map(key).collect();
    keys.extend([key(7), key(7), key(300)]);
    let entries = f.runtime.block_on(cache.get_many(&keys)).unwrap();
    assert_eq!(entries.len(), keys.len());
    for (asked, entry) in keys.iter().zip(&entries) {
        let i: i64 = asked.trim_start_matches("key-").parse().unwrap();
        let expected = if i < 250 { Some(y(i).unwrap()) } else { None };
        assert_eq!(entry, &expected, "{asked}");
    }
}
