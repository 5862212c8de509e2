"""Script tasks in a warm worker: `python3 FILE.py ARGS...` and `python3 -m MODULE ARGS...`.

The worker imports, once, what a script imports at top level (found with `ast`;
the modules of the script's own directory stay out of the worker, each child
imports those itself), and each attempt's child then runs the script as
`__main__` the way a fresh interpreter would: the same `sys.argv`, `__file__`,
`sys.path` (the script's directory first, then what the environment gives;
nothing of the worker's own), the whole environment of the attempt, the exit
status of `sys.exit(...)`, an uncaught exception's traceback with exit status 1,
non-daemon threads joined and `atexit` functions run before it ends.

What a warm child cannot give a fresh interpreter's way, the worker refuses
(the runner then starts `python3` itself): output printed while importing, a
module of the script's directory shadowing one the worker already loaded, and
threads started by an import. docs/python.md, "Script tasks", lists the rest.
"""

from __future__ import annotations

import ast
import atexit
import builtins
import contextlib
import importlib
import importlib.machinery
import io
import os
import runpy
import signal
import sys
import tempfile
import threading
import types
from typing import Any

# Set by `updraft` for a script worker: the directory of the SDK it put on PYTHONPATH
# so the worker could start; no script sees it.
SDK_PATH_VARIABLE = "UPDRAFT_WORKER_SDK"

# How many of the script directory's own modules are read for their imports.
_MAX_LOCAL_FILES = 200


class Scripts:
    def __init__(self) -> None:
        sdk = os.environ.pop(SDK_PATH_VARIABLE, "")
        # sys.path[0] is the worker's directory (it runs as `-m updraft`); the rest is
        # what PYTHONPATH, the standard library and site-packages gave, as for any interpreter.
        base = list(sys.path[1:])
        if sdk in base:
            base.remove(sdk)
        self.base_path = base
        self.seen: set[str] = set()

    def preload(self, request: dict[str, Any]) -> str | None:
        """Imports what the request's script imports, the first time that script is asked
        for; why the worker must not fork any more, or None."""
        path0 = request["path0"]
        source = self.source_of(request)
        if source is None or source in self.seen:
            return None
        self.seen.add(source)
        names = imports_of(source, path0)
        if not names:
            return None
        saved_path = sys.path[:]
        sys.path[:] = [path0, *self.base_path]
        with tempfile.TemporaryFile() as printed:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(printed.fileno(), 1)
            os.dup2(printed.fileno(), 2)
            try:
                for name in names:
                    # A module that fails to import fails the child the same way, where a
                    # fresh interpreter fails; the worker keeps going.
                    with contextlib.suppress(BaseException):
                        importlib.import_module(name)
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                for fd, copy in zip((1, 2), saved, strict=True):
                    os.dup2(copy, fd)
                    os.close(copy)
                sys.path[:] = saved_path
            if os.fstat(printed.fileno()).st_size:
                return (
                    f"importing what {source} imports printed output, which belongs in each "
                    "task's own log: its tasks start fresh interpreters"
                )
        return None

    def source_of(self, request: dict[str, Any]) -> str | None:
        """The file the request runs: the script, or the module's source found on its path."""
        if "script" in request:
            script = os.path.join(request["cwd"], request["script"])
            return os.path.realpath(script) if os.path.isfile(script) else None
        relative = request["module"].replace(".", os.sep)
        for directory in (request["path0"], *self.base_path):
            for candidate in (relative + ".py", os.path.join(relative, "__main__.py")):
                path = os.path.join(directory, candidate)
                if os.path.isfile(path):
                    return os.path.realpath(path)
        return None

    def shadowed(self, request: dict[str, Any]) -> str | None:
        """Why a child would see another module than a fresh interpreter: a module of the
        script's directory (first on its path) named like one the worker has loaded."""
        path0 = request["path0"]
        local = os.path.realpath(path0) + os.sep
        try:
            entries = os.listdir(path0)
        except OSError:
            return None
        for entry in sorted(entries):
            name = module_name(path0, entry)
            loaded = sys.modules.get(name) if name else None
            if loaded is None or _present_at_start(loaded):
                continue
            where = getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", [])), "")
            if where and os.path.realpath(where).startswith(local):
                continue
            return f"{os.path.join(path0, entry)} shadows the module {name} its warm worker has imported"
        return None

    def run(self, request: dict[str, Any]) -> int:
        """Runs the script in this (forked) process as `python3` would; its exit status."""
        os.environ.clear()
        os.environ.update(request["env"])
        for name in [m for m in sys.modules if m == "updraft" or m.startswith("updraft.")]:
            del sys.modules[name]  # the worker's SDK: a script imports whatever its path holds
        sys.path[:] = [request["path0"], *self.base_path]
        sys.orig_argv = [sys.orig_argv[0], *request["argv"][1:]]
        try:
            if "module" in request:
                sys.modules["__main__"] = _new_main()
                sys.argv = ["-m", *request["args"]]
                # What `python3 -m` itself calls: argv[0] becomes the module's file.
                runpy._run_module_as_main(request["module"], alter_argv=True)  # type: ignore[attr-defined]
            else:
                script = request["script"]
                sys.argv = [script, *request["args"]]
                status = _run_file(script)
                if status is not None:
                    return _finalize(status)
            status = 0
        except SystemExit as e:
            status = _exit_status(e.code)
        except KeyboardInterrupt as e:
            _print_uncaught(e)
            _finalize(0)
            # As Python does: the parent sees the signal, not an exit status.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            status = 130
        except BaseException as e:
            _print_uncaught(e)
            status = 1
        return _finalize(status)


def _run_file(script: str) -> int | None:
    """Executes the file as the `__main__` module; an exit status if it cannot be opened."""
    path = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    try:
        with io.open_code(path) as file:
            source = file.read()
    except OSError as e:
        print(f"{sys.orig_argv[0]}: can't open file {path!r}: [Errno {e.errno}] {e.strerror}", file=sys.stderr)
        return 2
    main = _new_main()
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__file__ = path
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)
    return None


def _print_uncaught(error: BaseException) -> None:
    """Prints an exception the script did not catch through `sys.excepthook`, from
    the script's first frame on, as a fresh interpreter prints it."""
    trace = error.__traceback__
    while trace is not None and trace.tb_frame.f_code.co_filename == __file__:
        trace = trace.tb_next
    sys.excepthook(type(error), error.with_traceback(trace), trace)


def _new_main() -> types.ModuleType:
    """An empty `__main__`, its names in the order an interpreter gives them."""
    main = types.ModuleType("__main__")
    main.__annotations__ = {}
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    return main


def _exit_status(code: object) -> int:
    """`sys.exit(code)`'s status: None is 0, an integer itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finalize(status: int) -> int:
    """What an interpreter does at its end: wait for non-daemon threads, run the
    `atexit` functions, flush the standard streams."""
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    return status


def _present_at_start(module: types.ModuleType) -> bool:
    """Built-in and frozen modules are loaded before a script's directory is looked at."""
    spec = getattr(module, "__spec__", None)
    return spec is not None and spec.origin in ("built-in", "frozen")


def module_name(directory: str, entry: str) -> str | None:
    """The top-level module an entry of a directory on sys.path provides, if any."""
    if entry.startswith("."):
        return None
    if os.path.isdir(os.path.join(directory, entry)):
        name = entry
    else:
        stem, dot, _ = entry.partition(".")
        if not dot or not any(entry.endswith(s) for s in importlib.machinery.all_suffixes()):
            return None
        name = stem
    return name if name.isidentifier() else None


def imports_of(source: str, path0: str) -> list[str]:
    """The modules a script imports at its top level (also inside `if`, `try` and
    `with` there), following the modules of its own directory to what they import;
    those local modules themselves are left out."""
    found: list[str] = []
    local = {module_name(path0, e) for e in _listdir(path0)} - {None}
    queue, read = [source], set[str]()
    while queue and len(read) < _MAX_LOCAL_FILES:
        file = queue.pop()
        if file in read:
            continue
        read.add(file)
        for name in _top_level_imports(file):
            top = name.partition(".")[0]
            if top not in local:
                if name not in found:
                    found.append(name)
                continue
            base = os.path.join(path0, *name.split("."))
            for candidate in (base + ".py", os.path.join(base, "__init__.py"), os.path.join(path0, top + ".py")):
                if os.path.isfile(candidate):
                    queue.append(os.path.realpath(candidate))
    return found


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _top_level_imports(file: str) -> list[str]:
    try:
        with io.open_code(file) as f:
            tree = ast.parse(f.read(), file)
    except (OSError, SyntaxError, ValueError):
        return []  # the child reports it, as a fresh interpreter would
    names: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
            elif isinstance(node, (ast.If, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return names
