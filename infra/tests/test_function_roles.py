"""Least privilege, proven offline: each function's role (infra/template.yaml) is
evaluated (infra/iam_eval.py) against the calls its function makes and against calls
it must never be able to make. The calls come from the code: every AWS SDK operation
the functions' sources call must be claimed below by a role or exempted with the
reason, so a new call cannot ship without its grant (the emulator does not enforce
IAM, so only this test would notice)."""
import glob
import os
import re
import sys

import pytest

INFRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
REPO = os.path.join(INFRA, "..")
sys.path.insert(0, INFRA)

from cfnlint.decode import decode_str  # noqa: E402
from iam_eval import allowed  # noqa: E402
from lint_policies import Resolver, identity_policies  # noqa: E402

with open(os.path.join(INFRA, "template.yaml")) as _f:
    TEMPLATE, _ = decode_str(_f.read())
R = Resolver(TEMPLATE)

ACCOUNT = "arn:aws:{service}:us-east-1:123456789012:{rest}"
TABLE = R.arn("MetadataTable")
OTHER_TABLE = ACCOUNT.format(service="dynamodb", rest="table/other-stack-metadata")
BUCKET = R.arn("DataBucket")
NODE_FUNCTION = R.arn("NodeFunction")
MACHINE = ACCOUNT.format(service="states", rest="stateMachine:updraft-ml-team-development-train-v1")
EXECUTION = ACCOUNT.format(service="states", rest="execution:updraft-ml-team-development-train-v1:r1")
JOB = ACCOUNT.format(service="batch", rest="job/0b8d7c1e")
JOB_ROLE = "arn:aws:iam::123456789012:role/updraft-job-ml-team"
BOUNDARY = {"iam:PermissionsBoundary": R.arn("JobRoleBoundary")}

# Who calls what, on which resource (with the request context IAM would see).
CALLS = {
    "ApiFunctionRole": [
        *[(f"dynamodb:{a}", TABLE, {}) for a in ("GetItem", "BatchGetItem", "PutItem", "BatchWriteItem", "UpdateItem",
                                                 "DeleteItem", "Query", "ConditionCheckItem")],
        ("dynamodb:Query", f"{TABLE}/index/by-time", {}),
        ("dynamodb:Query", f"{TABLE}/index/by-owner", {}),
        ("s3:GetObject", f"{BUCKET}/specs/0f3a.json", {}),
        ("s3:PutObject", f"{BUCKET}/specs/0f3a.json", {}),
        ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/fit/items/manifest.json", {}),
        ("batch:RegisterJobDefinition", ACCOUNT.format(service="batch", rest="job-definition/updraft-ml-team-development-fit-v1"), {}),
        ("batch:DescribeJobDefinitions", "*", {}),
        ("batch:DescribeJobs", "*", {}),
        ("batch:TerminateJob", JOB, {}),
        ("states:CreateStateMachine", MACHINE, {}),
        ("states:DescribeStateMachine", MACHINE, {}),
        ("states:StartExecution", MACHINE, {}),
        ("states:StopExecution", EXECUTION, {}),
        ("scheduler:GetSchedule", ACCOUNT.format(service="scheduler", rest="schedule/default/updraft-ml-team-development-nightly"), {}),
        ("scheduler:CreateSchedule", ACCOUNT.format(service="scheduler", rest="schedule/default/updraft-ml-team-development-nightly"), {}),
        ("scheduler:UpdateSchedule", ACCOUNT.format(service="scheduler", rest="schedule/default/updraft-ml-team-development-nightly"), {}),
        ("iam:CreateRole", JOB_ROLE, BOUNDARY),
        ("iam:PutRolePolicy", JOB_ROLE, BOUNDARY),
        ("iam:PassRole", JOB_ROLE, {}),
        ("iam:PassRole", R.arn("StateMachineRole"), {}),
        ("iam:PassRole", R.arn("SchedulerRole"), {"iam:PassedToService": "scheduler.amazonaws.com"}),
        ("logs:GetLogEvents", R.arn("JobLogGroup").removesuffix(":*") + ":log-stream:fit/default/abc", {}),
        ("states:GetExecutionHistory", EXECUTION, {}),
        ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/fit/record/outputs-0f3a.json", {}),
    ],
    "NodeFunctionRole": [
        *[(f"dynamodb:{a}", TABLE, {}) for a in ("GetItem", "BatchGetItem", "PutItem", "BatchWriteItem", "UpdateItem",
                                                 "Query", "ConditionCheckItem")],
        ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/fit/outputs.json", {}),
        ("s3:PutObject", f"{BUCKET}/runs/ml-team/development/r1/fit/items/manifest.json", {}),
        ("s3:GetObject", f"{BUCKET}/specs/0f3a.json", {}),
        ("s3:GetObject", f"{BUCKET}/inputs/ml-team/sha256/ab12", {}),
        ("s3:ListBucket", BUCKET, {"s3:prefix": "runs/ml-team/development/r1/fit/outputs/data/"}),
        ("batch:SubmitJob", R.ref("CpuJobQueue"), {}),
        ("batch:SubmitJob", ACCOUNT.format(service="batch", rest="job-definition/updraft-ml-team-development-fit-v1"), {}),
        ("batch:TerminateJob", JOB, {}),
        ("batch:DescribeJobs", "*", {}),
        ("states:SendTaskSuccess", "*", {}),
        ("states:SendTaskFailure", "*", {}),
        ("states:StartExecution", MACHINE, {}),
        ("states:StopExecution", EXECUTION, {}),
        ("lambda:InvokeFunction", NODE_FUNCTION, {}),
    ],
    "StatusFunctionRole": [
        *[(f"dynamodb:{a}", TABLE, {}) for a in ("GetItem", "Query", "UpdateItem")],
        ("dynamodb:Query", f"{TABLE}/index/by-owner", {}),
        ("batch:DescribeJobs", "*", {}),
        ("batch:TerminateJob", JOB, {}),
        ("states:StopExecution", EXECUTION, {}),
        ("states:DescribeExecution", EXECUTION, {}),
        ("lambda:InvokeFunction", NODE_FUNCTION, {}),
        ("sqs:ReceiveMessage", R.arn("EventDeadLetterQueue"), {}),
        ("sqs:DeleteMessage", R.arn("EventDeadLetterQueue"), {}),
    ],
}

# What no function may do: other stacks' resources, IAM beyond the job roles, the
# registry's bodies from the data plane.
FORBIDDEN = {
    "ApiFunctionRole": [
        ("iam:CreateRole", "arn:aws:iam::123456789012:role/admin", {}),
        ("iam:CreateRole", JOB_ROLE, {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ("iam:CreateRole", JOB_ROLE, {}),
        ("iam:PutRolePolicy", "arn:aws:iam::123456789012:role/updraft-api", BOUNDARY),
        ("iam:AttachRolePolicy", JOB_ROLE, BOUNDARY),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/admin", {}),
        ("dynamodb:PutItem", OTHER_TABLE, {}),
        ("s3:PutObject", f"{BUCKET}/runs/ml-team/development/r1/fit/outputs.json", {}),
        ("states:StartExecution", ACCOUNT.format(service="states", rest="stateMachine:other-x"), {}),
        ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/fit/outputs.json", {}),
        ("s3:PutObject", f"{BUCKET}/runs/ml-team/development/r1/fit/record/outputs-0f3a.json", {}),
    ],
    "NodeFunctionRole": [
        ("s3:PutObject", f"{BUCKET}/specs/0f3a.json", {}),
        ("s3:GetObject", f"{BUCKET}/bundles/ml-team/sha256/ab12.tar.gz", {}),
        ("s3:PutObject", "arn:aws:s3:::other-bucket/runs/x", {}),
        ("dynamodb:DeleteItem", TABLE, {}),
        ("dynamodb:PutItem", OTHER_TABLE, {}),
        ("batch:SubmitJob", ACCOUNT.format(service="batch", rest="job-queue/other-stack-cpu"), {}),
        ("iam:PassRole", JOB_ROLE, {}),
        ("states:StartExecution", ACCOUNT.format(service="states", rest="stateMachine:other-x"), {}),
        ("lambda:InvokeFunction", ACCOUNT.format(service="lambda", rest="function:other-function"), {}),
    ],
    "StatusFunctionRole": [
        ("dynamodb:PutItem", TABLE, {}),
        ("dynamodb:UpdateItem", OTHER_TABLE, {}),
        ("lambda:InvokeFunction", ACCOUNT.format(service="lambda", rest="function:other-function"), {}),
        ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/fit/outputs.json", {}),
        ("iam:PassRole", JOB_ROLE, {}),
    ],
}

# The sources of the deployed functions (the CLI-only modules excluded: deploy.rs runs
# under the deployer's credentials, api_client.rs and queues.rs under the user's).
FUNCTION_SOURCES = ["functions/lambda/src/**/*.rs", "functions/aws/src/registry.rs", "functions/aws/src/runs.rs",
                    "functions/aws/src/dynamo.rs", "functions/aws/src/s3.rs"]
# An SDK operation's IAM actions where they are not `<service>:<OperationName>`.
ACTIONS_OF = {
    "transact_write_items": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"],
    "head_object": ["s3:GetObject"],
    "list_objects_v2": ["s3:ListBucket"],
    "create_multipart_upload": ["s3:PutObject"],
    "upload_part": ["s3:PutObject"],
    "complete_multipart_upload": ["s3:PutObject"],
    "invoke": ["lambda:InvokeFunction"],
}
SERVICE_PREFIX = {"sfn": "states", "cloudwatchlogs": "logs", "dynamodb": "dynamodb", "s3": "s3", "batch": "batch",
                  "sqs": "sqs", "lambda": "lambda", "iam": "iam", "scheduler": "scheduler", "sts": "sts"}
# Operations in those sources that no stack role makes, and why.
EXEMPT = {
    "delete_object": "functions/aws/src/s3.rs's delete, for the local engine's --blob-store (the user's credentials)",
    "head_bucket": "functions/aws/src/s3.rs's check_bucket, for the local engine's --blob-store",
    "abort_multipart_upload": "updraft exec's uploads, under the project's job role (test_project_access.py)",
}
# The job role (test_project_access.py) makes updraft exec's S3 calls; s3.rs serves both.
JOB_ROLE_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:AbortMultipartUpload"}


def sdk_operations():
    """operation name -> service, from the SDK crates in Cargo.lock (their src/operation/ folders)."""
    with open(os.path.join(REPO, "Cargo.lock")) as f:
        crates = re.findall(r'name = "aws-sdk-([a-z0-9]+)"\nversion = "([^"]+)"', f.read())
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    operations = {}
    for service, version in crates:
        folders = glob.glob(os.path.join(home, "registry", "src", "*", f"aws-sdk-{service}-{version}", "src", "operation", "*"))
        assert folders, f"aws-sdk-{service} {version} is not in {home}/registry (run cargo fetch)"
        for folder in folders:
            operations.setdefault(os.path.basename(folder), set()).add(service)
    return operations


def calls_in_sources():
    """Every SDK operation the functions' sources call: `.operation_name()`, tests left out."""
    operations = sdk_operations()
    found = {}
    for pattern in FUNCTION_SOURCES:
        for path in glob.glob(os.path.join(REPO, pattern), recursive=True):
            if path.endswith("tests.rs"):
                continue
            with open(path) as f:
                code = f.read().split("#[cfg(test)]")[0]
            for name in re.findall(r"\.([a-z][a-z0-9_]*)\(\)", code):
                if name in operations:
                    found.setdefault(name, set()).update(operations[name])
    return found


def actions_of(operation, services):
    if operation in ACTIONS_OF:
        return ACTIONS_OF[operation]
    pascal = "".join(part.title() for part in operation.split("_"))
    return [f"{SERVICE_PREFIX[s]}:{pascal}" for s in services]


def role_policies(role):
    return [R.resolve(document) for document in identity_policies(TEMPLATE["Resources"][role])]


def test_every_sdk_call_of_the_functions_is_claimed_by_a_role_or_exempt_with_a_reason():
    claimed = {action for calls in CALLS.values() for action, _, _ in calls}
    found = calls_in_sources()
    assert "submit_job" in found and "transact_write_items" in found, "the scan finds the functions' calls"
    unclaimed = []
    for operation, services in sorted(found.items()):
        if operation in EXEMPT:
            continue
        missing = [a for a in actions_of(operation, services) if a not in claimed and a not in JOB_ROLE_ACTIONS]
        # An operation whose name several SDKs share (get_item? put_object?) counts if one service's action is claimed.
        if len(missing) == len(actions_of(operation, services)):
            unclaimed.append(f"{operation} ({', '.join(missing)})")
    assert unclaimed == [], "claim these calls for the roles whose function makes them, or exempt them: " + "; ".join(unclaimed)


@pytest.mark.parametrize("role,action,resource,context",
                         [(role, *call) for role, calls in CALLS.items() for call in calls])
def test_a_functions_role_allows_the_calls_its_function_makes(role, action, resource, context):
    assert allowed(role_policies(role), action, resource, context), f"{role} cannot {action} on {resource}"


@pytest.mark.parametrize("role,action,resource,context",
                         [(role, *call) for role, calls in FORBIDDEN.items() for call in calls])
def test_a_functions_role_cannot_make_calls_outside_its_job(role, action, resource, context):
    assert not allowed(role_policies(role), action, resource, context), f"{role} may {action} on {resource}"
