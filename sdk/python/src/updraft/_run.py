"""Runs one task of the Python SDK under the task contract (docs/task-contract.md).

`python -m updraft.task [--fresh-process] MODULE:FUNCTION` (this module's `main`)
reads `$UPDRAFT_INPUTS`, calls the function with its inputs as the types its hints
name, and writes what it returns to `$UPDRAFT_OUTPUTS_DIR/NAME`. This is the
command the SDK writes for every Python task: `updraft exec` runs it in a
container, and a local run forks it from a warm worker (`updraft._worker`)
unless the task asked for `--fresh-process`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any

from ._core import Task
from ._types import from_input, write_output

USAGE = "usage: python -m updraft.task [--fresh-process] MODULE:FUNCTION"


def resolve(entry: str) -> Task[Any, Any]:
    """The task behind `module:function`, importing the module (with the code directory on the path)."""
    module_name, _, name = entry.partition(":")
    if not module_name or not name:
        raise ValueError(f"{entry!r} is not MODULE:FUNCTION")
    code_dir = os.environ.get("UPDRAFT_CODE_DIR")
    if code_dir and code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    target = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(target, Task):
        raise ValueError(f"{entry} is not a task (decorate the function with @updraft.task)")
    return target


def outputs_of(task: Task[Any, Any], result: Any) -> dict[str, Any]:
    names = [v.name for v in task.outputs]
    if not names:
        return {}
    if len(names) == 1 and not (isinstance(result, tuple) and hasattr(result, "_fields")):
        return {names[0]: result}
    if isinstance(result, dict):
        return {n: result.get(n) for n in names}
    if not isinstance(result, tuple) or len(result) != len(names):
        raise TypeError(
            f"task {task.name} returned {type(result).__name__}; it declares the outputs {', '.join(names)}"
        )
    return dict(zip(names, result, strict=True))


def run(entry: str) -> int:
    """Runs the task in this process; the exit code of the contract (0: outputs written)."""
    try:
        task = resolve(entry)
        with open(os.environ["UPDRAFT_INPUTS"], encoding="utf-8") as f:
            given = json.load(f)
        kwargs = {v.name: from_input(given[v.name], v.hint) for v in task.inputs if v.name in given}
        result = task.function(**kwargs)
        outputs_dir = os.environ["UPDRAFT_OUTPUTS_DIR"]
        declared = {v.name: v.hint for v in task.outputs}
        for name, value in outputs_of(task, result).items():
            write_output(value, declared[name], os.path.join(outputs_dir, name))
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--fresh-process"]
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 64
    return run(args[0])
