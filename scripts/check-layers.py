#!/usr/bin/env python3
"""Fails if a workspace crate depends on a crate of a layer above it.

The layers, bottom up: the IDL (proto); the model, compiler and decisions
(core); the AWS adapters (aws); then, side by side and never on each other,
the local engine (engine) and the Lambda functions (functions); the command
line (cli) on top. Cargo already refuses cycles; this keeps the direction: the
engine must stay usable without the command line, the functions without the
engine. Normal and build dependencies count; tests may use anything.

Usage: check-layers.py   (reads `cargo metadata` of the workspace)"""
import json
import subprocess
import sys

ALLOWED = {
    "updraft-proto": set(),
    "updraft-core": {"updraft-proto"},
    "updraft-aws": {"updraft-proto", "updraft-core"},
    "updraft-engine": {"updraft-proto", "updraft-core", "updraft-aws"},
    "updraft-functions": {"updraft-proto", "updraft-core", "updraft-aws"},
    "updraft-cli": {"updraft-proto", "updraft-core", "updraft-aws", "updraft-engine"},
    # On top, beside the command line: it fills a store through the engine (the console's figures).
    "updraft-bench": {"updraft-proto", "updraft-core", "updraft-engine"},
}


def main():
    metadata = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                                         check=True, capture_output=True, text=True).stdout)
    ours = {p["name"] for p in metadata["packages"]}
    problems = []
    for package in metadata["packages"]:
        name = package["name"]
        if name not in ALLOWED:
            problems.append(f"{name}: not placed in a layer; add it to scripts/check-layers.py")
            continue
        for dep in package["dependencies"]:
            if dep["name"] in ours and dep.get("kind") != "dev" and dep["name"] not in ALLOWED[name]:
                problems.append(f"{name} depends on {dep['name']}, a crate of a layer above or beside it")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"layers: {len(metadata['packages'])} crates, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
