"""`cache_version="auto"`: a task's cache version derived from its code.

The version is a digest of the task function's source and of the project-local
code it reaches: functions and classes it names that are defined in the project
(followed to what *they* name), and whole project-local modules it names. A
module is project-local when its file is under the directory of the task's own
module (the spec's code directory), so library upgrades do not count (pin them,
or bump a version by hand). An edit to any of that code changes the version and
so every cache key of the task: its next run computes afresh (docs/caching.md).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import types
from typing import Any

# How many project-local objects one task's digest follows, at most.
_MAX_OBJECTS = 500


def auto_version(fn: Any) -> str:
    """`auto-` and 16 hex digits of the digest of `fn`'s code and the project-local code it reaches."""
    root = _project_root(fn)
    digest = hashlib.sha256()
    seen: set[int] = set()
    pending: list[Any] = [fn]
    while pending and len(seen) < _MAX_OBJECTS:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            path = getattr(obj, "__file__", None)
            if path and os.path.isfile(path):
                digest.update(f"module {obj.__name__}\n".encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
            continue
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            continue
        digest.update(f"{getattr(obj, '__qualname__', '')}\n".encode())
        digest.update(source.encode())
        pending.extend(_local_names(obj, root))
    return "auto-" + digest.hexdigest()[:16]


def _project_root(fn: Any) -> str | None:
    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    path = getattr(module, "__file__", None) or getattr(getattr(fn, "__code__", None), "co_filename", None)
    return os.path.dirname(os.path.realpath(path)) + os.sep if path else None


def _is_local(obj: Any, root: str | None) -> bool:
    if root is None:
        return False
    if isinstance(obj, types.ModuleType):
        path = getattr(obj, "__file__", None)
    else:
        module = sys.modules.get(getattr(obj, "__module__", "") or "", None)
        path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    return os.path.realpath(path).startswith(root) and "site-packages" not in path


def _local_names(obj: Any, root: str | None) -> list[Any]:
    """The project-local functions, classes and modules that `obj`'s code names."""
    function = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(function, "__code__", None)
    scope = getattr(function, "__globals__", None)
    found: list[Any] = []
    if code is not None and scope is not None:
        for name in _names(code):
            value = scope.get(name)
            reachable = inspect.isfunction(value) or inspect.isclass(value) or inspect.ismodule(value)
            if reachable and _is_local(value, root):
                found.append(value)
    if inspect.isclass(obj):
        for member in vars(obj).values():
            if inspect.isfunction(member):
                found.extend(_local_names(member, root))
    return found


def _names(code: types.CodeType) -> set[str]:
    """Global names a code object (and the functions and comprehensions inside it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names
