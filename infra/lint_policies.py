#!/usr/bin/env python3
"""Runs parliament, a maintained IAM policy linter (it knows every service's
actions, resource types and condition keys), over every identity policy of a
CloudFormation template: each role's inline policies and each managed policy.

CloudFormation's intrinsic functions are resolved to example values first (the
account 123456789012, us-east-1, the name prefix `updraft`, each resource's ARN
in the shape its type has), so the linter sees policies as IAM will.

A finding fails the check unless the resource's Metadata justifies it in place:

    Metadata:
      parliament:
        ignore:
          - {issue: RESOURCE_STAR, action: "batch:DescribeJobs", reason: "..."}

Usage: lint_policies.py TEMPLATE...
"""
import json
import re
import sys

from cfnlint.decode import decode_str

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "AWS::StackName": "updraft", "AWS::URLSuffix": "amazonaws.com"}

# The ARN a resource of each type has (`!GetAtt X.Arn`, or `!Ref X` where Ref is an ARN).
ARN_OF_TYPE = {
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:us-east-1:123456789012:table/{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:us-east-1:123456789012:function:{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:us-east-1:123456789012:{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:us-east-1:123456789012:log-group:{name}:*",
    "AWS::Batch::JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/{name}",
    "AWS::Batch::ComputeEnvironment": "arn:aws:batch:us-east-1:123456789012:compute-environment/{name}",
    "AWS::IAM::Role": "arn:aws:iam::123456789012:role/{name}",
    "AWS::IAM::InstanceProfile": "arn:aws:iam::123456789012:instance-profile/{name}",
    "AWS::Events::Rule": "arn:aws:events:us-east-1:123456789012:rule/{name}",
    "AWS::ApiGateway::RestApi": "abcdef1234",
    "AWS::IAM::ManagedPolicy": "arn:aws:iam::123456789012:policy/{name}",
}
# The property that names a resource of each type, when the template sets it.
NAME_PROPERTY = {"AWS::S3::Bucket": "BucketName", "AWS::IAM::Role": "RoleName",
                 "AWS::IAM::ManagedPolicy": "ManagedPolicyName", "AWS::Lambda::Function": "FunctionName"}
# What `!Ref X` gives for types whose Ref is a name, not an ARN.
REF_IS_NAME = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Lambda::Function", "AWS::Logs::LogGroup",
               "AWS::IAM::Role", "AWS::ApiGateway::RestApi"}


class Resolver:
    def __init__(self, template):
        self.resources = template.get("Resources", {})
        self.parameters = {name: str(p.get("Default", f"example-{name.lower()}"))
                           for name, p in (template.get("Parameters") or {}).items()}
        self.parameters.setdefault("NamePrefix", "updraft")

    def name(self, logical):
        resource = self.resources[logical]
        named = (resource.get("Properties") or {}).get(NAME_PROPERTY.get(resource["Type"], ""))
        return str(self.resolve(named)) if named is not None else f"updraft-{logical.lower()}"

    def arn(self, logical):
        kind = self.resources[logical]["Type"]
        return ARN_OF_TYPE.get(kind, "arn:aws:unknown:us-east-1:123456789012:{name}").format(name=self.name(logical))

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if self.resources[name]["Type"] in REF_IS_NAME:
            return self.name(name)
        return self.arn(name)

    def get_att(self, target):
        logical, attribute = target.split(".", 1) if isinstance(target, str) else target
        if attribute == "Arn":
            return self.arn(logical)
        return f"updraft-{logical.lower()}-{attribute.lower()}"

    def sub(self, text, extra=None):
        def one(match):
            name = match.group(1)
            if extra and name in extra:
                return str(self.resolve(extra[name]))
            if "." in name:
                return self.get_att(name)
            return self.ref(name)
        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg)
            if key == "Fn::Sub":
                return self.sub(arg) if isinstance(arg, str) else self.sub(arg[0], arg[1])
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
            if key in ("Fn::If",):
                return self.resolve(arg[1])
        return {k: self.resolve(v) for k, v in value.items()}


def identity_policies(resource):
    properties = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role":
        return [p["PolicyDocument"] for p in properties.get("Policies", [])]
    if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        return [properties["PolicyDocument"]]
    return []


def findings(path):
    from parliament import analyze_policy_string

    template, matches = decode_str(open(path).read())
    if matches:
        return [f"{path}: cannot be read: {matches[0]}"]
    resolver = Resolver(template)
    found = []
    for logical, resource in template.get("Resources", {}).items():
        ignored = (resource.get("Metadata") or {}).get("parliament", {}).get("ignore", [])
        for index, document in enumerate(identity_policies(resource)):
            policy = analyze_policy_string(json.dumps(resolver.resolve(document)), include_community_auditors=True)
            for finding in policy.findings:
                location = finding.location or {}
                details = finding.detail if isinstance(finding.detail, list) else []
                actions = {a.lower() for a in [*(location.get("actions") or []), location.get("action"),
                                               *(d.get("action") for d in details if isinstance(d, dict))] if a}
                justified = [i for i in ignored if i.get("issue") == finding.issue and i.get("reason")
                             and (not i.get("action") or i["action"].lower() in actions)]
                if not justified:
                    found.append(f"{path}: {logical} policy {index}: {finding.issue} ({finding.severity}): "
                                 f"{finding.title}; {json.dumps(finding.detail, default=str)[:300]}; "
                                 f"{json.dumps(finding.location, default=str)}")
    return found


def main(paths):
    problems = [problem for path in paths for problem in findings(path)]
    for problem in problems:
        print(problem)
    print(f"parliament: {len(problems)} unjustified finding(s) in {', '.join(paths)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["infra/template.yaml"]))
