"""The fault-injection suite of docs/cloud-execution.md ("Faults"): each test arms one
fault in the emulator (patch (q): a throttled or failing AWS call, a crash of the node
function at one call, a lost or duplicated event), runs a real cloud run through the
deployed stack, and asserts the run converges to the phase the fault implies, every
node's phase, that no Batch job of the run is left running, and how long it took
(printed, for the fault matrix)."""
import json
import time

import pytest

from test_cloud_runs import SPEC as CLOUD_SPEC  # noqa: F401 (the stack's workflows)
from test_cloud_runs import arm_faults, cloud, finished, launch, live_jobs, nodes, wait_for  # noqa: F401


@pytest.fixture(autouse=True)
def disarmed(cloud):
    """Each test starts and ends with nothing armed, so a fault its run did not use
    cannot leak into the next test."""
    arm_faults(cloud, clear=True)
    yield
    arm_faults(cloud, clear=True)


def node_function(api):
    return f"{api['prefix']}-node"


def fresh_x():
    """An input no earlier run had: every node is a cache miss and runs a job."""
    return {"integer": str(time.time_ns() % 1_000_000_000_000)}


def converged(aws, api, run, expected="WORKFLOW_SUCCEEDED", timeout=240):
    """The run's end once it is recorded and nothing of it runs; (answer, seconds)."""
    started = time.time()
    answer = finished(api, run, timeout=timeout)
    wait_for(f"every job of {run} ended", lambda: not live_jobs(aws, api, run), timeout=60)
    assert answer["execution"]["phase"] == expected, answer
    return answer, time.time() - started


def unused(armed):
    """What of the armed faults is left (0 when the run used them all)."""
    return sum(rule["count"] for rule in armed["fail"] + armed["crash"])


@pytest.mark.parametrize("operation", ["GetItem", "Query", "UpdateItem", "TransactWriteItems", "PutItem"])
def test_throttling_on_each_dynamodb_operation_of_the_protocol_is_ridden_out(cloud, aws, operation):
    # Seven throttles in a row: past the SDK's six attempts, so the node function's
    # Updraft.Transient (or Lambda's asynchronous retry) must repeat the step.
    rule = {"service": "dynamodb", "operation": operation, "count": 7, "function": node_function(cloud)}
    arm_faults(cloud, fail=[rule])
    run = launch(cloud, "chain", {"x": fresh_x()})
    answer, seconds = converged(aws, cloud, run)
    print(f"converge_s[dynamodb {operation} throttled x7]: {seconds:.1f}")
    assert {node: n["phase"] for node, n in nodes(answer).items()} == {"a": "SUCCEEDED", "b": "SUCCEEDED"}
    assert unused(arm_faults(cloud)) == 0, "the node function met every throttle"


def test_a_server_error_reading_a_jobs_outputs_is_retried(cloud, aws):
    rule = {"service": "s3", "operation": "GetObject", "match": "outputs.json", "count": 4, "error": "5xx",
            "function": node_function(cloud)}
    arm_faults(cloud, fail=[rule])
    run = launch(cloud, "chain", {"x": fresh_x()})
    answer, seconds = converged(aws, cloud, run)
    print(f"converge_s[s3 GetObject outputs.json 500 x4]: {seconds:.1f}")
    assert nodes(answer)["b"]["outputs"]["values"]["y"]["integer"] == str(int(answer["execution"]["inputs"]["values"]["x"]["integer"]) + 2)
    assert unused(arm_faults(cloud)) == 0


def test_a_duplicated_job_end_event_counts_once(cloud, aws):
    # d waits for a and b; every job-end event delivered twice must not tell d twice about a.
    arm_faults(cloud, duplicate_job_events=4)
    run = launch(cloud, "n_shape", {"run": {"string": f"dup-{time.time_ns()}"}})
    answer, seconds = converged(aws, cloud, run)
    print(f"converge_s[duplicated job-end events]: {seconds:.1f}")
    by_node = nodes(answer)
    assert {n["phase"] for n in by_node.values()} == {"SUCCEEDED"}, by_node
    assert by_node["d"]["startedAt"] >= by_node["b"]["updatedAt"], "d started before its slow parent b ended"
    assert arm_faults(cloud)["duplicate_job_events"] == 0
    batch = aws("batch")
    queue = cloud["outputs"]["CpuJobQueueArn"]
    jobs = [j for s in ("SUCCEEDED", "FAILED") for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]
            if j["jobName"].startswith(f"{run}-")]
    assert len(jobs) == 4, f"one job per node, none twice: {[j['jobName'] for j in jobs]}"


@pytest.mark.parametrize("crashes", [1, 3])
def test_the_node_function_dying_after_the_end_write_before_answering_the_token(cloud, aws, crashes):
    # Once: Lambda's asynchronous retry repeats the event. Three times (every retry dies
    # too, the event goes to the dead-letter queue): the reconciler settles the node.
    rule = {"function": node_function(cloud), "service": "states", "operation": "SendTaskSuccess", "count": crashes}
    arm_faults(cloud, crash=[rule])
    run = launch(cloud, "chain", {"x": fresh_x()})
    answer, seconds = converged(aws, cloud, run, timeout=240)
    print(f"converge_s[node function dies before SendTaskSuccess x{crashes}]: {seconds:.1f}")
    assert {n["phase"] for n in answer["nodes"]} == {"SUCCEEDED"}, answer["nodes"]
    assert unused(arm_faults(cloud)) == 0


def test_the_node_function_dying_after_the_claim_before_submit_job(cloud, aws):
    rule = {"function": node_function(cloud), "service": "batch", "operation": "SubmitJob", "count": 1}
    arm_faults(cloud, crash=[rule])
    run = launch(cloud, "chain", {"x": fresh_x()})
    answer, seconds = converged(aws, cloud, run, timeout=300)
    print(f"converge_s[node function dies before SubmitJob]: {seconds:.1f}")
    assert {n["phase"] for n in answer["nodes"]} == {"SUCCEEDED"}, answer["nodes"]
    assert unused(arm_faults(cloud)) == 0


def test_a_failed_start_of_a_subworkflow_run_is_retried(cloud, aws):
    rule = {"service": "states", "operation": "StartExecution", "count": 4, "error": "5xx",
            "function": node_function(cloud)}
    arm_faults(cloud, fail=[rule])
    run = launch(cloud, "outer")
    # The child run fails (its task exits 3): what matters is that it ran, once, and its parent knows.
    answer, seconds = converged(aws, cloud, run, expected="WORKFLOW_FAILED")
    print(f"converge_s[subworkflow StartExecution 500 x4]: {seconds:.1f}")
    sub = nodes(answer)["sub"]
    assert sub["phase"] == "FAILED", sub
    child = finished(cloud, f"{run}-sub")
    assert child["execution"]["phase"] == "WORKFLOW_FAILED", child
    assert unused(arm_faults(cloud)) == 0
