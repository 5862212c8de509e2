"""The warm worker of local runs: a fork server for Python tasks.

`updraft run` starts one per (interpreter, code directory, task environment)
the first time a Python task needs it (for a `.py` spec, the process that
translated the spec is that worker, so its imports are paid once). The parent
only imports: the spec's module, or a task's module on its first request; it
runs no task code. Each task attempt is a child forked from it, in its own
process group, with the attempt's environment, working directory and log files:
it starts with everything the parent imported, and whatever the task changes
(module globals, caches, the random state) dies with the child.

Protocol, on the worker's stdin and its original stdout (the worker's own
prints go to stderr): one framed message first (`LENGTH\\n` then that many
bytes of JSON: `{"spec": ..., "locations": ..., "depends": [FILE, ...]}`, `{"ready": true}` or
`{"error": ...}`), then JSON lines.

    → {"id": 1, "entry": "mod:fn", "cwd": DIR, "env": {...}, "stdout": LOG, "stderr": LOG}
    → {"id": 2, "script": "train.py" | "module": "pkg.train", "argv": [...], "path0": DIR,
       "cwd": DIR, "env": {...the whole environment}, "stdout": LOG, "stderr": LOG}
    ← {"id": 1, "pid": 4242}              the child runs, in process group 4242
    ← {"id": 1, "cold": "why"}            no fork: run a fresh process instead
    ← {"id": 1, "exit": 0}                the child ended (negative: killed by that signal)

The worker ends when its stdin closes, killing children left behind.

A script worker (`--scripts`) serves tasks written as `python3 FILE.py ARGS...`
or `python3 -m MODULE ARGS...`: before forking it imports what the script
imports at top level (found with `ast`, never the script's own directory's
modules, which each child imports itself), and the child runs the script as
`__main__` with the argv, `sys.path`, environment, exit code and traceback a
fresh `python3` gives (`_scripts.py`; docs/python.md, "Script tasks").
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import sys
import threading
import traceback
from typing import Any

from . import _scripts


class Server:
    def __init__(self, protocol_out: int, scripts: _scripts.Scripts | None = None) -> None:
        self.out = protocol_out
        self.scripts = scripts
        self.children: dict[int, int] = {}
        self.cold: str | None = None
        # A child forked ahead of the next request, waiting for it on a pipe: the
        # fork's cost is paid while the runner is busy elsewhere.
        self.spare: tuple[int, int] | None = None
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.selector = selectors.DefaultSelector()

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.out, data) :]

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # Ctrl-C is the runner's to handle: it stops each task's group, then closes stdin.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.selector.register(0, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        pending = b""
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.fd == self.wake_read:
                        try:
                            while os.read(self.wake_read, 512):
                                pass
                        except BlockingIOError:
                            pass
                        self.reap()
                        continue
                    chunk = os.read(0, 65536)
                    if not chunk:
                        return
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.handle(json.loads(line))
        except BrokenPipeError:
            return  # the runner is gone
        finally:
            self.shut_down()

    def handle(self, request: dict[str, Any]) -> None:
        ident = request["id"]
        if "entry" not in request:
            self.handle_script(request)
            return
        module = request["entry"].partition(":")[0]
        if self.cold is None and module not in sys.modules:
            self.discard_spare()  # it was forked without this module
            try:
                importlib.import_module(module)
            except BaseException as e:
                # The fresh process that runs instead shows the whole error in the task's log.
                self.send({"id": ident, "cold": f"cannot import {module}: {e}"})
                return
            if threading.active_count() > 1:
                self.cold = f"importing {module} started threads, after which forking is unsafe"
            # What the imports made stays put: a child's garbage collector never
            # walks (and so never copies) the parent's objects.
            gc.freeze()
        self.run_forked(request)

    def handle_script(self, request: dict[str, Any]) -> None:
        ident = request["id"]
        if self.scripts is None:
            self.send({"id": ident, "cold": "this worker serves SDK tasks, not scripts"})
            return
        if self.cold is None:
            before = set(sys.modules)
            self.cold = self.scripts.preload(request)
            if set(sys.modules) != before:
                self.discard_spare()  # it was forked without these modules
                gc.freeze()
            if self.cold is None and threading.active_count() > 1:
                self.cold = "importing what its scripts import started threads, after which forking is unsafe"
        reason = self.cold or self.scripts.shadowed(request)
        if reason is not None:
            self.send({"id": ident, "cold": reason})
            return
        self.run_forked(request)

    def run_forked(self, request: dict[str, Any]) -> None:
        ident = request["id"]
        if self.cold is not None:
            self.send({"id": ident, "cold": self.cold})
            return
        if self.spare is None:
            self.spare = self.fork_spare()
        pid, pipe = self.spare
        self.spare = None
        self.children[pid] = ident
        # The pid first: the child reports its own end, which must not overtake this.
        self.send({"id": ident, "pid": pid})
        data = json.dumps(request).encode()
        try:
            while data:
                data = data[os.write(pipe, data) :]
        finally:
            os.close(pipe)
        self.spare = self.fork_spare()

    def fork_spare(self) -> tuple[int, int]:
        """A child in its own process group, waiting for the request it will run."""
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(write)
            chunks = []
            while chunk := os.read(read, 65536):
                chunks.append(chunk)
            if not chunks:
                os._exit(0)  # the worker went away before using it
            os._exit(self.child(json.loads(b"".join(chunks))))
        os.close(read)
        with contextlib.suppress(OSError):  # the child got there first
            os.setpgid(pid, pid)
        return pid, write

    def discard_spare(self) -> None:
        if self.spare is not None:
            _, pipe = self.spare
            self.spare = None
            os.close(pipe)  # it reads nothing and exits; reap() collects it

    def child(self, request: dict[str, Any]) -> int:
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self.selector.close()
            for fd in (self.wake_read, self.wake_write):
                os.close(fd)
            if self.spare is not None:
                os.close(self.spare[1])
            os.chdir(request["cwd"])
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(log, fd)
                os.close(log)
            _reseed()
            if "entry" in request:
                from ._run import run

                os.environ.update(request["env"])
                sys.argv = ["updraft.task", request["entry"]]
                code = run(request["entry"])
            else:
                assert self.scripts is not None
                # The script's end by a fresh interpreter's rules, its exit functions run.
                code = self.scripts.run(request) & 0xFF
        except BaseException:
            traceback.print_exc()
            code = 70
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        # Said by the child itself, once its outputs are written: the runner need not
        # wait for the process to be torn down and reaped (the worker's own report
        # follows and is ignored). One short write to a pipe is atomic.
        self.send({"id": request["id"], "exit": code})
        return code

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ident = self.children.pop(pid, None)
            if ident is not None:
                self.send({"id": ident, "exit": os.waitstatus_to_exitcode(status)})

    def shut_down(self) -> None:
        self.discard_spare()
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def _reseed() -> None:
    """A fresh interpreter seeds its random generators from the OS; so does each child
    (Python's `random` reseeds itself after a fork, numpy's global generator does not)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed()


def framed(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    data = f"{len(data)}\n".encode() + data
    while data:
        data = data[os.write(fd, data) :]


def main(target: str | None, code_dir: str | None, scripts: bool = False) -> int:
    # The protocol keeps the original stdout; anything the imported code prints goes to stderr.
    protocol_out = os.dup(1)
    os.dup2(2, 1)
    if scripts:
        # Nothing of the worker's own start may reach a script: its sys.path is the
        # one `python3 FILE.py` gets, without this worker's directory or the SDK it needs.
        return _serve_scripts(protocol_out)
    if code_dir and code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    if target is None:
        framed(protocol_out, {"ready": True})
    else:
        from ._core import UpdraftError
        from ._spec import document, load

        try:
            answer = document(*load(target))
            answer["depends"] = _depends(target, code_dir)
            framed(protocol_out, answer)
        except UpdraftError as e:
            framed(protocol_out, {"error": e.message, "where": e.where, "hint": e.hint})
            return 1
        except BaseException as e:
            message = f"cannot be read as a spec: {e}\n{_traceback(e)}"
            framed(protocol_out, {"error": message, "where": target, "hint": ""})
            return 1
    from . import _run  # noqa: F401 - what every child runs, imported once here

    server = Server(protocol_out)
    if threading.active_count() > 1:
        server.cold = f"importing {target} started threads, after which forking is unsafe"
    gc.freeze()
    server.serve()
    return 0


def _serve_scripts(protocol_out: int) -> int:
    server = Server(protocol_out, _scripts.Scripts())
    framed(protocol_out, {"ready": True})
    if threading.active_count() > 1:
        server.cold = "the interpreter started threads before any import, after which forking is unsafe"
    gc.freeze()
    server.serve()
    return 0


def _depends(target: str, code_dir: str | None) -> list[str]:
    """The source files the translation was made from: the spec file, every module
    imported from the code directory, and the SDK's own modules. `updraft` reuses
    the translation until one of them changes."""
    sdk = os.path.dirname(os.path.realpath(__file__)) + os.sep
    roots = [sdk] + ([os.path.realpath(code_dir) + os.sep] if code_dir else [])
    files = {os.path.realpath(target)} if os.path.isfile(target) else set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if any(real.startswith(root) for root in roots):
            files.add(real)
    return sorted(files)


def _traceback(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()
