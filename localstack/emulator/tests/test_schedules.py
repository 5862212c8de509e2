"""Launch plan schedules through the deployed stack in the emulator: activation
creates one EventBridge Scheduler schedule per plan (the api function's own
Scheduler calls), the emulator's scheduler fires it, and the api function turns
each tick into one run named by the plan and the time, with the kickoff input
set to that time (docs/schedules.md)."""
import json
import os
import subprocess
import time
import urllib.request
import zoneinfo
from datetime import datetime, timezone

import pytest

from conftest import arm_faults, counters, unique
from test_cloud_runs import wait_for
from test_registry_api import CREDENTIALS, DEPLOY, REPO, UPDRAFT, signed, updraft

DIABETES = os.path.join(REPO, "examples", "diabetes", "diabetes.yaml")

SPEC = """
project: sched
tasks:
  stamp:
    image: python:3.11-slim
    command: [python3, -c, "import sys; open(sys.argv[2], 'w').write(sys.argv[1])", "{{inputs.at}}", "{{outputs.seen}}"]
    inputs: {at: datetime}
    outputs: {seen: string}
workflows:
  stamped:
    inputs: {at: datetime}
    nodes:
      stamp: {task: stamp, inputs: {at: $inputs.at}}
launch_plans:
  hourly:
    workflow: stamped
    schedule: {cron: "0 * * * *", kickoff_input: at, catch_up: 2h}
  every_minute:
    workflow: stamped
    schedule: {cron: "* * * * *", kickoff_input: at}
  nightly:
    workflow: stamped
    schedule: {cron: "30 2 * * *", timezone: Europe/Paris, kickoff_input: at}
"""


@pytest.fixture(scope="module")
def stack(endpoint, tmp_path_factory):
    name, prefix = unique("stack"), unique("sch")
    deployed = subprocess.run([DEPLOY, endpoint, "--output", "json", "--stack-name", name, "--name-prefix", prefix],
                              capture_output=True, text=True, env={**os.environ, **CREDENTIALS}, timeout=900)
    assert deployed.returncode == 0, deployed.stderr
    scratch = tmp_path_factory.mktemp("schedules")
    env = {**os.environ, **CREDENTIALS, "UPDRAFT_CONFIG": str(scratch / "config.toml")}
    env.pop("UPDRAFT_ENDPOINT", None)
    assert subprocess.run([UPDRAFT, "config", "init", "--stack", name, "--endpoint-url", endpoint], env=env).returncode == 0
    url = (scratch / "config.toml").read_text().split('endpoint = "')[1].split('"')[0]
    spec = scratch / "sched.yaml"
    spec.write_text(SPEC)
    api = {"env": env, "url": url, "outputs": json.loads(deployed.stdout)["outputs"], "prefix": prefix,
           "spec": str(spec), "endpoint": endpoint}
    for file in (DIABETES, str(spec)):
        registered = updraft(api, "register", file, "--version", "v1")
        assert registered.returncode == 0, registered.stderr
    return api


def fire(api, schedule, at):
    request = urllib.request.Request(f"{api['endpoint']}/moto-api/updraft/fire-schedule", method="POST",
                                     data=json.dumps({"name": schedule, "time": at}).encode())
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())


def at(text):
    """A time as the IDL's JSON writes it ("…Z" or "…+00:00")."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def execution(api, project, name):
    status, answer = signed(api, "GET", f"/v1/executions/{project}/development/{name}")
    return answer if status == 200 else None


def ticks(api, project, plan):
    listed = updraft(api, "launchplan", "ticks", plan, "--project", project, "--output", "json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def runs_of(api, project, prefix):
    status, answer = signed(api, "GET", f"/v1/executions/{project}/development?limit=100")
    assert status == 200, answer
    return sorted(e["id"]["name"] for e in answer.get("executions", []) if e["id"]["name"].startswith(prefix))


def test_activating_the_nightly_plan_creates_one_enabled_schedule(stack, aws):
    scheduler = aws("scheduler")
    name = f"{stack['prefix']}-examples-development-diabetes_nightly"
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)  # registered, not activated: nothing fires
    on = updraft(stack, "launchplan", "activate", "diabetes_nightly", "--version", "v1", "--project", "examples")
    assert on.returncode == 0, on.stderr
    schedule = scheduler.get_schedule(Name=name)
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == ("cron(0 3 * * ? *)",
                                                                                        "Europe/Paris")
    assert (schedule["State"], schedule["FlexibleTimeWindow"]) == ("ENABLED", {"Mode": "OFF"})
    target = schedule["Target"]
    assert target["Arn"].endswith(f":function:{stack['prefix']}-api")
    assert target["RoleArn"].endswith(f":role/{stack['prefix']}-scheduler") or "scheduler" in target["RoleArn"].lower()
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"]["Arn"].endswith(f":{stack['prefix']}-schedule-dlq")
    tick = json.loads(target["Input"])["updraft_tick"]
    assert tick == {"project": "examples", "domain": "development", "plan": "diabetes_nightly", "version": "v1",
                    "scheduled_time": "<aws.scheduler.scheduled-time>"}

    # A tick starts the run named by the plan and the time; the same tick again is the same run.
    fire(stack, name, "2027-03-29T01:00:00Z")
    run = "diabetes_nightly-20270329T0100Z"
    wait_for("the tick's run", lambda: execution(stack, "examples", run))
    fire(stack, name, "2027-03-29T01:00:00Z")
    wait_for("the second tick recorded", lambda: len(ticks(stack, "examples", "diabetes_nightly")) == 1
             and ticks(stack, "examples", "diabetes_nightly")[0]["recordedAt"])
    assert runs_of(stack, "examples", "diabetes_nightly-") == [run]
    updraft(stack, "executions", "abort", run, "--remote", "--project", "examples", "--reason", "test done")

    # The listing of the plan's versions shows the schedule next to the registry, and drift with its fix.
    shown = updraft(stack, "get", "launch-plans", "diabetes_nightly", "--project", "examples")
    assert shown.returncode == 0 and "in sync" in shown.stdout, shown.stdout + shown.stderr
    changed = {k: schedule[k] for k in ("Name", "ScheduleExpression", "ScheduleExpressionTimezone",
                                        "FlexibleTimeWindow", "Target")}
    scheduler.update_schedule(**changed, State="DISABLED")  # someone switched it off in the console
    listed = json.loads(updraft(stack, "get", "launch-plans", "diabetes_nightly", "--project", "examples",
                                "--output", "json").stdout)
    assert listed["schedule"]["state"] == "DISABLED", listed
    assert listed["schedule"]["drift"] == [
        "version v1 is active but the schedule is DISABLED: "
        "updraft launchplan activate diabetes_nightly --version v1"], listed
    on = updraft(stack, "launchplan", "activate", "diabetes_nightly", "--version", "v1", "--project", "examples")
    assert on.returncode == 0, on.stderr
    assert "in sync" in updraft(stack, "get", "launch-plans", "diabetes_nightly", "--project", "examples").stdout

    # The console's launch plans page: the schedule, when it fires next (03:00 in Paris), the tick's run.
    console = subprocess.Popen([UPDRAFT, "console", "--remote", "--project", "examples", "--port", "0"],
                               env=stack["env"], stdout=subprocess.PIPE, text=True)
    try:
        url = console.stdout.readline().split()[1]
        with urllib.request.urlopen(f"{url}api/launch-plans") as answer:
            plans = {p["name"]: p for p in json.loads(answer.read())["launchPlans"]}
    finally:
        console.terminate()
        console.wait(timeout=10)
    plan = plans["diabetes_nightly"]
    assert (plan["activeVersion"], plan["state"]) == ("v1", "ENABLED"), plan
    assert plan["schedule"]["cron"] == {"expression": "0 3 * * *", "timezone": "Europe/Paris"}, plan["schedule"]
    paris = [datetime.fromisoformat(t).astimezone(zoneinfo.ZoneInfo("Europe/Paris")) for t in plan["nextFires"]]
    assert len(paris) == 3 and all((t.hour, t.minute) == (3, 0) for t in paris), plan["nextFires"]
    assert [(t["outcome"], t["execution"]) for t in plan["ticks"]] == [("LAUNCHED", run)], plan["ticks"]

    # Deactivated: the schedule is disabled, not deleted.
    off = updraft(stack, "launchplan", "deactivate", "diabetes_nightly", "--version", "v1", "--project", "examples")
    assert off.returncode == 0, off.stderr
    assert scheduler.get_schedule(Name=name)["State"] == "DISABLED"
    # A tick that arrives after all (delivered late) launches nothing: the version is no longer active.
    fire(stack, name, "2027-03-30T01:00:00Z")
    wait_for("the late tick recorded", lambda: len(ticks(stack, "examples", "diabetes_nightly")) == 2)
    assert ticks(stack, "examples", "diabetes_nightly")[0]["outcome"] == "SKIPPED"
    assert runs_of(stack, "examples", "diabetes_nightly-") == [run]


def test_a_tick_whose_launch_fails_is_recorded_failed_retried_and_dead_lettered(stack, aws):
    name = f"{stack['prefix']}-sched-development-hourly"
    api = f"{stack['prefix']}-api"
    assert updraft(stack, "launchplan", "activate", "hourly", "--version", "v1", "--project", "sched").returncode == 0
    before = counters(stack["endpoint"])
    # Step Functions refuses every start (a 500 past the SDK's retries) while the tick is handled.
    arm_faults(stack["endpoint"], fail=[{"service": "states", "operation": "StartExecution", "count": 100,
                                         "error": "5xx", "function": api}])
    try:
        fire(stack, name, "2027-05-01T07:00:00Z")
        recorded = wait_for("the failed tick", lambda: [t for t in ticks(stack, "sched", "hourly")
                                                        if t["scheduledTime"] == "2027-05-01T07:00:00Z"])
    finally:
        arm_faults(stack["endpoint"], clear=True)
        updraft(stack, "launchplan", "deactivate", "hourly", "--version", "v1", "--project", "sched")
    assert recorded[0]["outcome"] == "FAILED" and "starting" in recorded[0]["message"], recorded
    after = counters(stack["endpoint"])
    assert after["lambda_async_failures"].get(api, 0) - before["lambda_async_failures"].get(api, 0) == 3, \
        "the tick and Lambda's two retries each failed"
    sqs = aws("sqs")
    queue = sqs.get_queue_url(QueueName=f"{stack['prefix']}-schedule-dlq")["QueueUrl"]
    letters = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert [json.loads(m["Body"])["updraft_tick"]["scheduled_time"] for m in letters] == ["2027-05-01T07:00:00Z"]


def test_a_tick_starts_one_run_with_its_time_as_kickoff_input_and_a_stale_version_skips(stack, aws):
    name = f"{stack['prefix']}-sched-development-hourly"
    assert updraft(stack, "launchplan", "activate", "hourly", "--version", "v1", "--project", "sched").returncode == 0
    assert aws("scheduler").get_schedule(Name=name)["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 7200
    fire(stack, name, "2027-03-29T01:00:00Z")
    run = "hourly-20270329T0100Z"
    answer = wait_for("the tick's run", lambda: execution(stack, "sched", run))
    kickoff = datetime.fromisoformat(answer["execution"]["inputs"]["values"]["at"]["datetime"].replace("Z", "+00:00"))
    assert kickoff == datetime(2027, 3, 29, 1, 0, tzinfo=timezone.utc), "the scheduled time, not the clock"
    recorded = answer["execution"]
    assert (recorded["mode"], at(recorded["scheduledAt"]), recorded["principal"]) == (
        "SCHEDULED", datetime(2027, 3, 29, 1, 0, tzinfo=timezone.utc), f"schedule {name}"), recorded
    assert (recorded["launchPlanId"]["name"], recorded["launchPlanId"]["version"]) == ("hourly", "v1")
    shown = updraft(stack, "executions", "get", run, "--remote", "--project", "sched")
    assert "launched on schedule" in shown.stdout and "for the tick of 2027-03-29T01:00:00Z" in shown.stdout, shown.stdout
    done = wait_for("the run's end", lambda: (lambda a: a if a and a["execution"]["phase"] != "WORKFLOW_RUNNING"
                                              else None)(execution(stack, "sched", run)))
    assert done["execution"]["phase"] == "WORKFLOW_SUCCEEDED", done

    # v2 becomes the active version: a late tick of v1 starts nothing and says why.
    assert updraft(stack, "register", stack["spec"], "--version", "v2").returncode == 0
    assert updraft(stack, "launchplan", "activate", "hourly", "--version", "v2", "--project", "sched").returncode == 0
    stale = {"updraft_tick": {"project": "sched", "domain": "development", "plan": "hourly", "version": "v1",
                              "scheduled_time": "2027-03-29T02:00:00Z"}}
    aws("lambda").invoke(FunctionName=f"{stack['prefix']}-api", Payload=json.dumps(stale).encode())
    # (The failed-tick test's tick of May is the plan's too.)
    recorded = [t for t in ticks(stack, "sched", "hourly") if t["scheduledTime"].startswith("2027-03-29")]
    assert [(t["scheduledTime"], t["outcome"]) for t in recorded] == [("2027-03-29T02:00:00Z", "SKIPPED"),
                                                                      ("2027-03-29T01:00:00Z", "LAUNCHED")]
    assert "not the plan's active version" in recorded[0]["message"]
    assert runs_of(stack, "sched", "hourly-20270329") == [run]
    updraft(stack, "launchplan", "deactivate", "hourly", "--version", "v2", "--project", "sched")


def test_an_every_minute_plan_left_alone_starts_a_run_each_minute(stack):
    """Active from whenever it is activated until two whole minutes have turned: each minute
    that turned in between starts exactly one run, named by its minute. (A minute turning
    within 3 s of the activation or the deactivation may or may not fire: not counted.)"""
    margin = 3
    on = updraft(stack, "launchplan", "activate", "every_minute", "--version", "v1", "--project", "sched")
    assert on.returncode == 0, on.stderr
    activated = time.time()
    first = (int(activated + margin) // 60 + 1) * 60  # the first minute safely after the activation
    time.sleep(max(0.0, first + 60 + margin - time.time()))
    updraft(stack, "launchplan", "deactivate", "every_minute", "--version", "v1", "--project", "sched")
    deactivated = time.time()
    must = {datetime.fromtimestamp(m, timezone.utc) for m in range(first, int(deactivated - margin) + 1, 60)}
    edges = [m for m in range((int(activated) // 60) * 60, int(deactivated + margin) + 1, 60)
             if abs(m - activated) <= margin or abs(m - deactivated) <= margin]
    may = {datetime.fromtimestamp(m, timezone.utc) for m in edges}
    assert len(must) >= 2, must

    def minutes_run():
        runs = runs_of(stack, "sched", "every_minute-")
        minutes = {datetime.strptime(r.split("-")[-1], "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc) for r in runs}
        return minutes if minutes >= must else None

    minutes = wait_for("a run for each minute", minutes_run, timeout=30)
    assert must <= minutes <= must | may, (sorted(minutes), sorted(must), sorted(may))
    assert len(ticks(stack, "sched", "every_minute")) == len(minutes), "one tick, one run, per minute"


def test_a_backfill_launches_each_tick_once_with_its_kickoff_time(stack):
    args = ("launchplan", "backfill", "nightly", "--version", "v1", "--project", "sched",
            "--from", "2027-03-26T00:00:00Z", "--to", "2027-03-28T23:59:00Z")
    dry = updraft(stack, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    # 02:30 does not exist in Paris on March 28 (clocks go 02:00 → 03:00): two nights, not three.
    assert dry.stdout.splitlines() == [
        "2027-03-26T01:30:00Z  nightly-20270326T0130Z  would launch",
        "2027-03-27T01:30:00Z  nightly-20270327T0130Z  would launch",
        "2 ticks (dry run: nothing launched)"], dry.stdout
    wide = ("launchplan", "backfill", "nightly", "--version", "v1", "--project", "sched",
            "--from", "2027-04-01", "--to", "2027-04-03T23:59:00Z")
    first = updraft(stack, *wide, "--output", "json")
    assert first.returncode == 0, first.stderr + first.stdout
    report = json.loads(first.stdout)
    assert (report["launched"], report["ranBefore"], report["failed"]) == (3, 0, 0), report
    for tick in report["ticks"]:
        answer = wait_for("the backfilled run", lambda: execution(stack, "sched", tick["execution"]))
        kickoff = answer["execution"]["inputs"]["values"]["at"]["datetime"].replace("Z", "+00:00")
        assert datetime.fromisoformat(kickoff) == datetime.fromisoformat(tick["time"].replace("Z", "+00:00"))
        assert (answer["execution"]["mode"], at(answer["execution"]["scheduledAt"])) == ("SCHEDULED", at(tick["time"]))
        assert answer["execution"]["principal"].startswith("arn:aws:"), answer["execution"]
    again = json.loads(updraft(stack, *wide, "--output", "json").stdout)
    assert (again["launched"], again["ranBefore"]) == (0, 3), "a tick that ran is not run again"
    backfilled = [(t["scheduledTime"], t["outcome"], t["trigger"]) for t in ticks(stack, "sched", "nightly")]
    assert backfilled == [(f"2027-04-0{d}T00:30:00Z", "LAUNCHED", "BACKFILL") for d in (3, 2, 1)], backfilled
    backwards = updraft(stack, "launchplan", "backfill", "nightly", "--version", "v1", "--project", "sched",
                        "--from", "2027-04-03", "--to", "2027-04-01")
    assert backwards.returncode == 2 and "runs backwards" in backwards.stderr
    too_many = updraft(stack, "launchplan", "backfill", "every_minute", "--version", "v1", "--project", "sched",
                       "--from", "2027-01-01", "--to", "2027-01-31")
    assert too_many.returncode == 2, too_many.stderr
    assert "holds 43201 ticks of every_minute, more than --max 1000" in too_many.stderr, too_many.stderr


def test_register_with_activate_starts_the_schedule_of_each_plan(stack, aws):
    spec = os.path.join(os.path.dirname(stack["spec"]), "early.yaml")
    with open(spec, "w") as f:
        f.write(SPEC.replace("project: sched", "project: early").split("launch_plans:")[0]
                + "launch_plans:\n  early:\n    workflow: stamped\n    schedule: {cron: '0 5 * * 1-5', timezone: Asia/Tokyo, kickoff_input: at}\n")
    registered = updraft(stack, "register", spec, "--version", "v1", "--activate")
    assert registered.returncode == 0, registered.stderr
    schedule = aws("scheduler").get_schedule(Name=f"{stack['prefix']}-early-development-early")
    assert (schedule["State"], schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "ENABLED", "cron(0 5 ? * 2-6 *)", "Asia/Tokyo")
    off = updraft(stack, "launchplan", "deactivate", "early", "--version", "v1", "--project", "early")
    assert off.returncode == 0, off.stderr
