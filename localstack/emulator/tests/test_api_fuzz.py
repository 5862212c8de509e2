"""A fuzz of the API through the deployed stack: schemathesis generates requests from
docs/api/openapi.yaml (valid and invalid ones), signs them with SigV4
(localstack/emulator/fuzz/sigv4_hooks.py) and checks every answer: no 5xx, only
documented status codes and content types, bodies that match their schemas, invalid
requests refused, and unsigned or badly signed ones refused by the gateway."""
import os
import subprocess

import pytest

from test_registry_api import EXAMPLES, REPO, api, updraft  # noqa: F401 (the stack fixture)

SCHEMATHESIS = os.environ.get("UPDRAFT_SCHEMATHESIS")
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection", "ignored_auth"]


@pytest.mark.skipif(not SCHEMATHESIS, reason="scripts/test installs schemathesis and sets UPDRAFT_SCHEMATHESIS")
def test_the_api_answers_a_fuzz_of_its_own_document_as_documented(api, tmp_path):  # noqa: F811
    # Registered entities give the readers something to find besides 404s.
    assert updraft(api, "register", *EXAMPLES, "--version", "v1").returncode == 0
    env = {**os.environ, **api["env"], "SCHEMATHESIS_HOOKS": "sigv4_hooks",
           "PYTHONPATH": os.path.join(REPO, "localstack", "emulator", "fuzz")}
    fuzz = subprocess.run(
        [SCHEMATHESIS, "run", os.path.join(REPO, "docs", "api", "openapi.yaml"), "--url", api["url"],
         "--checks", ",".join(CHECKS), "--phases", "examples,coverage,fuzzing", "--max-examples", "25",
         "--workers", "1", "--seed", "20261205", "--continue-on-failure"],
        # In a scratch directory: schemathesis keeps its cache (.schemathesis/) where it runs.
        capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path)
    print(fuzz.stdout[-3000:])
    assert fuzz.returncode == 0, fuzz.stdout[-12000:] + fuzz.stderr[-2000:]
