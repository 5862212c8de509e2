"""The real health Lambda (functions/src/bin/health.rs, built by cargo) as the
emulator runs it: its deployment package holds the Rust binary as `bootstrap`."""
import io
import json
import os
import stat
import zipfile

import pytest

from conftest import unique

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def health_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.environ.get("UPDRAFT_HEALTH_BOOTSTRAP", os.path.join(target, "debug", "health"))
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing; build it with: cargo build -p updraft-functions --bin health")
    return path


def package(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(info, open(binary, "rb").read())
    return buffer.getvalue()


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
