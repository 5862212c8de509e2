"""The one translation step: a Python file (or `module:workflow`) → the spec document.

The document is what a YAML spec file holds, as JSON, plus `locations`: the
`file:line` of each task, workflow, node and launch plan by its spec path
(`workflows.diabetes.nodes.fit`), so that the Rust compiler's errors point at
the Python that caused them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import types
from typing import Any

from ._core import LaunchPlan, Task, UpdraftError, Workflow, settings_of


def load(target: str) -> tuple[types.ModuleType, str | None]:
    """Imports a `.py` file (as a module named after it, its directory first on
    `sys.path`) or a `module[:workflow]` importable from the current directory."""
    path, selected = target, None
    if ":" in target and not os.path.exists(target):
        path, selected = target.rsplit(":", 1)
    if path.endswith(".py"):
        if not os.path.isfile(path):
            raise UpdraftError(f"no such file: {path}", path, "give the path of a Python file")
        directory = os.path.dirname(os.path.abspath(path))
        name = os.path.splitext(os.path.basename(path))[0]
        if directory not in sys.path:
            sys.path.insert(0, directory)
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == os.path.abspath(path):
            return sys.modules[name], selected
        _refuse_a_script(path)
        spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Imported as a module, not run as a program: it sees no command line of ours.
        argv, sys.argv = sys.argv, [os.path.abspath(path)]
        try:
            spec.loader.exec_module(module)
        finally:
            sys.argv = argv
        return module, selected
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(path), selected


def _refuse_a_script(path: str) -> None:
    """A `.py` file that does not import `updraft` is not a spec (a task's script,
    a notebook export): refused before any of it runs, since importing it would
    run its top-level code. A file that does not parse is left to the import,
    which names the line."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(n == "updraft" or n.startswith("updraft.") for n in names):
            return
    raise UpdraftError(
        f"{path} is not an Updraft spec: it does not import updraft, so it was not run",
        path,
        "give the .py file that defines the workflows (it imports updraft); a task's own script is run by its task",
    )


def document(module: types.ModuleType, selected: str | None = None) -> dict[str, Any]:
    """The spec document of a module: its tasks, workflows (and everything they call)
    and launch plans; with `selected`, that workflow and what it needs."""
    tasks: dict[str, Task[Any, Any]] = {}
    workflows: dict[str, Workflow[Any, Any]] = {}
    found = [v for v in vars(module).values() if isinstance(v, (Task, Workflow))]
    if selected is not None:
        chosen = [w for w in found if isinstance(w, Workflow) and w.name == selected]
        if not chosen:
            names = ", ".join(sorted(w.name for w in found if isinstance(w, Workflow))) or "none"
            raise UpdraftError(f"no workflow {selected!r} in {module.__name__}; it defines: {names}", module.__name__)
        found = list(chosen)

    def add(entity: Task[Any, Any] | Workflow[Any, Any]) -> None:
        table: dict[str, Any] = tasks if isinstance(entity, Task) else workflows
        other = table.get(entity.name)
        if other is entity:
            return
        if other is not None:
            raise UpdraftError(
                f"two {entity.kind}s are named {entity.name!r} (the other at {other.where})",
                entity.where,
                "give one of them another name: @task(name=...)",
            )
        table[entity.name] = entity
        if isinstance(entity, Task):
            module_name, _, attribute = entity.entry_point().partition(":")
            if getattr(sys.modules.get(module_name), attribute, None) is not entity:
                raise UpdraftError(
                    f"task {entity.name} cannot be found again as {entity.entry_point()}, which is how it runs",
                    entity.where,
                    "define tasks at module level with @updraft.task on the function itself",
                )
        if isinstance(entity, Workflow):
            entity.trace()
            for callee in entity.callees:
                add(callee)

    for entity in found:
        add(entity)
    plans = [
        p for p in LaunchPlan.instances if p.workflow.name in workflows and p.workflow is workflows[p.workflow.name]
    ]
    if selected is not None:
        plans = []

    settings = settings_of(module.__name__)
    spec: dict[str, Any] = {}
    if settings.project:
        spec["project"] = settings.project
    if settings.domain:
        spec["domain"] = settings.domain
    locations: dict[str, str] = {}
    spec["tasks"] = {}
    for name, t in tasks.items():
        spec["tasks"][name] = t.spec()
        locations[f"tasks.{name}"] = t.where
    spec["workflows"] = {}
    for name, w in workflows.items():
        spec["workflows"][name] = w.spec()
        locations[f"workflows.{name}"] = w.where
        for node_name, node in w.trace().nodes.items():
            locations[f"workflows.{name}.nodes.{node_name}"] = node.where
    if plans:
        spec["launch_plans"] = {}
        for plan in plans:
            spec["launch_plans"][plan.name] = plan.spec()
            locations[f"launch_plans.{plan.name}"] = plan.where
    return {"spec": spec, "locations": locations}
