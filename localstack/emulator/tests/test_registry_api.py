"""The registry end to end: the stack deployed into the emulator, the real `updraft`
CLI signing requests with SigV4, the emulator's API Gateway routing the stage URL to
the real api Lambda (a Rust bootstrap), which keeps entities in the stack's DynamoDB
table and large bodies in its bucket."""
import glob
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import unique, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "api"))
from test_openapi import load, resolve, validator  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEPLOY = os.path.join(HERE, "..", "deploy")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
UPDRAFT = os.path.join(TARGET, "debug", "updraft")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
EXAMPLES = sorted(glob.glob(os.path.join(REPO, "examples", "*", "*.yaml")))

HELLO = """
tasks:
  greet:
    image: python:3.11-slim
    command: [python3, greet.py, "{{inputs.name}}", "{{outputs.greeting}}"]
    inputs: {name: string}
    outputs: {greeting: string}
"""


@pytest.fixture(scope="module")
def api(endpoint, tmp_path_factory):
    name, prefix = unique("stack"), unique("reg")
    deployed = subprocess.run([DEPLOY, endpoint, "--output", "json", "--stack-name", name, "--name-prefix", prefix],
                              capture_output=True, text=True, env={**os.environ, **CREDENTIALS}, timeout=900)
    assert deployed.returncode == 0, deployed.stderr
    config = tmp_path_factory.mktemp("config") / "config.toml"
    env = {**os.environ, **CREDENTIALS, "UPDRAFT_CONFIG": str(config)}
    env.pop("UPDRAFT_ENDPOINT", None)
    init = subprocess.run([UPDRAFT, "config", "init", "--stack", name, "--endpoint-url", endpoint],
                          capture_output=True, text=True, env=env)
    assert init.returncode == 0, init.stderr
    url = config.read_text().split('endpoint = "')[1].split('"')[0]
    return {"env": env, "url": url, "outputs": json.loads(deployed.stdout)["outputs"]}


def updraft(api, *args):
    return subprocess.run([UPDRAFT, *args], capture_output=True, text=True, env=api["env"], timeout=120)


def signed(api, method, path, body=b"", secret="testing", sign=True, send_body=None):
    """A raw request to the stage URL, signed as botocore signs (or not), and its answer."""
    url = api["url"] + path
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    if sign:
        SigV4Auth(Credentials("testing", secret), "execute-api", "us-east-1").add_auth(request)
    data = body if send_body is None else send_body
    http = urllib.request.Request(url, data=data or None, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(http, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


# register_body's project: registrations go to its path.
REGISTER = "/v1/register/races/development"


def register_body(spec, version, name="spec.yaml"):
    return json.dumps({"version": version, "spec": spec, "fileName": name, "project": "races"}).encode()


def test_the_examples_register_list_and_come_back(api):
    first = updraft(api, "register", *EXAMPLES, "--version", "v1")
    assert first.returncode == 0, first.stderr
    assert "registered task        examples/development/fit v1" in first.stdout
    assert "registered launch plan examples/development/diabetes_nightly v1" in first.stdout
    again = updraft(api, "register", *EXAMPLES, "--version", "v1")
    assert again.returncode == 0, again.stderr
    assert "registered" not in again.stdout and again.stdout.count("unchanged") == first.stdout.count("registered")

    # The Python diabetes pipeline is the same spec: registering it under v1 changes nothing.
    python = updraft(api, "register", os.path.join(REPO, "examples", "diabetes", "diabetes.py"), "--version", "v1")
    assert python.returncode == 0, python.stderr
    assert "registered" not in python.stdout and python.stdout.count("unchanged") == 6, python.stdout

    names = updraft(api, "get", "tasks", "--project", "examples", "--output", "json")
    assert [n["name"] for n in json.loads(names.stdout)] == ["fit", "predict", "score", "split"]
    filtered = updraft(api, "get", "tasks", "--project", "examples", "--prefix", "sp", "--output", "json")
    assert [n["name"] for n in json.loads(filtered.stdout)] == ["split"], filtered.stderr
    table = updraft(api, "get", "tasks", "--project", "examples")
    assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "LATEST", "VERSION"], table.stdout
    workflow = updraft(api, "get", "workflows", "diabetes", "--version", "v1", "--project", "examples")
    assert workflow.returncode == 0, workflow.stderr
    closure = json.loads(workflow.stdout)["workflow"]
    assert sorted(t["id"]["name"] for t in closure["tasks"]) == ["fit", "predict", "score", "split"]
    projects = json.loads(updraft(api, "get", "projects", "--output", "json").stdout)
    assert {"name": "examples", "domains": ["development"]} in projects


def test_changed_content_under_a_registered_version_is_a_409_naming_both_digests(api, tmp_path):
    spec = tmp_path / "hello.yaml"
    spec.write_text(HELLO)
    assert updraft(api, "register", str(spec), "--version", "v7", "--project", "conflicts").returncode == 0
    spec.write_text(HELLO.replace("python:3.11-slim", "python:3.12-slim"))
    refused = updraft(api, "register", str(spec), "--version", "v7", "--project", "conflicts")
    assert refused.returncode == 1
    assert refused.stderr.count("sha256:") == 2, refused.stderr
    assert "register the change under a new version" in refused.stderr
    shown = json.loads(updraft(api, "get", "tasks", "greet", "--version", "v7", "--project", "conflicts").stdout)
    assert shown["task"]["container"]["image"] == "python:3.11-slim", "the registered version is unchanged"


def test_an_invalid_spec_is_a_400_with_every_diagnostic_and_nothing_registered(api, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("tasks:\n  ok: {image: x, command: [x]}\n  t: {image: x, command: [t], retries: -1, cache: true}\n")
    refused = updraft(api, "register", str(spec), "--version", "v1", "--project", "invalid")
    assert refused.returncode == 2, "an invalid spec is a usage error, as validate says"
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert [e.split(":")[1].strip() for e in errors] == ["tasks.t.cache", "tasks.t.retries"], refused.stderr
    assert "hint:" in refused.stderr
    status, body = signed(api, "GET", "/v1/tasks/invalid/development/ok/v1")
    assert (status, body["code"]) == (404, "NotFound")


def test_requests_without_a_valid_signature_are_refused_before_the_function(api):
    status, body = signed(api, "GET", "/v1/projects", sign=False)
    assert (status, body["message"]) == (403, "Missing Authentication Token")
    status, body = signed(api, "GET", "/v1/projects", secret="not-the-secret")
    assert status == 403 and "signature" in body["message"]
    body = register_body(HELLO, "v1")
    status, _ = signed(api, "POST", REGISTER, body=body, send_body=body.replace(b"v1", b"v2"))
    assert status == 403, "a body changed after signing is refused"
    status, body = signed(api, "GET", "/v1/projects")
    assert status == 200, body


def test_api_errors_keep_their_status_through_the_gateway(api):
    status, body = signed(api, "POST", REGISTER, body=b'{"version": "v1", "spec": "x", "sepc": 1}')
    assert (status, body["code"], body["path"]) == (400, "MalformedBody", "sepc")
    status, body = signed(api, "GET", REGISTER)
    assert (status, body["code"]) == (405, "MethodNotAllowed")
    status, body = signed(api, "GET", "/v1/tasks/examples/development/fit?limit=0")
    assert (status, body["code"]) == (400, "InvalidLimit")


def test_twenty_concurrent_registrations_of_one_version_have_one_winner(api):
    results = [None] * 20

    def register(i):
        spec = HELLO.replace("python:3.11-slim", f"python:3.11-slim-{i}")
        results[i] = signed(api, "POST", REGISTER, body=register_body(spec, "race"))

    threads = [threading.Thread(target=register, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 19, results
    winner = next(i for i, (status, _) in enumerate(results) if status == 201)
    assert all(body["message"].count("sha256:") == 2 for status, body in results if status == 409)
    status, body = signed(api, "GET", "/v1/tasks/races/development/greet/race")
    assert body["task"]["container"]["image"] == f"python:3.11-slim-{winner}"


def test_a_large_entity_is_kept_in_the_bucket_and_read_back_whole(api, aws, tmp_path):
    args = ", ".join(f"arg-{i:05d}-{'x' * 20}" for i in range(3000))
    spec = tmp_path / "large.yaml"
    spec.write_text(f"tasks:\n  big: {{image: x, command: [python3, {args}]}}\n")
    registered = updraft(api, "register", str(spec), "--version", "v1", "--project", "large")
    assert registered.returncode == 0, registered.stderr
    shown = json.loads(updraft(api, "get", "tasks", "big", "--version", "v1", "--project", "large").stdout)
    assert len(shown["task"]["container"]["args"]) == 3001
    keys = aws("s3").list_objects_v2(Bucket=api["outputs"]["DataBucketName"], Prefix="specs/").get("Contents", [])
    assert keys, "the body over the item limit went to specs/ in the bucket"
    # Each version records who registered it: the signer's IAM ARN, as API Gateway names it.
    status, versions = signed(api, "GET", "/v1/tasks/large/development/big")
    assert status == 200 and versions["versions"][0]["registeredBy"] == "arn:aws:iam::123456789012:user/testing", versions
    listed = updraft(api, "get", "tasks", "big", "--project", "large")
    assert "arn:aws:iam::123456789012:user/testing" in listed.stdout, listed.stdout


def test_a_body_changed_in_the_bucket_after_registration_is_refused_naming_both_digests(api, aws, tmp_path):
    args = ", ".join(f"arg-{i:05d}-{'y' * 20}" for i in range(3000))
    spec = tmp_path / "tampered.yaml"
    spec.write_text(f"tasks:\n  victim: {{image: x, command: [python3, {args}]}}\n")
    assert updraft(api, "register", str(spec), "--version", "v1", "--project", "tamper").returncode == 0
    status, body = signed(api, "GET", "/v1/tasks/tamper/development/victim/v1")
    assert status == 200, body
    bucket = api["outputs"]["DataBucketName"]
    s3 = aws("s3")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="specs/")["Contents"]
               if b"victim" in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
    registered = "sha256:" + key.removeprefix("specs/").removesuffix(".json")
    # Another project's task (or anyone with write access to specs/) swaps the image.
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original.replace(b'"image":"x"', b'"image":"evil"'))
    status, body = signed(api, "GET", "/v1/tasks/tamper/development/victim/v1")
    assert status >= 400 and "evil" not in json.dumps(body), body
    assert registered in body["message"] and body["message"].count("sha256:") == 2, body
    assert "changed after registration" in body["message"], body


def test_launch_plans_are_activated_and_deactivated_from_the_cli(api):
    assert updraft(api, "register", *EXAMPLES, "--version", "v1").returncode == 0
    plan = ("diabetes_nightly", "--version", "v1", "--project", "examples")
    off = updraft(api, "launchplan", "deactivate", *plan)
    assert (off.returncode, off.stdout.strip()) == (0, "launch plan diabetes_nightly v1: inactive"), off.stderr
    listed = json.loads(updraft(api, "get", "launch-plans", "--project", "examples", "--output", "json").stdout)
    assert listed[0].get("activeVersion", "") == ""
    on = updraft(api, "launchplan", "activate", *plan)
    assert on.stdout.strip() == "launch plan diabetes_nightly v1: active", on.stderr
    missing = updraft(api, "launchplan", "activate", "diabetes_nightly", "--version", "v9", "--project", "examples")
    assert missing.returncode == 1 and "is not registered" in missing.stderr


def test_live_answers_match_the_openapi_document(api):
    """The document describes what the deployed function really answers."""
    document = load()

    def check(method, template, path, body=b""):
        status, answer = signed(api, method, path, body=body)
        operation = document["paths"][template][method.lower()]
        response = resolve(document, operation["responses"][str(status)])
        validator(document, response["content"]["application/json"]["schema"]).validate(answer)
        return status

    assert updraft(api, "register", *EXAMPLES, "--version", "v1").returncode == 0
    assert check("POST", "/v1/register/{project}/{domain}", REGISTER, register_body(HELLO, "doc")) == 201
    assert check("POST", "/v1/register/{project}/{domain}", REGISTER, register_body(HELLO, "doc")) == 200
    assert check("POST", "/v1/register/{project}/{domain}", REGISTER, register_body(HELLO.replace("3.11", "3.12"), "doc")) == 409
    assert check("POST", "/v1/register/{project}/{domain}", REGISTER, register_body("tasks: {t: {image: x}}", "doc")) == 400
    assert check("GET", "/v1/projects", "/v1/projects") == 200
    assert check("GET", "/v1/tasks/{project}/{domain}", "/v1/tasks/examples/development") == 200
    assert check("GET", "/v1/tasks/{project}/{domain}/{name}", "/v1/tasks/examples/development/fit") == 200
    assert check("GET", "/v1/tasks/{project}/{domain}/{name}/{version}", "/v1/tasks/examples/development/fit/v1") == 200
    assert check("GET", "/v1/workflows/{project}/{domain}/{name}/{version}",
                 "/v1/workflows/examples/development/diabetes/v1") == 200
    assert check("GET", "/v1/launch-plans/{project}/{domain}/{name}/{version}",
                 "/v1/launch-plans/examples/development/diabetes_nightly/v1") == 200
    assert check("GET", "/v1/tasks/{project}/{domain}/{name}/{version}", "/v1/tasks/examples/development/fit/v9") == 404


def test_registration_makes_each_versions_job_definitions_and_state_machine_once(api, aws):
    assert updraft(api, "register", *EXAMPLES, "--version", "v1").returncode == 0
    assert updraft(api, "register", *EXAMPLES, "--version", "v1").returncode == 0
    prefix = api["outputs"]["MetadataTableName"].removesuffix("-metadata")
    name = f"{prefix}-examples-development-diabetes-v1"
    machines = [m for m in aws("stepfunctions").list_state_machines()["stateMachines"] if m["name"] == name]
    assert len(machines) == 1, [m["name"] for m in aws("stepfunctions").list_state_machines()["stateMachines"]]
    definition = json.loads(aws("stepfunctions").describe_state_machine(
        stateMachineArn=machines[0]["stateMachineArn"])["definition"])
    with open(os.path.join(REPO, "tests/data/state_machines/snapshots/examples-diabetes.json")) as f:
        expected = json.load(f)
    first = definition["States"]["Nodes"]["Branches"][0]["States"]
    node_function = next(iter(first.values()))["Parameters"]["FunctionName"]
    assert node_function.endswith(f":function:{prefix}-node")
    assert definition["States"]["Finish"]["Parameters"]["TableName"] == api["outputs"]["MetadataTableName"]
    assert json.dumps(definition) == json.dumps(expected).replace(
        "arn:aws:lambda:us-east-1:123456789012:function:updraft-node", node_function).replace(
        '"updraft-metadata"', json.dumps(api["outputs"]["MetadataTableName"])), \
        "the generator's definition, as registered"
    jobs = aws("batch").describe_job_definitions(jobDefinitionName=f"{prefix}-examples-development-fit-v1")
    assert [d["revision"] for d in jobs["jobDefinitions"]] == [1], "registering again made no new revision"
    command = jobs["jobDefinitions"][0]["containerProperties"]["command"]
    assert os.path.basename(command[0]) == "updraft" and command[1:3] == ["exec", "--"], command


def test_a_registration_of_more_new_entities_than_a_transaction_takes_is_refused_whole(api, tmp_path):
    spec = tmp_path / "many.yaml"
    spec.write_text("tasks:\n" + "".join(f"  t{i}: {{image: x, command: [run, '{i}']}}\n" for i in range(51)))
    refused = updraft(api, "register", str(spec), "--version", "v1", "--project", "many")
    assert refused.returncode != 0 and "51 new entities" in refused.stderr and "at most 50" in refused.stderr, \
        refused.stderr
    status, _ = signed(api, "GET", "/v1/tasks/many/development/t0/v1")
    assert status == 404, "nothing of it was registered"


def test_each_project_gets_a_job_role_that_reaches_only_its_own_data(api, aws, tmp_path):
    """A project's first registration makes its job role under the stack's boundary; read
    back from IAM and evaluated offline (the emulator does not enforce IAM), a task of
    team-a cannot overwrite team-b's outputs.json or a registered body under specs/."""
    sys.path.insert(0, os.path.join(REPO, "infra"))
    from iam_eval import allowed

    spec = tmp_path / "team.yaml"
    spec.write_text(HELLO)
    for team in ("team-a", "team-b"):
        registered = updraft(api, "register", str(spec), "--version", "v1", "--project", team)
        assert registered.returncode == 0, registered.stderr
    prefix = api["outputs"]["MetadataTableName"].removesuffix("-metadata")
    iam = aws("iam")
    role = iam.get_role(RoleName=f"{prefix}-job-team-a")["Role"]
    boundary_arn = api["outputs"]["JobRoleBoundaryArn"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary_arn
    assert "ecs-tasks.amazonaws.com" in json.dumps(role["AssumeRolePolicyDocument"])
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="project-data")["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    version = iam.get_policy(PolicyArn=boundary_arn)["Policy"]["DefaultVersionId"]
    boundary = iam.get_policy_version(PolicyArn=boundary_arn, VersionId=version)["PolicyVersion"]["Document"]
    boundary = json.loads(boundary) if isinstance(boundary, str) else boundary
    bucket = f"arn:aws:s3:::{api['outputs']['DataBucketName']}"

    def may(action, key):
        return allowed([policy], action, f"{bucket}/{key}", boundary=boundary)

    assert may("s3:PutObject", "runs/team-a/development/r1/greet/outputs.json")
    assert may("s3:GetObject", "bundles/team-a/sha256/ab.tar.gz")
    assert not may("s3:PutObject", "runs/team-b/development/r1/greet/outputs.json"), "another project's outputs"
    assert not may("s3:PutObject", "specs/0f3a.json"), "a registered body"
    assert not may("s3:GetObject", "specs/0f3a.json")
    # The task's job definition runs as its project's role.
    definitions = aws("batch").describe_job_definitions(jobDefinitionName=f"{prefix}-team-a-development-greet-v1")
    assert definitions["jobDefinitions"][0]["containerProperties"]["jobRoleArn"] == role["Arn"]


def test_registrations_and_launches_name_their_caller_in_the_answer_and_the_access_log(api, aws, tmp_path):
    spec = tmp_path / "audit.yaml"
    spec.write_text(HELLO.replace("tasks:", "workflows:\n  hello:\n    nodes:\n      g: {task: greet, inputs: {name: x}}\ntasks:", 1))
    registered = updraft(api, "register", str(spec), "--version", "v1", "--project", "audit", "--output", "json")
    assert registered.returncode == 0, registered.stderr
    caller = "arn:aws:iam::123456789012:user/testing"
    assert json.loads(registered.stdout)[0]["response"]["registeredBy"] == caller, registered.stdout
    launch = {"workflow": {"name": "hello", "version": "v1"}, "name": unique("audited")}
    status, answer = signed(api, "POST", "/v1/executions/audit/development", body=json.dumps(launch).encode())
    assert (status, answer["principal"]) == (201, caller), answer
    refused, _ = signed(api, "POST", "/v1/executions/audit/development", body=b"{}", sign=False)
    assert refused == 403
    prefix = api["outputs"]["MetadataTableName"].removesuffix("-metadata")
    group = f"/aws/apigateway/{prefix}-access"

    def lines():
        events = aws("logs").filter_log_events(logGroupName=group)["events"]
        return [json.loads(e["message"]) for e in events]

    wait_for(lambda: any(line["status"] == "403" for line in lines()), timeout=10)
    logged = lines()
    register = [line for line in logged if line["method"] == "POST" and line["path"] == "/live/v1/register/audit/development"]
    launched = [line for line in logged if line["method"] == "POST" and line["path"] == "/live/v1/executions/audit/development"]
    assert [(line["caller"], line["status"]) for line in register] == [(caller, "201")], register
    assert (launched[0]["caller"], launched[0]["status"]) == (caller, "201"), launched
    assert int(launched[0]["latencyMs"]) >= 0 and launched[0]["requestId"] not in ("", "-")
    unsigned = [line for line in launched if line["status"] == "403"]
    assert unsigned and unsigned[0]["caller"] == "-" and "Authentication" in unsigned[0]["error"], unsigned
