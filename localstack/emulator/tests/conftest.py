"""Starts the emulator once per test session on a free port, as a real server
process, and hands out boto3 clients pointed at it."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "..", "updraft_emulator.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def endpoint():
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"updraft-emulator-{port}.log"), "w")
    # Its own temporary directory (unpacked Lambda packages, job work directories):
    # it is killed, not asked to stop, so the fixture removes what it left.
    scratch = tempfile.mkdtemp(prefix="updraft-emulator-")
    process = subprocess.Popen([sys.executable, EMULATOR, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "TMPDIR": scratch})
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1)
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the emulator did not start; see {log.name}")
            time.sleep(0.2)
    # No /moto-api/config step: the emulator executes state machines by default (patch (s)).
    yield url
    os.killpg(process.pid, 9)
    process.wait()
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def aws(endpoint):
    def client(service):
        return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return client


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def role_arn(aws):
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": [
        "lambda.amazonaws.com", "states.amazonaws.com", "batch.amazonaws.com"]}, "Action": "sts:AssumeRole"}]}
    return aws("iam").create_role(RoleName=unique("role"), AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


@pytest.fixture(scope="session")
def job_queue(aws, role_arn):
    batch = aws("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName=unique("ce"), type="UNMANAGED", state="ENABLED", serviceRole=role_arn)
    queue = batch.create_job_queue(jobQueueName=unique("queue"), state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
    return queue["jobQueueArn"]


def arm_faults(endpoint, **faults):
    """Arms the emulator's faults (patch (q)); what is armed after."""
    request = urllib.request.Request(f"{endpoint}/moto-api/updraft/faults", method="POST",
                                     data=json.dumps(faults).encode())
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())


def counters(endpoint):
    """What the emulator counted (patch (j)); tests take differences."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/updraft/counters") as answer:
        return json.loads(answer.read())


def s3_reads_since(endpoint, since, containing):
    """The paths of the S3 reads made at or after `since` (epoch seconds) whose path holds
    `containing`: what one run's requests read, whatever other runs read meanwhile."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/updraft/s3-reads?since={since}") as answer:
        return [r["path"] for r in json.loads(answer.read()) if containing in r["path"]]


def wait_for(check, timeout=30, every=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError("timed out waiting")


def finished_job(aws, job_id):
    """The Batch job once it is SUCCEEDED or FAILED."""
    def done():
        job = aws("batch").describe_jobs(jobs=[job_id])["jobs"][0]
        return job if job["status"] in ("SUCCEEDED", "FAILED") else None
    return wait_for(done)


def job_log(aws, job):
    """The lines the job wrote, from its CloudWatch log stream."""
    stream = job["container"]["logStreamName"]
    options = (job["container"].get("logConfiguration") or {}).get("options") or {}
    group = options.get("awslogs-group", "/aws/batch/job")
    events = aws("logs").get_log_events(logGroupName=group, logStreamName=stream)["events"]
    return [e["message"] for e in events]
