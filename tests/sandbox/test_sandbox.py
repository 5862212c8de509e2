"""The cloud path as a newcomer meets it: `updraft sandbox up`, then register and
launch with nothing else set up — no AWS credentials, no emulator settings, no
image mapping. The sandbox runs in a fresh Updraft home and config file; the
function binaries are the ones `./scripts/test` builds."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
UPDRAFT = str(TARGET / "debug" / "updraft")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    home = tmp_path_factory.mktemp("sandbox-home")
    # A newcomer's environment: no AWS settings at all.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("UPDRAFT_")}
    env.update(UPDRAFT_HOME=str(home / "updraft"), UPDRAFT_CONFIG=str(home / "config.toml"))

    def updraft(*args, check=True, timeout=600):
        done = subprocess.run([UPDRAFT, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if check:
            assert done.returncode == 0, f"updraft {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    up = updraft("sandbox", "up", "--port", str(_free_port()))
    assert "sandbox up in" in up.stdout and "next:" in up.stdout, up.stdout
    yield updraft
    updraft("sandbox", "down", check=False)


def outputs(run_json):
    return json.loads(run_json)["execution"]["outputs"]["values"]


@pytest.mark.parametrize("example", ["diabetes/diabetes.py", "fanout/fanout.py"])
def test_an_example_registers_and_runs_in_the_sandbox_as_it_runs_locally(sandbox, example):
    spec = f"examples/{example}"
    registered = sandbox("register", spec, "--version", "v1")
    assert "code bundle sha256:" in registered.stderr, registered.stderr
    cloud = sandbox("launch", spec, "--version", "v1", "--watch", "--output", "json")
    local = sandbox("run", spec, "--output", "json")
    cloud_outputs, local_outputs = outputs(cloud.stdout), outputs(local.stdout)
    assert cloud_outputs.keys() == local_outputs.keys()
    for name, value in local_outputs.items():
        if "file" in value or "dataframe" in value:  # where a file lives differs; that it is one does not
            assert value.keys() == cloud_outputs[name].keys(), name
        else:
            assert cloud_outputs[name] == value, name


def write_project(directory, greeting):
    """A script task in its own directory, on the same image as every other project."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "greet.py").write_text(
        "import json, sys\n"
        f"json.dump({greeting!r} + ' ' + sys.argv[1], open(sys.argv[2], 'w'))\n")
    (directory / "hello.yaml").write_text(
        "tasks:\n"
        "  greet:\n"
        "    image: python:3.11-slim\n"
        "    command: [python3, '{{code_dir}}/greet.py', '{{inputs.name}}', '{{outputs.text}}']\n"
        "    inputs: {name: string}\n"
        "    outputs: {text: string}\n"
        "workflows:\n"
        "  hello:\n"
        "    inputs: {name: {type: string, default: sandbox}}\n"
        "    nodes:\n"
        "      greet: {task: greet, inputs: {name: $inputs.name}}\n"
        "    outputs: {text: $greet.text}\n")
    return directory / "hello.yaml"


def launch_text(sandbox, spec, version, project):
    run = sandbox("launch", str(spec), "--version", version, "--project", project, "--watch", "--output", "json")
    return outputs(run.stdout)["text"]["string"]


def test_two_projects_on_one_image_each_run_their_own_code(sandbox, tmp_path):
    first = write_project(tmp_path / "team-a", "hello from a")
    second = write_project(tmp_path / "team-b", "hello from b")
    sandbox("register", str(first), "--version", "v1", "--project", "team-a")
    sandbox("register", str(second), "--version", "v1", "--project", "team-b")
    assert launch_text(sandbox, first, "v1", "team-a") == "hello from a sandbox"
    assert launch_text(sandbox, second, "v1", "team-b") == "hello from b sandbox"


def test_changed_code_is_a_conflict_under_the_same_version_and_runs_under_a_new_one(sandbox, tmp_path):
    spec = write_project(tmp_path / "greeter", "hello")
    first = sandbox("register", str(spec), "--version", "v1", "--project", "greeter")
    old_digest = first.stderr.split("code bundle ")[1].split()[0]
    assert launch_text(sandbox, spec, "v1", "greeter") == "hello sandbox"

    (spec.parent / "greet.py").write_text((spec.parent / "greet.py").read_text().replace("'hello'", "'bonjour'"))
    refused = sandbox("register", str(spec), "--version", "v1", "--project", "greeter", check=False)
    new_digest = refused.stderr.split("code bundle ")[1].split()[0]
    assert refused.returncode == 1 and new_digest != old_digest
    assert f"registered with code bundle {old_digest}" in refused.stderr, refused.stderr
    assert f"this registration's code bundle is {new_digest}" in refused.stderr, refused.stderr
    # Refused whole: v1 still runs the code it was registered with.
    assert launch_text(sandbox, spec, "v1", "greeter") == "hello sandbox"

    sandbox("register", str(spec), "--version", "v2", "--project", "greeter")
    assert launch_text(sandbox, spec, "v2", "greeter") == "bonjour sandbox"


def test_launch_register_registers_and_launches_in_one_step(sandbox, tmp_path):
    spec = write_project(tmp_path / "one-step", "hi")
    run = sandbox("launch", str(spec), "--version", "v1", "--project", "one-step", "--register", "--watch", "-o", "json")
    assert outputs(run.stdout)["text"]["string"] == "hi sandbox", "stdout holds only the launch's JSON"
    assert "registered workflow" in run.stderr and "code bundle sha256:" in run.stderr, run.stderr
    again = sandbox("launch", str(spec), "--version", "v1", "--project", "one-step", "--register", "--watch", "-o", "json")
    assert "unchanged  workflow" in again.stderr, again.stderr


def test_a_bundle_over_the_limit_is_refused_before_anything_is_uploaded(sandbox, tmp_path):
    spec = write_project(tmp_path / "heavy", "hello")
    with open(spec.parent / "weights.bin", "wb") as big:
        big.truncate(65 * 1024 * 1024)
    refused = sandbox("register", str(spec), "--version", "v1", "--project", "heavy", check=False)
    assert refused.returncode == 1
    assert "weights.bin (68157440 bytes)" in refused.stderr and ".updraftignore" in refused.stderr, refused.stderr
    assert "nothing of it was registered" in refused.stderr
    (spec.parent / ".updraftignore").write_text("*.bin\n")
    sandbox("register", str(spec), "--version", "v1", "--project", "heavy")


def test_up_again_reports_the_running_sandbox_and_status_notices_a_dead_emulator(sandbox):
    again = sandbox("sandbox", "up")
    assert "a sandbox is running already: http://127.0.0.1:" in again.stdout, again.stdout
    status = sandbox("sandbox", "status")
    assert "running" in status.stdout and "deployed" in status.stdout and "answering" in status.stdout, status.stdout

    pid = int(status.stdout.split("(pid ")[1].split(")")[0])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    dead = sandbox("sandbox", "status", check=False)
    assert dead.returncode == 1 and "gone" in dead.stdout, dead.stdout
    # `up` notices and starts (and deploys) a new one — on another port, said, when the asked one is taken.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        restarted = sandbox("sandbox", "up", "--port", str(port))
    assert "is gone; starting a new one" in restarted.stderr and "sandbox up in" in restarted.stdout
    assert f"port {port} is in use; the sandbox takes port" in restarted.stderr, restarted.stderr
    assert sandbox("sandbox", "status").returncode == 0


def test_launch_register_without_a_version_derives_one_from_the_content(sandbox, tmp_path):
    spec = write_project(tmp_path / "derived", "hi")

    def launch():
        run = sandbox("launch", str(spec), "--project", "derived", "--register", "--watch", "-o", "json")
        version = run.stderr.split("version ")[1].split()[0]
        return run, version

    first, version = launch()
    assert version.startswith("c-") and len(version) == 14, first.stderr
    assert outputs(first.stdout)["text"]["string"] == "hi sandbox"
    again, same = launch()
    assert same == version and "unchanged  workflow" in again.stderr, again.stderr
    # Changed code is a new version, not a conflict: the one-step loop of an edit.
    (spec.parent / "greet.py").write_text((spec.parent / "greet.py").read_text().replace("'hi'", "'salut'"))
    edited, new = launch()
    assert new != version and outputs(edited.stdout)["text"]["string"] == "salut sandbox", edited.stderr


def test_run_remote_is_launch_register_watch(sandbox, tmp_path):
    spec = write_project(tmp_path / "run-remote", "hey")
    run = sandbox("run", str(spec), "--remote", "--project", "run-remote", "-o", "json")
    assert outputs(run.stdout)["text"]["string"] == "hey sandbox", run.stderr
    assert "version c-" in run.stderr and "registered workflow" in run.stderr, run.stderr
    refused = sandbox("run", str(spec), "--remote", "--no-cache", check=False)
    assert refused.returncode == 2 and "--no-cache" in refused.stderr, refused.stderr
