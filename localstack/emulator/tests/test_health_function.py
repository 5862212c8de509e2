"""The real health Lambda (functions/lambda/src/bin/health.rs, built by cargo) as the
emulator runs it: its deployment package holds the Rust binary as `bootstrap`."""
import json
import os
import sys

import pytest

from conftest import unique

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from package_functions import package  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def health_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.environ.get("UPDRAFT_HEALTH_BOOTSTRAP", os.path.join(target, "debug", "health"))
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing; build it with: cargo build -p updraft-functions --bin health")
    return path



def test_the_health_function_answers_through_the_emulator(aws, role_arn):
    function = aws("lambda").create_function(
        FunctionName=unique("health"), Runtime="provided.al2023", Role=role_arn, Handler="bootstrap",
        Code={"ZipFile": package(health_binary())}, Timeout=10)
    event = {"resource": "/v1/health", "path": "/v1/health", "httpMethod": "GET", "headers": {}, "body": None}
    response = aws("lambda").invoke(FunctionName=function["FunctionArn"], Payload=json.dumps(event).encode())
    assert "FunctionError" not in response
    answer = json.loads(response["Payload"].read())
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert body["status"] == "ok" and body["service"] == "updraft" and body["path"] == "/v1/health"
