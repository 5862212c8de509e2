"""End to end: `localstack/emulator/deploy` puts infra/template.yaml into the
emulator with `updraft deploy`, then work runs on the stack's own resources:
(i) a Batch job on its CPU queue, (ii) Step Functions `submitJob.sync` through
its state-machine role, (iii) its deployed health Lambda, the real Rust binary;
(iv) tasks checked against its queues with `updraft validate --stack`."""
import json
import os
import subprocess
import sys

import pytest

from conftest import finished_job, job_log, unique, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEPLOY = os.path.join(HERE, "..", "deploy")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
UPDRAFT = os.path.join(TARGET, "debug", "updraft")
PYTHON = sys.executable
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def deploy(endpoint, *args):
    return subprocess.run([DEPLOY, endpoint, "--output", "json", *args], capture_output=True, text=True,
                          env={**os.environ, **CREDENTIALS}, timeout=900)


@pytest.fixture(scope="module")
def stack(endpoint):
    name, prefix = unique("stack"), unique("e2e")
    result = deploy(endpoint, "--stack-name", name, "--name-prefix", prefix)
    assert result.returncode == 0, result.stderr
    deployed = json.loads(result.stdout)
    return {"name": name, "prefix": prefix, **deployed}


def test_the_stack_is_created_with_its_outputs(stack, aws):
    assert stack["status"] == "CREATE_COMPLETE" and stack["change"] == "created"
    outputs = stack["outputs"]
    assert outputs["CpuJobQueueArn"].endswith(f":job-queue/{stack['prefix']}-cpu")
    assert outputs["MetadataTableName"] == f"{stack['prefix']}-metadata"
    table = aws("dynamodb").describe_table(TableName=outputs["MetadataTableName"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    aws("s3").head_bucket(Bucket=outputs["DataBucketName"])
    queue = aws("batch").describe_job_queues(jobQueues=[outputs["CpuJobQueueArn"]])["jobQueues"][0]
    environment = queue["computeEnvironmentOrder"][0]["computeEnvironment"]
    assert environment.endswith(f"compute-environment/{stack['prefix']}-cpu-api"), \
        "on the emulator the compute environment comes from the Batch API"
    stage = aws("apigateway").get_stage(restApiId=outputs["ApiId"], stageName=outputs["ApiStageName"])
    assert stage["stageName"] == "live", "the template's Stage resource exists (emulator patch g)"


def test_deploying_again_updates_the_same_stack(stack, endpoint):
    result = deploy(endpoint, "--stack-name", stack["name"], "--name-prefix", stack["prefix"])
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["stack_id"] == stack["stack_id"]
    assert again["change"] in ("updated", "unchanged")
    assert again["outputs"] == stack["outputs"]


def test_missing_packages_fail_before_anything_is_created(stack, endpoint, aws, tmp_path):
    name = unique("stack")
    result = subprocess.run([UPDRAFT, "deploy", "--endpoint-url", endpoint, "--stack-name", name,
                             "--name-prefix", unique("none"), "--packages", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, **CREDENTIALS})
    assert result.returncode == 2, result.stderr
    assert "no package for 4 function(s)" in result.stderr and "hint: build them with `cargo lambda build" in result.stderr
    stacks = [s["StackName"] for s in aws("cloudformation").list_stacks()["StackSummaries"]]
    assert name not in stacks


# ------------------------------------------------------------------ (i) a Batch job on the stack's queue

def job_definition(aws, stack, command):
    return aws("batch").register_job_definition(
        jobDefinitionName=unique(stack["prefix"]), type="container",
        containerProperties={"image": "public.ecr.aws/docker/library/python:3.11-slim", "command": command,
                             "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]},
    )["jobDefinitionArn"]


def test_a_batch_job_on_the_stacks_queue_runs_and_reports_status_and_log(stack, aws):
    queue = stack["outputs"]["CpuJobQueueArn"]
    ok = job_definition(aws, stack, [PYTHON, "-c", "print('trained on', 'the stack queue')"])
    job = finished_job(aws, aws("batch").submit_job(jobName=unique("fit"), jobQueue=queue, jobDefinition=ok)["jobId"])
    assert (job["status"], job["container"]["exitCode"]) == ("SUCCEEDED", 0)
    assert job_log(aws, job) == ["trained on the stack queue"]

    bad = job_definition(aws, stack, [PYTHON, "-c", "import sys; print('bad data', file=sys.stderr); sys.exit(3)"])
    job = finished_job(aws, aws("batch").submit_job(jobName=unique("fit"), jobQueue=queue, jobDefinition=bad)["jobId"])
    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 3)
    assert job["statusReason"] == "Essential container in task exited"
    assert job_log(aws, job) == ["bad data"]


# ------------------------------------------------------------------ (ii) Step Functions submitJob.sync

def run_job_through_a_state_machine(aws, stack, command):
    definition = job_definition(aws, stack, command)
    asl = {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": "node", "JobQueue": stack["outputs"]["CpuJobQueueArn"], "JobDefinition": definition,
                       "ContainerOverrides": {"Environment": [{"Name": "NODE", "Value.$": "$.node"}]}},
        "End": True}}}
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name=f"{stack['prefix']}-{unique('wf')}", definition=json.dumps(asl),
                                       roleArn=stack["outputs"]["StateMachineRoleArn"])
    run = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=unique("run"),
                              input=json.dumps({"node": "fit"}))

    def done():
        d = sfn.describe_execution(executionArn=run["executionArn"])
        return d if d["status"] != "RUNNING" else None
    return wait_for(done), run["executionArn"]


def test_submit_job_sync_succeeds_with_the_job(stack, aws):
    result, _ = run_job_through_a_state_machine(aws, stack, [PYTHON, "-c", "import os; print('node', os.environ['NODE'])"])
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["Status"] == "SUCCEEDED"
    job = aws("batch").describe_jobs(jobs=[output["JobId"]])["jobs"][0]
    assert job["jobQueue"] == stack["outputs"]["CpuJobQueueArn"]
    assert job_log(aws, job) == ["node fit"]


def test_submit_job_sync_fails_with_the_job(stack, aws):
    result, arn = run_job_through_a_state_machine(aws, stack, [PYTHON, "-c", "raise SystemExit(4)"])
    assert result["status"] == "FAILED"
    failed = [e for e in aws("stepfunctions").get_execution_history(executionArn=arn)["events"]
              if e["type"] == "TaskFailed"]
    assert failed[0]["taskFailedEventDetails"]["error"] == "States.TaskFailed"
    assert json.loads(failed[0]["taskFailedEventDetails"]["cause"])["Container"]["ExitCode"] == 4


# ------------------------------------------------------------------ (iii) the deployed health Lambda

def invoke(aws, function, event):
    response = aws("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return response, json.loads(response["Payload"].read())


def test_the_deployed_health_function_answers(stack, aws):
    event = {"resource": "/v1/health", "path": "/v1/health", "httpMethod": "GET", "headers": {}, "body": None}
    response, payload = invoke(aws, f"{stack['prefix']}-health", event)
    assert "FunctionError" not in response, payload
    assert payload["statusCode"] == 200
    body = json.loads(payload["body"])
    assert (body["status"], body["service"], body["path"]) == ("ok", "updraft", "/v1/health")


def test_the_deployed_api_function_answers_proxy_events_with_its_table(stack, aws):
    _, payload = invoke(aws, f"{stack['prefix']}-api", {"httpMethod": "GET", "path": "/v1/nowhere"})
    assert payload["statusCode"] == 404
    assert json.loads(payload["body"])["code"] == "NoSuchRoute"
    _, payload = invoke(aws, f"{stack['prefix']}-api", {"httpMethod": "GET", "path": "/v1/projects"})
    assert payload["statusCode"] == 200, payload


# ------------------------------------------------------------------ (iv) tasks against the stack's queues

SPEC = """
tasks:
  prep: {image: python:3.11-slim, command: [python3, -V]}
  train: {image: pytorch/pytorch:latest, command: [python3, -V], resources: {cpu: 4, memory: 16Gi, gpu: 1}}
"""


def validate(endpoint, stack_name, tmp_path):
    spec = tmp_path / "gpu.yaml"
    spec.write_text(SPEC)
    return subprocess.run([UPDRAFT, "validate", str(spec), "--stack", stack_name], capture_output=True, text=True,
                          env={**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})


def test_validate_routes_gpu_tasks_to_the_stacks_gpu_queue(stack, endpoint, tmp_path):
    result = validate(endpoint, stack["name"], tmp_path)
    assert result.returncode == 0, result.stderr
    outputs = stack["outputs"]
    assert f"task prep: job queue {outputs['CpuJobQueueArn']}" in result.stdout
    assert f"task train: job queue {outputs['GpuJobQueueArn']}" in result.stdout


def test_validate_refuses_a_gpu_task_where_the_gpu_queue_reaches_only_fargate(stack, endpoint, aws, tmp_path):
    """A stack deployed with a Fargate environment passed in as its GPU environment."""
    batch, ec2 = aws("batch"), aws("ec2")
    role = aws("iam").create_role(RoleName=unique("batch-service"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    fargate = batch.create_compute_environment(
        computeEnvironmentName=unique("fargate"), type="MANAGED", serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 16,
                          "subnets": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
                          "securityGroupIds": [ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]]},
    )["computeEnvironmentArn"]
    cpu = batch.describe_job_queues(jobQueues=[stack["outputs"]["CpuJobQueueArn"]])["jobQueues"][0]
    name = unique("stack")
    result = deploy(endpoint, "--stack-name", name, "--name-prefix", unique("fargate"),
                    "--parameter", f"GpuComputeEnvironmentArn={fargate}",
                    "--parameter", f"CpuComputeEnvironmentArn={cpu['computeEnvironmentOrder'][0]['computeEnvironment']}")
    assert result.returncode == 0, result.stderr
    gpu_queue = json.loads(result.stdout)["outputs"]["GpuJobQueueArn"]

    result = validate(endpoint, name, tmp_path)
    assert result.returncode == 2, result.stdout
    assert f"tasks.train.resources.gpu: requests 1 GPU(s), but job queue {gpu_queue} runs on Fargate only" \
        in result.stderr
    assert "hint: give the GPU queue an EC2 compute environment" in result.stderr

    result = validate(endpoint, unique("no-such-stack"), tmp_path)
    assert result.returncode == 2
    assert "error: --stack: cannot read stack" in result.stderr and "hint: name a stack made by" in result.stderr
