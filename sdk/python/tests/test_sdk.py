"""The SDK's translation to the spec document, its errors and its values.

What the documents mean is the Rust compiler's business (cli/tests/python.rs
runs them); these tests pin what the SDK writes and what it refuses."""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest

import updraft
from updraft import _spec, _types
from updraft._core import UpdraftError


def load(tmp_path: Path, source: str, selected: str | None = None) -> dict[str, Any]:
    """The spec document of a module written from `source` (a unique module name each time)."""
    path = tmp_path / f"m_{uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(source))
    module, _ = _spec.load(str(path))
    return _spec.document(module, selected)


@dataclasses.dataclass
class Params:
    lr: float
    layers: list[int]


@pytest.mark.parametrize(
    "hint, written",
    [
        (int, "int"),
        (float, "float"),
        (str, "string"),
        (bool, "bool"),
        (datetime.datetime, "datetime"),
        (datetime.timedelta, "duration"),
        (list[int], {"list": "int"}),
        (dict[str, float], {"map": "float"}),
        (Optional[str], {"optional": "string"}),  # noqa: UP045 - both spellings are read
        (int | None, {"optional": "int"}),
        (Path, "file"),
        (Annotated[Path, updraft.Format("joblib")], {"file": {"format": "joblib"}}),
        (updraft.Directory, "directory"),
        (updraft.DataFrameFile, {"dataframe": {"format": "csv"}}),
        (
            Annotated[updraft.DataFrameFile, updraft.Format("parquet"), updraft.Columns(age=int)],
            {"dataframe": {"format": "parquet", "columns": {"age": "int"}}},
        ),
        (Params, {"struct": {"lr": "float", "layers": {"list": "int"}}}),
    ],
)
def test_type_hints_are_written_as_spec_types(hint: Any, written: Any) -> None:
    assert _types.spec_type(hint) == written


@pytest.mark.parametrize(
    "hint, complaint",
    [
        (dict[int, str], "map keys are strings"),
        (int | str, "a union is not a spec type"),
        (Any, "not a spec type"),
        (set, "not a spec type"),
    ],
)
def test_hints_without_a_spec_type_are_refused_with_the_fix(hint: Any, complaint: str) -> None:
    with pytest.raises(_types.UpdraftTypeError, match=complaint):
        _types.spec_type(hint)


def test_a_workflow_with_a_map_a_branch_and_a_subworkflow(tmp_path: Path) -> None:
    doc = load(
        tmp_path,
        """
        from typing import NamedTuple
        import updraft

        updraft.configure(project="demo", domain="staging", image="registry/demo:1")

        @updraft.task
        def numbers(count: int) -> list[int]:
            return list(range(count))

        @updraft.task(cache=True, cache_version="2", cpu="250m", memory="128Mi", retries=1, timeout="1m")
        def square(x: int, scale: int = 1) -> int:
            return x * x * scale

        @updraft.task
        def total(values: list[int]) -> int:
            return sum(values)

        @updraft.task
        def describe(label: str, value: int) -> str:
            return f"{label}: {value}"

        @updraft.workflow
        def summed(count: int) -> int:
            return total(values=updraft.map(square, over=["x"], concurrency=4)(x=numbers(count=count), scale=2))

        class Out(NamedTuple):
            sum: int
            verdict: str

        @updraft.workflow
        def main(count: int = 10, threshold: int = 100) -> Out:
            s = summed(count=count)
            verdict = (
                updraft.conditional("verdict")
                .if_((s > threshold) & (s != 1000))
                .then(describe(label="large", value=s))
                .else_()
                .then(describe(label="$mall", value=s))
            )
            return Out(s, verdict)

        updraft.LaunchPlan("hourly", main, default_inputs={"count": 3}, schedule=updraft.Rate("1h"))
        """,
    )
    spec = doc["spec"]
    assert (spec["project"], spec["domain"]) == ("demo", "staging")
    square = spec["tasks"]["square"]
    assert square["command"][:3] == ["python3", "-m", "updraft.task"]
    assert square["command"][3].endswith(":square")
    assert square["image"] == "registry/demo:1"
    assert square["cache"] == {"version": "2"}
    assert square["resources"] == {"cpu": "250m", "memory": "128Mi"}
    assert (square["retries"], square["timeout"]) == (1, "1m")
    assert square["inputs"] == {"x": "int", "scale": {"type": "int", "default": 1}}
    assert square["outputs"] == {"o0": "int"}

    summed = spec["workflows"]["summed"]["nodes"]
    assert summed["square"] == {
        "map": {"task": "square", "over": ["x"], "concurrency": 4},
        "inputs": {"x": "$numbers.o0", "scale": 2},
    }
    assert summed["total"]["inputs"] == {"values": "$square.o0"}

    main = spec["workflows"]["main"]
    assert main["nodes"]["summed"] == {"workflow": "summed", "inputs": {"count": "$inputs.count"}}
    branch = main["nodes"]["verdict"]["branch"]
    assert branch["cases"][0]["if"] == "($summed.o0 > $inputs.threshold) and ($summed.o0 != 1000)"
    assert branch["cases"][0]["then"] == {"task": "describe", "inputs": {"label": "large", "value": "$summed.o0"}}
    assert branch["else"]["inputs"]["label"] == "$$mall", "a literal $ is written $$"
    assert set(main["nodes"]) == {"summed", "verdict"}, "the branch's calls are its cases, not nodes"
    assert main["outputs"] == {
        "sum": {"type": "int", "from": "$summed.o0"},
        "verdict": {"type": "string", "from": "$verdict.o0"},
    }
    assert spec["launch_plans"]["hourly"] == {
        "workflow": "main",
        "default_inputs": {"count": 3},
        "schedule": {"rate": "1h"},
    }
    # Every entity and node has the line that made it.
    locations = doc["locations"]
    assert locations["tasks.square"].endswith(":11"), "the decorator's line, as tracebacks show"
    assert locations["workflows.main.nodes.verdict"].endswith(":35")


def test_selecting_a_workflow_keeps_what_it_needs(tmp_path: Path) -> None:
    doc = load(
        tmp_path,
        """
        import updraft

        @updraft.task
        def a(x: int) -> int:
            return x

        @updraft.task
        def b(x: int) -> int:
            return x

        @updraft.workflow
        def first(x: int) -> int:
            return a(x=x)

        @updraft.workflow
        def second(x: int) -> int:
            return b(x=b(x=x))
        """,
        selected="second",
    )
    assert list(doc["spec"]["tasks"]) == ["b"]
    assert list(doc["spec"]["workflows"]) == ["second"]
    assert list(doc["spec"]["workflows"]["second"]["nodes"]) == ["b", "b_2"]


@pytest.mark.parametrize(
    "source, line, message",
    [
        ("@updraft.task\ndef t(x) -> int:\n    return 1\n", 2, "input 'x' has no type hint"),
        ("@updraft.task\ndef t(x: int):\n    return 1\n", 2, "the return type is missing"),
        ("@updraft.task\ndef t(x: set) -> int:\n    return 1\n", 2, "'x': set is not a spec type"),
        (
            "@updraft.task\ndef t(x: int) -> int:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    return t(y=x)\n",
            7,
            "task t has no input 'y'; it takes: x",
        ),
        (
            "@updraft.task\ndef t(x: int) -> int:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    if x > 3:\n        return t(x=x)\n    return t(x=1)\n",
            7,
            "has no truth value",
        ),
        ("@updraft.task(cach=True)\ndef t(x: int) -> int:\n    return 1\n", 2, "@task has no option cach"),
        (
            "@updraft.task\ndef t(x: int, y: int) -> int:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    return t(x, y=1)\n",
            7,
            "task t is called with 1 positional argument(s) in a workflow",
        ),
        (
            "@updraft.task\ndef t(x: int) -> int:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    return t(x=x + 1)\n",
            7,
            "$inputs.x + ...: a promise has no value while the workflow is traced",
        ),
        (
            "@updraft.task\ndef t(x: int) -> int:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    y = t(x=x)\n    return t(x=2 * y)\n",
            8,
            "$t.o0 * ...: a promise has no value",
        ),
        (
            "import dataclasses\n@dataclasses.dataclass\nclass Stats:\n    mean: float\n"
            "@updraft.task\ndef stats(x: int) -> Stats:\n    return Stats(1.0)\n"
            "@updraft.task\ndef t(x: float) -> float:\n    return x\n"
            "@updraft.workflow\ndef w(x: int) -> float:\n    return t(x=stats(x=x).mean)\n",
            14,
            "its field 'mean' is not a value of its own while the workflow is traced",
        ),
        (
            "def f(x: int) -> int:\n    return x\n"
            "g = updraft.task(f)\n"
            "@updraft.workflow\ndef w(x: int) -> int:\n    return g(x=x)\n",
            2,
            "cannot be found again as",
        ),
    ],
)
def test_mistakes_name_the_file_and_line(tmp_path: Path, source: str, line: int, message: str) -> None:
    with pytest.raises(UpdraftError) as caught:
        load(tmp_path, "import updraft\n" + source)
    assert caught.value.where.endswith(f".py:{line}"), caught.value.where
    assert message in caught.value.message


def test_the_cli_translation_reports_errors_with_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import updraft\n\n@updraft.task\ndef t(x) -> int:\n    return 1\n")
    out = subprocess.run([sys.executable, "-m", "updraft", "spec", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "bad.py:3: task t: input 'x' has no type hint" in out.stderr
    assert "hint: annotate it" in out.stderr

    good = tmp_path / "good.py"
    good.write_text("import updraft\n\n@updraft.task\ndef t(x: int) -> int:\n    return x\n")
    out = subprocess.run([sys.executable, "-m", "updraft", "spec", str(good)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["spec"]["tasks"]["t"]["inputs"] == {"x": "int"}


def test_outside_a_workflow_a_task_is_its_function() -> None:
    @updraft.task
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    assert isinstance(double, updraft.Task)


def test_importing_the_runner_module_keeps_the_decorator() -> None:
    import updraft.task  # the point of the test: it must not shadow the decorator

    @updraft.task(cache=True, cache_version="1")
    def t(x: int) -> int:
        return x

    assert isinstance(t, updraft.Task)


def test_values_cross_the_contract_as_their_types(tmp_path: Path) -> None:
    when = datetime.datetime(2026, 11, 27, 3, 0, tzinfo=datetime.timezone.utc)
    assert _types.to_json(when) == "2026-11-27T03:00:00Z"
    assert _types.from_input("2026-11-27T03:00:00Z", datetime.datetime) == when
    assert _types.to_json(datetime.timedelta(minutes=90)) == "5400s"
    assert _types.from_input("1h30m", datetime.timedelta) == datetime.timedelta(minutes=90)
    assert _types.from_input("250ms", datetime.timedelta) == datetime.timedelta(milliseconds=250)
    assert _types.from_input({"lr": 0.1, "layers": [2, 3]}, Params) == Params(0.1, [2, 3])
    assert _types.from_input(None, Optional[int]) is None  # noqa: UP045
    assert _types.from_input(7, float) == 7.0 and isinstance(_types.from_input(7, float), float)
    assert _types.from_input("/data/x.csv", Path) == Path("/data/x.csv")

    out = tmp_path / "params"
    _types.write_output(Params(0.5, [1]), Params, str(out))
    assert json.loads(out.read_text()) == {"lr": 0.5, "layers": [1]}
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    _types.write_output(source, Path, str(tmp_path / "model"))
    assert (tmp_path / "model").read_bytes() == b"weights"
    _types.write_output(None, Optional[int], str(tmp_path / "absent"))  # noqa: UP045
    assert not (tmp_path / "absent").exists(), "an absent optional writes nothing"


def test_pandas_frames_are_read_and_written_as_csv(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    csv = tmp_path / "in.csv"
    csv.write_text("age,bmi\n30,22.5\n41,27.0\n")
    frame = _types.from_input(str(csv), Annotated[pandas.DataFrame, updraft.Columns(age=int, bmi=float)])
    assert list(frame["age"]) == [30, 41]
    _types.write_output(frame, pandas.DataFrame, str(tmp_path / "out"))
    assert (tmp_path / "out").read_text().splitlines() == ["age,bmi", "30,22.5", "41,27.0"]


def test_a_script_that_does_not_import_updraft_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "task_script.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(UpdraftError) as refused:
        _spec.load(str(script))
    assert "is not an Updraft spec: it does not import updraft" in refused.value.message
    assert not marker.exists(), "nothing of it ran"


def test_a_spec_imports_with_its_own_path_as_argv(tmp_path: Path) -> None:
    spec = tmp_path / "argv_probe.py"
    spec.write_text("import sys\nimport updraft\n\nSEEN = list(sys.argv)\n")
    module, _ = _spec.load(str(spec))
    seen = module.SEEN
    assert seen == [str(spec)], "the worker's own arguments never reach the spec"
    assert "--code-dir" not in seen


def auto_version_of(tmp_path: Path, source: str, task: str = "t") -> str:
    doc = load(tmp_path, source)
    version = doc["spec"]["tasks"][task]["cache"]["version"]
    assert isinstance(version, str) and version.startswith("auto-"), version
    return version


AUTO = """
import updraft

def helper(x: int) -> int:
    return x + 1

def unrelated() -> int:
    return 0

@updraft.task(cache=True, cache_version="auto")
def t(x: int) -> int:
    return helper(x) * 2
"""


def test_an_auto_cache_version_follows_the_task_and_the_local_code_it_calls(tmp_path: Path) -> None:
    first = auto_version_of(tmp_path, AUTO)
    assert auto_version_of(tmp_path, AUTO) == first, "the same code, the same version"
    assert auto_version_of(tmp_path, AUTO.replace("* 2", "* 3")) != first, "the task's body changed"
    assert auto_version_of(tmp_path, AUTO.replace("x + 1", "x + 2")) != first, "a helper it calls changed"
    assert auto_version_of(tmp_path, AUTO.replace("return 0", "return 9")) == first, "code it never reaches"


def test_an_auto_cache_version_follows_a_project_local_module(tmp_path: Path) -> None:
    (tmp_path / "features.py").write_text("COLUMNS = ['a', 'b']\n")
    sys.path.insert(0, str(tmp_path))
    try:
        source = (
            "import updraft\nimport features\nimport json\n\n@updraft.task(cache=True, cache_version='auto')\n"
            "def t(x: int) -> int:\n    return len(features.COLUMNS) + len(json.dumps(x))\n"
        )
        first = auto_version_of(tmp_path, source)
        (tmp_path / "features.py").write_text("COLUMNS = ['a', 'b', 'c']\n")
        sys.modules.pop("features", None)
        assert auto_version_of(tmp_path, source) != first, "the local module it names changed"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("features", None)
