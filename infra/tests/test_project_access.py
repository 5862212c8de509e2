"""One stack, many teams, checked offline: the three project policies of
infra/project-access.yaml against every API route (who may do what, in which
project), and a project's job role (tests/data/job_roles, kept current by core's
tests) under the template's permissions boundary against the calls a task makes and
those it must never be able to make. The policies are evaluated by infra/iam_eval.py."""
import json
import os
import sys

import pytest
import yaml

INFRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
REPO = os.path.join(INFRA, "..")
sys.path.insert(0, INFRA)

from cfnlint.decode import decode_str  # noqa: E402
from iam_eval import allowed, decision  # noqa: E402
from lint_policies import Resolver, identity_policies  # noqa: E402

API_ID = "abcdef1234"
ARN = f"arn:aws:execute-api:us-east-1:123456789012:{API_ID}/live"
BUCKET = "arn:aws:s3:::updraft-data-123456789012-us-east-1"
ROLES = ["reader", "launcher", "admin"]

# The least role each route needs: a reader reads, a launcher runs workflows, an
# admin changes what is registered, scheduled or cached. None: no project in it.
LEAST_ROLE = {
    ("POST", "/v1/register/{project}/{domain}"): "admin",
    ("GET", "/v1/projects"): "reader",
    ("GET", "/v1/health"): "reader",
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/{version}/activate"): "admin",
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/{version}/deactivate"): "admin",
    ("POST", "/v1/launch-plans/{project}/{domain}/{name}/ticks"): "launcher",
    ("POST", "/v1/executions/{project}/{domain}"): "launcher",
    ("POST", "/v1/executions/{project}/{domain}/{name}/abort"): "launcher",
    ("POST", "/v1/executions/{project}/{domain}/{name}/recover"): "launcher",
    ("POST", "/v1/executions/{project}/{domain}/{name}/relaunch"): "launcher",
    ("DELETE", "/v1/cache/{project}/{domain}/{task}/{version}"): "admin",
}


def routes():
    """Every (method, path template) of the API document."""
    with open(os.path.join(REPO, "docs", "api", "openapi.yaml")) as f:
        document = yaml.safe_load(f)
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in ("get", "post", "delete", "put", "patch")]


def least_role(method, template):
    return LEAST_ROLE.get((method, template), "reader" if method == "GET" else None)


def project_policies(project):
    """The three managed policies of infra/project-access.yaml for `project`, resolved."""
    with open(os.path.join(INFRA, "project-access.yaml")) as f:
        template, _ = decode_str(f.read())
    resolver = Resolver(template)
    resolver.parameters.update({"Project": project, "ApiId": API_ID})
    resources = template["Resources"]
    policy = {role: resolver.resolve(identity_policies(resources[f"Project{role.title()}"])[0]) for role in ROLES}
    # Each role is attached with the ones below it (docs/security.md).
    return {role: [policy[r] for r in ROLES[: ROLES.index(role) + 1]] for role in ROLES}


def concrete(template, project, name="nightly"):
    return (template.replace("{project}", project).replace("{domain}", "production").replace("{name}", name)
            .replace("{version}", "v1").replace("{node}", "fit").replace("{task}", "fit"))


def invoke_arn(method, path):
    return f"{ARN}/{method}/{path.lstrip('/')}"


def test_every_route_has_a_least_role():
    unknown = [(m, t) for m, t in routes() if m != "GET" and (m, t) not in LEAST_ROLE]
    assert unknown == [], f"say which role may call these routes: {unknown}"


@pytest.mark.parametrize("role", ROLES)
def test_a_project_role_may_call_exactly_its_routes_in_its_own_project(role):
    policies = project_policies("ml-team")[role]
    wrong = []
    for method, template in routes():
        need = least_role(method, template)
        for project in ("ml-team", "other-team", "ml-team2"):
            expected = ROLES.index(role) >= ROLES.index(need) and ("{project}" not in template or project == "ml-team")
            got = allowed(policies, "execute-api:Invoke", invoke_arn(method, concrete(template, project)))
            if got != expected:
                wrong.append(f"{role} {method} {concrete(template, project)}: {'allowed' if got else 'denied'}")
    assert wrong == [], "\n".join(wrong)


def test_a_project_named_inside_another_projects_path_grants_nothing():
    # A task, workflow or run in other-team named like the granted project.
    policies = project_policies("ml-team")["admin"]
    for path in ["/v1/tasks/other-team/development/ml-team/v1", "/v1/executions/other-team/ml-team/ml-team/abort",
                 "/v1/launch-plans/other-team/development/ml-team/v1/activate", "/v1/register/other-team/ml-team"]:
        method = "GET" if path.startswith("/v1/tasks") else "POST"
        assert not allowed(policies, "execute-api:Invoke", invoke_arn(method, path)), path


def job_role_and_boundary():
    with open(os.path.join(REPO, "tests", "data", "job_roles", "ml-team.json")) as f:
        role = json.load(f)
    with open(os.path.join(INFRA, "template.yaml")) as f:
        template, _ = decode_str(f.read())
    boundary = Resolver(template).resolve(template["Resources"]["JobRoleBoundary"]["Properties"]["PolicyDocument"])
    return role, boundary


# What a task of ml-team does (updraft exec: its inputs, its code, its outputs, a map's items).
TASK_CALLS = [
    ("s3:GetObject", f"{BUCKET}/inputs/ml-team/sha256/ab12", {}),
    ("s3:GetObject", f"{BUCKET}/bundles/ml-team/sha256/ab12.tar.gz", {}),
    ("s3:GetObject", f"{BUCKET}/runs/ml-team/development/r1/split/outputs/train.csv", {}),
    ("s3:PutObject", f"{BUCKET}/runs/ml-team/development/r2/fit/outputs.json", {}),
    ("s3:PutObject", f"{BUCKET}/runs/ml-team/development/r2/fit/items/3/outputs.json", {}),
    ("s3:AbortMultipartUpload", f"{BUCKET}/runs/ml-team/development/r2/fit/outputs/model", {}),
    ("s3:ListBucket", BUCKET, {"s3:prefix": "runs/ml-team/development/r1/split/outputs/data/"}),
]
# What it must never be able to do.
FORBIDDEN_CALLS = [
    ("s3:PutObject", f"{BUCKET}/runs/other-team/development/r9/fit/outputs.json", {}),
    ("s3:GetObject", f"{BUCKET}/runs/other-team/development/r9/fit/outputs/model", {}),
    ("s3:PutObject", f"{BUCKET}/runs/ml-team2/development/r9/fit/outputs.json", {}),
    ("s3:PutObject", f"{BUCKET}/specs/0f3a.json", {}),
    ("s3:GetObject", f"{BUCKET}/specs/0f3a.json", {}),
    ("s3:GetObject", f"{BUCKET}/bundles/other-team/sha256/ab12.tar.gz", {}),
    ("s3:GetObject", f"{BUCKET}/inputs/other-team/sha256/ab12", {}),
    ("s3:PutObject", f"{BUCKET}/bundles/ml-team/sha256/ab12.tar.gz", {}),
    ("s3:PutObject", f"{BUCKET}/inputs/ml-team/sha256/ab12", {}),
    ("s3:DeleteObject", f"{BUCKET}/runs/ml-team/development/r1/split/outputs.json", {}),
    ("s3:ListBucket", BUCKET, {"s3:prefix": "runs/other-team/"}),
    ("s3:ListBucket", BUCKET, {"s3:prefix": "specs/"}),
    ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/updraft-metadata", {}),
    ("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/other-stack-metadata", {}),
    ("iam:PutRolePolicy", "arn:aws:iam::123456789012:role/updraft-job-ml-team", {}),
    ("iam:CreateRole", "arn:aws:iam::123456789012:role/anything", {}),
    ("states:SendTaskSuccess", "*", {}),
    ("batch:SubmitJob", "arn:aws:batch:us-east-1:123456789012:job-queue/updraft-cpu", {}),
]


@pytest.mark.parametrize("action,resource,context", TASK_CALLS)
def test_a_projects_job_role_makes_the_calls_its_tasks_make(action, resource, context):
    role, boundary = job_role_and_boundary()
    assert allowed([role], action, resource, context, boundary=boundary)


@pytest.mark.parametrize("action,resource,context", FORBIDDEN_CALLS)
def test_a_projects_job_role_cannot_reach_other_projects_or_the_registry(action, resource, context):
    role, boundary = job_role_and_boundary()
    assert not allowed([role], action, resource, context, boundary=boundary)


def test_the_boundary_alone_keeps_specs_out_of_reach_whatever_a_role_policy_says():
    _, boundary = job_role_and_boundary()
    everything = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    assert not allowed([everything], "s3:PutObject", f"{BUCKET}/specs/0f3a.json", boundary=boundary)
    assert not allowed([everything], "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t", boundary=boundary)
    assert allowed([everything], "s3:PutObject", f"{BUCKET}/runs/x/y", boundary=boundary)


def test_the_evaluator_follows_iams_rules():
    allow = {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/runs/*"}
    deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/runs/secret/*"}
    assert decision([{"Statement": [allow]}], "S3:GETOBJECT", "arn:aws:s3:::b/runs/a/b") == "Allow"
    assert decision([{"Statement": [allow]}], "s3:GetObject", "arn:aws:s3:::b/RUNS/a") == "ImplicitDeny"
    assert decision([{"Statement": [allow, deny]}], "s3:GetObject", "arn:aws:s3:::b/runs/secret/x") == "Deny"
    conditional = {**allow, "Condition": {"StringLike": {"s3:prefix": ["runs/a/*"]}}}
    assert allowed([{"Statement": [conditional]}], "s3:GetObject", "arn:aws:s3:::b/runs/x", {"s3:prefix": "runs/a/1"})
    assert not allowed([{"Statement": [conditional]}], "s3:GetObject", "arn:aws:s3:::b/runs/x", {})
    with pytest.raises(ValueError):
        allowed([{"Statement": [{**allow, "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}}]}],
                "s3:GetObject", "arn:aws:s3:::b/runs/x")
