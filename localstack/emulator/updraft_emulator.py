#!/usr/bin/env python3
"""Updraft's offline AWS emulator: moto's server (pinned, see requirements.txt)
plus a small patch layer that fills exactly the gaps listed in DESIGN.md, so
that Step Functions, Lambda and Batch really execute on a machine without
Docker.

Patches, each covered by a test in tests/test_patches.py:

(a) Step Functions' Batch integration (`batch:submitJob.sync`): the ASL's
    PascalCase parameters are mapped onto botocore's input shape, and the
    response is turned back into PascalCase, as AWS does.
(b) A Batch job runs its container command as a local process (no shell),
    with the job's environment, `Ref::` parameters substituted, its attempt
    timeout enforced on the whole process group; its output becomes the job's
    CloudWatch log stream and its exit code SUCCEEDED/FAILED with a status reason.
(c) Invoking a Lambda function runs the `bootstrap` executable of its
    deployment package (the `provided.al2023` runtime) behind a one-shot local
    implementation of the Lambda Runtime API.
(d) POST /moto-api/updraft/fire-rule {"name": RULE} delivers a scheduled
    EventBridge rule's event to its Lambda and Step Functions targets now,
    since nothing fires schedules here.

Usage: updraft_emulator.py [--host 127.0.0.1] [--port 5000]
Everything else is moto's own server.
"""
import argparse
import http.server
import io
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone

LOG = logging.getLogger("updraft-emulator")

# ---------------------------------------------------------------- (a) Step Functions → Batch


def _operation_model(service, action):
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    pascal = "".join(part[:1].upper() + part[1:] for part in action.split("_"))
    return model.operation_model(pascal)


def patch_stepfunctions_batch():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_batch as batch_service,
    )

    cls = batch_service.StateTaskServiceBatch

    def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        service = self._get_boto_service_name(boto_service_name)
        action = self._get_boto_service_action(service_action_name)
        self._to_boto_request(parameters, _operation_model(service, action).input_shape)

    def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
        service = self._get_boto_service_name(boto_service_name)
        action = self._get_boto_service_action(service_action_name)
        self._from_boto_response(response, _operation_model(service, action).output_shape)

    cls._normalise_parameters = _normalise_parameters
    cls._normalise_response = _normalise_response


# ---------------------------------------------------------------- (b) Batch jobs as processes

# How often a job thread looks at its state; moto advances job states itself.
_POLL = 0.05


# Where this emulator listens; set by main().
_ENDPOINT = "http://127.0.0.1:5000"


def _emulator_environment():
    """What a process started by the emulator needs to call the emulator back."""
    return {
        "AWS_ENDPOINT_URL": _ENDPOINT,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def _base_environment():
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _wait_while(job, status):
    while job.status == status and not job.stop:
        time.sleep(_POLL)


def _run_job_as_process(self):
    from moto.batch.utils import JobStatus
    from moto.core.utils import unix_time_millis

    try:
        self.advance()
        _wait_while(self, JobStatus.SUBMITTED)
        if self.depends_on and not self._wait_for_dependencies():
            return
        if not self.job_definition.container_properties:
            raise RuntimeError("only container jobs run in the emulator (no multi-node jobs)")
        command = self._add_parameters_to_command(self._get_container_property("command", []))
        environment = {e["name"]: e["value"] for e in self._get_container_property("environment", [])}
        for state in (JobStatus.PENDING, JobStatus.RUNNABLE, JobStatus.STARTING):
            self.advance()
            _wait_while(self, state)
        self.job_started_at = datetime.now()
        self._start_attempt()

        env = {**_base_environment(), **_emulator_environment(), **environment}
        output = tempfile.TemporaryFile()
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = None
        if self._get_attempt_duration():
            deadline = time.monotonic() + self._get_attempt_duration()
        reason = None
        while process.poll() is None:
            if self.stop:
                reason = self.job_stopped_reason or "Terminated"
            elif deadline and time.monotonic() > deadline:
                reason = "Job attempt duration exceeded timeout"
            if reason:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(_POLL)
        # Whatever the job left running goes with it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

        output.seek(0)
        lines = output.read().decode("utf-8", "replace").splitlines()
        now = unix_time_millis()
        self.log_stream_name = self._stream_name
        self._log_backend.ensure_log_group(self._log_group)
        self._log_backend.ensure_log_stream(self._log_group, self.log_stream_name)
        if lines:
            self._log_backend.put_log_events(
                self._log_group, self.log_stream_name, [{"timestamp": now, "message": line} for line in lines]
            )
        self.exit_code = process.returncode
        if reason is None and process.returncode != 0:
            reason = "Essential container in task exited"
        self.job_stopped_reason = reason
        self._mark_stopped(success=reason is None)
    except Exception as err:  # a job thread must always end the job
        LOG.exception("Batch job %s could not run", self.job_id)
        self.job_stopped_reason = f"CannotStartContainerError: {err}"
        self._mark_stopped(success=False)


def patch_batch_jobs():
    from moto.batch import models

    models.Job.run = _run_job_as_process
    container_details = models.Job._container_details

    def _container_details_with_exit(self):
        # DescribeJobs reports the container's exit code and reason, as AWS does.
        details = container_details(self)
        if self.job_stopped and self.exit_code is not None:
            details["exitCode"] = self.exit_code
            if self.job_stopped_reason:
                details["reason"] = self.job_stopped_reason
        return details

    models.Job._container_details = _container_details_with_exit


# ---------------------------------------------------------------- (c) Lambda bootstrap

_PACKAGES = {}
_PACKAGES_LOCK = threading.Lock()


def _unpacked(function):
    """The function's deployment package, unzipped once per code version."""
    key = (function.function_arn, function.code_sha_256)
    with _PACKAGES_LOCK:
        if key not in _PACKAGES:
            directory = tempfile.mkdtemp(prefix="updraft-lambda-")
            with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as package:
                package.extractall(directory)
            bootstrap = os.path.join(directory, "bootstrap")
            if not os.path.exists(bootstrap):
                raise RuntimeError("the deployment package has no bootstrap executable at its root")
            os.chmod(bootstrap, 0o755)
            _PACKAGES[key] = directory
        return _PACKAGES[key]


class _RuntimeApi(http.server.BaseHTTPRequestHandler):
    """One invocation of the Lambda Runtime API: hands out the event once,
    then records the response or error."""

    invocation = None  # set per server

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        inv = self.server.invocation
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self._reply(404)
        if inv["handed_out"]:
            # A second `next` means the first answer is in; park until we are killed.
            inv["done"].wait()
            return self._reply(503)
        inv["handed_out"] = True
        self._reply(200, inv["event"], {
            "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
            "Lambda-Runtime-Deadline-Ms": str(inv["deadline_ms"]),
            "Lambda-Runtime-Invoked-Function-Arn": inv["arn"],
            "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            "Content-Type": "application/json",
        })

    def do_POST(self):
        inv = self.server.invocation
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        prefix = f"/2018-06-01/runtime/invocation/{inv['request_id']}/"
        if self.path == prefix + "response":
            inv["result"], inv["errored"] = body.decode(), False
        elif self.path in (prefix + "error", "/2018-06-01/runtime/init/error"):
            inv["result"], inv["errored"] = body.decode() or '{"errorMessage": "unknown"}', True
        else:
            return self._reply(404)
        self._reply(202, b'{"status":"OK"}')
        inv["done"].set()


def _invoke_bootstrap(self, event=None):
    directory = _unpacked(self)
    timeout = float(self.timeout or 3)
    invocation = {
        "event": json.dumps(event if event is not None else {}).encode(),
        "request_id": str(uuid.uuid4()),
        "deadline_ms": int((time.time() + timeout) * 1000),
        "arn": self.function_arn,
        "handed_out": False,
        "done": threading.Event(),
        "result": None,
        "errored": True,
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeApi)
    server.daemon_threads = True
    server.invocation = invocation
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **_base_environment(),
        **_emulator_environment(),
        "AWS_REGION": self.region,
        "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": str(self.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "_HANDLER": self.handler or "bootstrap",
        "LAMBDA_TASK_ROOT": directory,
        **self.environment_vars,
    }
    logs = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [os.path.join(directory, "bootstrap")], cwd=directory, env=env,
        stdin=subprocess.DEVNULL, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )
    finished = invocation["done"].wait(timeout)
    if not finished and process.poll() is not None:
        invocation["result"] = json.dumps({
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {invocation['request_id']} Error: Runtime exited with error: exit status {process.returncode}",
        })
    elif not finished:
        invocation["result"] = json.dumps({
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"{invocation['request_id']} Task timed out after {timeout:.2f} seconds",
        })
    invocation["done"].set()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    server.shutdown()
    server.server_close()
    logs.seek(0)
    return invocation["result"], invocation["errored"], logs.read().decode("utf-8", "replace")


def patch_lambda():
    from moto.awslambda import models

    models.LambdaFunction._invoke_lambda = _invoke_bootstrap


# ---------------------------------------------------------------- (d) fire a scheduled rule


def _fire_rule(request, full_url, headers):
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.events.models import events_backends

    body = json.loads(request.get_data() or b"{}") if hasattr(request, "get_data") else json.loads(request.body or "{}")
    region = body.get("region", "us-east-1")
    account = body.get("account_id", DEFAULT_ACCOUNT_ID)
    backend = events_backends[account][region]
    rule = backend.describe_rule(body["name"], body.get("event_bus", "default"))
    when = body.get("time") or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": account, "time": when, "region": region, "resources": [rule.arn], "detail": {},
    }
    endpoint = _emulator_environment()["AWS_ENDPOINT_URL"]
    client = lambda service: boto3.client(service, region_name=region, endpoint_url=endpoint,  # noqa: E731
                                          aws_access_key_id="testing", aws_secret_access_key="testing")
    delivered = []
    for target in rule.targets:
        payload = target.get("Input") or json.dumps(event)
        arn = target["Arn"]
        if ":lambda:" in arn:
            client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=payload.encode())
        elif ":states:" in arn:
            client("stepfunctions").start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=payload)
        else:
            return 400, {}, json.dumps({"message": f"target {arn} is neither a Lambda function nor a state machine"})
        delivered.append(arn)
    return 200, {"Content-Type": "application/json"}, json.dumps({"delivered": delivered, "event": event})


def add_fire_rule_endpoint():
    from moto.moto_api._internal import urls

    urls.url_paths["{0}/moto-api/updraft/fire-rule$"] = _fire_rule


def apply_patches():
    patch_stepfunctions_batch()
    patch_batch_jobs()
    patch_lambda()
    add_fire_rule_endpoint()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    # The Step Functions interpreter and our patches call back on this port.
    global _ENDPOINT
    os.environ["MOTO_PORT"] = str(args.port)
    _ENDPOINT = f"http://{args.host}:{args.port}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    apply_patches()
    from moto.server import main as moto_main

    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
