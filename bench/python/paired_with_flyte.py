"""Paired timings of `updraft run` and Flyte's `pyflyte run` on the same Python task code.

Not part of ./bench/run (it needs flytekit, which pins its own dependency set):

    python3 -m venv /tmp/flyte && /tmp/flyte/bin/pip install flytekit==1.16.31 pandas scikit-learn pyarrow
    python3 bench/python/paired_with_flyte.py /tmp/flyte/bin/pyflyte

Each case alternates the two, five times, and prints the medians. Updraft is the
release build; both use the interpreter itself, not a launcher script.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UPDRAFT = REPO / "target" / "release" / "updraft"
FLYTE_DIR = Path(__file__).resolve().parent / "flyte"


def timed(command: list[str], cwd: Path, env: dict[str, str], before=None) -> float:
    if before is not None:
        before()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    pyflyte = sys.argv[1] if len(sys.argv) > 1 else "pyflyte"
    python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    home = tempfile.mkdtemp(prefix="updraft-paired-")
    env = {**os.environ, "UPDRAFT_HOME": home, "UPDRAFT_PYTHON": python.stdout.strip()}
    flyte_cache = Path.home() / ".flyte" / "local-cache"
    dataset = str(REPO / "examples" / "diabetes" / "data" / "pima-sample.csv")

    def clear_flyte_cache() -> None:
        shutil.rmtree(flyte_cache, ignore_errors=True)

    up = [str(UPDRAFT), "run"]
    fl = [pyflyte, "run"]
    flyte_diabetes = [*fl, "diabetes.py", "diabetes", "--dataset", dataset]
    cases = [
        ("chain of 50 trivial tasks", [*up, "bench/python/pipelines.py:chain50", "--no-cache"],
         [*fl, "pipelines.py", "chain50"], None),
        ("map over 100 trivial tasks", [*up, "bench/python/pipelines.py:fanout100", "--no-cache"],
         [*fl, "pipelines.py", "fanout100"], None),
        ("one trivial task", [*up, "bench/python/pipelines.py:one", "--no-cache"], [*fl, "pipelines.py", "one"], None),
        ("diabetes, cold", [*up, "examples/diabetes/diabetes.py", "--no-cache"], flyte_diabetes, clear_flyte_cache),
    ]
    for name, updraft, flyte, before in cases:
        ours, theirs = [], []
        for _ in range(5):
            ours.append(timed(updraft, REPO, env))
            theirs.append(timed(flyte, FLYTE_DIR, env, before))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name}: updraft {a:.3f} s, flyte {b:.3f} s ({a / b:.2f}x)")
    cached_py, cached_yaml = [*up, "examples/diabetes/diabetes.py"], [*up, "examples/diabetes/diabetes.yaml"]
    timed(cached_py, REPO, env)
    timed(flyte_diabetes, FLYTE_DIR, env)
    py, yaml, flyte = [], [], []
    for _ in range(5):
        py.append(timed(cached_py, REPO, env))
        yaml.append(timed(cached_yaml, REPO, env))
        flyte.append(timed(flyte_diabetes, FLYTE_DIR, env))
    print(f"diabetes, all cached: updraft .py {statistics.median(py):.3f} s, .yaml {statistics.median(yaml):.3f} s, "
          f"flyte {statistics.median(flyte):.3f} s")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
