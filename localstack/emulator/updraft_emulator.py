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
    implementation of the Lambda Runtime API. An invocation that died (its
    process exited without answering, or timed out) reaches a Step Functions
    Task as `Lambda.Unknown`, as AWS reports unhandled errors.
(d) POST /moto-api/updraft/fire-rule {"name": RULE} delivers a scheduled
    EventBridge rule's event to its Lambda and Step Functions targets now,
    since nothing fires schedules here.
(e) DynamoDB reads and writes take one lock, as DynamoDB's own item-level
    serialisation does: moto checks a condition and then writes without one,
    so two racing conditional writes could both win.
(f) A request to a deployed REST API stage, addressed as LocalStack does
    (`/restapis/<api id>/<stage>/_user_request_/<path>`), goes through the
    stage's resources and method: `AWS_IAM` methods refuse a request without
    a valid SigV4 signature of the emulator's test key (testing/testing),
    checked over the path as sent (still percent-encoded), and an `AWS_PROXY`
    integration invokes the Lambda function with API Gateway's proxy event and
    turns its answer into the HTTP response. A stage with an AccessLogSetting
    gets one line per request (refused ones too) in its log group, in its
    format ($context variables filled, "-" for none), as API Gateway writes.
(g) CloudFormation creates `AWS::ApiGateway::Stage` resources (moto has the
    Stage API but not its CloudFormation type, so the stage was missing).
(h) A Batch job that ends sends its "Batch Job State Change" event (the job's
    DescribeJobs view as detail) to the default event bus: every enabled rule
    whose pattern matches gets it delivered to its Lambda targets, as AWS does.
    Its output goes to its job definition's awslogs-group, as AWS Batch writes
    it (moto wrote every job's to /aws/batch/job).
(i) A job definition's retryStrategy is honoured: up to `attempts` attempts,
    each with AWS_BATCH_JOB_ATTEMPT (from 1), its own entry in `attempts` and its
    own log stream (each attempt is a new container on AWS),
    stopping early on an `evaluateOnExit` EXIT rule's exit code.
(m) SubmitJob to a DISABLED job queue is refused (ClientException), as AWS
    refuses new jobs there; moto queued them. DescribeJobs reports a container's
    exit code and reason, its `resourceRequirements` (a run's cost prices them),
    and no fractional `vcpus` (an integer in Batch's API; the SDKs refuse 0.25).
(l) Array jobs: each child gets AWS_BATCH_JOB_ARRAY_INDEX and describes
    itself with `arrayProperties.index`, and the parent ends when its last child does (SUCCEEDED if every child did, else FAILED)
    with its own state-change event; moto left the parent SUBMITTED. Children
    run from a bounded pool (UPDRAFT_EMULATOR_ARRAY_SLOTS, default 2 per core),
    so a 10,000-child array is 10,000 queued jobs, not 10,000 threads at once.
(s) Step Functions executes state machines by default (moto only recorded
    executions unless `/moto-api/config` asked it to run them).
(k) POST /moto-api/updraft/images {"IMAGE": "DIR"} stands in for pulling an
    image: jobs whose container image is IMAGE run in DIR (their `{{code_dir}}`,
    as an image's working directory is in a container).
(j) GET /moto-api/updraft/counters counts what cloud runs cost: Lambda
    invocations per function, Batch jobs run, DynamoDB items written (each
    item of a batch or a transaction once, as DynamoDB bills them), S3
    requests (benchmarks and tests read differences of it). GET
    /moto-api/updraft/invocations?since=T lists the Lambda invocations that
    started at or after T with their billed durations; GET
    /moto-api/updraft/s3-reads?since=T the S3 reads (GET, HEAD) and their paths.
(n) A Step Functions execution that ends (SUCCEEDED, FAILED, TIMED_OUT,
    ABORTED) sends its "Step Functions Execution Status Change" event to the
    default event bus, delivered as in (h); moto sent none.
(o) TerminateJob on an array job terminates its children, as AWS does (moto
    marked the parent only, so the children ran on).
(p) EventBridge Scheduler schedules fire: a thread evaluates every ENABLED
    schedule each second, as Scheduler does — `cron(...)` on its zone's wall
    clock (a time skipped by a spring-forward change does not fire, a repeated
    one fires once, at its first occurrence), `rate(...)` every period from its
    start date — and delivers each tick to its Lambda target asynchronously, with
    `<aws.scheduler.scheduled-time>` and the other context attributes filled in;
    a tick that cannot be delivered goes to the target's dead-letter queue. A
    schedule fires only for times after it was created or last updated (no
    catch-up burst). POST /moto-api/updraft/fire-schedule {"name", "group"?,
    "time"?} delivers one tick now, for `time` (default: this minute).
    EventBridge rules with a ScheduleExpression (UTC) fire the same way, with
    the "Scheduled Event" AWS sends (the stack's reconciler runs on one).
(q) Faults, for tests: POST /moto-api/updraft/faults with any of
    {"drop_job_events": N} drops the next N "Batch Job State Change" deliveries
    (a lost event); {"duplicate_job_events": N} delivers the next N twice (both
    count the ends of jobs and array parents, not of array children);
    {"fail": [{"service": "dynamodb", "operation": "UpdateItem", "count": 4,
    "error": "throttle"|"5xx", "match": "outputs.json", "function": "NAME"}]}
    answers the next `count` matching requests (service from the signature's
    scope, operation from X-Amz-Target, the method for S3, botocore's routes for
    REST services; `match` a substring of the path; `function` the emulated
    Lambda function making the call, known by the `app/NAME` its SDK puts in the
    User-Agent from AWS_SDK_UA_APP_ID) with the service's throttling or server
    error; {"crash": [{"function": "NAME", "operation": "SendTaskSuccess"}]}
    kills the running invocations of function NAME when it makes that call (it
    dies between its previous call and this one; `match` as above; with
    "after": true the call is made first, so it dies just after it; with "skip": N
    the rule lets its first N matching calls through); {"random": {"rate": 0.05,
    "seed": 7, "services": [...], "error": ...}} fails that share of the calls
    the stack's functions make (never the test's own); {"clear": true} disarms
    everything. GET shows what is armed and how many random faults were injected.
(r) An asynchronous Lambda invocation whose function fails is retried twice (1
    and 2 s later; minutes on AWS), then its event goes to the function's
    DeadLetterConfig queue; moto tried once and dropped it. Counters (j) count
    the failures and dead letters.
(t) Execution environments stay warm: a bootstrap process that answered serves
    the function's next invocation (same code and environment), as Lambda
    reuses them; one that timed out or died is thrown away
    (UPDRAFT_EMULATOR_WARM=0: a fresh process per invocation).
(u) At most UPDRAFT_EMULATOR_LAMBDA_CONCURRENCY (8) invocations of one function
    run at once, the rest wait for a slot, as a function's concurrency limit
    bounds them on AWS (there the rest are throttled and retried): a Parallel
    state of 1,000 branches would otherwise start 1,000 processes here.
(v) DynamoDB's cost does not grow with the table: moto listed and sorted every
    item of a table for a query by partition key, and deep-copied every table a
    transaction writes before it started (to roll back a cancelled one). A query
    by partition key now reads that partition, and a transaction keeps copies of
    the items it writes only, putting them back if it is cancelled.

Usage: updraft_emulator.py [--host 127.0.0.1] [--port 5000]
Everything else is moto's own server.
"""
import argparse
import base64
import collections
import http.server
import io
import json
import logging
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

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


# (j) What the emulator was asked to do, for benchmarks and tests.
_COUNTERS = {"lambda_invocations": {}, "batch_jobs": 0, "dynamodb_writes": 0, "s3_requests": 0, "s3_reads": 0,
             "s3_writes": 0, "schedule_ticks": {},
             "lambda_async_failures": {}, "lambda_dead_letters": {}}
_COUNTERS_LOCK = threading.Lock()
# Every Lambda invocation's function, start (epoch seconds) and duration (ms, from the
# handler taking its event to its answer: what Lambda bills), the latest 100,000.
_INVOCATIONS = collections.deque(maxlen=100_000)
# Every S3 read's start (epoch seconds) and path, the latest 100,000: a test asks what
# one request read, whatever other runs read meanwhile.
_S3_READS = collections.deque(maxlen=100_000)


def _count(key, name=None):
    with _COUNTERS_LOCK:
        if name is None:
            _COUNTERS[key] += 1
        else:
            _COUNTERS[key][name] = _COUNTERS[key].get(name, 0) + 1


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


# (k) Image → host directory, the emulator's stand-in for an image's working directory.
_IMAGE_DIRS = {}


def _run_attempt(job, command, env):
    """One attempt of a job as a process: its exit code (None when stopped) and why it stopped."""
    output = tempfile.TemporaryFile()
    workdir = _IMAGE_DIRS.get(job._get_container_property("image", ""))
    process = subprocess.Popen(
        command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = None
    if job._get_attempt_duration():
        deadline = time.monotonic() + job._get_attempt_duration()
    reason = None
    while process.poll() is None:
        if job.stop:
            reason = job.job_stopped_reason or "Terminated"
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
    _log_lines(job, output.read().decode("utf-8", "replace").splitlines())
    if reason is None and process.returncode != 0:
        reason = "Essential container in task exited"
    return process.returncode, reason


def _log_group_of(job):
    """The group AWS Batch writes a container's output to: its job definition's
    awslogs-group, else Batch's default; moto always wrote /aws/batch/job."""
    properties = getattr(job.job_definition, "container_properties", None) or {}
    options = (properties.get("logConfiguration") or {}).get("options") or {}
    return options.get("awslogs-group") or job._log_group


def _log_lines(job, lines):
    from moto.core.utils import unix_time_millis

    now = int(unix_time_millis())  # CloudWatch's timestamps are whole milliseconds (moto's were floats)
    job._log_group = _log_group_of(job)
    job.log_stream_name = job._stream_name
    job._log_backend.ensure_log_group(job._log_group)
    job._log_backend.ensure_log_stream(job._log_group, job.log_stream_name)
    if lines:
        job._log_backend.put_log_events(
            job._log_group, job.log_stream_name, [{"timestamp": now, "message": line} for line in lines]
        )


def _retry_plan(job):
    """(i) The job definition's retryStrategy: how many attempts, and the exit codes that end retrying."""
    strategy = job.job_definition.retry_strategy or {}
    attempts = max(1, min(10, int(strategy.get("attempts") or 1)))
    exits = {str(rule.get("onExitCode")) for rule in strategy.get("evaluateOnExit") or []
             if str(rule.get("action", "")).upper() == "EXIT" and rule.get("onExitCode")}
    return attempts, exits


def _run_job_as_process(self):
    from moto.batch.utils import JobStatus

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
        if self.stop:
            # Terminated while it waited (an array child for a slot of the pool): no process.
            self.job_stopped_reason = self.job_stopped_reason or "Terminated"
            self._mark_stopped(success=False)
            _emit_job_state_change(self)
            _end_array_parent(self)
            return
        _count("batch_jobs")
        attempts, exits = _retry_plan(self)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                # (i) A retry is a new container, logging to a stream of its own, as on AWS.
                self._stream_name = f"{self.job_definition.name}/default/{uuid.uuid4().hex}"
            self.job_started_at = datetime.now()
            self._start_attempt()
            env = {**_base_environment(), **_emulator_environment(), **environment,
                   "AWS_BATCH_JOB_ATTEMPT": str(attempt)}
            index = (self.array_properties or {}).get("index")
            if index is not None:
                env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
            self.exit_code, reason = _run_attempt(self, command, env)
            self.latest_attempt["container"]["exitCode"] = self.exit_code
            self.latest_attempt["statusReason"] = reason or ""
            if reason is None or self.stop or str(self.exit_code) in exits or attempt == attempts:
                break
            self.job_stopped_at = datetime.now()
            self._stop_attempt()
        self.job_stopped_reason = reason
        self._mark_stopped(success=reason is None)
    except Exception as err:  # a job thread must always end the job
        LOG.exception("Batch job %s could not run", self.job_id)
        self.job_stopped_reason = f"CannotStartContainerError: {err}"
        self._mark_stopped(success=False)
    _emit_job_state_change(self)
    _end_array_parent(self)


_ARRAY_LOCK = threading.Lock()
# (l) Array children run from a bounded pool of workers, as Batch runs them on the
# compute environment's capacity: 10,000 children are 10,000 queued jobs, never 10,000
# threads or processes at once on a laptop's cores.
_ARRAY_SLOTS = int(os.environ.get("UPDRAFT_EMULATOR_ARRAY_SLOTS") or max(4, 2 * (os.cpu_count() or 1)))
_ARRAY_POOL = []


def _array_pool():
    from concurrent.futures import ThreadPoolExecutor

    with _ARRAY_LOCK:
        if not _ARRAY_POOL:
            _ARRAY_POOL.append(ThreadPoolExecutor(max_workers=_ARRAY_SLOTS, thread_name_prefix="batch-array-child"))
        return _ARRAY_POOL[0]


def _end_array_parent(child):
    """(l) The parent of an array job ends with its last child (counted, so that each
    child's end costs O(1), not a look at every sibling)."""
    if (child.array_properties or {}).get("index") is None:
        return
    parent = child.all_jobs.get(child.job_id.rsplit(":", 1)[0])
    if parent is None:
        return
    with _ARRAY_LOCK:
        parent._children_ended = getattr(parent, "_children_ended", 0) + 1
        last = parent._children_ended >= (parent.array_properties or {}).get("size", 0)
    if last:
        _end_array_job(parent)


def _end_array_job(parent):
    """(l) Ends an array job whose children have all ended (once)."""
    with _ARRAY_LOCK:
        children = parent._child_jobs or []
        # moto records the children only once it has made all of them: a quick first
        # child may end before, and must not end its parent with an empty list.
        size = (parent.array_properties or {}).get("size", 0)
        if parent.job_stopped or len(children) < size or not all(c.job_stopped for c in children):
            return
        succeeded = all(c.status == "SUCCEEDED" for c in children)
        if not succeeded:
            parent.job_stopped_reason = "one or more child jobs failed"
        parent.job_started_at = min((c.job_started_at for c in children if c.job_started_at), default=None)
        parent._mark_stopped(success=succeeded)
    _emit_job_state_change(parent)


def _deliver_event(account, region, detail_type, source, resources, detail):
    """(h, n) An event as EventBridge delivers it: to the Lambda targets of the default bus's matching rules."""
    import boto3
    from moto.events.models import events_backends

    event = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
        "account": account, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": resources, "detail": detail,
    }
    backend = events_backends[account][region]
    rules = backend.event_buses["default"].rules.values()
    lambda_client = boto3.client("lambda", region_name=region, endpoint_url=_ENDPOINT,
                                 aws_access_key_id="testing", aws_secret_access_key="testing")
    for rule in rules:
        # A schedule-only rule has no pattern (moto would match it to every event).
        pattern = rule.event_pattern.get_pattern()
        if rule.state != "ENABLED" or not pattern or not rule.event_pattern.matches_event(event):
            continue
        for target in rule.targets:
            if ":lambda:" in target["Arn"]:
                lambda_client.invoke(FunctionName=target["Arn"], InvocationType="Event",
                                     Payload=json.dumps(event, default=str).encode())


# (q) Faults armed by POST /moto-api/updraft/faults: counted ones, request
# failures matched by service and operation, crashes of a function's invocations,
# and random failures at a rate (a soak).
_FAULTS = {"drop_job_events": 0, "duplicate_job_events": 0}
_FAILURES = []  # {"service", "operation", "match", "count", "error"}
_CRASHES = []  # {"function", "service", "operation", "count", "match", "after"}
_RANDOM = {"rate": 0.0, "services": [], "error": "throttle", "injected": 0}
_RANDOM_SOURCE = random.Random(0)
_FAULTS_LOCK = threading.Lock()
_FAULT_ERRORS = ("throttle", "5xx")


def _fault(name):
    """Whether an armed fault fires now (it is used up)."""
    with _FAULTS_LOCK:
        if _FAULTS.get(name, 0) > 0:
            _FAULTS[name] -= 1
            return True
    return False


def _armed():
    return {**_FAULTS, "fail": [dict(f) for f in _FAILURES], "crash": [dict(c) for c in _CRASHES],
            "random": dict(_RANDOM)}


def _check_rules(rules, required, kind):
    """A list of fault rules, or the reason it is not one."""
    if not isinstance(rules, list):
        return f"{kind} is a list of rules"
    for rule in rules:
        missing = [k for k in required if not rule.get(k)]
        if missing:
            return f"a {kind} rule needs {missing}: {rule}"
        if rule.get("error", "throttle") not in _FAULT_ERRORS:
            return f"error is one of {_FAULT_ERRORS}: {rule}"
        if int(rule.get("count", 1)) < 1:
            return f"count is at least 1: {rule}"
        if int(rule.get("skip", 0)) < 0:
            return f"skip is at least 0: {rule}"
    return None


def _faults(request, full_url, headers):
    reply = lambda status, body: (status, {"Content-Type": "application/json"}, json.dumps(body))  # noqa: E731
    if request.method == "POST":
        body = request.get_data() if hasattr(request, "get_data") else request.body
        armed = json.loads(body or b"{}")
        unknown = [k for k in armed if k not in (*_FAULTS, "fail", "crash", "random", "clear")]
        if unknown:
            return reply(400, {"message": f"unknown faults {unknown}"})
        problem = (_check_rules(armed.get("fail", []), ("service", "operation"), "fail")
                   or _check_rules(armed.get("crash", []), ("function", "operation"), "crash"))
        if problem:
            return reply(400, {"message": problem})
        with _FAULTS_LOCK:
            if armed.get("clear"):
                _FAULTS.update({k: 0 for k in _FAULTS})
                _FAILURES.clear()
                _CRASHES.clear()
                _RANDOM.update({"rate": 0.0, "services": [], "error": "throttle"})
            _FAULTS.update({k: int(v) for k, v in armed.items() if k in _FAULTS})
            _FAILURES.extend({"count": 1, "error": "throttle", "match": "", "skip": 0, **f}
                             for f in armed.get("fail", []))
            _CRASHES.extend({"count": 1, "match": "", "after": False, "skip": 0, **c} for c in armed.get("crash", []))
            if "random" in armed:
                _RANDOM.update({"error": "throttle", "services": [], **armed["random"], "injected": 0})
                _RANDOM_SOURCE.seed(armed["random"].get("seed", 0))
    with _FAULTS_LOCK:
        return reply(200, _armed())


_REST_OPERATIONS = {}


def _rest_operation(service, method, path):
    """The operation of a REST-protocol request (Batch, Lambda, Scheduler), from botocore's model."""
    import botocore.session

    if service not in _REST_OPERATIONS:
        model = botocore.session.get_session().get_service_model(service)
        routes = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(http["requestUri"].split("?")[0]))
            routes.append((http["method"], re.compile(f"^{pattern}$"), name))
        _REST_OPERATIONS[service] = routes
    for verb, pattern, name in _REST_OPERATIONS[service]:
        if verb == method and pattern.match(path):
            return name
    return ""


def _request_operation(environ):
    """(service, operation) of an AWS API request: the signing scope names the
    service; X-Amz-Target (JSON protocols), the method (S3) or the model's
    routes (REST protocols) the operation."""
    scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(1) if scope else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
    if target:
        return service, target.rsplit(".", 1)[-1]
    if service == "s3":
        return service, {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
                         "DELETE": "DeleteObject"}.get(method, method)
    if service in ("batch", "lambda", "scheduler"):
        try:
            return service, _rest_operation(service, method, path)
        except Exception:  # an unknown service model: no operation to match
            return service, ""
    return service, ""


def _fault_response(start_response, service, error):
    """The error AWS answers for a throttled or failing request, in the service's protocol."""
    if service == "s3":
        status, code = ("503 Slow Down", "SlowDown") if error == "throttle" else ("500 Internal Server Error",
                                                                               "InternalError")
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                f"<Message>injected fault</Message><RequestId>{uuid.uuid4()}</RequestId></Error>").encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]
    if error == "throttle":
        status, code = "400 Bad Request", "ThrottlingException"
        if service == "batch":
            status, code = "429 Too Many Requests", "TooManyRequestsException"
    else:
        status, code = "500 Internal Server Error", "InternalServerError" if service == "dynamodb" else "ServiceException"
    body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code),
                            ("Content-Length", str(len(body)))])
    return [body]


def _injected_fault(environ):
    """The fault an armed rule injects into this request, used up: ("fail", error), ("crash", function) or None."""
    service, operation = _request_operation(environ)
    if not service:
        return None
    if service == "s3":
        # (j) Every S3 request counted, whoever makes it: the bench's requests per map item;
        # GETs and HEADs apart, as S3 prices them apart.
        _count("s3_requests")
        reading = environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        _count("s3_reads" if reading else "s3_writes")
        if reading:
            with _COUNTERS_LOCK:
                _S3_READS.append({"at": time.time(), "path": environ.get("PATH_INFO", "")})
    where = environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", "")
    agent = environ.get("HTTP_X_AMZ_USER_AGENT", "") + " " + environ.get("HTTP_USER_AGENT", "")
    caller = re.search(r"\bapp/(\S+)", agent)
    caller = caller.group(1) if caller else ""  # the emulated function making the call, if one is

    def calls_from(rule):
        return not rule.get("function") or rule["function"] == caller

    def hits(rule):
        """Whether a matching call meets this rule now, past the calls it lets through."""
        if rule["skip"] > 0:
            rule["skip"] -= 1
            return False
        rule["count"] -= 1
        return True

    with _FAULTS_LOCK:
        for rule in _CRASHES:
            if (rule["count"] > 0 and rule.get("service", service) == service and rule["operation"] == operation
                    and rule["match"] in where and calls_from(rule) and hits(rule)):
                return "crash-after" if rule["after"] else "crash", rule["function"], service, operation
        for rule in _FAILURES:
            if (rule["count"] > 0 and rule["service"] == service and rule["operation"] == operation
                    and rule["match"] in where and calls_from(rule) and hits(rule)):
                return "fail", rule["error"], service, operation
        # Random faults hit only what the stack's functions call, never the test's own clients.
        if (_RANDOM["rate"] > 0 and caller
                and (not _RANDOM["services"] or service in _RANDOM["services"])
                and _RANDOM_SOURCE.random() < _RANDOM["rate"]):
            _RANDOM["injected"] += 1
            return "fail", _RANDOM["error"], service, operation
    return None


def add_request_faults():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        fault = _injected_fault(environ)
        if fault is None:
            return dispatch(self, environ, start_response)
        kind, what, service, operation = fault
        if kind == "crash-after":
            # The call is made, then the function dies: what it wrote stands, nothing after happens.
            answer = dispatch(self, environ, lambda *args: None)
            for _ in answer:
                pass
            killed = _kill_invocations(what)
            LOG.warning("fault: after %s:%s killed %d running invocation(s) of %s", service, operation, killed, what)
            return _fault_response(start_response, service, "5xx")
        if kind == "crash":
            # The function dies at this call: what it wrote before stands, nothing after happens.
            killed = _kill_invocations(what)
            LOG.warning("fault: %s:%s killed %d running invocation(s) of %s", service, operation, killed, what)
            return _fault_response(start_response, service, "5xx")
        LOG.warning("fault: %s:%s answered %s", service, operation, what)
        return _fault_response(start_response, service, what)

    DomainDispatcherApplication.__call__ = call


def _emit_job_state_change(job):
    """(h) The job's end, with its DescribeJobs view as detail."""
    # The node function ignores an array child's event: a fault spent on one would test nothing.
    child = (job.array_properties or {}).get("index") is not None
    if not child and _fault("drop_job_events"):
        LOG.warning("fault: the state change of Batch job %s is dropped", job.job_id)
        return
    copies = 2 if not child and _fault("duplicate_job_events") else 1
    try:
        _, _, _, region, account = job.job_queue.arn.split(":")[:5]
        for _ in range(copies):
            _deliver_event(account, region, "Batch Job State Change", "aws.batch", [job.arn], job.describe())
    except Exception:  # an event that cannot be delivered must not break the job
        LOG.exception("the state change of Batch job %s was not delivered", job.job_id)


def _millis(moment):
    return int(moment.timestamp() * 1000) if moment else None


def patch_stepfunctions_status_events():
    """(n) An execution's end sends its status change, with the fields AWS's event carries.

    StopExecution ends the execution at once, as on AWS, with the request's error
    and cause: moto only flagged its program, whose thread waits on as long as a
    task token is unanswered, and dropped the error and cause."""
    from moto.stepfunctions import responses
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend import execution as parser_execution

    requested = {}  # execution ARN → (error, cause) of its StopExecution request
    stop_execution = responses.StepFunctionResponse.stop_execution

    def stop_execution_with_cause(self):
        requested[self._get_param("executionArn")] = (self._get_param("error"), self._get_param("cause"))
        return stop_execution(self)

    responses.StepFunctionResponse.stop_execution = stop_execution_with_cause

    terminated = parser_execution.BaseExecutionWorkerCommunication.terminated
    stop = parser_execution.Execution.stop

    def terminated_with_event(self):
        terminated(self)
        _send_status_change(self.execution)

    def stop_now(self, stop_date, error, cause):
        error, cause = requested.pop(self.exec_arn, (error, cause))
        error, cause = error or None, cause or None
        running = self.exec_status == ExecutionStatus.RUNNING
        stop(self, stop_date=stop_date, error=error, cause=cause)
        if running:
            self.exec_status, self.stop_date, self.error, self.cause = ExecutionStatus.ABORTED, stop_date, error, cause
            _send_status_change(self)

    def _send_status_change(execution):
        # Once per execution: a stopped one's thread reports its end again when it unblocks.
        if getattr(execution, "_updraft_status_sent", False):
            return
        execution._updraft_status_sent = True
        try:
            _, _, _, region, account = execution.exec_arn.split(":")[:5]
            detail = {
                "executionArn": execution.exec_arn, "stateMachineArn": execution.state_machine_arn,
                "name": execution.name, "status": str(execution.exec_status.value if hasattr(
                    execution.exec_status, "value") else execution.exec_status),
                "startDate": _millis(execution.start_date), "stopDate": _millis(execution.stop_date),
                "input": json.dumps(execution.input_data) if not isinstance(execution.input_data, str)
                else execution.input_data,
                "output": None, "error": execution.error, "cause": execution.cause,
            }
            _deliver_event(account, region, "Step Functions Execution Status Change", "aws.states",
                           [execution.exec_arn], detail)
        except Exception:  # an event that cannot be delivered must not break the execution's end
            LOG.exception("the status change of execution %s was not delivered", execution.exec_arn)

    parser_execution.BaseExecutionWorkerCommunication.terminated = terminated_with_event
    parser_execution.Execution.stop = stop_now


def patch_batch_jobs():
    from moto.batch import models
    from moto.batch.exceptions import ClientException

    submit_job = models.BatchBackend.submit_job

    def submit_job_if_enabled(self, job_name, job_def_id, job_queue, *args, **kwargs):
        queue = self.get_job_queue(job_queue)
        if queue is not None and queue.state == "DISABLED":
            raise ClientException(f"Job queue {queue.name} is DISABLED: it takes no new jobs")
        name, job_id, arn = submit_job(self, job_name, job_def_id, job_queue, *args, **kwargs)
        parent = self._jobs.get(job_id)
        if parent is not None and parent._child_jobs:
            # (l) Children that all ended before moto recorded them could not end their parent.
            _end_array_job(parent)
        return name, job_id, arn

    models.BatchBackend.submit_job = submit_job_if_enabled
    terminate_job = models.BatchBackend.terminate_job

    def terminate_job_and_children(self, job_id, reason):
        # (o) An array job's children go with it.
        terminate_job(self, job_id, reason)
        job = self.get_job_by_id(job_id)
        for child in (job._child_jobs or []) if job is not None else []:
            child.terminate(reason)

    models.BatchBackend.terminate_job = terminate_job_and_children

    models.Job.run = _run_job_as_process
    start = models.Job.start

    def start_array_children_from_the_pool(self):
        if (self.array_properties or {}).get("index") is None:
            return start(self)
        _array_pool().submit(self.run)

    models.Job.start = start_array_children_from_the_pool
    container_details = models.Job._container_details

    def _container_details_with_exit(self):
        # DescribeJobs reports the container's exit code and reason, as AWS does.
        details = container_details(self)
        # `vcpus` is an integer in Batch's API (fractional vCPUs live in resourceRequirements);
        # moto copied 0.25 there, which AWS's SDKs refuse to read.
        if isinstance(details.get("vcpus"), float):
            vcpus = details.pop("vcpus")
            if vcpus.is_integer():
                details["vcpus"] = int(vcpus)
        # The job's resource requirements, as AWS reports them (a run's cost prices them); moto left them out.
        requirements = (self.container_overrides or {}).get("resourceRequirements") \
            or (self.job_definition.container_properties or {}).get("resourceRequirements")
        if requirements:
            details["resourceRequirements"] = requirements
        if self.job_stopped and self.exit_code is not None:
            details["exitCode"] = self.exit_code
            if self.job_stopped_reason:
                details["reason"] = self.job_stopped_reason
        return details

    models.Job._container_details = _container_details_with_exit

    describe = models.Job.describe

    def describe_with_array_index(self):
        # (l) A child of an array job says which item it is (`arrayProperties.index`), as
        # AWS's DescribeJobs and state-change events do; moto left it out, so rules that
        # skip children (`index: [{exists: false}]`) received every child's end.
        result = describe(self)
        index = (self.array_properties or {}).get("index")
        if index is not None:
            result["arrayProperties"] = {"index": index}
        return result

    models.Job.describe = describe_with_array_index


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
    """The Lambda Runtime API of one sandbox: hands out each invocation given to
    it once, then records its response or error."""

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=None):
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the bootstrap was stopped after its answer; nobody waits for this one

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self._reply(404)
        # The next invocation given to this sandbox; none once it is closed.
        inv = self.server.sandbox.next_invocation()
        if inv is None:
            return self._reply(503)
        self._reply(200, inv["event"], {
            "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
            "Lambda-Runtime-Deadline-Ms": str(inv["deadline_ms"]),
            "Lambda-Runtime-Invoked-Function-Arn": inv["arn"],
            "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            "Content-Type": "application/json",
        })

    def do_POST(self):
        inv = self.server.sandbox.invocation
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        prefix = f"/2018-06-01/runtime/invocation/{inv['request_id'] if inv else '-'}/"
        if inv and self.path == prefix + "response":
            inv["result"], inv["errored"] = body.decode(), False
        elif inv and self.path in (prefix + "error", "/2018-06-01/runtime/init/error"):
            inv["result"], inv["errored"] = body.decode() or '{"errorMessage": "unknown"}', True
        else:
            return self._reply(404)
        self._reply(202, b'{"status":"OK"}')
        inv["done"].set()


class _Sandbox:
    """(t) One bootstrap process and its Runtime API, kept warm between invocations
    of its function (same code, same environment), as Lambda keeps an execution
    environment: state a function keeps between invocations is kept here too."""

    def __init__(self, key, directory, env):
        self.key, self.invocation, self.closed = key, None, False
        self.changed = threading.Condition()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeApi)
        self.server.daemon_threads = True
        self.server.sandbox = self
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.logs = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [os.path.join(directory, "bootstrap")], cwd=directory,
            env={**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}"},
            stdin=subprocess.DEVNULL, stdout=self.logs, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def give(self, invocation):
        with self.changed:
            self.invocation = invocation
            self.changed.notify_all()

    def next_invocation(self):
        with self.changed:
            while not self.closed and (self.invocation is None or self.invocation["handed_out"]):
                self.changed.wait(1)
            if self.closed:
                return None
            self.invocation["handed_out"], self.invocation["handed_at"] = True, time.time()
            return self.invocation

    def log_size(self):
        return os.fstat(self.logs.fileno()).st_size

    def logs_since(self, offset):
        return os.pread(self.logs.fileno(), max(self.log_size() - offset, 0), offset).decode("utf-8", "replace")

    def close(self):
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.server.shutdown()
        self.server.server_close()
        self.logs.close()


# Warm sandboxes waiting for an invocation, by (function, code, environment).
_IDLE = {}


# (q) The bootstrap processes running now, by function name (a crash fault kills them).
_RUNNING = {}
_RUNNING_LOCK = threading.Lock()


def _kill_invocations(function_name):
    with _RUNNING_LOCK:
        pids = list(_RUNNING.get(function_name, ()))
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


# (s) How many invocations of one function run at once, as a function's concurrency
# limit bounds them on AWS (where the rest are throttled and retried): a Parallel
# state of 1,000 branches would otherwise start 1,000 processes on a laptop.
_CONCURRENCY = int(os.environ.get("UPDRAFT_EMULATOR_LAMBDA_CONCURRENCY", "8"))
# (t) Whether execution environments are kept warm (UPDRAFT_EMULATOR_WARM=0: a process per invocation).
_WARM = os.environ.get("UPDRAFT_EMULATOR_WARM", "1") != "0"
_SLOTS = {}


def _invoke_bootstrap(self, event=None):
    with _RUNNING_LOCK:
        slots = _SLOTS.setdefault(self.function_name, threading.BoundedSemaphore(_CONCURRENCY))
    # Waiting for a slot is not the invocation's time: its timeout starts when it does.
    with slots:
        return _invoke_bootstrap_now(self, event)


def _invoke_bootstrap_now(self, event=None):
    _count("lambda_invocations", self.function_name)
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
    env = {
        **_base_environment(),
        **_emulator_environment(),
        "AWS_REGION": self.region,
        "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": str(self.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size),
        "_HANDLER": self.handler or "bootstrap",
        "LAMBDA_TASK_ROOT": directory,
        # (q) The AWS SDKs put this in their User-Agent: a fault can pick the calls of one function.
        "AWS_SDK_UA_APP_ID": self.function_name[:50],
        # Lambda's variables are strings; moto keeps a template's Number parameter as an int.
        **{name: str(value) for name, value in self.environment_vars.items()},
    }
    key = (self.function_arn, self.code_sha_256, json.dumps(env, sort_keys=True))
    with _RUNNING_LOCK:
        idle = _IDLE.get(key) or []
        sandbox = idle.pop() if idle else None
    if sandbox is None or sandbox.process.poll() is not None:
        sandbox = _Sandbox(key, directory, env)
    process, logs_from = sandbox.process, sandbox.log_size()
    with _RUNNING_LOCK:
        _RUNNING.setdefault(self.function_name, set()).add(process.pid)
    sandbox.give(invocation)
    try:
        finished = _wait_for_answer(invocation, process, timeout)
    finally:
        with _RUNNING_LOCK:
            _RUNNING[self.function_name].discard(process.pid)
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
    if "handed_at" in invocation:
        with _COUNTERS_LOCK:
            answer = invocation["result"] or b""
            answer = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
            _INVOCATIONS.append({"function": self.function_name, "at": invocation["handed_at"],
                                 "ms": round((time.time() - invocation["handed_at"]) * 1000, 1),
                                 "answer": answer[:300]})
    logs = sandbox.logs_since(logs_from)
    # An environment that answered stays warm; one that timed out or died is thrown away, as Lambda does.
    if finished and process.poll() is None and _WARM:
        with _RUNNING_LOCK:
            _IDLE.setdefault(key, []).append(sandbox)
    else:
        sandbox.close()
    return invocation["result"], invocation["errored"], logs


def _wait_for_answer(invocation, process, timeout):
    """Whether the invocation answered within `timeout`; a process that dies
    without answering (a crash) ends the wait at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if invocation["done"].wait(0.05):
            return True
        if process.poll() is not None:
            return invocation["done"].is_set()
    return invocation["done"].is_set()


def patch_lambda():
    from moto.awslambda import models

    models.LambdaFunction._invoke_lambda = _invoke_bootstrap
    _report_dead_invocations_as_lambda_unknown()


# Errors of an invocation that died rather than answered (the runtime's, not the handler's).
_UNHANDLED = {"Runtime.ExitError", "Sandbox.Timedout", "Runtime.OutOfMemory"}


def _report_dead_invocations_as_lambda_unknown():
    """(c) Step Functions reports an invocation that died (exited, timed out, ran out of
    memory) as `Lambda.Unknown`, whatever the runtime's own error type; moto passed
    the runtime's type on, which no Retry written for AWS matches."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_lambda as service,
    )

    from_error = service.StateTaskServiceLambda._from_error

    def _from_error(self, env, ex):
        if isinstance(ex, lambda_eval_utils.LambdaFunctionErrorException):
            try:
                cause = json.loads(ex.payload)
            except ValueError:
                cause = None
            if isinstance(cause, dict) and cause.get("errorType") in _UNHANDLED:
                ex.payload = json.dumps({**cause, "errorType": "Lambda.Unknown"})
        return from_error(self, env, ex)

    service.StateTaskServiceLambda._from_error = _from_error


# ---------------------------------------------------------------- (r) asynchronous retries and dead letters

# Lambda retries a failed asynchronous invocation twice, about 1 and 2 minutes
# later; here 1 and 2 seconds, so that tests and benchmarks see the same order.
_ASYNC_RETRY_DELAYS = (1.0, 2.0)


def _send_dead_letter(function, body, error):
    import boto3

    _, _, _, region, _, name = function.updraft_dead_letter.split(":", 5)
    sqs = boto3.client("sqs", region_name=region, endpoint_url=_ENDPOINT,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = {"ErrorCode": {"DataType": "Number", "StringValue": "200"},
                  "ErrorMessage": {"DataType": "String", "StringValue": (error or "")[:1024] or "unknown"},
                  "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())}}
    sqs.send_message(QueueUrl=url, MessageBody=body if isinstance(body, str) else body.decode(),
                     MessageAttributes=attributes)


def patch_lambda_async_retries():
    """(r) An asynchronous invocation (InvocationType Event) whose function fails
    is retried twice, and then its event goes to the function's DeadLetterConfig
    queue, as Lambda does; moto tried once and dropped it."""
    from moto.awslambda import models

    init = models.LambdaFunction.__init__

    def keep_dead_letter(self, account_id, spec, *args, **kwargs):
        init(self, account_id, spec, *args, **kwargs)
        self.updraft_dead_letter = (spec.get("DeadLetterConfig") or {}).get("TargetArn")

    invoke = models.LambdaFunction.invoke

    def invoke_retrying(self, body, request_headers, response_headers):
        if (request_headers.get("x-amz-invocation-type") or "").lower() != "event":
            return invoke(self, body, request_headers, response_headers)
        for delay in (0.0, *_ASYNC_RETRY_DELAYS):
            time.sleep(delay)
            answer_headers = {}
            result = invoke(self, body, request_headers, answer_headers)
            if "x-amz-function-error" not in answer_headers:
                break
            _count("lambda_async_failures", self.function_name)
        else:
            if getattr(self, "updraft_dead_letter", None):
                try:
                    _send_dead_letter(self, body, result if isinstance(result, str) else None)
                    _count("lambda_dead_letters", self.function_name)
                except Exception:
                    LOG.exception("the failed event of %s could not be sent to its dead-letter queue",
                                  self.function_name)
        response_headers.update(answer_headers)
        return result

    create = models.LambdaFunction.create_from_cloudformation_json.__func__

    @classmethod
    def create_with_dead_letter(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        # moto's CloudFormation model passes only some properties on; DeadLetterConfig is not one.
        function = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        target = (cloudformation_json["Properties"].get("DeadLetterConfig") or {}).get("TargetArn")
        if target:
            function.updraft_dead_letter = target
        return function

    models.LambdaFunction.__init__ = keep_dead_letter
    models.LambdaFunction.invoke = invoke_retrying
    models.LambdaFunction.create_from_cloudformation_json = create_with_dead_letter


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


_MONTHS = {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
_WEEKDAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


def _cron_values(field, low, high, names=None):
    """(p) The values one field of Scheduler's cron allows; None for `*` and `?`."""
    if field in ("*", "?"):
        return None
    allowed = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        number = lambda text: int((names or {}).get(text, text))  # noqa: E731
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (number(v) for v in span.split("-"))
        else:
            start = number(span)
            end = high if step else start
        allowed.update(range(start, end + 1, int(step or 1)))
    return allowed


def _cron_matches(fields, wall):
    """(p) Whether a wall-clock minute matches `cron(min hour dom month dow year)` (L: last day of month)."""
    import calendar

    minute, hour, dom, month, dow, year = fields
    checks = [(minute, wall.minute, 0, 59, None), (hour, wall.hour, 0, 23, None),
              (month, wall.month, 1, 12, _MONTHS), (year, wall.year, 1970, 2199, None)]
    for field, value, low, high, names in checks:
        allowed = _cron_values(field, low, high, names)
        if allowed is not None and value not in allowed:
            return False
    if dom == "L":
        if wall.day != calendar.monthrange(wall.year, wall.month)[1]:
            return False
    else:
        allowed = _cron_values(dom, 1, 31)
        if allowed is not None and wall.day not in allowed:
            return False
    weekday = (wall.weekday() + 1) % 7 + 1  # Scheduler: Sunday = 1
    allowed = _cron_values(dow, 1, 7, _WEEKDAYS)
    return allowed is None or weekday in allowed


def _schedule_ticks(schedule, after, until):
    """(p) The scheduled times of `schedule` in (after, until], as Scheduler fires them."""
    from zoneinfo import ZoneInfo

    expression = schedule.schedule_expression
    if expression.startswith("rate("):
        value, unit = expression[5:-1].split()
        period = int(value) * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
        start = schedule.start_date or schedule.creation_date
        start = datetime.fromtimestamp(float(start), timezone.utc)
        k = max(0, int((after - start).total_seconds() // period) + 1) if after >= start else 0
        ticks = []
        while (tick := start + timedelta(seconds=k * period)) <= until:
            if tick > after:
                ticks.append(tick)
            k += 1
        return ticks
    if not expression.startswith("cron("):
        return []
    fields = expression[5:-1].upper().split()
    zone = ZoneInfo(schedule.schedule_expression_timezone or "UTC")
    ticks, minute = [], after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= until:
        wall = minute.astimezone(zone)
        # A wall-clock time that happens twice fires once, at its first occurrence (fold 0).
        if wall.fold == 0 and _cron_matches(fields, wall):
            ticks.append(minute)
        minute += timedelta(minutes=1)
    return ticks


def _deliver_tick(schedule, tick, account, region):
    """(p) Invokes the schedule's Lambda target with its input's context attributes filled in."""
    import boto3

    target = schedule.target
    when = tick.strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = (target.get("Input") or "{}").replace("<aws.scheduler.scheduled-time>", when)
    payload = payload.replace("<aws.scheduler.schedule-arn>", schedule.arn)
    payload = payload.replace("<aws.scheduler.execution-id>", str(uuid.uuid4()))
    payload = payload.replace("<aws.scheduler.attempt-number>", "1")
    client = lambda service: boto3.client(service, region_name=region, endpoint_url=_ENDPOINT,  # noqa: E731
                                          aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        if ":lambda:" not in target["Arn"]:
            raise ValueError(f"target {target['Arn']} is not a Lambda function")
        client("lambda").invoke(FunctionName=target["Arn"], InvocationType="Event", Payload=payload.encode())
        _count("schedule_ticks", schedule.name)
    except Exception as error:  # undeliverable: the dead-letter queue keeps it, as Scheduler's does
        LOG.warning("tick %s of schedule %s not delivered: %s", when, schedule.name, error)
        queue = (target.get("DeadLetterConfig") or {}).get("Arn")
        if queue:
            sqs = client("sqs")
            url = sqs.get_queue_url(QueueName=queue.split(":")[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=payload,
                             MessageAttributes={"ERROR_MESSAGE": {"DataType": "String", "StringValue": str(error)}})
    return when


def _fire_scheduled_rules(evaluated_until, now):
    """(p) EventBridge rules with a schedule expression: their ticks in (evaluated_until, now], in UTC."""
    from moto.events.models import events_backends

    for account, regions in list(events_backends.items()):
        for region, backend in list(regions.items()):
            for bus in list(backend.event_buses.values()):
                for rule in list(bus.rules.values()):
                    if rule.state != "ENABLED" or not rule.scheduled_expression:
                        continue
                    stand_in = _RuleSchedule(rule.scheduled_expression)
                    for tick in _schedule_ticks(stand_in, evaluated_until, now):
                        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                                 "source": "aws.events", "account": account,
                                 "time": tick.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
                                 "resources": [rule.arn], "detail": {}}
                        _deliver_to_targets(rule.targets, event, region)


class _RuleSchedule:
    """A rule's schedule as `_schedule_ticks` reads one: UTC; a rate counts from the epoch minute."""

    def __init__(self, expression):
        self.schedule_expression, self.schedule_expression_timezone = expression, "UTC"
        self.start_date, self.creation_date = 0, 0


def _deliver_to_targets(targets, event, region):
    import boto3

    client = boto3.client("lambda", region_name=region, endpoint_url=_ENDPOINT,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    for target in targets:
        if ":lambda:" in target["Arn"]:
            payload = target.get("Input") or json.dumps(event)
            client.invoke(FunctionName=target["Arn"], InvocationType="Event", Payload=payload.encode())
            _count("schedule_ticks", target["Arn"].split(":")[-1])


def _scheduler_backends():
    from moto.scheduler.models import scheduler_backends

    for account, regions in list(scheduler_backends.items()):
        for region, backend in list(regions.items()):
            yield account, region, backend


def _fire_schedules_forever():
    """(p) Each second, the ticks every ENABLED schedule has reached since the last look."""
    seen = {}  # schedule ARN → (the time its ticks were evaluated to, its last modification)
    rules_evaluated = datetime.now(timezone.utc)
    while True:
        now = datetime.now(timezone.utc)
        try:
            _fire_scheduled_rules(rules_evaluated, now)
        except Exception:
            LOG.exception("evaluating scheduled rules")
        rules_evaluated = now
        try:
            for account, region, backend in _scheduler_backends():
                for group in list(backend.schedule_groups.values()):
                    for schedule in list(group.schedules.values()):
                        modified = schedule.last_modified_date
                        evaluated, known = seen.get(schedule.arn, (None, None))
                        if evaluated is None or known != modified:
                            # Created or updated: only times after that fire.
                            evaluated = datetime.fromtimestamp(float(modified), timezone.utc)
                        if schedule.state == "ENABLED":
                            for tick in _schedule_ticks(schedule, evaluated, now):
                                _deliver_tick(schedule, tick, account, region)
                        seen[schedule.arn] = (now, modified)
        except Exception:  # one bad schedule must not stop the others firing
            LOG.exception("evaluating schedules")
        time.sleep(1)


def _fire_schedule(request, full_url, headers):
    body = json.loads(request.get_data() or b"{}") if hasattr(request, "get_data") else json.loads(request.body or "{}")
    when = body.get("time")
    tick = (datetime.fromisoformat(when.replace("Z", "+00:00")) if when
            else datetime.now(timezone.utc).replace(second=0, microsecond=0))
    for account, region, backend in _scheduler_backends():
        group = backend.schedule_groups.get(body.get("group", "default"))
        schedule = group.schedules.get(body.get("name")) if group else None
        if schedule is not None:
            delivered = _deliver_tick(schedule, tick, account, region)
            return 200, {"Content-Type": "application/json"}, json.dumps({"schedule": schedule.arn, "time": delivered})
    return 404, {"Content-Type": "application/json"}, json.dumps({"message": f"no schedule {body.get('name')!r}"})


def start_firing_schedules():
    from moto.moto_api._internal import urls

    urls.url_paths["{0}/moto-api/updraft/fire-schedule$"] = _fire_schedule
    urls.url_paths["{0}/moto-api/updraft/faults$"] = _faults
    threading.Thread(target=_fire_schedules_forever, name="scheduler", daemon=True).start()


def _images(request, full_url, headers):
    body = request.get_data() if hasattr(request, "get_data") else request.body
    mapping = json.loads(body or b"{}")
    missing = [d for d in mapping.values() if not os.path.isdir(d)]
    if missing:
        return 400, {"Content-Type": "application/json"}, json.dumps({"message": f"not directories: {missing}"})
    _IMAGE_DIRS.update(mapping)
    return 200, {"Content-Type": "application/json"}, json.dumps(_IMAGE_DIRS)


def _counters(request, full_url, headers):
    with _COUNTERS_LOCK:
        body = json.dumps(_COUNTERS)
    return 200, {"Content-Type": "application/json"}, body


def _invocations(request, full_url, headers):
    """The invocations that started at or after `?since=` (epoch seconds)."""
    since = float(urllib.parse.parse_qs(urllib.parse.urlsplit(full_url).query).get("since", ["0"])[0])
    with _COUNTERS_LOCK:
        body = json.dumps([i for i in _INVOCATIONS if i["at"] >= since])
    return 200, {"Content-Type": "application/json"}, body


def _s3_reads(request, full_url, headers):
    """The S3 reads that started at or after `?since=` (epoch seconds), with their paths."""
    since = float(urllib.parse.parse_qs(urllib.parse.urlsplit(full_url).query).get("since", ["0"])[0])
    with _COUNTERS_LOCK:
        body = json.dumps([r for r in _S3_READS if r["at"] >= since])
    return 200, {"Content-Type": "application/json"}, body


def add_fire_rule_endpoint():
    from moto.moto_api._internal import urls

    urls.url_paths["{0}/moto-api/updraft/fire-rule$"] = _fire_rule
    urls.url_paths["{0}/moto-api/updraft/counters$"] = _counters
    urls.url_paths["{0}/moto-api/updraft/invocations$"] = _invocations
    urls.url_paths["{0}/moto-api/updraft/s3-reads$"] = _s3_reads
    urls.url_paths["{0}/moto-api/updraft/images$"] = _images


# ---------------------------------------------------------------- (e) DynamoDB item serialisation

_DYNAMODB_LOCK = threading.RLock()


def patch_dynamodb_lock():
    from moto.dynamodb.models import DynamoDBBackend

    # Items written, as DynamoDB bills them: moto writes each item of a BatchWriteItem or a
    # TransactWriteItems through these same methods, so the batch or transaction itself
    # is not counted again (a ConditionCheck writes nothing).
    writes = {"put_item", "update_item", "delete_item"}

    def locked(method):
        def call(self, *args, **kwargs):
            if method.__name__ in writes:
                _count("dynamodb_writes")
            with _DYNAMODB_LOCK:
                return method(self, *args, **kwargs)
        call.__wrapped__ = method
        return call

    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan"):
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


# ---------------------------------------------------------------- (v) DynamoDB at scale


class _OnePartition:
    """A table as moto's Table.query sees it, holding only one partition's items."""

    def __init__(self, table, hash_key):
        self._table, self._hash_key = table, hash_key

    def __getattr__(self, name):
        return getattr(self._table, name)

    def all_items(self):
        partition = self._table.items.get(self._hash_key)
        if partition is None:
            return []
        items = list(partition.values()) if self._table.range_key_attr else [partition]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


def patch_dynamodb_at_scale():
    """(v) Each cost O(table) per call, so runs slowed as the tables filled: a 10,000-item
    map's recovery took 43 s on fresh tables and 78 s after three more wide maps had
    written their cache entries, most of it copying tables for node-protocol transactions."""
    import copy
    import inspect

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    query = Table.query
    index_name_of = inspect.signature(query)

    def query_one_partition(self, *args, **kwargs):
        bound = index_name_of.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        if bound.arguments.get("index_name") is None and hash_key is not None:
            return query(_OnePartition(self, hash_key), *args, **kwargs)
        return query(self, *args, **kwargs)

    Table.query = query_one_partition

    class NoTableCopies:
        """`copy` as moto's DynamoDB backend sees it: a table is not copied (the
        transaction below keeps its items instead); anything else is."""

        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = NoTableCopies()
    transact = DynamoDBBackend.transact_write_items

    def transact_keeping_items(self, transact_items):
        kept = []
        for entry in transact_items:
            op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            try:
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError, AttributeError):
                continue  # moto refuses the entry itself
            partition = table.items.get(hash_value)
            if range_value is None:
                item = partition
            else:
                item = partition.get(range_value) if partition is not None else None
            # (moto's defaultdict leaves an empty dict where a read missed: that is no item.)
            item = item if isinstance(item, Item) else None
            kept.append((table, hash_value, range_value, copy.deepcopy(item)))
        try:
            return transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(kept):
                if range_value is None:
                    table.items.pop(hash_value, None) if item is None else table.items.__setitem__(hash_value, item)
                elif item is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise

    DynamoDBBackend.transact_write_items = transact_keeping_items


# ---------------------------------------------------------------- (f) API Gateway stage requests

# DOTALL: a path parameter may hold any character (a newline too), and still reaches the stage.
_STAGE_PATH = re.compile(r"^/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?$", re.DOTALL)
# The credentials the emulator knows the secret of; AWS knows every key's.
_TEST_KEYS = {"testing": "testing"}
# API Gateway's payload limit.
_MAX_BODY = 10 * 1024 * 1024


# (api id, stage) -> (log group name, format): the stages' AccessLogSetting.
_ACCESS_LOGS = {}


def _access_log_line(template, context):
    """The stage's access log format with its $context variables filled (API Gateway writes "-" for none)."""
    def one(match):
        value = context.get(match.group(1))
        return "-" if value in (None, "") else str(value).replace("\\", "\\\\").replace('"', '\\"')
    return re.sub(r"\$context\.([A-Za-z0-9_.]+)", one, template)


def _write_access_log(api_id, stage, context):
    """(f) One access log line per request, as API Gateway delivers it to the stage's log group."""
    setting = _ACCESS_LOGS.get((api_id, stage))
    if setting is None:
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.utils import unix_time_millis
    from moto.logs.models import logs_backends

    group, template = setting
    backend = logs_backends[DEFAULT_ACCOUNT_ID][context["region"]]
    stream = f"{api_id}-{stage}"
    try:
        backend.ensure_log_group(group)
        backend.ensure_log_stream(group, stream)
        backend.put_log_events(group, stream, [{"timestamp": int(unix_time_millis()),
                                                "message": _access_log_line(template, context)}])
    except Exception:  # a log line must never change the answer
        LOG.exception("the access log line of %s %s was not written", context.get("httpMethod"), context.get("path"))


def _gateway_answer(start_response, status, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
               502: "Bad Gateway"}
    all_headers = {"Content-Type": "application/json", **(headers or {}), "Content-Length": str(len(data))}
    start_response(f"{status} {reasons.get(status, 'Status')}", list(all_headers.items()))
    return [data]


def _template_params(template, wanted):
    """The path parameters when the path parts `wanted` match a resource's `template`, else None."""
    params = {}
    for i, part in enumerate(template):
        if i >= len(wanted):
            return None
        if part.startswith("{") and part.endswith("+}"):
            params[part[1:-2]] = "/".join(wanted[i:])
            return params
        if part.startswith("{"):
            params[part[1:-1]] = wanted[i]
        elif part != wanted[i]:
            return None
    return params if len(template) == len(wanted) else None


def _match_resource(api, path):
    """The resource whose path template matches `path` (the most literal parts win), and its parameters."""
    wanted = [p for p in path.split("/") if p]
    best = (None, None, -1)
    for resource in api.resources.values():
        template = [p for p in resource.get_path().split("/") if p]
        params = _template_params(template, wanted)
        literal = sum(1 for p in template if not p.startswith("{"))
        if params is not None and literal > best[2]:
            best = (resource, params, literal)
    return best[0], best[1]


def _signature_problem(method, environ, path, query, body, region):
    """None when the request carries a valid SigV4 signature for execute-api; else why not."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = environ.get("HTTP_AUTHORIZATION", "")
    if not auth:
        return "Missing Authentication Token"
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$", auth)
    if not match:
        return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (SigV4)"
    key, _day, scope_region, service, signed, signature = match.groups()
    if service != "execute-api" or scope_region != region:
        return f"Credential should be scoped to a valid region and the service execute-api, not {scope_region}/{service}"
    if key not in _TEST_KEYS:
        return "The security token included in the request is invalid."
    headers = {}
    for name in signed.split(";"):
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value is None and name == "content-type":
            value = environ.get("CONTENT_TYPE")
        if value is None and name == "content-length":
            value = environ.get("CONTENT_LENGTH")
        if value is None:
            return f"the signed header {name} is missing"
        headers[name] = value
    url = f"http://{headers.get('host', 'localhost')}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(key, _TEST_KEYS[key]), "execute-api", region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != signature:
        return ("The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.")
    return None


def _identity(auth, environ, authorization_type):
    """The caller as API Gateway describes it; with IAM auth, the signer (here: the access key's test user)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    access_key = (re.search(r"Credential=([^/]+)/", auth) or [None, None])[1]
    identity = {"accessKey": access_key, "sourceIp": environ.get("REMOTE_ADDR")}
    if authorization_type == "AWS_IAM" and access_key:
        identity.update({"accountId": DEFAULT_ACCOUNT_ID, "caller": access_key,
                         "userArn": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{access_key}"})
    return identity


def _stage_request(environ, start_response, api_id, stage, path):
    """One request to a stage, answered and written to the stage's access log."""
    started = time.time()
    context = {"requestId": str(uuid.uuid4()), "httpMethod": environ["REQUEST_METHOD"], "path": f"/{stage}{path}",
               "stage": stage, "protocol": "HTTP/1.1", "identity.sourceIp": environ.get("REMOTE_ADDR"),
               "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(started)),
               "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    status = []

    def recording(line, headers, *rest):
        status.append(line.split(" ", 1)[0])
        return start_response(line, headers, *rest)

    answer = _answer_stage_request(environ, recording, api_id, stage, path, context)
    context.update({"status": status[0] if status else "-",
                    "responseLatency": int((time.time() - started) * 1000)})
    if status and not status[0].startswith("2") and answer:
        try:
            context.setdefault("error.message", json.loads(b"".join(answer)).get("message"))
        except (ValueError, AttributeError):
            pass
    _write_access_log(api_id, stage, context)
    return answer


def _answer_stage_request(environ, start_response, api_id, stage, path, context):
    from urllib.parse import parse_qs

    from moto.apigateway.models import apigateway_backends
    from moto.awslambda.models import lambda_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    method = environ["REQUEST_METHOD"]
    query = environ.get("QUERY_STRING", "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > _MAX_BODY:
        return _gateway_answer(start_response, 413, {"message": "Request Too Long"})
    body = environ["wsgi.input"].read(length) if length else b""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", auth)
    region = scope.group(1) if scope else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    context["region"] = region
    backend = apigateway_backends[DEFAULT_ACCOUNT_ID][region]
    api = backend.apis.get(api_id)
    if api is None or stage not in api.stages:
        return _gateway_answer(start_response, 403, {"message": "Forbidden"})
    resource, params = _match_resource(api, path)
    methods = resource.resource_methods if resource else {}
    integration_method = methods.get(method) or methods.get("ANY")
    if integration_method is None:
        return _gateway_answer(start_response, 403, {"message": "Missing Authentication Token"})
    if integration_method.authorization_type == "AWS_IAM":
        # The path as sent (still percent-encoded), as SigV4 signs it: the decoded one differs
        # for any escaped character.
        raw_path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
        problem = _signature_problem(method, environ, raw_path or f"/restapis/{api_id}/{stage}/_user_request_{path}",
                                     query, body, region)
        if problem:
            return _gateway_answer(start_response, 403, {"message": problem})
    identity = _identity(auth, environ, integration_method.authorization_type)
    context.update({f"identity.{k}": v for k, v in identity.items()})
    context["resourcePath"] = resource.get_path()
    integration = integration_method.method_integration
    if integration is None or integration.integration_type != "AWS_PROXY":
        return _gateway_answer(start_response, 502, {"message": "only AWS_PROXY (Lambda) integrations run here"})
    function_arn = integration.uri.split("/functions/")[1].rsplit("/invocations", 1)[0]
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    multi_query = parse_qs(query, keep_blank_values=True)
    try:
        text, binary = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, binary = base64.b64encode(body).decode(), True
    event = {
        "resource": resource.get_path(), "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None, "stageVariables": None,
        "requestContext": {
            "accountId": DEFAULT_ACCOUNT_ID, "apiId": api_id, "stage": stage, "resourcePath": resource.get_path(),
            "httpMethod": method, "path": f"/{stage}{path}", "requestId": context["requestId"], "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": identity,
        },
        "body": text or None, "isBase64Encoded": binary,
    }
    function = lambda_backends[DEFAULT_ACCOUNT_ID][region].get_function(function_arn)
    answer_headers = {}
    result = function.invoke(json.dumps(event), {}, answer_headers)
    try:
        answer = json.loads(result)
        status = int(answer["statusCode"])
    except (ValueError, KeyError, TypeError):
        LOG.warning("the function %s gave no proxy answer: %.500s", function_arn, result)
        return _gateway_answer(start_response, 502, {"message": "Internal server error"})
    if "x-amz-function-error" in answer_headers:
        return _gateway_answer(start_response, 502, {"message": "Internal server error"})
    data = answer.get("body") or ""
    data = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
    return _gateway_answer(start_response, status, data, {str(k): str(v) for k, v in (answer.get("headers") or {}).items()})


def add_stage_routing():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        match = _STAGE_PATH.match(environ.get("PATH_INFO", ""))
        if match:
            api_id, stage, path = match.group(1), match.group(2), match.group(3) or "/"
            return _stage_request(environ, start_response, api_id, stage, path)
        return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call


def add_stage_resource():
    from moto.apigateway.models import apigateway_backends
    from moto.core.common_models import CloudFormationModel

    class StageResource(CloudFormationModel):
        # moto's model metaclass files each model under the service named in its module.
        __module__ = "moto.apigateway.models"

        def __init__(self, name):
            self.name = name

        @property
        def physical_resource_id(self):
            return self.name

        @staticmethod
        def cloudformation_name_type():
            return "StageName"

        @staticmethod
        def cloudformation_type():
            return "AWS::ApiGateway::Stage"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            backend = apigateway_backends[account_id][region_name]
            # moto's Ref of a Deployment is the model itself, not its id.
            deployment = getattr(properties["DeploymentId"], "id", properties["DeploymentId"])
            backend.create_stage(properties["RestApiId"], properties["StageName"], deployment,
                                 variables=properties.get("Variables"), description=properties.get("Description", ""))
            setting = properties.get("AccessLogSetting")
            if setting:
                # A log group's ARN (`arn:…:log-group:NAME` or `…:NAME:*`) names its group.
                group = setting["DestinationArn"].split(":log-group:", 1)[1].removesuffix(":*")
                _ACCESS_LOGS[(properties["RestApiId"], properties["StageName"])] = (group, setting["Format"])
            return cls(properties["StageName"])

    return StageResource


def apply_patches():
    patch_stepfunctions_batch()
    patch_stepfunctions_status_events()
    patch_batch_jobs()
    patch_lambda()
    patch_lambda_async_retries()
    add_fire_rule_endpoint()
    patch_dynamodb_at_scale()  # before the lock, which then covers its reads of the items
    patch_dynamodb_lock()
    add_stage_routing()
    add_request_faults()
    add_stage_resource()
    start_firing_schedules()


def execute_state_machines_by_default():
    """(s) Step Functions executions run their state machine from the start, as
    on AWS; moto's default only records them until `/moto-api/config` says
    otherwise (which still works, before any resource is created)."""
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"]["execute_state_machine"] = True


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
    execute_state_machines_by_default()
    from moto.server import main as moto_main

    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
