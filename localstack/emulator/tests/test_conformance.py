"""One workflow, two executors: every example runs locally (`updraft run`) and in the
emulated cloud (`updraft launch --watch`: API, state machine, node Lambda, Batch jobs
running `updraft exec`), and both must agree on node phases, cache keys and outputs
(file outputs by content digest). The emulator runs an example's jobs in its directory,
the stand-in for the image's working directory (emulator patch k)."""
import json
import os
import subprocess
import tempfile
import urllib.request

import pytest

from conftest import unique
from test_cloud_runs import cloud  # noqa: F401  (the deployed stack, registered and configured)
from test_registry_api import REPO, UPDRAFT, updraft


def plain(literal):
    """A value to compare: files by digest, everything else as is."""
    for kind in ("file", "dataframe", "directory"):
        if kind in literal:
            return {kind: literal[kind]["digest"]}
    return literal


def summary(document):
    nodes = {n["id"]["nodeId"]: n for n in document["nodes"]}
    return {
        node: (n["phase"], n.get("cacheKey", ""), {k: plain(v) for k, v in (n.get("outputs") or {}).get("values", {}).items()})
        for node, n in nodes.items()
    }


def run_locally(spec, inputs):
    with tempfile.TemporaryDirectory() as home:
        result = subprocess.run([UPDRAFT, "run", spec, *inputs, "--output", "json"], capture_output=True, text=True,
                                env={**os.environ, "UPDRAFT_HOME": home}, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# fanout maps over 12 items here instead of its default 100: the emulator runs every item as a process.
# The Python specs' tasks run `python3 -m updraft.task` under `updraft exec` in the cloud, forked from a
# warm worker locally.
@pytest.mark.parametrize("example, file, inputs", [
    ("hello", "hello.yaml", []),
    ("diabetes", "diabetes.yaml", []),
    ("diabetes", "diabetes.py", []),
    ("fanout", "fanout.yaml", ["--input", "count=12"]),
    ("fanout", "fanout.py", ["--input", "count=12"]),
])
def test_an_example_gives_the_same_phases_cache_keys_and_outputs_locally_and_in_the_cloud(cloud, endpoint, example, file, inputs):  # noqa: F811,E501
    directory = os.path.join(REPO, "examples", example)
    spec = os.path.join(directory, file)
    version = unique("conf")
    assert updraft(cloud, "register", spec, "--version", version).returncode == 0
    images = json.dumps({"python:3.11-slim": directory}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/updraft/images", data=images, method="POST"))
    # diabetes.py's tasks are diabetes.yaml's (same cache keys): run them again rather than hit the YAML's entries.
    again = ["--overwrite-cache"] if file == "diabetes.py" else []
    remote = updraft(cloud, "launch", spec, "--version", version, *inputs, *again, "--watch", "--output", "json")
    assert remote.returncode == 0, remote.stderr + remote.stdout
    local = run_locally(spec, inputs)
    in_cloud = json.loads(remote.stdout)
    assert summary(in_cloud) == summary(local)
    outputs = [{k: plain(v) for k, v in run["execution"]["outputs"]["values"].items()} for run in (in_cloud, local)]
    assert outputs[0] == outputs[1], "the workflow's outputs (the accuracy, for diabetes), files by digest"
    if file == "diabetes.yaml":
        check_cost(cloud, in_cloud)


def check_cost(cloud, run):  # noqa: F811
    """What the run used, from its history, its node function's meter and its jobs' attempts, and its price."""
    name = run["execution"]["id"]["name"]
    got = updraft(cloud, "executions", "get", name, "--remote", "--project", run["execution"]["id"]["project"],
                  "--output", "json")
    assert got.returncode == 0, got.stderr
    cost = json.loads(got.stdout)["execution"]["cost"]
    usage = cost["usage"]
    print(f"diabetes in the emulator: {cost}")
    ran = [n for n in run["nodes"] if n["phase"] == "SUCCEEDED"]
    assert int(usage["stateTransitions"]) >= 2 * len(run["nodes"]), usage
    # Each node that ran a job: its arm and its end, at least; each a metered invocation.
    assert int(usage["lambdaInvocations"]) >= 2 * len(ran) and usage["lambdaGbSeconds"] > 0, usage
    assert int(usage["dynamodbWriteUnits"]) > 0 and int(usage["s3ReadRequests"]) > 0, usage
    # Every attempt billed at least Fargate's minute, at its job's size (0.25 vCPU at the least).
    assert usage["batchAttempts"] == len(ran) and usage["batchVcpuSeconds"] >= 60 * 0.25 * len(ran), usage
    assert cost["totalUsd"] > 0 and cost["orchestrationUsd"] > 0 and cost["computeUsd"] > 0, cost
    assert "us-east-1" in cost["prices"]
    # Another price table: every price doubled, the same usage, twice the cost.
    with tempfile.NamedTemporaryFile("w", suffix=".json") as table:
        json.dump({"name": "doubled", **{k: 2 * v for k, v in LIST_PRICES.items()}}, table)
        table.flush()
        text = updraft(cloud, "executions", "get", name, "--remote", "--project",
                       run["execution"]["id"]["project"], "--prices", table.name)
        assert text.returncode == 0, text.stderr
        assert f"cost: ${2 * cost['totalUsd']:.6f}" in text.stdout and "doubled" in text.stdout, text.stdout
        table.seek(0)
        table.truncate()
        json.dump({"name": "bad", "gpu_second": 1}, table)
        table.flush()
        bad = updraft(cloud, "executions", "get", name, "--remote", "--prices", table.name)
        assert bad.returncode == 2 and "missing field" in bad.stderr, bad.stderr


# core::cost::PriceTable::default(), per unit.
LIST_PRICES = {
    "state_transition": 0.025 / 1000, "lambda_request": 0.2 / 1e6, "lambda_gb_second": 0.0000133334,
    "dynamodb_read_unit": 0.125 / 1e6, "dynamodb_write_unit": 0.625 / 1e6, "s3_write_request": 0.005 / 1000,
    "s3_read_request": 0.0004 / 1000, "fargate_vcpu_second": 0.04048 / 3600, "fargate_gb_second": 0.004445 / 3600,
    "gpu_second": 1.006 / 3600,
}


def test_a_subworkflow_runs_as_a_child_run_that_completes_its_node(cloud):  # noqa: F811
    spec = os.path.join(REPO, "tests", "data", "state_machines", "shapes.yaml")
    version = unique("conf")
    assert updraft(cloud, "register", spec, "--version", version).returncode == 0
    remote = updraft(cloud, "launch", spec, "with_subworkflow", "--version", version, "--watch", "--output", "json")
    assert remote.returncode == 0, remote.stderr + remote.stdout
    run = json.loads(remote.stdout)
    phases = {n["id"]["nodeId"]: n["phase"] for n in run["nodes"]}
    assert phases == {"first": "SUCCEEDED", "inner": "SUCCEEDED", "last": "SUCCEEDED"}, phases
    child = f"{run['execution']['id']['name']}-inner"
    shown = updraft(cloud, "executions", "get", child, "--remote", "--project", "shapes", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    assert {n["phase"] for n in json.loads(shown.stdout)["nodes"]} == {"SUCCEEDED"}, "the diamond ran as its own run"
