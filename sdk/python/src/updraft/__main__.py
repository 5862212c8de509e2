"""`python -m updraft spec|compile|worker ...`.

python -m updraft spec FILE.py|MODULE[:WORKFLOW]     the spec document, as JSON
python -m updraft compile FILE.py [updraft compile options]
                                                      the compiled IDL (runs `updraft compile`)
python -m updraft worker [--spec TARGET] [--code-dir DIR] [--scripts]
                                                      a warm worker (started by `updraft run`)
"""

from __future__ import annotations

import json
import os
import shutil
import sys

USAGE = __doc__ or ""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 64
    command, args = argv[0], argv[1:]
    if command == "spec" and len(args) == 1:
        from ._core import UpdraftError
        from ._spec import document, load

        try:
            json.dump(document(*load(args[0])), sys.stdout, indent=2)
            print()
            return 0
        except UpdraftError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if command == "compile" and args:
        # The IDL is the Rust compiler's to write: one semantics for YAML and Python.
        binary = os.environ.get("UPDRAFT_BIN") or shutil.which("updraft")
        if binary is None:
            print(
                "error: updraft is not on PATH (or set UPDRAFT_BIN); `python -m updraft spec FILE` "
                "prints the spec document without it",
                file=sys.stderr,
            )
            return 1
        os.execv(binary, [binary, "compile", *args])
    if command == "worker":
        from ._worker import main as worker

        target = code_dir = None
        scripts = "--scripts" in args
        args = [a for a in args if a != "--scripts"]
        while args:
            flag, value, args = args[0], args[1] if len(args) > 1 else None, args[2:]
            if flag == "--spec" and value:
                target = value
            elif flag == "--code-dir" and value:
                code_dir = value
            else:
                print(USAGE.strip(), file=sys.stderr)
                return 64
        return worker(target, code_dir, scripts)
    print(USAGE.strip(), file=sys.stderr)
    return 64


sys.exit(main(sys.argv[1:]))
