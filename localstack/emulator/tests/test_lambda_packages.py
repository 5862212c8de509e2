"""The Lambda packages a user deploys to AWS, built as docs/deploy-aws.md builds
them (`cargo lambda build --release --arm64 --output-format zip -p
updraft-functions`): each zip holds an executable aarch64 `bootstrap` of a sane
size, and `updraft deploy` takes exactly those zips. `.ci/run` builds them and
sets UPDRAFT_LAMBDA_PACKAGES to their directory; elsewhere these tests are
skipped (the cross-build takes about ten minutes on two cores). The emulator
runs host binaries, so what it invokes stays the host build."""
import json
import os
import stat
import subprocess
import zipfile

import pytest

from conftest import unique

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
UPDRAFT = os.path.join(TARGET, "debug", "updraft")
PACKAGES = os.environ.get("UPDRAFT_LAMBDA_PACKAGES")
FUNCTIONS = ["api", "health", "node", "status"]
EM_AARCH64 = 183  # ELF e_machine
# Lambda refuses a zip over 50 MB for direct upload; below 100 kB is not one of our binaries.
SANE_BYTES = (100_000, 50_000_000)

pytestmark = pytest.mark.skipif(not PACKAGES, reason="UPDRAFT_LAMBDA_PACKAGES is set by .ci/run after cargo lambda build")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_package_holds_an_executable_aarch64_bootstrap(function):
    path = os.path.join(PACKAGES, function, "bootstrap.zip")
    assert SANE_BYTES[0] < os.path.getsize(path) < SANE_BYTES[1], path
    with zipfile.ZipFile(path) as package:
        assert package.namelist() == ["bootstrap"]
        mode = package.getinfo("bootstrap").external_attr >> 16
        binary = package.read("bootstrap")
    assert stat.S_ISREG(mode) and mode & 0o111, f"{function}: bootstrap must be executable ({oct(mode)})"
    assert binary[:4] == b"\x7fELF" and binary[4] == 2, f"{function}: a 64-bit ELF"
    assert int.from_bytes(binary[18:20], "little") == EM_AARCH64, f"{function}: built for aarch64 (Graviton)"


def test_updraft_deploy_takes_the_arm64_packages(endpoint):
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    result = subprocess.run(
        [UPDRAFT, "deploy", "--endpoint-url", endpoint, "--packages", PACKAGES, "--stack-name", unique("arm64"),
         "--name-prefix", unique("arm"), "--output", "json"],
        capture_output=True, text=True, env={**os.environ, **credentials}, timeout=600)
    assert result.returncode == 0, result.stderr
    deployed = json.loads(result.stdout)
    assert deployed["status"] == "CREATE_COMPLETE" and deployed["outputs"]["ApiUrl"], deployed
