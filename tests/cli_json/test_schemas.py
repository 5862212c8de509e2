"""Every `-o json` output documented in docs/schemas/ is checked against its schema,
produced by the real binary on real runs (docs/cli.md, "JSON output")."""

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
UPDRAFT = TARGET / "debug" / "updraft"
SCHEMAS = ROOT / "docs" / "schemas"


def registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def check(name: str, document: object) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, registry=registry(),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.fixture
def updraft(tmp_path: Path):
    env = {**os.environ, "UPDRAFT_HOME": str(tmp_path / "home")}

    def run(*args: str, code: int = 0) -> object:
        out = subprocess.run([str(UPDRAFT), *args, "-o", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == code, out.stderr
        return json.loads(out.stdout)

    return run


def test_every_schema_is_valid_and_every_json_command_has_one() -> None:
    registry()
    names = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert {"run", "validate", "executions-list", "executions-get", "executions-delete", "gc"} <= names


def test_local_commands_print_what_their_schemas_say(updraft, tmp_path: Path) -> None:
    ran = updraft("run", "examples/fanout/fanout.yaml", "--input", "count=5")
    check("run", ran)
    failing = tmp_path / "failing.yaml"
    failing.write_text("tasks:\n  t: {image: busybox, command: [\"false\"]}\nworkflows:\n  w:\n    nodes: {n: {task: t}}\n")
    failed = updraft("run", str(failing), code=1)
    assert failed["execution"]["phase"] == "WORKFLOW_FAILED"
    check("run", failed)
    name = ran["execution"]["id"]["name"]
    check("executions-get", updraft("executions", "get", name))
    check("executions-list", updraft("executions", "list"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  t: {image: busybox, command: [true], retries: -1}\n")
    check("validate", updraft("validate", "examples/fanout/fanout.yaml", str(bad), code=2))
    check("executions-delete", updraft("executions", "delete", name))
    check("gc", updraft("gc", "--dry-run"))
    check("gc", updraft("gc"))


def test_a_document_that_breaks_a_schema_is_caught() -> None:
    # The check itself can fail: a run's document without its nodes does not pass.
    with pytest.raises(AssertionError):
        check("run", {"execution": {"id": {"project": "p", "domain": "d", "name": "n"}, "phase": "SUCCEEDED"},
                      "outputs": {}})


def test_node_phases_and_run_phases_are_the_documented_names(updraft) -> None:
    ran = updraft("run", "examples/hello/hello.yaml")
    assert ran["execution"]["phase"] == "WORKFLOW_SUCCEEDED"
    assert {n["phase"] for n in ran["nodes"]} == {"SUCCEEDED"}
