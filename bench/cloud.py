#!/usr/bin/env python3
"""Cloud-run figures from the offline emulator (./bench/run deploys the stack and
writes UPDRAFT_CONFIG first): what a node costs in Step Functions transitions,
Lambda invocations and DynamoDB writes (read from the execution's history and the
emulator's counters, GET /moto-api/updraft/counters), the launch request's
latency, an N-shaped DAG's makespan over its critical path, how long an abort
takes to stop every job of a run, how long a lost job-end event takes the
reconciler to recover, what the reconciler costs an idle stack, and schedules: a tick to its run RUNNING, and a
30-tick backfill until every run is launched.

usage: cloud.py UPDRAFT_BIN ENDPOINT   (prints `name: value unit` lines)"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CHAIN = 8
SPEC = """
project: bench
tasks:
  add:
    image: python:3.11-slim
    command: [python3, -c, "import sys; open(sys.argv[2], 'w').write(str(int(sys.argv[1]) + 1))",
              "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    cache: {version: "1"}
  square_sh:
    image: busybox
    command: [sh, -c, 'echo $(($1 * $1)) > "$2"', square, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    cache: {version: "1"}
  nap:
    image: python:3.11-slim
    command: [python3, -c, "import sys, time; time.sleep(float(sys.argv[1])); open(sys.argv[2], 'w').write('1')",
              "{{inputs.seconds}}", "{{outputs.done}}"]
    inputs: {seconds: float, label: string}
    outputs: {done: int}
  mend_sh:
    image: busybox
    command: [sh, -c, '%(mend)s', mend, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
workflows:
  wide_dag:
    nodes:
%(wide_dag)s
  chain:
    inputs: {x: int}
    nodes:
%(chain)s
  n_shape:
    inputs: {run: string}
    nodes:
      a: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}}
      b: {task: nap, inputs: {seconds: 12.0, label: $inputs.run}}
      c: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}, after: [a]}
      d: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}, after: [a, b]}
  stamped:
    inputs: {at: datetime}
    nodes:
      stamp: {task: add, inputs: {x: 1}}
  each:
    inputs: {xs: "list<int>"}
    nodes:
      m: {map: {task: add, over: [x]}, inputs: {x: $inputs.xs}}
  wide:
    inputs: {xs: "list<int>"}
    nodes:
      m: {map: {task: square_sh, over: [x], concurrency: 100}, inputs: {x: $inputs.xs}}
    outputs: {ys: $m.y}
  mapmend:
    inputs: {xs: "list<int>"}
    nodes:
      m: {map: {task: mend_sh, over: [x], concurrency: 10}, inputs: {x: $inputs.xs}}
  pair:
    inputs: {run: string}
    nodes:
      left: {task: nap, inputs: {seconds: 300.0, label: $inputs.run}}
      right: {task: nap, inputs: {seconds: 300.0, label: $inputs.run}}
launch_plans:
  hourly:
    workflow: stamped
    schedule: {cron: "0 * * * *", kickoff_input: at}
"""
# The N-shape's critical path: b then d.
CRITICAL_PATH_S = 12.0 + 2.0


# A 200-node DAG: 10 chains of 20 increments.
def wide_dag_nodes(chains=10, length=20):
    # The chain's cacheable task, on inputs the chain never meets (1,000 and up): the two
    # runs do the same work a node, so their reads a node differ only by the run's size.
    lines = [f"      w0_{c}: {{task: add, inputs: {{x: {1000 + 100 * c}}}}}" for c in range(chains)]
    lines += [f"      w{i}_{c}: {{task: add, inputs: {{x: $w{i - 1}_{c}.y}}}}" for i in range(1, length)
              for c in range(chains)]
    return "\n".join(lines)


# Version v1 of mend_sh fails items 17 and 42; v2 does not.
MEND_BROKEN = 'case $1 in 17|42) exit 3;; esac; echo $(($1 * 10)) > "$2"'
MEND_FIXED = 'echo $(($1 * 10)) > "$2"'


def chain_nodes():
    lines = ["      n0: {task: add, inputs: {x: $inputs.x}}"]
    lines += [f"      n{i}: {{task: add, inputs: {{x: $n{i - 1}.y}}}}" for i in range(1, CHAIN)]
    return "\n".join(lines)


def main(updraft, endpoint):
    config = open(os.environ["UPDRAFT_CONFIG"]).read()
    base = config.split('endpoint = "')[1].split('"')[0]
    session = dict(region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                   aws_secret_access_key="testing")
    sfn = boto3.client("stepfunctions", **session)

    def call(method, path, body=b""):
        request = AWSRequest(method=method, url=base + path, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
        http = urllib.request.Request(base + path, data=body or None, method=method, headers=dict(request.headers))
        with urllib.request.urlopen(http, timeout=60) as answer:
            return json.loads(answer.read())

    def counters():
        with urllib.request.urlopen(f"{endpoint}/moto-api/updraft/counters") as answer:
            return json.loads(answer.read())

    def launch(workflow, inputs, name):
        body = {"workflow": {"project": "bench", "domain": "development", "name": workflow, "version": "v1"},
                "inputs": {"values": inputs}, "name": name}
        started = time.perf_counter()
        call("POST", "/v1/executions/bench/development", json.dumps(body).encode())
        return (time.perf_counter() - started) * 1000

    def wait(name, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            answer = call("GET", f"/v1/executions/bench/development/{name}")
            if answer["execution"]["phase"] != "WORKFLOW_RUNNING":
                return answer
            time.sleep(0.1)
        raise SystemExit(f"run {name} did not end within {timeout} s")

    def history(name, workflow="chain"):
        # The stack's name prefix is bench (./bench/run deploys it so).
        arn = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
                   if m["name"] == f"bench-bench-development-{workflow}-v1")
        execution = f"{arn.replace(':stateMachine:', ':execution:')}:{name}"
        return sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]

    def transitions(name):
        return sum(1 for e in history(name) if e["type"].endswith("StateEntered"))

    for version, mend in (("v1", MEND_BROKEN), ("v2", MEND_FIXED)):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as spec:
            spec.write(SPEC % {"chain": chain_nodes(), "wide_dag": wide_dag_nodes(), "mend": mend})
        subprocess.run([updraft, "register", spec.name, "--version", version], check=True, capture_output=True)

    x = {"integer": str(uuid.uuid4().int % 1_000_000_000)}
    before = counters()
    miss = f"miss-{uuid.uuid4().hex[:8]}"
    launch("chain", {"x": x}, miss)
    assert wait(miss)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    after = counters()
    nodes = [k for k in after["lambda_invocations"] if k.endswith("-node")]
    lambda_calls = sum(after["lambda_invocations"][k] - before["lambda_invocations"].get(k, 0) for k in nodes)
    print(f"sfn_transitions_per_node_miss: {transitions(miss) / CHAIN:.2f} transitions")
    print(f"lambda_invocations_per_node: {lambda_calls / CHAIN:.2f} invocations")
    print(f"ddb_writes_per_node: {(after['dynamodb_writes'] - before['dynamodb_writes']) / CHAIN:.2f} writes")

    hit = f"hit-{uuid.uuid4().hex[:8]}"
    before = counters()
    launch("chain", {"x": x}, hit)
    answer = wait(hit)
    assert {n["phase"] for n in answer["nodes"]} == {"CACHED"}, answer
    assert counters()["batch_jobs"] == before["batch_jobs"], "a cached run starts no job"
    print(f"sfn_transitions_per_node_hit: {transitions(hit) / CHAIN:.2f} transitions")

    # Each launch on a quiet machine: the previous run has ended (its jobs would share the two cores).
    latencies = []
    for _ in range(5):
        name = f"lat-{uuid.uuid4().hex[:8]}"
        latencies.append(launch("chain", {"x": x}, name))
        wait(name)
    print(f"api_launch_ms: {statistics.median(latencies):.2f} ms")

    shape = f"n-{uuid.uuid4().hex[:8]}"
    launch("n_shape", {"run": {"string": shape}}, shape)
    answer = wait(shape)
    created, ended = answer["execution"]["createdAt"], answer["execution"]["updatedAt"]
    seconds = (parse(ended) - parse(created))
    print(f"cloud_makespan_over_critical_path: {seconds / CRITICAL_PATH_S:.2f} ratio")

    # An abort while two jobs run: from the call to no job of the run left in Batch.
    batch = boto3.client("batch", **session)
    queue = next(q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"] if q["jobQueueName"] == "bench-cpu")

    def live_jobs(run):
        states = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        jobs = [j for s in states for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]]
        return [j for j in jobs if j["jobName"].startswith(f"{run}-")]

    pair = f"pair-{uuid.uuid4().hex[:8]}"
    launch("pair", {"run": {"string": pair}}, pair)
    deadline = time.time() + 120
    while sum(1 for j in live_jobs(pair) if j["status"] == "RUNNING") < 2:
        if time.time() > deadline:
            raise SystemExit(f"the jobs of {pair} did not start within 120 s")
        time.sleep(0.1)
    started = time.perf_counter()
    call("POST", f"/v1/executions/bench/development/{pair}/abort", b'{"reason": "benchmark"}')
    while live_jobs(pair):
        if time.perf_counter() - started > 120:
            raise SystemExit(f"the jobs of {pair} still run 120 s after the abort")
        time.sleep(0.05)
    print(f"abort_to_all_jobs_stopped_s: {time.perf_counter() - started:.2f} s")

    # A lost job-end event (the emulator's fault hook drops it): launch → SUCCEEDED, through the reconciler.
    faults = urllib.request.Request(f"{endpoint}/moto-api/updraft/faults", data=b'{"drop_job_events": 1}',
                                    method="POST")
    urllib.request.urlopen(faults)
    lost = f"lost-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    launch("chain", {"x": {"integer": str(uuid.uuid4().int % 1_000_000_000)}}, lost)
    assert wait(lost)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    print(f"lost_event_recovery_s: {time.perf_counter() - started:.1f} s")

    # The reconciler's invocations while nothing runs (two minutes, scaled to an hour).
    before = counters()["lambda_invocations"].get("bench-status", 0)
    time.sleep(120)
    idle = counters()["lambda_invocations"].get("bench-status", 0) - before
    print(f"reconciler_invocations_per_hour_idle: {idle * 30} invocations")

    # A tick (the emulator's fire-now endpoint) until its run is recorded RUNNING.
    subprocess.run([updraft, "launchplan", "activate", "hourly", "--version", "v1", "--project", "bench"],
                   check=True, capture_output=True)
    schedule = next(s["Name"] for s in boto3.client("scheduler", **session).list_schedules()["Schedules"]
                    if s["Name"].endswith("-bench-development-hourly"))
    fire = json.dumps({"name": schedule, "time": "2031-01-01T05:00:00Z"}).encode()
    started = time.perf_counter()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/updraft/fire-schedule", data=fire,
                                                  method="POST"))
    while True:
        try:
            if call("GET", "/v1/executions/bench/development/hourly-20310101T0500Z")["execution"]["phase"] \
                    == "WORKFLOW_RUNNING":
                break
        except urllib.error.HTTPError:
            pass
        if time.perf_counter() - started > 60:
            raise SystemExit("the tick's run did not start within 60 s")
        time.sleep(0.02)
    print(f"schedule_fire_to_running_ms: {(time.perf_counter() - started) * 1000:.0f} ms")
    subprocess.run([updraft, "launchplan", "deactivate", "hourly", "--version", "v1", "--project", "bench"],
                   check=True, capture_output=True)

    # A backfill of 30 hourly ticks, until the CLI has launched every run.
    started = time.perf_counter()
    backfill = subprocess.run([updraft, "launchplan", "backfill", "hourly", "--version", "v1", "--project", "bench",
                               "--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T05:00:00Z", "--output", "json"],
                              capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert backfill.returncode == 0 and json.loads(backfill.stdout)["launched"] == 30, backfill.stdout + backfill.stderr
    print(f"backfill_30_ticks_s: {seconds:.2f} s")

    # A 100-item map, then the same map with 3 items' cache entries deleted: the
    # children of the rerun's array job are the items that ran.
    first_x = uuid.uuid4().int % 1_000_000 * 1000
    xs = {"xs": {"list": {"values": [{"integer": str(first_x + i)} for i in range(100)]}}}
    first = f"map-{uuid.uuid4().hex[:8]}"
    launch("each", xs, first)
    assert wait(first)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    dynamo = boto3.client("dynamodb", **session)
    table = next(t for t in dynamo.list_tables()["TableNames"] if t == "bench-metadata")
    ours = {str(first_x + i + 1) for i in range(100)}
    entries = [item for page in dynamo.get_paginator("scan").paginate(TableName=table) for item in page["Items"]
               if item["pk"]["S"].startswith("CACHE#")
               and json.loads(item["outputs"]["S"]).get("values", {}).get("y", {}).get("integer") in ours]
    for entry in entries[:3]:
        dynamo.delete_item(TableName=table, Key={"pk": entry["pk"], "sk": entry["sk"]})
    rerun = f"map-{uuid.uuid4().hex[:8]}"
    launch("each", xs, rerun)
    assert wait(rerun)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    batch = boto3.client("batch", **session)
    queue = next(q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"] if q["jobQueueName"] == "bench-cpu")
    ids = [j["jobId"] for status in ("SUCCEEDED", "FAILED")
           for j in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"] if j["jobName"] == f"{rerun}-m"]
    sizes = [j.get("arrayProperties", {}).get("size", 1) for j in batch.describe_jobs(jobs=ids)["jobs"]
             if "index" not in j.get("arrayProperties", {})]
    print(f"map_rerun_3_misses_items: {sum(sizes)} items")

    # A POSIX sh one-liner over 100 and 10,000 items, 100 children striding: the history
    # does not grow with the width; what the start, the gather and each item cost.
    def array_job(run):
        ids = [j["jobId"] for status in ("SUCCEEDED", "FAILED")
               for j in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"] if j["jobName"] == f"{run}-m"]
        return next(j for j in batch.describe_jobs(jobs=ids)["jobs"] if "index" not in j.get("arrayProperties", {}))

    events = {}
    for width in (100, 10_000):
        first_x = uuid.uuid4().int % 1_000_000 * 100_000
        xs = {"xs": {"list": {"values": [{"integer": str(first_x + i)} for i in range(width)]}}}
        run = f"wide-{width}-{uuid.uuid4().hex[:8]}"
        before = counters()
        launched = time.time()
        launch("wide", xs, run)
        answer = wait(run, timeout=1800)
        assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"]
        after = counters()
        events[width] = len(history(run, "wide"))
        if width == 10_000:
            job = array_job(run)
            node = next(n for n in answer["nodes"] if n["id"]["nodeId"] == "m")
            print(f"map_10000_submit_s: {job['createdAt'] / 1000 - launched:.2f} s")
            print(f"map_10000_gather_s: {parse(node['updatedAt']) - job['stoppedAt'] / 1000:.2f} s")
            print(f"s3_requests_per_map_item: {(after['s3_requests'] - before['s3_requests']) / width:.2f} requests")
            writes = after["dynamodb_writes"] - before["dynamodb_writes"]
            print(f"ddb_writes_per_map_item: {writes / width:.3f} writes")
            # The run's own cost (docs/cost.md) counts the node function's S3 requests; the tasks'
            # (each item's line, its outputs) are the rest of the emulator's counts, at S3's list prices.
            cost = call("GET", f"/v1/executions/bench/development/{run}")["execution"]["cost"]
            reads = after["s3_reads"] - before["s3_reads"] - int(cost["usage"].get("s3ReadRequests", 0))
            writes = after["s3_writes"] - before["s3_writes"] - int(cost["usage"].get("s3WriteRequests", 0))
            usd = cost["orchestrationUsd"] + max(reads, 0) * 0.0004 / 1000 + max(writes, 0) * 0.005 / 1000
            print(f"usd_orchestration_map_10000: {usd:.4f} USD")
    print(f"history_events_map_100: {events[100]} events")
    print(f"history_events_map_10000: {events[10_000]} events")

    # A 100-item map whose v1 fails items 17 and 42 (the task is not cached), recovered under v2.
    xs = {"xs": {"list": {"values": [{"integer": str(i)} for i in range(100)]}}}
    failed = f"mend-{uuid.uuid4().hex[:8]}"
    launch("mapmend", xs, failed)
    assert wait(failed)["execution"]["phase"] == "WORKFLOW_FAILED"
    recovered = subprocess.run([updraft, "executions", "recover", failed, "--version", "v2", "--remote",
                                "--project", "bench", "--output", "json"], capture_output=True, text=True)
    assert recovered.returncode == 0, recovered.stderr
    name = json.loads(recovered.stdout)["id"]["name"]
    assert wait(name)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    print(f"recover_rerun_items: {array_job(name)['arrayProperties']['size']} items")

    # What each node reads of DynamoDB, in an 8-node chain and a 200-node DAG: a node reads its
    # upstream nodes' records, never the run's, so the figure does not grow with the run.
    for workflow, inputs, count in (("chain", {"x": {"integer": "1"}}, CHAIN), ("wide_dag", {}, 200)):
        run = f"reads-{uuid.uuid4().hex[:8]}"
        launch(workflow, inputs, run)
        answer = wait(run, timeout=1200)
        assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"]
        time.sleep(1)  # the last node's settling write may land just after the run's end
        usage = call("GET", f"/v1/executions/bench/development/{run}")["execution"]["cost"]["usage"]
        print(f"ddb_reads_per_node_{count}: {int(usage['dynamodbReadUnits']) / count:.2f} reads")


def parse(text):
    from datetime import datetime
    return datetime.fromisoformat(text[:26] + text[-6:] if "." in text else text).timestamp()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.stdout.reconfigure(line_buffering=True)
    main(sys.argv[1], sys.argv[2])
