"""The stack template: cfn-lint clean and least privilege."""
import os
import sys

import pytest

INFRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TEMPLATE = os.path.join(INFRA, "template.yaml")
sys.path.insert(0, INFRA)

from check_iam import main, problems  # noqa: E402


def test_cfn_lint_is_clean():
    from cfnlint.api import lint_all

    # Errors and warnings alike fail (warnings are errors here); informational
    # rules (I*, such as I4010's request for architecture notes) are advice.
    matches = [m for m in lint_all(open(TEMPLATE).read()) if not m.rule.id.startswith("I")]
    assert matches == [], "\n".join(str(m) for m in matches)


def test_the_template_has_no_yaml_anchors_or_aliases():
    """CloudFormation refuses YAML aliases (`*x`) unless the template is packaged;
    the emulator accepts them, so only this test and cfn-lint's W1101 catch one."""
    import yaml

    class Recorder(yaml.SafeLoader):
        found = []

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                Recorder.found.append(f"alias *{event.anchor} at line {event.start_mark.line + 1}")
            elif self.check_event(yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent):
                event = self.peek_event()
                if event.anchor:
                    Recorder.found.append(f"anchor &{event.anchor} at line {event.start_mark.line + 1}")
            return super().compose_node(parent, index)

    for tag in ("!Ref", "!Sub", "!GetAtt", "!Join", "!Select", "!Split", "!If", "!Equals", "!Not", "!And", "!Or",
                "!FindInMap", "!GetAZs", "!ImportValue", "!Base64", "!Cidr", "!Condition"):
        Recorder.add_constructor(tag, lambda loader, node: None)
    yaml.load(open(TEMPLATE).read(), Loader=Recorder)
    assert Recorder.found == [], "write the repeated parts out: " + ", ".join(Recorder.found)


def test_the_template_passes_the_iam_check():
    assert main(["check_iam.py", TEMPLATE]) == 0


def role(*statements):
    return {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": list(statements)}}]}}}}


@pytest.mark.parametrize("statement, expected", [
    ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}, "wildcard action '*'"),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}, "wildcard action 's3:*'"),
    ({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}, "Resource '*' for s3:GetObject"),
    ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}, "NotAction/NotResource"),
])
def test_broad_statements_are_refused(statement, expected):
    found = problems(role(statement))
    assert len(found) == 1 and expected in found[0] and found[0].startswith("R statement")


def test_star_is_accepted_only_for_actions_without_resource_level_permissions():
    assert problems(role({"Effect": "Allow", "Action": "batch:DescribeJobs", "Resource": "*"})) == []
    assert problems(role({"Effect": "Deny", "Action": "*", "Resource": "*"})) == []


def cfn_resources():
    """The template's resources, with CloudFormation's short tags read as plain values."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_form(loader, tag, node):
        if isinstance(node, yaml.ScalarNode):
            return f"!{tag} {loader.construct_scalar(node)}"
        if isinstance(node, yaml.SequenceNode):
            return [f"!{tag}", *loader.construct_sequence(node, deep=True)]
        return {f"!{tag}": loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", short_form)
    return yaml.load(open(TEMPLATE), Loader=Loader)["Resources"]


def test_every_checkov_skip_says_why():
    """checkov findings are fixed or skipped in the resource's Metadata with the reason (.ci/run runs checkov)."""
    skips = [
        (name, skip)
        for name, resource in cfn_resources().items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "the template skips some checks"
    for name, skip in skips:
        assert skip["id"].startswith("CKV_"), (name, skip)
        assert len(skip.get("comment", "")) > 40, f"{name}: skipping {skip['id']} needs its reason"


def test_functions_invoked_by_events_keep_what_they_fail_to_handle():
    """EventBridge invokes the node and status functions asynchronously: an event they fail on
    after Lambda's retries goes to the dead-letter queue instead of being dropped."""
    resources = cfn_resources()
    targets = {
        target["Arn"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"]["Targets"]
    }
    assert targets, "rules target functions"
    invoked = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and f"!GetAtt {name}.Arn" in targets
    ]
    assert sorted(invoked) == ["NodeFunction", "StatusFunction"], targets
    for name in invoked:
        assert "DeadLetterConfig" in resources[name]["Properties"], f"{name} is invoked by EventBridge without a DLQ"


def test_the_state_machine_role_grants_exactly_the_integrations_the_generated_state_machines_call():
    """Every `Resource` of every generated state machine (the snapshots that
    core/tests/state_machines.rs keeps current) is an integration whose IAM action
    the role grants, and the role grants nothing else."""
    import glob
    import json

    integration_actions = {"lambda:invoke": "lambda:InvokeFunction", "dynamodb:updateItem": "dynamodb:UpdateItem"}
    called = set()

    def walk(states):
        for state in states.values():
            resource = state.get("Resource", "")
            if resource.startswith("arn:aws:states:::"):
                service_call = resource.removeprefix("arn:aws:states:::").split(".")[0]
                assert service_call in integration_actions, f"a new integration, {resource}: grant it and add it here"
                called.add(integration_actions[service_call])
            for branch in state.get("Branches", []):
                walk(branch["States"])
            if "Iterator" in state or "ItemProcessor" in state:
                walk((state.get("ItemProcessor") or state["Iterator"])["States"])

    snapshots = glob.glob(os.path.join(INFRA, "..", "tests", "data", "state_machines", "snapshots", "*.json"))
    assert snapshots
    for path in snapshots:
        walk(json.load(open(path))["States"])
    statements = cfn_resources()["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    granted = set()
    for statement in statements:
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    assert granted == called


def test_the_policy_linter_finds_nothing_unjustified():
    from lint_policies import main as lint

    assert lint([TEMPLATE, os.path.join(INFRA, "deployer-policy.yaml")]) == 0


def test_a_policy_linter_finding_fails_unless_the_resource_justifies_it(tmp_path):
    from lint_policies import findings

    def template(metadata):
        return f"""
Resources:
  Table: {{Type: AWS::DynamoDB::Table, Properties: {{}}}}
  Reader:
    Type: AWS::IAM::Role
{metadata}
    Properties:
      AssumeRolePolicyDocument: {{}}
      Policies:
        - PolicyName: p
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - {{Effect: Allow, Action: "s3:GetObject", Resource: !GetAtt Table.Arn}}
"""
    path = tmp_path / "t.yaml"
    path.write_text(template(""))
    assert [f for f in findings(str(path)) if "RESOURCE_MISMATCH" in f and "s3:GetObject" in f], "an S3 read on a table"
    unexplained = "    Metadata: {parliament: {ignore: [{issue: RESOURCE_MISMATCH, action: s3:GetObject}]}}"
    path.write_text(template(unexplained))
    assert findings(str(path)), "an ignore without a reason justifies nothing"
    explained = ("    Metadata: {parliament: {ignore: [{issue: RESOURCE_MISMATCH, action: s3:GetObject, "
                 "reason: a test}]}}")
    path.write_text(template(explained))
    assert findings(str(path)) == []
