"""The static `updraft` (scripts/build-static) copied into an image that has
nothing else: a root directory holding only the binary, busybox as the task,
/dev/null, /etc/hosts and the CA bundle. `updraft exec` there downloads an input from the
emulator's S3, runs the task without a shell and publishes its output.

A dynamically linked binary cannot even start in such a root (there is no
loader), so this is the proof that the binary is self-contained. .ci/run builds
it and sets UPDRAFT_STATIC_BINARY; without it the test is skipped.
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import urllib.parse

import pytest

from conftest import unique

STATIC = os.environ.get("UPDRAFT_STATIC_BINARY")
BUSYBOX = shutil.which("busybox")


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not STATIC, reason="set UPDRAFT_STATIC_BINARY (scripts/build-static); .ci/run does")
def test_static_exec_runs_in_an_empty_root(aws, endpoint, tmp_path):
    assert BUSYBOX, "busybox is needed as the task (apt-get install busybox-static)"
    root = tmp_path / "root"
    for directory in ("bin", "dev", "etc/ssl/certs", "tmp"):
        (root / directory).mkdir(parents=True)
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a container runtime provides /dev
    shutil.copy(STATIC, root / "updraft")
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    # An image's usual files: a hosts file (name lookup) and CA certificates (TLS to real AWS).
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")

    s3 = aws("s3")
    bucket = unique("static")
    s3.create_bucket(Bucket=bucket)
    data = b"a,b\n1,2\n3,4\n"
    s3.put_object(Bucket=bucket, Key="in/data.csv", Body=data)
    inputs = {"values": {"data": {"file": {"uri": f"s3://{bucket}/in/data.csv", "format": "csv",
                                           "digest": digest(data)}}}}
    s3.put_object(Bucket=bucket, Key="run/inputs.json", Body=json.dumps(inputs).encode())
    interface = {"inputs": [{"name": "data", "type": {"file": {"format": "csv"}}}],
                 "outputs": [{"name": "copy", "type": {"file": {"format": "csv"}}}]}
    port = urllib.parse.urlparse(endpoint).port
    env = {
        # By name, through the root's /etc/hosts: the static binary's own name lookup.
        "AWS_ENDPOINT_URL": f"http://localhost:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "UPDRAFT_INTERFACE": json.dumps(interface),
        "UPDRAFT_INPUTS_URI": f"s3://{bucket}/run/inputs.json",
        "UPDRAFT_OUTPUT_PREFIX": f"s3://{bucket}/run/out/",
        "UPDRAFT_WORK_DIR": "/tmp/work",
    }

    def enter_root():
        os.chroot(root)
        os.chdir("/")

    result = subprocess.run(
        ["/updraft", "exec", "--", "/bin/busybox", "cp", "{{inputs.data}}", "{{outputs.copy}}"],
        env=env, preexec_fn=enter_root, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()

    document = json.loads(s3.get_object(Bucket=bucket, Key="run/out/outputs.json")["Body"].read())
    output = document["outputs"]["copy"]
    uri = output["value"]["file"]["uri"]
    assert uri == f"s3://{bucket}/run/out/outputs/copy"
    copied = s3.get_object(Bucket=bucket, Key="run/out/outputs/copy")["Body"].read()
    assert copied == data
    assert output["digest"] == digest(data)
