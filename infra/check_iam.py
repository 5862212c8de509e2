#!/usr/bin/env python3
"""Fails if any IAM statement in a CloudFormation template allows a wildcard
action (`*`, `service:*`) or a `*` resource where a narrower ARN exists.

`*` resources are accepted only for actions that AWS does not let a policy
scope to a resource; each is listed below with the reason.

Usage: check_iam.py [TEMPLATE]   (default: infra/template.yaml)
"""
import os
import sys

from cfnlint.decode import decode_str

# Actions without resource-level permissions (Service Authorization Reference).
STAR_RESOURCE_ONLY = {
    "batch:DescribeJobs": "Batch's Describe* actions support no resource-level permissions",
    "batch:DescribeJobDefinitions": "Batch's Describe* actions support no resource-level permissions",
    "states:SendTaskSuccess": "task-token actions support no resource-level permissions",
    "states:SendTaskFailure": "task-token actions support no resource-level permissions",
    "batch:DescribeComputeEnvironments": "Batch's Describe* actions support no resource-level permissions",
    "batch:DescribeJobQueues": "Batch's Describe* actions support no resource-level permissions",
    "sts:GetCallerIdentity": "it names no resource; it answers who the caller is",
    "logs:DescribeLogGroups": "it lists log groups by prefix and supports no resource-level permissions",
    **{f"logs:{a}LogDelivery": "vended log deliveries (API Gateway access logs) support no resource-level permissions"
       for a in ("Create", "Get", "Update", "Delete")},
    "logs:ListLogDeliveries": "vended log deliveries (API Gateway access logs) support no resource-level permissions",
}

POLICY_HOLDERS = {
    "AWS::IAM::Role": lambda p: [pol.get("PolicyDocument", {}) for pol in p.get("Policies", [])],
    "AWS::IAM::Policy": lambda p: [p.get("PolicyDocument", {})],
    "AWS::IAM::ManagedPolicy": lambda p: [p.get("PolicyDocument", {})],
}


def as_list(value):
    return value if isinstance(value, list) else [value]


def problems(template):
    found = []
    for name, resource in (template.get("Resources") or {}).items():
        documents = POLICY_HOLDERS.get(resource.get("Type"), lambda p: [])(resource.get("Properties", {}))
        for document in documents:
            for index, statement in enumerate(as_list(document.get("Statement", []))):
                if statement.get("Effect") != "Allow":
                    continue
                where = f"{name} statement {statement.get('Sid', index)}"
                if "NotAction" in statement or "NotResource" in statement:
                    found.append(f"{where}: NotAction/NotResource grant everything else; list what is allowed")
                actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
                for action in actions:
                    if action == "*" or action.endswith(":*"):
                        found.append(f"{where}: wildcard action {action!r}; list the actions the holder calls")
                resources = as_list(statement.get("Resource", []))
                if "*" in resources:
                    unjustified = [a for a in actions if a not in STAR_RESOURCE_ONLY]
                    if unjustified:
                        found.append(
                            f"{where}: Resource '*' for {', '.join(unjustified)}; scope it to the ARNs used "
                            "(only actions without resource-level permissions may use '*')"
                        )
    return found


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "template.yaml")
    template, errors = decode_str(open(path).read())
    if errors:
        print(f"{path}: cannot read the template: {errors}", file=sys.stderr)
        return 2
    found = problems(template)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    print(f"iam check: {path}: {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
