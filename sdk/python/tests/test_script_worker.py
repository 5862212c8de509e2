"""The warm worker's script tasks against `python3` itself (docs/python.md, "Script tasks").

Each case runs one script twice with the same argv, environment, working directory
and log files: as a fresh interpreter (what `updraft run` starts without a warm
worker) and as a child forked from a real `python -m updraft worker --scripts`,
spoken to over its protocol as the runner does. Every observable must be equal:
the exit status (a negative one for a signal), stdout and stderr byte for byte.
The probes print what a script can see of its start: `sys.argv`, `__file__`,
`__name__`, its globals, `sys.path`, the working directory, the environment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The SDK the runner puts on a script worker's PYTHONPATH: a directory of its own.
SDK = str(Path(__file__).resolve().parent.parent / "src")

PROBE = """\
import json, os, sys
seen = {
    "argv": sys.argv, "file": __file__, "name": __name__, "globals": list(globals()),
    "path": sys.path, "cwd": os.getcwd(), "env": dict(os.environ), "orig_argv": sys.orig_argv[1:],
    "main_is_this": sys.modules["__main__"].__dict__ is globals(), "spec": repr(__spec__),
    "updraft_loaded": "updraft" in sys.modules, "stdin": sys.stdin.read(),
}
print(json.dumps(seen, indent=1))
print("to stderr", file=sys.stderr)
"""


class Worker:
    """A script worker, started and spoken to as `updraft run` does (engine/src/python.rs)."""

    def __init__(self, env: dict[str, str]) -> None:
        worker_env = dict(env)
        worker_env["PYTHONPATH"] = os.pathsep.join(p for p in (SDK, env.get("PYTHONPATH", "")) if p)
        worker_env["UPDRAFT_WORKER_SDK"] = SDK
        self.process = subprocess.Popen(
            [sys.executable, "-m", "updraft", "worker", "--scripts"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_env,
        )
        assert self.process.stdout is not None
        length = int(self.process.stdout.readline())
        assert json.loads(self.process.stdout.read(length)) == {"ready": True}
        self.next = 0

    def run(self, request: dict[str, Any]) -> tuple[str, int | str]:
        """("warm", exit status) or ("cold", why)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.next += 1
        self.process.stdin.write((json.dumps({"id": self.next, **request}) + "\n").encode())
        self.process.stdin.flush()
        while True:
            answer = json.loads(self.process.stdout.readline())
            if answer["id"] != self.next:
                continue  # the worker's own report of an earlier child's end, after the child's
            if "cold" in answer:
                return "cold", answer["cold"]
            if "exit" in answer:
                return "warm", answer["exit"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    extra = tmp_path / "on_pythonpath"
    extra.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "PYTHONPATH"}
    env.update({"PYTHONPATH": str(extra), "UPDRAFT_INPUTS": str(tmp_path / "inputs.json"), "TASK_SETTING": "é ü"})
    return env


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[Worker]:
    started = Worker(env)
    yield started
    started.close()


def both(
    worker: Worker, env: dict[str, str], tmp_path: Path, argv: list[str], cwd: Path | None = None
) -> tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes]]:
    """(fresh, warm): each run's exit status, stdout and stderr (object addresses,
    which differ from one run to the next of the same interpreter, as `0x?`)."""
    cwd = cwd or tmp_path / "node"
    cwd.mkdir(exist_ok=True)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)

    def read(kind: str) -> tuple[bytes, bytes]:
        def unaddressed(path: Path) -> bytes:
            return re.sub(rb" at 0x[0-9a-f]+", b" at 0x?", path.read_bytes())

        return unaddressed(logs / f"{kind}.out"), unaddressed(logs / f"{kind}.err")

    with open(logs / "fresh.out", "wb") as out, open(logs / "fresh.err", "wb") as err:
        fresh = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False)
    request: dict[str, Any] = {"argv": argv, "cwd": str(cwd), "env": env}
    request.update({"stdout": str(logs / "warm.out"), "stderr": str(logs / "warm.err")})
    if argv[1] == "-m":
        request.update({"module": argv[2], "args": argv[3:], "path0": str(cwd)})
    else:
        script = Path(cwd, argv[1])
        request.update({"script": argv[1], "args": argv[2:], "path0": os.path.dirname(os.path.realpath(script))})
    kind, status = worker.run(request)
    assert kind == "warm", f"the worker refused to fork: {status}"
    assert isinstance(status, int)
    return (fresh.returncode, *read("fresh")), (status, *read("warm"))


def script_request(tmp_path: Path, script: str, env: dict[str, str]) -> dict[str, Any]:
    """A request for `tmp_path/code/SCRIPT`, run in `tmp_path/node`, its output discarded."""
    code = tmp_path / "code"
    return {
        "argv": [],
        "script": str(code / script),
        "args": [],
        "path0": str(code),
        "cwd": str(tmp_path / "node"),
        "env": env,
        "stdout": os.devnull,
        "stderr": os.devnull,
    }


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_a_script_sees_the_start_a_fresh_interpreter_gives(worker: Worker, env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "code" / "probe.py", PROBE)
    fresh, warm = both(worker, env, tmp_path, [sys.executable, "../code/probe.py", "--lr", "0.1", "ü"])
    assert warm == fresh
    seen = json.loads(warm[1])
    assert seen["argv"] == ["../code/probe.py", "--lr", "0.1", "ü"] and seen["name"] == "__main__"
    assert seen["path"][0] == str((tmp_path / "code").resolve()) and SDK not in seen["path"]
    assert not seen["updraft_loaded"], "the worker's own SDK is not the script's"


def test_an_absolute_script_path_and_a_module_run_with_minus_m(
    worker: Worker, env: dict[str, str], tmp_path: Path
) -> None:
    probe = write(tmp_path / "code" / "probe.py", PROBE)
    fresh, warm = both(worker, env, tmp_path, [sys.executable, str(probe), "x"])
    assert warm == fresh
    write(Path(env["PYTHONPATH"]) / "pkg" / "__init__.py", "")
    write(Path(env["PYTHONPATH"]) / "pkg" / "probe_mod.py", PROBE)
    fresh, warm = both(worker, env, tmp_path, [sys.executable, "-m", "pkg.probe_mod", "y"])
    assert warm == fresh
    assert json.loads(warm[1])["argv"] == [str(Path(env["PYTHONPATH"], "pkg", "probe_mod.py")), "y"]
    fresh, warm = both(worker, env, tmp_path, [sys.executable, "-m", "no_such_module"])
    assert warm == fresh and warm[0] == 1 and b"No module named no_such_module" in warm[2]


@pytest.mark.parametrize(
    "body",
    [
        "import sys; sys.exit(3)",
        "import sys; sys.exit('a message for stderr')",
        "import sys; print('bye'); sys.exit(None)",
        "import sys; sys.exit(256 + 7)",
        "import sys; sys.exit(-1)",
        "import sys; sys.exit(True)",
        "import os; print('unflushed', end=''); os._exit(9)",
        "def f():\n    raise ValueError('boom')\nprint('before'); f()",
        "x = (\n",
        "raise SystemExit(4)",
        "import os, signal; print('ended', flush=True); os.kill(os.getpid(), signal.SIGTERM)",
        "raise KeyboardInterrupt",
        "import atexit, sys; atexit.register(lambda: print('at exit', file=sys.stderr)); print('main')",
        "import atexit; atexit.register(lambda: 1 / 0); print('main')",
        "import threading, time\n"
        "def late():\n    time.sleep(0.2); print('thread done', flush=True)\n"
        "threading.Thread(target=late).start(); print('main returns')",
        "import sys, io\nsys.stdout.write('x' * 100000)\nsys.stderr.write('y' * 3)",
        "if __name__ == '__main__':\n    print('as main')",
        "import sys; sys.excepthook = lambda *a: print('custom hook', a[0].__name__); raise RuntimeError",
        "import warnings; warnings.warn('deprecated here', DeprecationWarning)",
    ],
)
def test_exit_statuses_output_and_ends_are_a_fresh_interpreters(
    worker: Worker, env: dict[str, str], tmp_path: Path, body: str
) -> None:
    write(tmp_path / "code" / "task.py", body + "\n")
    fresh, warm = both(worker, env, tmp_path, [sys.executable, str(tmp_path / "code" / "task.py")])
    assert warm == fresh


def test_a_missing_script_fails_as_python_does(worker: Worker, env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    fresh, warm = both(worker, env, tmp_path, [sys.executable, str(tmp_path / "code" / "gone.py")])
    assert warm == fresh and warm[0] == 2


def test_what_a_script_imports_is_imported_once_its_own_modules_in_each_child(
    worker: Worker, env: dict[str, str], tmp_path: Path
) -> None:
    counts = tmp_path / "imports.log"
    # A third-party module (on PYTHONPATH) and a module next to the script each note every import.
    note = f"open({str(counts)!r}, 'a').write(__name__ + '\\n')\n"
    write(Path(env["PYTHONPATH"]) / "heavy_dependency.py", note)
    write(tmp_path / "code" / "helpers.py", note + "import json\n")
    write(tmp_path / "code" / "train.py", "import heavy_dependency\nimport helpers\nprint('trained')\n")
    for _ in range(3):
        _, warm = both(worker, env, tmp_path, [sys.executable, str(tmp_path / "code" / "train.py")])
        assert warm == (0, b"trained\n", b"")
    # Three fresh interpreters import each module once; the worker imports the dependency
    # once for all its children, and each child imports the script's own helpers.
    assert sorted(counts.read_text().split()) == ["heavy_dependency"] * (3 + 1) + ["helpers"] * (3 + 3)


def test_the_worker_refuses_what_it_cannot_give_a_fresh_interpreters_way(
    worker: Worker, env: dict[str, str], tmp_path: Path
) -> None:
    code = tmp_path / "code"
    write(code / "shadow" / "json.py", "print('the local json')\n")
    write(code / "shadow" / "task.py", "import json\n")
    (tmp_path / "node").mkdir()
    base = {"cwd": str(tmp_path / "node"), "env": env, "stdout": os.devnull, "stderr": os.devnull, "args": []}
    kind, why = worker.run(
        {**base, "argv": [], "script": str(code / "shadow" / "task.py"), "path0": str(code / "shadow")}
    )
    assert kind == "cold" and "json.py shadows the module json" in str(why)

    write(Path(env["PYTHONPATH"]) / "noisy.py", "print('hello from an import')\n")
    write(code / "noisy_task.py", "import noisy\n")
    kind, why = worker.run({**base, "argv": [], "script": str(code / "noisy_task.py"), "path0": str(code)})
    assert kind == "cold" and "printed output" in str(why)


def test_a_module_that_starts_threads_sends_its_scripts_to_fresh_interpreters(
    worker: Worker, env: dict[str, str], tmp_path: Path
) -> None:
    write(
        Path(env["PYTHONPATH"]) / "threaded.py",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
    )
    write(tmp_path / "code" / "task.py", "import threaded\n")
    (tmp_path / "node").mkdir()
    kind, why = worker.run(script_request(tmp_path, "task.py", env))
    assert kind == "cold" and "threads" in str(why)


def test_a_signal_from_outside_ends_a_warm_script_as_it_ends_a_fresh_one(
    worker: Worker, env: dict[str, str], tmp_path: Path
) -> None:
    # The runner stops a task by signalling its process group (timeout, Ctrl-C).
    ready = tmp_path / "ready"
    write(tmp_path / "code" / "wait.py", f"import time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(30)\n")
    (tmp_path / "node").mkdir()
    assert worker.process.stdin is not None and worker.process.stdout is not None
    request = {"id": 99, **script_request(tmp_path, "wait.py", env)}
    worker.process.stdin.write((json.dumps(request) + "\n").encode())
    worker.process.stdin.flush()
    started = json.loads(worker.process.stdout.readline())
    assert "pid" in started, started
    while not ready.exists():
        pass
    os.killpg(started["pid"], signal.SIGTERM)
    ended = json.loads(worker.process.stdout.readline())
    assert ended == {"id": 99, "exit": -signal.SIGTERM}
