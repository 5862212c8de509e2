"""Cloud runs end to end in the emulator: launch through the API (SigV4, the real api
Lambda), the workflow version's state machine on moto's Step Functions interpreter,
the real node Lambda arming nodes and completing them from Batch job state changes,
each task a Batch job running `updraft exec` as a local process, records and the cache
in DynamoDB. Tasks here are Python one-liners (no code directory needed)."""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

import conftest
from conftest import unique
from test_registry_api import CREDENTIALS, DEPLOY, UPDRAFT, signed, updraft

SPEC = """
project: cloud
tasks:
  add:
    image: python:3.11-slim
    command: [python3, -c, "import sys; open(sys.argv[2], 'w').write(str(int(sys.argv[1]) + 1))",
              "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    cache: {version: "1"}
  bump:
    image: python:3.11-slim
    command: [python3, -c, "import sys; print('bumping', sys.argv[1], flush=True); open(sys.argv[2], 'w').write(str(int(sys.argv[1]) + 1))",
              "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    cache: {version: "1"}
  text_of:
    image: python:3.11-slim
    command: [python3, -c, "import sys; open(sys.argv[2], 'w').write('x' * int(sys.argv[1]))", "{{inputs.n}}", "{{outputs.text}}"]
    inputs: {n: int}
    outputs: {text: string}
  # Reads its input from the inputs document (UPDRAFT_INPUTS): too long for an argument.
  length_of:
    image: python:3.11-slim
    command: [python3, -c, "import json, os, sys; text = json.load(open(os.environ['UPDRAFT_INPUTS']))['text']; open(sys.argv[1], 'w').write(str(len(text)))", "{{outputs.n}}"]
    inputs: {text: string}
    outputs: {n: int}
  nap:
    image: python:3.11-slim
    command: [python3, -c, "import sys, time; print('napping', sys.argv[1], flush=True); time.sleep(float(sys.argv[1])); open(sys.argv[2], 'w').write('1')",
              "{{inputs.seconds}}", "{{outputs.done}}"]
    inputs: {seconds: float, label: string}
    outputs: {done: int}
  square_sh:
    image: busybox
    command: [sh, -c, 'echo $(($1 * $1)) > "$2"', square, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
  square_sh_cached:
    image: busybox
    command: [sh, -c, 'echo $(($1 * $1)) > "$2"', square, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
    cache: {version: "1"}
  # Every item fails (exit 3), saying which.
  fail_sh:
    image: busybox
    command: [sh, -c, 'echo "item $1 is bad" >&2; exit 3', fail, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
  count_from:
    image: python:3.11-slim
    command: [python3, -c, "import json, sys; json.dump(list(range(int(sys.argv[1]), int(sys.argv[1]) + int(sys.argv[2]))), open(sys.argv[3], 'w'))",
              "{{inputs.first}}", "{{inputs.count}}", "{{outputs.values}}"]
    inputs: {first: int, count: int}
    outputs: {values: list<int>}
  # Reads its list from the inputs document: a wide map's outputs are too long for an argument.
  total:
    image: python:3.11-slim
    command: [python3, -c, "import json, os, sys; json.dump(sum(json.load(open(os.environ['UPDRAFT_INPUTS']))['values']), open(sys.argv[1], 'w'))",
              "{{outputs.sum}}"]
    inputs: {values: list<int>}
    outputs: {sum: int}
  describe:
    image: busybox
    command: [sh, -c, 'echo "$1: $2" > "$3"', describe, "{{inputs.label}}", "{{inputs.value}}", "{{outputs.text}}"]
    inputs: {label: string, value: int}
    outputs: {text: string}
  flaky:
    image: python:3.11-slim
    command: [python3, -c, "import sys; print('bad data in row 7', file=sys.stderr); sys.exit(3)"]
    retries: 2
workflows:
  chain:
    inputs: {x: {type: int, default: 1}}
    nodes:
      a: {task: add, inputs: {x: $inputs.x}}
      b: {task: add, inputs: {x: $a.y}}
    outputs: {y: $b.y}
  # a→c, a→d, b→d with b slow: c must not wait for b.
  n_shape:
    inputs: {run: string}
    nodes:
      a: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}}
      b: {task: nap, inputs: {seconds: 12.0, label: $inputs.run}}
      c: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}, after: [a]}
      d: {task: nap, inputs: {seconds: 2.0, label: $inputs.run}, after: [a, b]}
  failing:
    nodes:
      broken: {task: flaky}
      after: {task: add, inputs: {x: 1}, after: [broken]}
  outer:
    nodes:
      sub: {workflow: failing}
  independent:
    on_failure: finish_independent
    nodes:
      broken: {task: flaky}
      after: {task: add, inputs: {x: 1}, after: [broken]}
      fine: {task: add, inputs: {x: 41}}
  # Two long jobs and a node after them: for stops from outside.
  pair:
    inputs: {run: string}
    nodes:
      left: {task: nap, inputs: {seconds: 120.0, label: $inputs.run}}
      right: {task: nap, inputs: {seconds: 120.0, label: $inputs.run}}
      after: {task: add, inputs: {x: 1}, after: [left, right]}
  fan:
    inputs: {xs: "list<float>", run: string}
    nodes:
      naps:
        map: {task: nap, over: [seconds]}
        inputs: {seconds: $inputs.xs, label: $inputs.run}
  bumps:
    inputs: {xs: "list<int>"}
    nodes:
      each:
        map: {task: bump, over: [x]}
        inputs: {x: $inputs.xs}
    outputs: {ys: $each.y}
  bumps_two_at_a_time:
    inputs: {xs: "list<int>"}
    nodes:
      each:
        map: {task: bump, over: [x], concurrency: 2}
        inputs: {x: $inputs.xs}
    outputs: {ys: $each.y}
  bumps_one_at_a_time:
    inputs: {xs: "list<int>"}
    nodes:
      each:
        map: {task: bump, over: [x], concurrency: 1}
        inputs: {x: $inputs.xs}
    outputs: {ys: $each.y}
  big_text:
    inputs: {n: int}
    nodes:
      t: {task: text_of, inputs: {n: $inputs.n}}
    outputs: {text: $t.text}
  big_texts:
    inputs: {ns: "list<int>"}
    nodes:
      each: {map: {task: text_of, over: [n]}, inputs: {n: $inputs.ns}}
  measure:
    inputs: {text: string}
    nodes:
      m: {task: length_of, inputs: {text: $inputs.text}}
    outputs: {n: $m.n}
  # A 300 KiB text made by a node and handed to a subworkflow: its child run's inputs.
  measure_big_text:
    inputs: {n: int}
    nodes:
      t: {task: text_of, inputs: {n: $inputs.n}}
      sub: {workflow: measure, inputs: {text: $t.text}}
    outputs: {n: $sub.n}
  failfast:
    inputs: {run: string}
    nodes:
      broken: {task: flaky}
      slow: {task: nap, inputs: {seconds: 120.0, label: $inputs.run}}
      after_slow: {task: add, inputs: {x: 1}, after: [slow]}
  hurried:
    timeout: 4s
    inputs: {run: string}
    nodes:
      slow: {task: nap, inputs: {seconds: 120.0, label: $inputs.run}}
  # Eight nodes, fan-out and fan-in: the fault soak's DAG (test_faults.py); y = x + 4.
  soak:
    inputs: {x: int}
    nodes:
      a: {task: add, inputs: {x: $inputs.x}}
      b: {task: add, inputs: {x: $a.y}}
      c: {task: add, inputs: {x: $a.y}}
      d: {task: add, inputs: {x: $a.y}}
      e: {task: add, inputs: {x: $b.y}}
      f: {task: add, inputs: {x: $c.y}}
      g: {task: add, inputs: {x: $d.y}}
      h: {task: add, inputs: {x: $e.y}, after: [f, g]}
    outputs: {y: $h.y}
  waits_for_hurried:
    inputs: {run: string}
    nodes:
      sub: {workflow: hurried, inputs: {run: $inputs.run}}
      after: {task: add, inputs: {x: 1}, after: [sub]}
  # A wide map of a POSIX sh one-liner, twenty children striding over its items.
  squares_wide:
    inputs: {xs: "list<int>"}
    nodes:
      each: {map: {task: square_sh, over: [x], concurrency: 20}, inputs: {x: $inputs.xs}}
    outputs: {ys: $each.y}
  # examples/fanout's shape (numbers, a map of squares, their total, a branch on it) with
  # a POSIX sh one-liner for the map's task and a hundred children striding over the items.
  all_fail:
    inputs: {count: int}
    nodes:
      numbers: {task: count_from, inputs: {first: 0, count: $inputs.count}}
      each: {map: {task: fail_sh, over: [x], concurrency: 20}, inputs: {x: $numbers.values}}
  fanout_wide:
    inputs: {first: int, count: int}
    nodes:
      numbers: {task: count_from, inputs: {first: $inputs.first, count: $inputs.count}}
      squares: {map: {task: square_sh_cached, over: [x], concurrency: 100}, inputs: {x: $numbers.values}}
      total: {task: total, inputs: {values: $squares.y}}
      verdict:
        branch:
          cases:
            - if: $total.sum > 1000000
              then: {task: describe, inputs: {label: large, value: $total.sum}}
          else: {task: describe, inputs: {label: small, value: $total.sum}}
    outputs: {sum: $total.sum, verdict: $verdict.text}
"""


@pytest.fixture(scope="module")
def cloud(endpoint, tmp_path_factory):
    name, prefix = unique("stack"), unique("run")
    deployed = subprocess.run([DEPLOY, endpoint, "--output", "json", "--stack-name", name, "--name-prefix", prefix],
                              capture_output=True, text=True, env={**os.environ, **CREDENTIALS}, timeout=900)
    assert deployed.returncode == 0, deployed.stderr
    scratch = tmp_path_factory.mktemp("cloud")
    env = {**os.environ, **CREDENTIALS, "UPDRAFT_CONFIG": str(scratch / "config.toml")}
    env.pop("UPDRAFT_ENDPOINT", None)
    assert subprocess.run([UPDRAFT, "config", "init", "--stack", name, "--endpoint-url", endpoint], env=env).returncode == 0
    url = (scratch / "config.toml").read_text().split('endpoint = "')[1].split('"')[0]
    api = {"env": env, "url": url, "outputs": json.loads(deployed.stdout)["outputs"], "endpoint": endpoint,
           "prefix": prefix}
    spec = scratch / "cloud.yaml"
    spec.write_text(SPEC)
    registered = updraft(api, "register", str(spec), "--version", "v1")
    assert registered.returncode == 0, registered.stderr
    return api


def launch(api, workflow, inputs=None, name=None):
    body = {"workflow": {"project": "cloud", "domain": "development", "name": workflow, "version": "v1"},
            "inputs": {"values": inputs or {}}, "name": name or unique(workflow).replace("_", "-")}
    status, answer = signed(api, "POST", "/v1/executions/cloud/development", body=json.dumps(body).encode())
    assert status == 201, answer
    return answer["id"]["name"]


def finished(api, name, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, answer = signed(api, "GET", f"/v1/executions/cloud/development/{name}")
        assert status == 200, answer
        if answer["execution"]["phase"] != "WORKFLOW_RUNNING":
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{name} still running after {timeout} s: {answer}")


def nodes(answer):
    return {n["id"]["nodeId"]: n for n in answer["nodes"]}


def node_outputs(api, run, node):
    """A node's outputs whole (a run's answer summarises lists over 1,000 elements)."""
    status, answer = signed(api, "GET", f"/v1/executions/cloud/development/{run}/nodes/{node}/outputs")
    assert status == 200, answer
    return answer["outputs"]["values"]


def jobs_on_queue(aws, api):
    batch = aws("batch")
    queue = api["outputs"]["CpuJobQueueArn"]
    return sum(len(batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]) for s in ("SUCCEEDED", "FAILED"))


def test_values_flow_through_a_chain_and_a_relaunch_is_all_cached_without_a_job(cloud, aws):
    first = finished(cloud, launch(cloud, "chain", {"x": {"integer": "40"}}))
    assert first["execution"]["phase"] == "WORKFLOW_SUCCEEDED", first
    assert nodes(first)["b"]["outputs"]["values"]["y"] == {"integer": "42"}
    # Each node's inputs as its start resolved them (a's from the run's, b's from a's output).
    assert nodes(first)["a"]["inputs"]["values"] == {"x": {"integer": "40"}}
    assert nodes(first)["b"]["inputs"]["values"] == {"x": {"integer": "41"}}
    assert {n["phase"] for n in first["nodes"]} == {"SUCCEEDED"}
    assert {n["cacheStatus"] for n in first["nodes"]} == {"CACHE_POPULATED"}, "ran, and filled the cache"
    jobs = jobs_on_queue(aws, cloud)
    again = finished(cloud, launch(cloud, "chain", {"x": {"integer": "40"}}))
    assert {n["phase"] for n in again["nodes"]} == {"CACHED"}, again
    assert {n["cacheStatus"] for n in again["nodes"]} == {"CACHE_HIT"}
    assert [n["cacheKey"] for n in again["nodes"]] == [n["cacheKey"] for n in first["nodes"]], "the same keys"
    assert jobs_on_queue(aws, cloud) == jobs, "a cache hit never starts a Batch job"


def seconds_between(start, end):
    from datetime import datetime
    parse = lambda t: datetime.fromisoformat(t[:26] + t[-6:])  # noqa: E731 (nanoseconds → microseconds)
    return (parse(end) - parse(start)).total_seconds()


def test_a_task_versions_cache_is_listed_and_evicted_so_the_next_run_executes_it(cloud, aws):
    x = {"integer": str(int(time.time() * 1000) % 1_000_000)}
    assert finished(cloud, launch(cloud, "chain", {"x": x}))["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    listed = updraft(cloud, "cache", "list", "add", "--remote", "--version", "v1", "--project", "cloud", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["entries"]) >= 2, listed.stdout
    evicted = updraft(cloud, "cache", "delete", "add", "--remote", "--version", "v1", "--project", "cloud")
    assert evicted.returncode == 0 and evicted.stdout.startswith("deleted "), evicted.stderr
    again = finished(cloud, launch(cloud, "chain", {"x": x}))
    assert {n["phase"] for n in again["nodes"]} == {"SUCCEEDED"}, "evicted entries are not hits"


def test_an_n_shaped_dag_runs_in_its_critical_path_not_its_levels(cloud):
    answer = finished(cloud, launch(cloud, "n_shape", {"run": {"string": unique("n")}}))
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    ended = {node: n["updatedAt"] for node, n in nodes(answer).items()}
    assert ended["c"] < ended["b"], f"c ended after b, so it waited for a level: {ended}"
    assert ended["d"] > ended["b"]
    makespan = seconds_between(answer["execution"]["createdAt"], answer["execution"]["updatedAt"])
    # The emulator adds about 2 s to a run (its start, each job's process and events); AWS adds more per job.
    critical_path, levels = 12.0 + 2.0, 12.0 + 2.0 + 2.0
    assert makespan <= 1.2 * critical_path, f"makespan {makespan:.1f} s, critical path {critical_path} s (levels: {levels} s)"


def test_a_failing_task_is_retried_by_its_policy_then_fails_the_run_with_its_log(cloud):
    answer = finished(cloud, launch(cloud, "failing"))
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    broken = nodes(answer)["broken"]
    assert broken["phase"] == "FAILED"
    assert broken["attempts"] == 3, "retries: 2 is three attempts"
    assert broken["error"]["code"] == "NonZeroExit", broken
    assert broken["error"]["logUri"].startswith("cloudwatch:"), broken
    # Each attempt as Batch ran it (the console's timeline and per-attempt logs): waited, ran, failed.
    records = broken["attemptRecords"]
    assert [(r["attempt"], r["failureCode"]) for r in records] == [(1, "NonZeroExit"), (2, "NonZeroExit"),
                                                                    (3, "NonZeroExit")], records
    moment = [{k: datetime.fromisoformat(r[k].replace("Z", "+00:00")) for k in ("queuedAt", "startedAt", "endedAt")}
              for r in records]
    for record, at in zip(records, moment):
        assert at["queuedAt"] <= at["startedAt"] <= at["endedAt"], record
        assert record["logUri"].startswith("cloudwatch:"), record
    assert moment[1]["queuedAt"] == moment[0]["endedAt"], "a retry waits from its previous attempt's end"
    assert records[-1]["logUri"] == broken["error"]["logUri"]
    assert broken.get("cacheStatus", "CACHE_DISABLED") == "CACHE_DISABLED", "its task is not cached"
    # Each attempt's own log, by its number; an attempt it did not make is a 404, a bad number a 400.
    logs = f"/v1/executions/cloud/development/{answer['execution']['id']['name']}/nodes/broken/logs"
    for record in records:
        status, page = signed(cloud, "GET", f"{logs}?attempt={record['attempt']}")
        assert status == 200 and record["logUri"].endswith(f":{page['logStream']}"), page
        assert "bad data in row 7" in [e["message"].strip() for e in page["events"]], page
    assert len({r["logUri"] for r in records}) == 3, "three attempts, three streams"
    assert signed(cloud, "GET", f"{logs}?attempt=4")[0] == 404
    first = updraft(cloud, "logs", answer["execution"]["id"]["name"], "broken", "--attempt", "1", "--remote",
                    "--project", "cloud")
    assert first.returncode == 0 and "bad data in row 7" in first.stdout, first.stdout + first.stderr
    status, refused = signed(cloud, "GET", f"{logs}?attempt=0")
    assert (status, refused["code"]) == (400, "InvalidAttempt"), refused
    assert nodes(answer)["after"]["phase"] == "SKIPPED", "never started, as a local run records it"
    name = answer["execution"]["id"]["name"]
    status, only = signed(cloud, "GET", f"/v1/executions/cloud/development/{name}/nodes")
    assert status == 200 and "execution" not in only and len(only["nodes"]) == 2, only
    assert answer["execution"]["error"]["code"] == "NonZeroExit", answer["execution"]


def test_finish_independent_with_a_failed_branch_ends_failed_once_the_other_branch_succeeded(cloud):
    answer = finished(cloud, launch(cloud, "independent"))
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", "a failed node fails the run in the end"
    phases = {node: n["phase"] for node, n in nodes(answer).items()}
    # `fine` adds 1 to 41, which an earlier run of the chain may have cached (unless evicted since).
    assert phases.pop("fine") in ("SUCCEEDED", "CACHED"), "the independent node finished"
    assert phases == {"broken": "FAILED", "after": "SKIPPED"}, phases
    error = answer["execution"]["error"]
    assert error["code"] == "NodesFailed" and "finish_independent" in error["message"], error


def test_a_failing_subworkflow_fails_its_node_and_the_run(cloud):
    answer = finished(cloud, launch(cloud, "outer"))
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    sub = nodes(answer)["sub"]
    assert (sub["phase"], sub["error"]["code"]) == ("FAILED", "NonZeroExit"), sub
    assert "subworkflow run" in sub["error"]["message"], sub


def test_a_run_whose_queue_takes_no_jobs_fails_at_once_with_the_reason(cloud, aws):
    batch, queue = aws("batch"), cloud["outputs"]["CpuJobQueueArn"]
    batch.update_job_queue(jobQueue=queue, state="DISABLED")
    try:
        answer = finished(cloud, launch(cloud, "chain", {"x": {"integer": str(int(time.time()))}}), timeout=60)
    finally:
        batch.update_job_queue(jobQueue=queue, state="ENABLED")
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    cause = answer["execution"]["error"]["message"]
    assert "submitting the job of a" in cause and "DISABLED" in cause, cause


def test_bad_launches_start_nothing(cloud):
    wrong = {"workflow": {"project": "cloud", "domain": "development", "name": "chain", "version": "v1"},
             "inputs": {"values": {"x": {"string": "forty"}}}}
    status, answer = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(wrong).encode())
    assert (status, answer["code"]) == (400, "InvalidInputs"), answer
    unknown = {"workflow": {"project": "cloud", "domain": "development", "name": "nope", "version": "v1"}}
    status, answer = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(unknown).encode())
    assert status == 404, answer


def test_the_cli_launches_watches_and_reads_a_run_back(cloud, tmp_path):
    spec = tmp_path / "cloud.yaml"
    spec.write_text(SPEC)
    watched = updraft(cloud, "launch", str(spec), "chain", "--version", "v1", "--input", "x=100", "--watch")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("execution ") and "chain v1 in the cloud" in lines[0], watched.stdout
    assert "  a                            SUCCEEDED" in lines, watched.stdout
    assert "  y = 102" in lines and lines[-1].endswith(" SUCCEEDED in " + lines[-1].split(" in ")[-1]), watched.stdout
    name = lines[0].split()[1].rstrip(":")
    shown = updraft(cloud, "executions", "get", name, "--remote", "--project", "cloud", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["outputs"] == {"y": 102}
    listed = updraft(cloud, "executions", "list", "--remote", "--project", "cloud", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["id"]["name"] == name, "newest first"
    refused = updraft(cloud, "launch", str(spec), "chain", "--version", "v1", "--input", "x=many")
    assert refused.returncode == 2 and "--input x=many" in refused.stderr, refused.stderr


LIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def live_jobs(aws, api, run):
    """The run's Batch jobs (array children included) that have not ended."""
    batch, queue = aws("batch"), api["outputs"]["CpuJobQueueArn"]
    jobs = [j for s in LIVE for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]]
    return [j for j in jobs if j["jobName"].startswith(f"{run}-")]


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def running_jobs(aws, api, run, count):
    def enough():
        running = [j for j in live_jobs(aws, api, run) if j["status"] == "RUNNING"]
        return running if len(running) >= count else None
    return wait_for(f"{count} jobs of {run} running", enough)


def test_updraft_executions_abort_stops_the_jobs_and_records_who_and_why(cloud, aws):
    run = launch(cloud, "pair", {"run": {"string": unique("r")}})
    running_jobs(aws, cloud, run, 2)
    started = time.time()
    aborted = updraft(cloud, "executions", "abort", run, "--remote", "--project", "cloud", "--reason", "wrong data")
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.startswith(f"{run}: ABORTED"), aborted.stdout
    wait_for("every job of the run stopped", lambda: not live_jobs(aws, cloud, run), timeout=30)
    print(f"abort_to_all_jobs_stopped_s: {time.time() - started:.2f}")
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_ABORTED", answer
    error = answer["execution"]["error"]
    assert error["code"] == "Aborted", error
    assert error["message"] == "aborted by arn:aws:iam::123456789012:user/testing: wrong data", error
    phases = {node: n["phase"] for node, n in nodes(answer).items()}
    assert phases == {"left": "ABORTED", "right": "ABORTED", "after": "SKIPPED"}, phases
    # The node after them never starts, whatever the terminated jobs' end events do meanwhile.
    time.sleep(3)
    assert not live_jobs(aws, cloud, run)
    assert nodes(finished(cloud, run))["after"]["phase"] == "SKIPPED"
    # Idempotent: again, the first abort stands and nothing more is stopped.
    status, again = signed(cloud, "POST", f"/v1/executions/cloud/development/{run}/abort", body=b'{"reason": "x"}')
    assert status == 200 and again["execution"]["error"] == error and "stoppedNodes" not in again, again


def test_the_runs_list_is_filtered_by_the_api_and_pages_through_a_filter(cloud, tmp_path):
    # Created times are kept to the microsecond: a second back holds every run launched below.
    since = datetime.utcfromtimestamp(time.time() - 1).strftime("%Y-%m-%dT%H:%M:%SZ")
    first, second = launch(cloud, "chain", {"x": {"integer": "40"}}), launch(cloud, "chain", {"x": {"integer": "7"}})
    stopped = launch(cloud, "pair", {"run": {"string": unique("r")}})
    status, _ = signed(cloud, "POST", f"/v1/executions/cloud/development/{stopped}/abort", body=b"{}")
    assert status == 200
    for run in (first, second):
        assert finished(cloud, run)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"

    def listed(query):
        status, answer = signed(cloud, "GET", f"/v1/executions/cloud/development?since={since}&{query}")
        assert status == 200, answer
        return [e["id"]["name"] for e in answer.get("executions", [])], answer.get("nextToken", "")

    assert listed("")[0] == [stopped, second, first]
    assert listed("phase=ABORTED")[0] == [stopped]
    assert listed("phase=WORKFLOW_SUCCEEDED&workflow=chain")[0] == [second, first]
    assert listed("workflow=pair&phase=SUCCEEDED")[0] == []
    # A filtered page of one goes on from its last run, and ends.
    page, token = listed("workflow=chain&limit=1")
    assert page == [second] and token
    page, token = listed(f"workflow=chain&limit=1&token={token}")
    assert page == [first]
    if token:
        assert listed(f"workflow=chain&limit=1&token={token}") == ([], "")
    status, refused = signed(cloud, "GET", "/v1/executions/cloud/development?phase=DONE")
    assert (status, refused["code"], refused["path"]) == (400, "InvalidPhase", "phase"), refused
    # The CLI passes its filters to the API.
    shown = updraft(cloud, "executions", "list", "--remote", "--project", "cloud", "--phase", "aborted",
                    "--since", "10m", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    names = [e["id"]["name"] for e in json.loads(shown.stdout)]
    assert stopped in names and first not in names, names


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BROWSER_TESTS = os.path.join(REPO, "tests", "console")


def console_get(url, path, headers=None, method="GET"):
    request = urllib.request.Request(url.rstrip("/") + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def test_the_console_over_the_stack_shows_its_runs_and_aborts_one_from_the_page(cloud, aws, tmp_path):
    """`updraft console --remote`: the views read the stack's API (signed by the CLI), and
    the page's Abort (in Chromium where there is one) ends a running run ABORTED."""
    done = finished(cloud, launch(cloud, "chain"))["execution"]["id"]["name"]
    running = launch(cloud, "pair", {"run": {"string": unique("r")}})
    running_jobs(aws, cloud, running, 2)
    console = subprocess.Popen([UPDRAFT, "console", "--remote", "--project", "cloud", "--port", "0"],
                               env=cloud["env"], stdout=subprocess.PIPE, text=True)
    try:
        url = console.stdout.readline().split()[1]
        assert url.startswith("http://127.0.0.1:"), url
        status, about = console_get(url, "/api/about")
        assert (status, about["mode"], about["canAct"]) == (200, "remote", True), about
        status, page = console_get(url, "/api/runs?limit=100")
        assert status == 200 and {done, running} <= {e["id"]["name"] for e in page["executions"]}, page
        status, shown = console_get(url, f"/api/runs/{done}")
        assert status == 200 and shown["execution"]["phase"] == "WORKFLOW_SUCCEEDED", shown
        template = {n["id"]: n.get("upstreamNodeIds", []) for n in shown["workflow"]["template"]["nodes"]}
        assert template == {"a": [], "b": ["a"]}, template
        assert {n["id"]["nodeId"]: n["phase"] for n in shown["nodes"]} == {"a": "SUCCEEDED", "b": "SUCCEEDED"}
        status, failed = console_get(url, "/api/runs?phase=WORKFLOW_FAILED&limit=100")
        assert status == 200 and done not in {e["id"]["name"] for e in failed["executions"]}
        status, missing = console_get(url, "/api/runs/no-such-run")
        assert status == 404, missing
        # The list across projects: the registry's projects and domains, each with its newest run.
        status, projects = console_get(url, "/api/projects")
        ours = [p for p in projects["projects"] if (p["project"], p["domain"]) == ("cloud", "development")]
        assert status == 200 and len(ours) == 1 and ours[0]["newest"]["id"]["project"] == "cloud", projects
        # Every read can name another project and domain: the API answers for that one.
        status, shown = console_get(url, f"/api/runs/{done}?project=cloud&domain=development")
        assert status == 200 and shown["execution"]["id"]["name"] == done, shown
        status, elsewhere = console_get(url, f"/api/runs/{done}?project=elsewhere&domain=development")
        assert status == 404, elsewhere
        status, empty = console_get(url, "/api/runs?project=elsewhere&domain=development")
        assert status == 200 and empty["executions"] == [], empty
        # A write without the page's token is refused and changes nothing.
        status, refused = console_get(url, f"/api/runs/{running}/abort", {"Origin": url.rstrip("/")}, "POST")
        assert status == 403, refused
        _, still = signed(cloud, "GET", f"/v1/executions/cloud/development/{running}")
        assert still["execution"]["phase"] == "WORKFLOW_RUNNING", still
        if shutil.which("node") and os.path.exists(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")) \
                and os.access(os.environ.get("CHROMIUM", "/usr/bin/chromium"), os.X_OK):
            artifacts = os.path.join(REPO, "target", "console-screenshots")
            clicked = subprocess.run(["node", os.path.join(BROWSER_TESTS, "remote.mjs"), url, running, artifacts],
                                     capture_output=True, text=True, timeout=180)
            assert clicked.returncode == 0, clicked.stdout + clicked.stderr
        else:
            with urllib.request.urlopen(url) as answer:
                token = answer.read().decode().split('name="updraft-token" content="')[1].split('"')[0]
            status, aborted = console_get(url, f"/api/runs/{running}/abort",
                                          {"Origin": url.rstrip("/"), "X-Updraft-Token": token}, "POST")
            assert status == 200, aborted
        answer = finished(cloud, running)
        assert answer["execution"]["phase"] == "WORKFLOW_ABORTED", answer["execution"]
        assert answer["execution"]["error"]["message"].endswith(": aborted from the console"), answer["execution"]["error"]
        # Relaunch from the console: a new run of the same version and inputs, named in the answer.
        with urllib.request.urlopen(url) as page:
            token = page.read().decode().split('name="updraft-token" content="')[1].split('"')[0]
        status, again = console_get(url, f"/api/runs/{done}/relaunch?key=00112233445566ff",
                                    {"Origin": url.rstrip("/"), "X-Updraft-Token": token}, "POST")
        assert status == 201 and again["name"] == f"{done}-relaunch-00112233445566ff", again
        # The same click sent again (its key is the new run's name): the same run, not a second one.
        status, repeated = console_get(url, f"/api/runs/{done}/relaunch?key=00112233445566ff",
                                       {"Origin": url.rstrip("/"), "X-Updraft-Token": token}, "POST")
        assert status == 201 and repeated["name"] == again["name"], repeated
        relaunched = finished(cloud, again["name"])["execution"]
        assert (relaunched["phase"], relaunched["mode"]) == ("WORKFLOW_SUCCEEDED", "RELAUNCH"), relaunched
        # Recovering a run that succeeded is the API's 409, passed on as it is.
        status, refused = console_get(url, f"/api/runs/{done}/recover?key=00112233445566ff",
                                      {"Origin": url.rstrip("/"), "X-Updraft-Token": token}, "POST")
        assert status == 409, refused
    finally:
        console.terminate()
        console.wait(timeout=10)


def test_stop_execution_from_the_aws_side_ends_the_run_aborted_with_its_jobs(cloud, aws):
    run = launch(cloud, "pair", {"run": {"string": unique("r")}})
    running_jobs(aws, cloud, run, 2)
    sfn = aws("stepfunctions")
    arns = [e["executionArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith("-pair-v1")
            for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"] if e["name"] == run]
    assert len(arns) == 1, arns
    sfn.stop_execution(executionArn=arns[0], cause="an operator stopped it")
    # The status function gets the execution's status change and stops the rest.
    wait_for("every job of the run stopped", lambda: not live_jobs(aws, cloud, run), timeout=30)
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_ABORTED", answer
    assert answer["execution"]["error"]["message"] == "aborted by Step Functions: an operator stopped it"
    assert {n["phase"] for n in answer["nodes"]} == {"ABORTED", "SKIPPED"}, answer["nodes"]


def test_aborting_a_running_map_terminates_its_array_job(cloud, aws):
    run = launch(cloud, "fan", {"xs": {"list": {"values": [{"float": 120.0}] * 3}},
                                "run": {"string": unique("r")}})
    wait_for("the map's children running", lambda: len(
        [j for j in live_jobs(aws, cloud, run) if j["status"] == "RUNNING"]) >= 3)
    aborted = updraft(cloud, "executions", "abort", run, "--remote", "--project", "cloud", "--output", "json")
    assert aborted.returncode == 0, aborted.stderr
    # (Which call stopped the array job, this one or the status function it set off, is a race.)
    assert json.loads(aborted.stdout)["execution"]["phase"] == "WORKFLOW_ABORTED", aborted.stdout
    wait_for("the array job and its children stopped", lambda: not live_jobs(aws, cloud, run), timeout=30)
    assert nodes(finished(cloud, run))["naps"]["phase"] == "ABORTED"


def test_a_fail_fast_failure_stops_the_running_sibling_and_starts_nothing_after_it(cloud, aws):
    run = launch(cloud, "failfast", {"run": {"string": unique("r")}})
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    assert answer["execution"]["error"]["code"] == "NonZeroExit", answer["execution"]
    wait_for("the sibling's job stopped", lambda: not live_jobs(aws, cloud, run), timeout=30)
    time.sleep(3)
    phases = {node: n["phase"] for node, n in nodes(finished(cloud, run)).items()}
    assert phases == {"broken": "FAILED", "slow": "ABORTED", "after_slow": "SKIPPED"}, phases


def test_a_run_past_its_workflow_timeout_ends_timed_out_with_its_job_stopped(cloud, aws):
    run = launch(cloud, "hurried", {"run": {"string": unique("r")}})
    answer = finished(cloud, run, timeout=60)
    assert answer["execution"]["phase"] == "WORKFLOW_TIMED_OUT", answer
    assert answer["execution"]["error"]["code"] == "TimedOut", answer["execution"]
    wait_for("the job stopped", lambda: not live_jobs(aws, cloud, run), timeout=30)
    assert nodes(finished(cloud, run))["slow"]["phase"] == "ABORTED"


def test_a_subworkflow_past_its_timeout_fails_its_parent_node(cloud, aws):
    run = launch(cloud, "waits_for_hurried", {"run": {"string": unique("r")}})
    answer = finished(cloud, run, timeout=60)
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    sub = nodes(answer)["sub"]
    assert (sub["phase"], sub["error"]["code"]) == ("FAILED", "Timeout"), sub
    assert nodes(answer)["after"]["phase"] == "SKIPPED"
    wait_for("the child's job stopped", lambda: not live_jobs(aws, cloud, f"{run}-sub"), timeout=30)


def arm_faults(api, **faults):
    return conftest.arm_faults(api["endpoint"], **faults)


def test_a_lost_job_end_event_is_recovered_by_the_reconciler(cloud):
    arm_faults(cloud, drop_job_events=1)
    started = time.time()
    # A cache miss: the first job's end event is dropped; nothing else would ever tell its node.
    run = launch(cloud, "chain", {"x": {"integer": str(int(time.time() * 1000) % 1_000_000_000)}})
    answer = finished(cloud, run, timeout=180)
    print(f"lost_event_recovery_s: {time.time() - started:.1f}")
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    assert {n["phase"] for n in answer["nodes"]} == {"SUCCEEDED"}
    assert arm_faults(cloud)["drop_job_events"] == 0, "the fault was used"


def test_task_logs_are_read_through_the_api_and_shown_by_watch(cloud, tmp_path):
    # What a task writes reaches `launch --watch` as `node | line` (from the job's CloudWatch
    # stream, through GET .../nodes/{node}/logs) and `updraft logs --remote` afterwards.
    spec = tmp_path / "cloud.yaml"
    spec.write_text(SPEC)
    watched = updraft(cloud, "launch", str(spec), "failing", "--version", "v1", "--watch")
    assert watched.returncode == 1, watched.stderr
    lines = watched.stdout.splitlines()
    name = lines[0].split()[1].rstrip(":")
    node = next(line.split("|")[0].strip() for line in lines if "| bad data in row 7" in line)
    assert lines.index(f"  {node} | bad data in row 7") < len(lines) - 3, "the lines come before the summary"
    logs = updraft(cloud, "logs", name, node, "--remote", "--project", "cloud")
    assert logs.returncode == 0, logs.stderr
    assert "bad data in row 7" in logs.stdout.splitlines(), logs.stdout
    every = updraft(cloud, "logs", name, "--remote", "--project", "cloud")
    assert f"==> {node} <==" in every.stdout or "bad data in row 7" in every.stdout, every.stdout
    status, page = signed(cloud, "GET", f"/v1/executions/cloud/development/{name}/nodes/{node}/logs?limit=1")
    assert status == 200 and len(page["events"]) == 1 and page["ended"] is True and page["logStream"], page
    status, more = signed(cloud, "GET",
                          f"/v1/executions/cloud/development/{name}/nodes/{node}/logs?limit=1000&token={page['nextToken']}")
    assert status == 200 and page["events"][0] not in more["events"][:1], "the token reads on from the page"
    missing = updraft(cloud, "logs", name, "nope", "--remote", "--project", "cloud")
    assert missing.returncode == 1 and "has no node nope" in missing.stderr, missing.stderr
    no_run = updraft(cloud, "logs", "20200101-000000-00000000", node, "--remote", "--project", "cloud")
    assert no_run.returncode == 1 and "no execution cloud/development/20200101-000000-00000000" in no_run.stderr


def test_a_map_items_log_is_read_by_its_index(cloud):
    run = launch(cloud, "fan", {"xs": {"list": {"values": [{"float": 0.1}, {"float": 0.2}, {"float": 0.3}]}},
                                "run": {"string": unique("fan-logs")}})
    assert finished(cloud, run)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    for item, seconds in [(0, "0.1"), (2, "0.3")]:
        logs = updraft(cloud, "logs", run, "naps", "--item", str(item), "--remote", "--project", "cloud")
        assert logs.returncode == 0, logs.stderr
        assert f"napping {seconds}" in logs.stdout.splitlines(), logs.stdout
    status, refused = signed(cloud, "GET", f"/v1/executions/cloud/development/{run}/nodes/naps/logs?item=many")
    assert status == 400 and refused["code"] == "InvalidItem", refused


def array_jobs(aws, api, run, node):
    """The jobs Batch ran for a run's node (not counting an array job's children), as (job id, size)."""
    batch, queue = aws("batch"), api["outputs"]["CpuJobQueueArn"]
    ids = [j["jobId"] for status in ("SUCCEEDED", "FAILED")
           for j in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"] if j["jobName"] == f"{run}-{node}"]
    jobs = batch.describe_jobs(jobs=ids)["jobs"] if ids else []
    return [(j["jobId"], j.get("arrayProperties", {}).get("size", 1)) for j in jobs
            if "index" not in j.get("arrayProperties", {})]


def test_a_map_reruns_only_the_items_whose_cache_entries_were_deleted(cloud, aws):
    base = int(time.time() * 1000) % 1_000_000 * 100
    xs = {"xs": {"list": {"values": [{"integer": str(base + i)} for i in range(12)]}}}
    expected = [{"integer": str(base + i + 1)} for i in range(12)]
    first = launch(cloud, "bumps", xs)
    answer = finished(cloud, first)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    assert [size for _, size in array_jobs(aws, cloud, first, "each")] == [12]
    # Three items' entries deleted behind the stack's back: exactly those three run again.
    dynamo = aws("dynamodb")
    entries = [item for item in dynamo.scan(TableName=cloud["outputs"]["MetadataTableName"])["Items"]
               if item["pk"]["S"].startswith("CACHE#") and any(str(base + i + 1) in item["outputs"]["S"] for i in range(12))]
    assert len(entries) == 12, "one entry per item"
    gone = sorted(entries, key=lambda e: e["pk"]["S"])[:3]
    rerun_items = sorted(int(json.loads(e["outputs"]["S"])["values"]["y"]["integer"]) - 1 - base for e in gone)
    for entry in gone:
        dynamo.delete_item(TableName=cloud["outputs"]["MetadataTableName"], Key={"pk": entry["pk"], "sk": entry["sk"]})
    second = launch(cloud, "bumps", xs)
    answer = finished(cloud, second)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    assert answer["execution"]["outputs"]["values"]["ys"]["list"]["values"] == expected, "gathered in item order"
    assert [size for _, size in array_jobs(aws, cloud, second, "each")] == [3], "only the three misses ran"
    manifest = aws("s3").get_object(Bucket=cloud["outputs"]["DataBucketName"],
                                    Key=f"runs/cloud/development/{second}/each/items/manifest.json")
    assert json.loads(manifest["Body"].read())["items"] == rerun_items, "child k ran the k-th miss"
    # Each item's log is its own child's; a reused item has none in this run.
    for item in rerun_items:
        logs = updraft(cloud, "logs", second, "each", "--item", str(item), "--remote", "--project", "cloud")
        assert logs.returncode == 0 and f"bumping {base + item}" in logs.stdout.splitlines(), logs.stdout + logs.stderr
    reused = next(i for i in range(12) if i not in rerun_items)
    status, refused = signed(cloud, "GET", f"/v1/executions/cloud/development/{second}/nodes/each/logs?item={reused}")
    assert status == 404 and "were reused" in refused["message"], refused
    # With every entry back, a third run starts no job at all.
    third = finished(cloud, launch(cloud, "bumps", xs))
    assert nodes(third)["each"]["phase"] == "CACHED", third
    assert array_jobs(aws, cloud, third["execution"]["id"]["name"], "each") == []


def test_a_maps_concurrency_is_its_array_jobs_size_and_children_stride_over_the_items(cloud, aws):
    base = int(time.time() * 1000) % 1_000_000 * 100 + 50
    xs = {"xs": {"list": {"values": [{"integer": str(base + i)} for i in range(5)]}}}
    run = launch(cloud, "bumps_two_at_a_time", xs)
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    assert answer["execution"]["outputs"]["values"]["ys"]["list"]["values"] == [
        {"integer": str(base + i + 1)} for i in range(5)]
    assert [size for _, size in array_jobs(aws, cloud, run, "each")] == [2], "concurrency 2: two children"
    # Child 1 ran items 1 and 3, one after the other: both are in its stream.
    logs = updraft(cloud, "logs", run, "each", "--item", "3", "--remote", "--project", "cloud")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert f"bumping {base + 1}" in lines and f"bumping {base + 3}" in lines, logs.stdout
    assert f"bumping {base + 2}" not in lines, logs.stdout
    # Concurrency 1: one child, no array job; every item is in the job's own stream.
    xs = {"xs": {"list": {"values": [{"integer": str(base + 10 + i)} for i in range(3)]}}}
    run = launch(cloud, "bumps_one_at_a_time", xs)
    assert finished(cloud, run)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    assert [size for _, size in array_jobs(aws, cloud, run, "each")] == [1]
    logs = updraft(cloud, "logs", run, "each", "--item", "2", "--remote", "--project", "cloud")
    assert logs.returncode == 0 and f"bumping {base + 12}" in logs.stdout.splitlines(), logs.stdout + logs.stderr


def history_events(aws, cloud, run, workflow, version="v1"):
    """The events of a run's Step Functions history."""
    sfn = aws("stepfunctions")
    machine = f"{cloud['prefix']}-cloud-development-{workflow}-{version}"
    arn = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == machine)
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:{run}"
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
            for e in page["events"]]


def longest_node_invocation_ms(cloud, endpoint, since):
    with urllib.request.urlopen(f"{endpoint}/moto-api/updraft/invocations?since={since}") as answer:
        invocations = json.loads(answer.read())
    return max(i["ms"] for i in invocations if i["function"] == f"{cloud['prefix']}-node")


def fanout_inputs(first, count):
    return {"first": {"integer": str(first)}, "count": {"integer": str(count)}}


WIDE = 10_000


@pytest.fixture(scope="module")
def wide_run(cloud, aws, endpoint):
    """examples/fanout's shape over 10,000 items (0 … 9,999), concurrency 100: the run,
    its answer, what the emulator counted meanwhile and its longest node invocation."""
    before, started = conftest.counters(endpoint), time.time()
    run = launch(cloud, "fanout_wide", fanout_inputs(0, WIDE))
    answer = finished(cloud, run, timeout=1200)
    counted = {k: conftest.counters(endpoint)[k] - before[k] for k in ("s3_requests", "dynamodb_writes")}
    return run, answer, counted, longest_node_invocation_ms(cloud, endpoint, started)


def test_a_map_of_10000_items_is_one_array_job_of_its_concurrency_and_its_history_does_not_grow(
        cloud, aws, wide_run):
    """One array job of 100 children, each running 100 items in turn: the start writes one
    inputs file (not an object per item), each child reads the span of it that holds its
    items' lines in one request and sums its items up in one object that the gather
    reads, so an item costs one request, its outputs.json; the history has the
    events of the same run over 100 items, and no node invocation nears its timeout."""
    run, answer, counted, longest_ms = wide_run
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    total = sum(i * i for i in range(WIDE))
    assert answer["execution"]["outputs"]["values"] == {
        "sum": {"integer": str(total)}, "verdict": {"string": f"large: {total}"}}
    squares = nodes(answer)["squares"]
    assert (squares["itemsDone"], squares["itemsTotal"]) == (WIDE, WIDE), squares
    assert nodes(answer)["verdict"]["branchTaken"] == "verdict-case-0", "the record names the case that ran"
    # Its cost: the map's 100 children and the three other nodes' jobs, each an attempt.
    cost = answer["execution"]["cost"]
    print(f"the 10,000-item run's cost: {cost}")
    assert cost["usage"]["batchAttempts"] == 100 + 3 and cost["orchestrationUsd"] < 0.10, cost
    assert [size for _, size in array_jobs(aws, cloud, run, "squares")] == [100], "one array job of 100 children"
    narrow = launch(cloud, "fanout_wide", fanout_inputs(20_000, 100))
    assert finished(cloud, narrow, timeout=300)["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    assert len(history_events(aws, cloud, run, "fanout_wide")) == len(history_events(aws, cloud, narrow, "fanout_wide"))
    timeout_s = aws("lambda").get_function_configuration(FunctionName=f"{cloud['prefix']}-node")["Timeout"]
    print(f"longest node invocation: {longest_ms:.0f} ms of {timeout_s} s")
    assert longest_ms < 0.3 * timeout_s * 1000, f"{longest_ms} ms"
    bucket = cloud["outputs"]["DataBucketName"]
    prefix = f"runs/cloud/development/{run}/squares/items/"
    keys = [o["Key"] for page in aws("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    assert f"{prefix}inputs.jsonl" in keys and f"{prefix}manifest.json" in keys
    assert not [k for k in keys if k.endswith("/inputs.json")], "no inputs object per item"
    assert len([k for k in keys if k.endswith("/outputs.json")]) == WIDE
    assert sorted(k for k in keys if "/children/" in k) == sorted(f"{prefix}children/{k}.json" for k in range(100))
    print(f"s3_requests_per_map_item: {counted['s3_requests'] / WIDE:.2f}, "
          f"ddb_writes_per_map_item: {counted['dynamodb_writes'] / WIDE:.3f}")
    assert counted["s3_requests"] / WIDE <= 1.1, counted
    assert counted["dynamodb_writes"] / WIDE <= 1.1, counted


def test_a_rerun_of_the_10000_item_map_runs_exactly_the_items_whose_entries_were_deleted(cloud, aws, wide_run):
    run, answer, _, _ = wide_run
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    dynamo, table = aws("dynamodb"), cloud["outputs"]["MetadataTableName"]
    squares = {str(i * i): i for i in range(WIDE)}
    entries = {}
    for page in dynamo.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if item["pk"]["S"].startswith("CACHE#") and "outputs" in item:
                y = json.loads(item["outputs"]["S"]).get("values", {}).get("y", {}).get("integer")
                if y in squares:
                    entries[squares[y]] = item
    assert len(entries) == WIDE, "one entry per item"
    for i in (17, 4242, 9999):
        dynamo.delete_item(TableName=table, Key={"pk": entries[i]["pk"], "sk": entries[i]["sk"]})
    rerun = finished(cloud, launch(cloud, "fanout_wide", fanout_inputs(0, WIDE)), timeout=600)
    assert rerun["execution"]["outputs"] == answer["execution"]["outputs"], rerun["execution"].get("error")
    name = rerun["execution"]["id"]["name"]
    assert [size for _, size in array_jobs(aws, cloud, name, "squares")] == [3], "exactly the three misses ran"
    manifest = aws("s3").get_object(Bucket=cloud["outputs"]["DataBucketName"],
                                    Key=f"runs/cloud/development/{name}/squares/items/manifest.json")
    assert json.loads(manifest["Body"].read())["items"] == [17, 4242, 9999]
    # Every entry back: no job for the map at all.
    again = finished(cloud, launch(cloud, "fanout_wide", fanout_inputs(0, WIDE)), timeout=600)
    assert again["execution"]["outputs"] == answer["execution"]["outputs"]
    assert nodes(again)["squares"]["phase"] == "CACHED"
    assert array_jobs(aws, cloud, again["execution"]["id"]["name"], "squares") == []


STRIDED = 10_100


def test_a_map_of_more_items_than_an_array_job_holds_runs_them_all(cloud, aws, endpoint):
    """10,100 items to run (none in the cache): more than AWS Batch's 10,000 array children,
    so the children stride over them; nothing refuses the map and nothing nears a timeout."""
    first, started = 1_000_000, time.time()
    run = launch(cloud, "fanout_wide", fanout_inputs(first, STRIDED))
    answer = finished(cloud, run, timeout=1200)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    total = sum(i * i for i in range(first, first + STRIDED))
    assert answer["execution"]["outputs"]["values"]["sum"] == {"integer": str(total)}
    squares = nodes(answer)["squares"]
    assert (squares["phase"], squares["itemsDone"], squares["itemsTotal"]) == ("SUCCEEDED", STRIDED, STRIDED)
    assert [size for _, size in array_jobs(aws, cloud, run, "squares")] == [100], "one array job of 100 children"
    manifest = aws("s3").get_object(Bucket=cloud["outputs"]["DataBucketName"],
                                    Key=f"runs/cloud/development/{run}/squares/items/manifest.json")
    assert json.loads(manifest["Body"].read())["items"] == list(range(STRIDED)), "every item ran"
    # The run's answer shows the first 1,000 squares; the node's outputs route all of them.
    shown = squares["outputs"]["values"]["y"]["list"]
    assert (len(shown["values"]), shown["omitted"]) == (1_000, str(STRIDED - 1_000)), shown.get("omitted")
    whole = node_outputs(cloud, run, "squares")["y"]["list"]
    assert whole["values"] == [{"integer": str(i * i)} for i in range(first, first + STRIDED)] and "omitted" not in whole
    longest_ms = longest_node_invocation_ms(cloud, endpoint, started)
    timeout_s = aws("lambda").get_function_configuration(FunctionName=f"{cloud['prefix']}-node")["Timeout"]
    print(f"longest node invocation over {STRIDED} items: {longest_ms:.0f} ms of {timeout_s} s")
    assert longest_ms < 0.3 * timeout_s * 1000, f"{longest_ms} ms"


FOLLOWED = 6_000


@pytest.fixture
def gathers_one_chunk_an_invocation(cloud, aws):
    """The node function with no time for a gather (UPDRAFT_GATHER_TIME_SHARE=0): each
    invocation writes one chunk of a map's cache entries (2,500) and goes on in a
    follow-up, as a map far wider than the emulator can run would on AWS."""
    lam, function = aws("lambda"), f"{cloud['prefix']}-node"
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=function,
                                      Environment={"Variables": {**variables, "UPDRAFT_GATHER_TIME_SHARE": "0"}})
    try:
        yield function
    finally:
        lam.update_function_configuration(FunctionName=function, Environment={"Variables": variables})


def test_a_gather_out_of_time_goes_on_in_follow_up_invocations(cloud, aws, endpoint, gathers_one_chunk_an_invocation):
    first, started = 2_000_000, time.time()
    before = conftest.counters(endpoint)["dynamodb_writes"]
    run = launch(cloud, "fanout_wide", fanout_inputs(first, FOLLOWED))
    answer = finished(cloud, run, timeout=900)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    total = sum(i * i for i in range(first, first + FOLLOWED))
    assert answer["execution"]["outputs"]["values"]["sum"] == {"integer": str(total)}
    squares = nodes(answer)["squares"]
    assert (squares["phase"], squares["itemsDone"], squares["itemsTotal"]) == ("SUCCEEDED", FOLLOWED, FOLLOWED)
    with urllib.request.urlopen(f"{endpoint}/moto-api/updraft/invocations?since={started}") as listing:
        answers = [i["answer"] for i in json.loads(listing.read()) if i["function"] == gathers_one_chunk_an_invocation]
    parts = sorted(json.loads(a)["map"]["goesOnFrom"] for a in answers if "goesOnFrom" in a)
    assert parts == [2_500, 5_000], f"two follow-ups, each going on where the last stopped: {answers}"
    assert sum(1 for a in answers if f'"gathered":{FOLLOWED}' in a) == 1, "the last part recorded the end"
    # Each entry written once across the three parts: about one write an item, as in one invocation.
    writes = conftest.counters(endpoint)["dynamodb_writes"] - before
    assert FOLLOWED <= writes <= 1.1 * FOLLOWED, writes


def test_a_map_whose_items_all_fail_reads_their_failures_from_one_summary_per_child(cloud, aws, endpoint):
    """2,000 items on 20 children, every one failing: the failures the children's last attempts
    summed up are taken as they are, so the gather reads 20 summaries, not three objects per item."""
    before = conftest.counters(endpoint)
    answer = finished(cloud, launch(cloud, "all_fail", {"count": {"integer": "2000"}}), timeout=600)
    reads = conftest.counters(endpoint)["s3_reads"] - before["s3_reads"]
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer["execution"]
    each = nodes(answer)["each"]
    assert (each["phase"], each["itemsFailed"], each["itemsTotal"]) == ("FAILED", 2000, 2000), each
    assert each["error"]["code"] == "MapFailed" and "first failure, item 0" in each["error"]["message"], each["error"]
    print(f"S3 reads of a run whose 2,000 map items all failed: {reads}")
    # Each child reads its items' lines in one request; everything else the run reads is a few dozen objects.
    assert reads < 200, reads


WIDE_MEND = """
project: cloud
tasks:
  count_to:
    image: python:3.11-slim
    command: [python3, -c, "import json, sys; json.dump(list(range(int(sys.argv[1]))), open(sys.argv[2], 'w'))",
              "{{inputs.count}}", "{{outputs.values}}"]
    inputs: {count: int}
    outputs: {values: list<int>}
  tenfold_sh:
    image: busybox
    command: [sh, -c, '%s', tenfold, "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
workflows:
  widemend:
    inputs: {count: int}
    nodes:
      numbers: {task: count_to, inputs: {count: $inputs.count}}
      each: {map: {task: tenfold_sh, over: [x], concurrency: 100}, inputs: {x: $numbers.values}}
    outputs: {ys: $each.y}
"""


def test_a_recovered_10000_item_map_runs_exactly_the_two_items_that_failed(cloud, aws, tmp_path):
    """Neither task is cached: only the recovery can keep what the failed run did."""
    broken = 'case $1 in 17|4242) echo "item $1 is bad" >&2; exit 3;; esac; echo $(($1 * 10)) > "$2"'
    fixed = 'echo $(($1 * 10)) > "$2"'
    failed, name = fail_then_recover(cloud, tmp_path, WIDE_MEND, "widemend", broken, fixed,
                                     {"count": {"integer": str(WIDE)}}, timeout=600)
    each = nodes(failed)["each"]
    assert (each["phase"], each["itemsFailed"], each["itemsDone"]) == ("FAILED", 2, WIDE - 2), each
    assert "item 17" in each["error"]["message"], each["error"]
    answer = finished(cloud, name, timeout=600)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    assert node_outputs(cloud, name, "each")["y"]["list"]["values"] == [{"integer": str(10 * x)} for x in range(WIDE)]
    assert nodes(answer)["numbers"]["phase"] == "RECOVERED"
    assert array_jobs(aws, cloud, name, "numbers") == [], "numbers ran no job"
    assert [size for _, size in array_jobs(aws, cloud, name, "each")] == [2], "exactly the two failed items ran"
    manifest = aws("s3").get_object(Bucket=cloud["outputs"]["DataBucketName"],
                                    Key=f"runs/cloud/development/{name}/each/items/manifest.json")
    assert json.loads(manifest["Body"].read())["items"] == [17, 4242]


def thousand_nodes(layers=50, width=20, jobs=True):
    """A spec whose workflow `thousand` has layers × width nodes, `width` chains of
    `layers` nodes each reading its upstream node's output, and whose workflow
    `holds_thousand` runs it as a subworkflow's child run. `jobs`: each node an
    increment, a Batch job; otherwise each a map over its upstream node's empty
    list, which ends without a job (the node protocol, the state machine and its
    history at 1,000 nodes, without 1,000 processes on the emulator's 2 cores)."""
    if jobs:
        first, then = "{{task: inc_sh, inputs: {{x: {c}}}}}", "{{task: inc_sh, inputs: {{x: $n{up}_{c}.y}}}}"
    else:
        first = "{{map: {{task: inc_sh, over: [x]}}, inputs: {{x: []}}}}"
        then = "{{map: {{task: inc_sh, over: [x]}}, inputs: {{x: $n{up}_{c}.y}}}}"
    nodes = [f"      n0_{c}: " + first.format(c=c) for c in range(width)]
    nodes += [f"      n{layer}_{c}: " + then.format(up=layer - 1, c=c) for layer in range(1, layers) for c in range(width)]
    outputs = ", ".join(f"y{c}: $n{layers - 1}_{c}.y" for c in range(width))
    return f"""
project: cloud
tasks:
  inc_sh:
    image: busybox
    command: [sh, -c, 'echo $(($1 + 1)) > "$2"', inc, "{{{{inputs.x}}}}", "{{{{outputs.y}}}}"]
    inputs: {{x: int}}
    outputs: {{y: int}}
workflows:
  thousand:
    nodes:
{chr(10).join(nodes)}
    outputs: {{{outputs}}}
  holds_thousand:
    nodes:
      sub: {{workflow: thousand}}
    outputs: {{y0: $sub.y0, y19: $sub.y19}}
"""


# On 2 cores (the emulator's Step Functions, DynamoDB, S3 and Batch are one Python process), since
# node items are made by their first write and a chain's step is one write: about 2 minutes without
# a job per node, which CI runs, and 3 with one (1,000 Batch jobs as local processes), which runs
# with UPDRAFT_TEST_1000_NODES=1 (-k 1000_node).
@pytest.mark.parametrize("jobs", [False, pytest.param(True, marks=pytest.mark.skipif(
    os.environ.get("UPDRAFT_TEST_1000_NODES") != "1", reason="set UPDRAFT_TEST_1000_NODES=1"))])
def test_a_1000_node_workflow_runs_as_a_subworkflows_child_run_and_a_larger_one_is_refused(
        cloud, aws, tmp_path, jobs):
    spec = tmp_path / "thousand.yaml"
    spec.write_text(thousand_nodes(jobs=jobs))
    version = "k1" if jobs else "k1-no-jobs"
    registered = updraft(cloud, "register", str(spec), "--version", version)
    assert registered.returncode == 0, registered.stderr
    body = {"workflow": {"project": "cloud", "domain": "development", "name": "holds_thousand", "version": version},
            "name": unique("thousand"), "inputs": {"values": {}}}
    status, answer = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(body).encode())
    assert status == 201, answer
    started, timeouts = time.time(), 0
    # The emulator is one process on 2 cores: while it starts a 1,000-branch execution, an API
    # call can time out (502); on AWS the API does not share a machine with Step Functions.
    while time.time() - started < 1500:
        status, answer = signed(cloud, "GET", f"/v1/executions/cloud/development/{body['name']}")
        timeouts += status == 502
        assert status in (200, 502), answer
        if status == 200 and answer["execution"]["phase"] != "WORKFLOW_RUNNING":
            break
        time.sleep(1)
    print(f"a 1,000-node child run ({'a job' if jobs else 'no job'} per node): {time.time() - started:.0f} s, "
          f"{timeouts} API timeouts meanwhile")
    with urllib.request.urlopen(f"{cloud['endpoint']}/moto-api/updraft/invocations?since={started}") as got:
        invocations = [i for i in json.loads(got.read()) if i["function"] == f"{cloud['prefix']}-node"]
    print(f"node function: {len(invocations)} invocations, {sum(i['ms'] for i in invocations) / 1000:.0f} s in all")
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    if jobs:
        assert answer["execution"]["outputs"]["values"] == {"y0": {"integer": "50"}, "y19": {"integer": "69"}}
    else:
        # Every chain handed its empty list down fifty nodes.
        assert answer["execution"]["outputs"]["values"] == {"y0": {"list": {}}, "y19": {"list": {}}}
    child = nodes(answer)["sub"]
    assert child["phase"] == "SUCCEEDED", child
    status, child_answer = signed(cloud, "GET", f"/v1/executions/cloud/development/{body['name']}-sub")
    assert status == 200 and child_answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", child_answer["execution"]
    assert len(child_answer["nodes"]) == 1000
    assert {n["phase"] for n in child_answer["nodes"]} == {"SUCCEEDED"}
    # Past what one state machine holds: refused at registration, naming the limit and the way out.
    spec.write_text(thousand_nodes(layers=60, jobs=jobs))
    refused = updraft(cloud, "register", str(spec), "--version", f"{version}-1200")
    assert refused.returncode != 0 and "1048576" in refused.stderr and "subworkflows" in refused.stderr, refused.stderr


def test_outputs_over_64_kib_are_kept_in_the_bucket_by_digest_and_read_back_whole(cloud, aws):
    # 300 KiB: `updraft exec` hands it over in its own object (over 64 KiB); the node keeps it in the
    # bucket, by digest, and its record names it; the API reads it back.
    run = launch(cloud, "big_text", {"n": {"integer": str(300 * 1024)}})
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    assert answer["execution"]["outputs"]["values"]["text"] == {"string": "x" * (300 * 1024)}
    assert nodes(answer)["t"]["outputs"]["values"]["text"] == {"string": "x" * (300 * 1024)}
    item = aws("dynamodb").get_item(TableName=cloud["outputs"]["MetadataTableName"],
                                    Key={"pk": {"S": f"EXEC#cloud#development#{run}"}, "sk": {"S": "NODE#t"}})["Item"]
    assert "node_outputs" not in item, "not in the item"
    assert "/record/outputs-" + item["node_outputs_digest"]["S"] + ".json" in item["node_outputs_uri"]["S"], item
    # A log read finds the node's stream in its record and reads none of the kept outputs.
    before = time.time()
    status, log = signed(cloud, "GET", f"/v1/executions/cloud/development/{run}/nodes/t/logs")
    assert status == 200 and log["logStream"], log
    assert conftest.s3_reads_since(cloud["endpoint"], before, run) == [], "no S3 read of the run's data"
    # Two such items gathered (600 KiB, past what an item holds) are kept the same way.
    two = {"ns": {"list": {"values": [{"integer": str(300 * 1024)}, {"integer": str(300 * 1024 + 1)}]}}}
    answer = finished(cloud, launch(cloud, "big_texts", two))
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    assert [len(v["string"]) for v in nodes(answer)["each"]["outputs"]["values"]["text"]["list"]["values"]] == [
        300 * 1024, 300 * 1024 + 1]
    # Past what the API could answer with: the node fails, saying why and what to do.
    five = {"ns": {"list": {"values": [{"integer": str(900 * 1024 + i)} for i in range(5)]}}}
    answer = finished(cloud, launch(cloud, "big_texts", five))
    assert answer["execution"]["phase"] == "WORKFLOW_FAILED", answer
    error = nodes(answer)["each"]["error"]
    assert error["code"] == "BadOutputs" and "at most 4194304 bytes" in error["message"], error
    assert "file or directory output" in error["message"], error


def test_inputs_over_64_kib_are_kept_in_the_bucket_by_digest_for_a_launch_and_a_child_run(cloud, aws):
    # 400 KiB of inputs, past what a run's record holds: kept in the bucket, read back by the node.
    text = "y" * (400 * 1024)
    body = {"workflow": {"project": "cloud", "domain": "development", "name": "measure", "version": "v1"},
            "inputs": {"values": {"text": {"string": text}}}, "name": unique("measure")}
    status, started = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(body).encode())
    assert status == 201, started
    run = started["id"]["name"]
    answer = finished(cloud, run)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    assert answer["execution"]["outputs"]["values"]["n"] == {"integer": str(400 * 1024)}
    assert answer["execution"]["inputs"]["values"]["text"] == {"string": text}, "the API reads them back whole"
    dynamo, table = aws("dynamodb"), cloud["outputs"]["MetadataTableName"]
    item = dynamo.get_item(TableName=table, Key={"pk": {"S": f"EXEC#cloud#development#{run}"},
                                                 "sk": {"S": "EXEC"}})["Item"]
    assert "run_inputs" not in item, "not in the record"
    assert f"{run}/record/inputs-{item['run_inputs_digest']['S']}.json" in item["run_inputs_uri"]["S"], item
    # The same launch again (a retried request) is the same run, its inputs compared whole.
    status, again = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(body).encode())
    assert status == 200 and again["id"]["name"] == run, again
    other = {**body, "inputs": {"values": {"text": {"string": text + "z"}}}}
    status, refused = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(other).encode())
    assert status == 409, refused
    # The bucket keeps run data for the stack's RunDataDays: once the kept inputs are gone, the run's
    # answer says so (410), rather than failing as if the stack were broken.
    bucket, key = item["run_inputs_uri"]["S"][len("s3://"):].split("/", 1)
    aws("s3").delete_object(Bucket=bucket, Key=key)
    status, gone = signed(cloud, "GET", f"/v1/executions/cloud/development/{run}")
    assert status == 410 and gone["code"] == "RunDataExpired" and key in gone["message"], gone
    # A child run of a subworkflow gets 300 KiB of inputs from its parent's node the same way.
    answer = finished(cloud, launch(cloud, "measure_big_text", {"n": {"integer": str(300 * 1024)}}))
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer["execution"].get("error")
    assert answer["execution"]["outputs"]["values"]["n"] == {"integer": str(300 * 1024)}


MEND = """
project: cloud
tasks:
  stamp:
    image: python:3.11-slim
    command: [python3, -c, "import sys, time; open(sys.argv[1], 'w').write(str(time.time_ns()))", "{{outputs.t}}"]
    outputs: {t: string}
  check:
    image: python:3.11-slim
    command: [python3, -c, "%s", "{{inputs.t}}"]
    inputs: {t: string}
workflows:
  mend:
    nodes:
      a: {task: stamp}
      b: {task: check, inputs: {t: $a.t}}
"""


def fail_then_recover(cloud, tmp_path, spec, workflow, broken, fixed, inputs=None, timeout=120):
    """Registers `spec % broken` as `<workflow>-v1` and `spec % fixed` as `-v2`, runs
    v1 until it fails and recovers it under v2: (the failed run, the recovery's name)."""
    for version, code in [(f"{workflow}-v1", broken), (f"{workflow}-v2", fixed)]:
        path = tmp_path / f"{version}.yaml"
        path.write_text(spec % code)
        registered = updraft(cloud, "register", str(path), "--version", version)
        assert registered.returncode == 0, registered.stderr
    body = {"workflow": {"project": "cloud", "domain": "development", "name": workflow, "version": f"{workflow}-v1"},
            "name": unique(workflow), "inputs": {"values": inputs or {}}}
    status, answer = signed(cloud, "POST", "/v1/executions/cloud/development", body=json.dumps(body).encode())
    assert status == 201, answer
    failed = finished(cloud, body["name"], timeout=timeout)
    assert failed["execution"]["phase"] == "WORKFLOW_FAILED", failed
    recovered = updraft(cloud, "executions", "recover", body["name"], "--version", f"{workflow}-v2", "--remote",
                        "--project", "cloud", "--output", "json")
    assert recovered.returncode == 0, recovered.stderr
    return failed, json.loads(recovered.stdout)["id"]["name"]


def test_a_recovery_under_a_fixed_version_keeps_what_succeeded_and_runs_the_rest(cloud, aws, tmp_path):
    failed, name = fail_then_recover(cloud, tmp_path, MEND, "mend", "import sys; sys.exit(3)",
                                     "import sys; print('checked', sys.argv[1])")
    # `stamp` is not cached: only the recovery can keep its output (a rerun would stamp anew).
    stamped = nodes(failed)["a"]["outputs"]["values"]["t"]
    answer = finished(cloud, name)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    source = failed["execution"]["id"]["name"]
    assert (answer["execution"]["mode"], answer["execution"]["recoveredFrom"]) == ("RECOVER", source)
    assert answer["execution"]["workflowId"]["version"] == "mend-v2"
    a, b = nodes(answer)["a"], nodes(answer)["b"]
    assert (a["phase"], a["outputs"]["values"]["t"]) == ("RECOVERED", stamped), a
    assert b["phase"] == "SUCCEEDED", b
    assert array_jobs(aws, cloud, name, "a") == [], "a ran no job"
    assert len(array_jobs(aws, cloud, name, "b")) == 1
    # A run that succeeded has nothing to recover; recovery is of cloud runs.
    again = updraft(cloud, "executions", "recover", name, "--remote", "--project", "cloud")
    assert again.returncode == 1 and "nothing to recover" in again.stderr, again.stderr
    local = updraft(cloud, "executions", "recover", name)
    assert local.returncode == 2 and "--remote" in local.stderr, local.stderr
    # A relaunch of it runs everything again (the uncached stamp anew) on the same inputs and version.
    relaunched = updraft(cloud, "executions", "relaunch", name, "--remote", "--project", "cloud", "--output", "json")
    assert relaunched.returncode == 0, relaunched.stderr
    again = finished(cloud, json.loads(relaunched.stdout)["id"]["name"])
    assert (again["execution"]["phase"], again["execution"]["mode"]) == ("WORKFLOW_SUCCEEDED", "RELAUNCH"), again
    assert again["execution"]["workflowId"]["version"] == "mend-v2"
    assert nodes(again)["a"]["phase"] == "SUCCEEDED" and nodes(again)["a"]["outputs"]["values"]["t"] != stamped


MAP_MEND = """
project: cloud
tasks:
  tenfold:
    image: python:3.11-slim
    command: [python3, -c, "%s", "{{inputs.x}}", "{{outputs.y}}"]
    inputs: {x: int}
    outputs: {y: int}
workflows:
  mapmend:
    inputs: {xs: "list<int>"}
    nodes:
      each: {map: {task: tenfold, over: [x]}, inputs: {x: $inputs.xs}}
    outputs: {ys: $each.y}
"""


def test_a_recovered_map_runs_only_the_items_that_failed(cloud, aws, tmp_path):
    broken = "import sys; x = int(sys.argv[1]); sys.exit(3) if x % 2 else open(sys.argv[2], 'w').write(str(10 * x))"
    fixed = "import sys; x = int(sys.argv[1]); open(sys.argv[2], 'w').write(str(10 * x))"
    xs = [0, 1, 2, 3, 4, 6]
    inputs = {"xs": {"list": {"values": [{"integer": str(x)} for x in xs]}}}
    # `tenfold` is not cached: the four items that succeeded are kept from the failed run itself.
    _, name = fail_then_recover(cloud, tmp_path, MAP_MEND, "mapmend", broken, fixed, inputs)
    answer = finished(cloud, name)
    assert answer["execution"]["phase"] == "WORKFLOW_SUCCEEDED", answer
    assert answer["execution"]["outputs"]["values"]["ys"]["list"]["values"] == [{"integer": str(10 * x)} for x in xs]
    assert [size for _, size in array_jobs(aws, cloud, name, "each")] == [2], "exactly the two failed items ran"
