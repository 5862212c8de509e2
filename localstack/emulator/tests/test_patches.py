"""One test per patch of updraft_emulator.py: each fails loudly if a moto
upgrade changes the behaviour the patch relies on."""
import io
import json
import os
import stat
import sys
import time
import urllib.request
import zipfile
from datetime import datetime

import pytest

from conftest import arm_faults, counters, finished_job, job_log, unique, wait_for

PYTHON = sys.executable


def job_definition(aws, command, environment=None):
    return aws("batch").register_job_definition(
        jobDefinitionName=unique("jd"), type="container",
        containerProperties={"image": "busybox", "command": command, "environment": environment or [],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}]},
    )["jobDefinitionArn"]


# ------------------------------------------------------------------ (b) Batch jobs run as processes

def test_batch_job_runs_its_command_with_environment_and_parameters(aws, job_queue):
    script = "import os, sys; print('hello', os.environ['GREETING'], sys.argv[1])"
    definition = job_definition(aws, [PYTHON, "-c", script, "Ref::who"], [{"name": "GREETING", "value": "from batch"}])
    job = aws("batch").submit_job(jobName=unique("job"), jobQueue=job_queue, jobDefinition=definition,
                                  parameters={"who": "updraft"})
    job = finished_job(aws, job["jobId"])
    assert job["status"] == "SUCCEEDED"
    assert job["container"]["exitCode"] == 0
    assert job_log(aws, job) == ["hello from batch updraft"]


def test_batch_job_exit_code_fails_the_job_with_a_reason(aws, job_queue):
    definition = job_definition(aws, [PYTHON, "-c", "import sys; print('oops', file=sys.stderr); sys.exit(3)"])
    job = aws("batch").submit_job(jobName=unique("job"), jobQueue=job_queue, jobDefinition=definition)
    job = finished_job(aws, job["jobId"])
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 3
    assert job["statusReason"] == "Essential container in task exited"
    assert job_log(aws, job) == ["oops"]


def test_batch_job_overrides_apply(aws, job_queue):
    definition = job_definition(aws, [PYTHON, "-c", "print('default')"])
    job = aws("batch").submit_job(
        jobName=unique("job"), jobQueue=job_queue, jobDefinition=definition,
        containerOverrides={"command": [PYTHON, "-c", "import os; print(os.environ['X'])"],
                            "environment": [{"name": "X", "value": "overridden"}]})
    job = finished_job(aws, job["jobId"])
    assert job_log(aws, job) == ["overridden"]


# ------------------------------------------------------------------ (a) Step Functions batch:submitJob.sync

def run_state_machine(aws, role_arn, definition, payload=None):
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name=unique("sm"), definition=json.dumps(definition), roleArn=role_arn)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=unique("run"),
                                    input=json.dumps(payload or {}))

    def done():
        d = sfn.describe_execution(executionArn=execution["executionArn"])
        return d if d["status"] != "RUNNING" else None
    return wait_for(done), execution["executionArn"]


def submit_job_sync(job_queue, definition):
    return {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": "sfn-job", "JobQueue": job_queue, "JobDefinition": definition,
                       "ContainerOverrides": {"Environment": [{"Name": "STEP", "Value.$": "$.step"}]}},
        "End": True}}}


def test_state_machine_waits_for_a_batch_job_to_succeed(aws, role_arn, job_queue):
    definition = job_definition(aws, [PYTHON, "-c", "import os; print('step', os.environ['STEP'])"])
    result, _ = run_state_machine(aws, role_arn, submit_job_sync(job_queue, definition), {"step": "fit"})
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["Status"] == "SUCCEEDED", "the sync response is PascalCase, as AWS returns it"
    job = aws("batch").describe_jobs(jobs=[output["JobId"]])["jobs"][0]
    assert job_log(aws, job) == ["step fit"]


def test_state_machine_fails_when_its_batch_job_fails(aws, role_arn, job_queue):
    definition = job_definition(aws, [PYTHON, "-c", "raise SystemExit(3)"])
    result, arn = run_state_machine(aws, role_arn, submit_job_sync(job_queue, definition), {"step": "fit"})
    assert result["status"] == "FAILED"
    history = aws("stepfunctions").get_execution_history(executionArn=arn)["events"]
    failed = [e for e in history if e["type"] == "TaskFailed"]
    assert failed and failed[0]["taskFailedEventDetails"]["error"] == "States.TaskFailed"
    cause = json.loads(failed[0]["taskFailedEventDetails"]["cause"])
    assert cause["Container"]["ExitCode"] == 3


# ------------------------------------------------------------------ (n) execution status changes, StopExecution

def test_stop_execution_ends_a_waiting_execution_at_once_with_its_cause(aws, role_arn, function_arn):
    sfn = aws("stepfunctions")
    # The function answers at once, but nothing ever answers the token: the execution waits.
    waiting = {"StartAt": "Wait", "States": {"Wait": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": function_arn, "Payload": {"token.$": "$$.Task.Token"}}, "End": True}}}
    machine = sfn.create_state_machine(name=unique("sm"), definition=json.dumps(waiting), roleArn=role_arn)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=unique("run"))["executionArn"]
    time.sleep(1)
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped by hand")
    stopped = sfn.describe_execution(executionArn=arn)
    assert (stopped["status"], stopped.get("error"), stopped.get("cause")) == ("ABORTED", "Operator", "stopped by hand")


def test_an_ended_execution_sends_its_status_change_to_matching_rules(aws, role_arn, function_arn, tmp_path):
    events, touched = aws("events"), tmp_path / "event.json"
    rule = unique("status")
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["SUCCEEDED"]}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "f", "Arn": function_arn}])
    try:
        result, arn = run_state_machine(aws, role_arn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                                        {"touch": str(touched)})
        assert result["status"] == "SUCCEEDED"
        event = json.loads(wait_for(lambda: touched.exists() and touched.read_text()))
    finally:
        events.remove_targets(Rule=rule, Ids=["f"])
        events.delete_rule(Name=rule)
    detail = event["detail"]
    assert (event["source"], detail["executionArn"], detail["status"]) == ("aws.states", arn, "SUCCEEDED")
    assert json.loads(detail["input"]) == {"touch": str(touched)}


# ------------------------------------------------------------------ (o) terminating an array job

def test_terminating_an_array_job_terminates_its_children(aws, job_queue):
    batch = aws("batch")
    definition = job_definition(aws, [PYTHON, "-c", "import time; time.sleep(120)"])
    parent = batch.submit_job(jobName=unique("array"), jobQueue=job_queue, jobDefinition=definition,
                              arrayProperties={"size": 2})["jobId"]
    children = [f"{parent}:{i}" for i in range(2)]
    wait_for(lambda: all(j["status"] == "RUNNING" for j in batch.describe_jobs(jobs=children)["jobs"]))
    # (l) A child says which item it is, so event rules can tell children from their parent.
    assert [j["arrayProperties"] for j in batch.describe_jobs(jobs=children)["jobs"]] == [{"index": 0}, {"index": 1}]
    batch.terminate_job(jobId=parent, reason="the run was aborted")
    assert finished_job(aws, parent)["status"] == "FAILED"
    ended = batch.describe_jobs(jobs=children)["jobs"]
    assert {(j["status"], j["statusReason"]) for j in ended} == {("FAILED", "the run was aborted")}, ended


# ------------------------------------------------------------------ (p) Scheduler schedules fire

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import updraft_emulator  # noqa: E402  (its moto imports are inside its functions)


class _Schedule:
    def __init__(self, expression, zone="UTC", start=None, created=0):
        self.schedule_expression, self.schedule_expression_timezone = expression, zone
        self.start_date, self.creation_date = start, created


def _ticks(expression, zone, after, until, **kwargs):
    at = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    ticks = updraft_emulator._schedule_ticks(_Schedule(expression, zone, **kwargs), at(after), at(until))
    return [t.strftime("%Y-%m-%dT%H:%MZ") for t in ticks]


def test_the_emulators_scheduler_follows_schedulers_daylight_saving_rule():
    # Europe/Paris, 2027-03-28: 02:00 → 03:00, so 02:30 does not exist; 2027-10-31: 03:00 → 02:00, 02:30 twice.
    spring = _ticks("cron(30 2 * * ? *)", "Europe/Paris", "2027-03-26T12:00:00Z", "2027-03-29T12:00:00Z")
    assert spring == ["2027-03-27T01:30Z", "2027-03-29T00:30Z"]
    fall = _ticks("cron(30 2 * * ? *)", "Europe/Paris", "2027-10-30T12:00:00Z", "2027-11-01T12:00:00Z")
    assert fall == ["2027-10-31T00:30Z", "2027-11-01T01:30Z"]
    weekdays = _ticks("cron(0 9 ? * 2-6 *)", "America/New_York", "2027-03-12T00:00:00Z", "2027-03-16T00:00:00Z")
    assert weekdays == ["2027-03-12T14:00Z", "2027-03-15T13:00Z"], "Friday (EST), then Monday (EDT)"
    assert _ticks("cron(0 0 L * ? *)", "UTC", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z") == ["2028-02-29T00:00Z"]
    start = datetime.fromisoformat("2027-03-27T10:00:00+00:00").timestamp()
    rate = _ticks("rate(1 day)", "UTC", "2027-03-27T12:00:00Z", "2027-03-30T00:00:00Z", start=start)
    assert rate == ["2027-03-28T10:00Z", "2027-03-29T10:00Z"], "24 hours apart across a clock change"


def test_fire_schedule_delivers_a_tick_for_the_given_time(aws, endpoint, role_arn, function_arn, tmp_path):
    touched = tmp_path / "tick.json"
    scheduler, name = aws("scheduler"), unique("tick")
    scheduler.create_schedule(
        Name=name, ScheduleExpression="cron(0 3 * * ? *)", ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": function_arn, "RoleArn": role_arn,
                "Input": json.dumps({"touch": str(touched), "at": "<aws.scheduler.scheduled-time>"})})
    request = urllib.request.Request(f"{endpoint}/moto-api/updraft/fire-schedule", method="POST",
                                     data=json.dumps({"name": name, "time": "2027-03-29T01:00:00Z"}).encode())
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read())["time"] == "2027-03-29T01:00:00Z"
    event = json.loads(wait_for(lambda: touched.exists() and touched.read_text()))
    assert event["at"] == "2027-03-29T01:00:00Z"


# ------------------------------------------------------------------ (c) Lambda runs the package's bootstrap

BOOTSTRAP = f"""#!{PYTHON}
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    if event.get("exit"):
        os._exit(3)  # dies without answering
    if event.get("fail"):
        body, path = {{"errorType": "Boom", "errorMessage": "asked to fail"}}, "/error"
    else:
        body, path = {{"echo": event, "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                       "setting": os.environ.get("SETTING")}}, "/response"
    # An EventBridge envelope of an execution's status change carries the execution's input as text.
    touch = event.get("touch") or json.loads((event.get("detail") or {{}}).get("input") or "{{}}").get("touch")
    if touch:
        open(touch, "w").write(json.dumps(event))
    print("handled", request_id)
    urllib.request.urlopen(urllib.request.Request(api + request_id + path, data=json.dumps(body).encode(), method="POST"))
"""


def deployment_package():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        package.writestr(info, BOOTSTRAP)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def function_arn(aws, role_arn):
    return aws("lambda").create_function(
        FunctionName=unique("fn"), Runtime="provided.al2023", Role=role_arn, Handler="bootstrap",
        Code={"ZipFile": deployment_package()}, Environment={"Variables": {"SETTING": "on"}}, Timeout=10,
    )["FunctionArn"]


def test_lambda_invoke_runs_the_bootstrap(aws, function_arn):
    response = aws("lambda").invoke(FunctionName=function_arn, Payload=json.dumps({"x": 1}).encode())
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response
    assert body["echo"] == {"x": 1}
    assert body["function"] == function_arn.split(":")[-1]
    assert body["setting"] == "on"


def test_lambda_errors_are_reported_as_function_errors(aws, function_arn):
    response = aws("lambda").invoke(FunctionName=function_arn, Payload=json.dumps({"fail": True}).encode())
    assert response.get("FunctionError")
    assert json.loads(response["Payload"].read())["errorMessage"] == "asked to fail"


def test_an_invocation_that_dies_reaches_a_state_machine_as_lambda_unknown(aws, role_arn, function_arn):
    invoke = lambda payload: {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",  # noqa: E731
                              "Parameters": {"FunctionName": function_arn, "Payload": payload},
                              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True}
    definition = {"StartAt": "Call", "States": {"Call": invoke({"exit": True}), "Caught": {"Type": "Pass", "End": True}}}
    result, _ = run_state_machine(aws, role_arn, definition)
    assert json.loads(result["output"])["Error"] == "Lambda.Unknown", result
    definition["States"]["Call"] = invoke({"fail": True})
    result, _ = run_state_machine(aws, role_arn, definition)
    assert json.loads(result["output"])["Error"] == "Boom", "a handler's own error keeps its type"


# ------------------------------------------------------------------ (d) firing a scheduled rule on demand

def fire(endpoint, rule):
    request = urllib.request.Request(f"{endpoint}/moto-api/updraft/fire-rule", method="POST",
                                     data=json.dumps({"name": rule}).encode())
    return json.loads(urllib.request.urlopen(request).read())


def test_firing_a_rule_starts_its_state_machine_and_invokes_its_lambda(aws, endpoint, role_arn, function_arn, tmp_path):
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name=unique("nightly"), roleArn=role_arn, definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    events = aws("events")
    rule = unique("nightly")
    events.put_rule(Name=rule, ScheduleExpression="cron(0 3 * * ? *)")
    touched = tmp_path / "touched.json"
    events.put_targets(Rule=rule, Targets=[
        {"Id": "sfn", "Arn": machine, "RoleArn": role_arn},
        {"Id": "fn", "Arn": function_arn, "Input": json.dumps({"touch": str(touched), "launch_plan": "nightly"})},
    ])
    answer = fire(endpoint, rule)
    assert sorted(answer["delivered"]) == sorted([machine, function_arn])
    executions = wait_for(lambda: sfn.list_executions(stateMachineArn=machine)["executions"])
    assert len(executions) == 1
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    event = json.loads(described["input"])
    assert event["detail-type"] == "Scheduled Event" and event["resources"][0].endswith(f"rule/{rule}")
    wait_for(touched.exists)
    assert json.loads(touched.read_text())["launch_plan"] == "nightly"


# ------------------------------------------------------------------ (e) DynamoDB serialisation

def test_racing_conditional_updates_lose_no_update(aws):
    """Optimistic increments (read the counter, write +1 if unchanged): every
    write that was accepted must show in the final count. Without the patch this
    failed about one run in three here (a lost update); with it, never."""
    import threading

    dynamo = aws("dynamodb")
    table = unique("race")
    dynamo.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    dynamo.put_item(TableName=table, Item={"pk": {"S": "c"}, "n": {"N": "0"}})
    accepted = []

    def increment():
        for _ in range(25):
            n = int(dynamo.get_item(TableName=table, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]["n"]["N"])
            try:
                dynamo.update_item(TableName=table, Key={"pk": {"S": "c"}}, UpdateExpression="SET n = :new",
                                   ConditionExpression="n = :old",
                                   ExpressionAttributeValues={":new": {"N": str(n + 1)}, ":old": {"N": str(n)}})
                accepted.append(n)
            except dynamo.exceptions.ConditionalCheckFailedException:
                pass

    threads = [threading.Thread(target=increment) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(dynamo.get_item(TableName=table, Key={"pk": {"S": "c"}})["Item"]["n"]["N"])
    assert final == len(accepted), f"{len(accepted)} conditional updates were accepted but the counter is {final}"
    assert sorted(accepted) == list(range(final)), "each value was won by exactly one writer"


# (f) and (g), the API Gateway stage route and the Stage resource, are exercised
# through a deployed stack in test_registry_api.py and test_deployed_stack.py.


def test_a_cancelled_transaction_leaves_every_item_as_it_was_and_a_query_reads_its_partition(aws):
    """(v) The transaction keeps copies of the items it writes, not of the table."""
    dynamo, table = aws("dynamodb"), unique("txn")
    dynamo.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"}])
    for pk, sk in [("run", "a"), ("run", "b"), ("other", "a")]:
        dynamo.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": "1"}})
    key = {"pk": {"S": "run"}, "sk": {"S": "a"}}
    with pytest.raises(dynamo.exceptions.TransactionCanceledException):
        dynamo.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "run"}, "sk": {"S": "c"}}}},
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "run"}, "sk": {"S": "b"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "other"}, "sk": {"S": "a"}},
                                "ConditionExpression": "v = :nine", "ExpressionAttributeValues": {":nine": {"N": "9"}}}}])
    items = dynamo.query(TableName=table, KeyConditionExpression="pk = :run",
                         ExpressionAttributeValues={":run": {"S": "run"}})["Items"]
    assert [(i["sk"]["S"], i["v"]["N"]) for i in items] == [("a", "1"), ("b", "1")], "nothing of it stayed"
    dynamo.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET v = :two",
                    "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": "run"}, "sk": {"S": "c"}, "v": {"N": "3"}}}}])
    items = dynamo.query(TableName=table, KeyConditionExpression="pk = :run AND sk > :a", ScanIndexForward=False,
                         ExpressionAttributeValues={":run": {"S": "run"}, ":a": {"S": "a"}})["Items"]
    assert [(i["sk"]["S"], i["v"]["N"]) for i in items] == [("c", "3"), ("b", "1")]
    assert dynamo.get_item(TableName=table, Key=key)["Item"]["v"] == {"N": "2"}
    # A read that missed, then a cancelled write of that key: still no item there (moto keeps an
    # empty entry after a miss, which a careless rollback would put back as an item).
    missed = {"pk": {"S": "gone"}, "sk": {"S": "a"}}
    assert "Item" not in dynamo.get_item(TableName=table, Key=missed)
    with pytest.raises(dynamo.exceptions.TransactionCanceledException):
        dynamo.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": missed,
                                                            "ConditionExpression": "attribute_exists(pk)"}}])
    assert "Item" not in dynamo.get_item(TableName=table, Key=missed)
    assert len(dynamo.scan(TableName=table)["Items"]) == 4, "a scan reads every item, and only items"


def test_moto_is_the_pinned_version():
    """The patches reach into moto's internals: an upgrade must be a deliberate
    change of requirements.txt, re-run against these tests."""
    import moto

    pins = open(os.path.join(os.path.dirname(__file__), "..", "requirements.txt")).read()
    pinned = next(line.split("==")[1].strip() for line in pins.splitlines() if line.startswith("moto"))
    assert moto.__version__ == pinned


# ------------------------------------------------------------------ (q) request faults, (r) asynchronous retries

def test_an_armed_fault_answers_matching_calls_with_the_services_error_then_is_used_up(aws, endpoint):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))
    bucket = unique("faults")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="run/outputs.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="run/inputs.json", Body=b"{}")
    armed = arm_faults(endpoint, fail=[{"service": "s3", "operation": "GetObject", "match": "outputs.json",
                                    "count": 2, "error": "5xx"}])
    assert armed["fail"][0]["count"] == 2
    assert s3.get_object(Bucket=bucket, Key="run/inputs.json")["Body"].read() == b"{}", "another key is not hit"
    for _ in range(2):
        with pytest.raises(s3.exceptions.ClientError) as failed:
            s3.get_object(Bucket=bucket, Key="run/outputs.json")
        assert failed.value.response["Error"]["Code"] == "InternalError"
    assert s3.get_object(Bucket=bucket, Key="run/outputs.json")["Body"].read() == b"{}", "used up"
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))
    arm_faults(endpoint, fail=[{"service": "dynamodb", "operation": "ListTables", "count": 1}])
    with pytest.raises(dynamodb.exceptions.ClientError) as throttled:
        dynamodb.list_tables()
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    dynamodb.list_tables()
    assert arm_faults(endpoint, clear=True)["fail"] == []
    refused = urllib.request.Request(f"{endpoint}/moto-api/updraft/faults", method="POST",
                                     data=json.dumps({"fail": [{"service": "s3"}]}).encode())
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(refused)
    assert bad.value.code == 400


def test_a_failed_asynchronous_invocation_is_retried_twice_then_dead_lettered(aws, endpoint, role_arn):
    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name = unique("fn")
    aws("lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Role=role_arn, Handler="bootstrap",
        Code={"ZipFile": deployment_package()}, Timeout=10, DeadLetterConfig={"TargetArn": queue_arn})
    before = counters(endpoint)["lambda_invocations"].get(name, 0)
    aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"],
                                                    WaitTimeSeconds=1).get("Messages"))
    assert json.loads(messages[0]["Body"]) == {"fail": True}
    assert "asked to fail" in messages[0]["MessageAttributes"]["ErrorMessage"]["StringValue"]
    assert counters(endpoint)["lambda_invocations"][name] - before == 3, "the first try and two retries"
    aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"x": 1}).encode())
    assert counters(endpoint)["lambda_invocations"][name] - before == 4, "a success is not retried"
