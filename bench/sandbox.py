"""Sandbox figures: `sandbox_up_s` (from `updraft sandbox up` to a healthy
stack with the config written, function binaries already built) and
`register_bundle_ms` (registering the diabetes example again: its code bundle
packed and found already uploaded, the registry answering "unchanged"; median
of 5). Runs in a fresh Updraft home and config, on a free port, and stops the
sandbox after.

usage: sandbox.py UPDRAFT_BINARY"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(updraft):
    with tempfile.TemporaryDirectory() as home, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "UPDRAFT_"))}
        env.update(UPDRAFT_HOME=os.path.join(home, "updraft"), UPDRAFT_CONFIG=os.path.join(home, "config.toml"))

        def run(*args):
            return subprocess.run([updraft, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True)

        started = time.perf_counter()
        run("sandbox", "up", "--port", str(port))
        up = time.perf_counter() - started
        try:
            spec = "examples/diabetes/diabetes.py"
            run("register", spec, "--version", "bench")
            times = []
            for _ in range(5):
                started = time.perf_counter()
                again = run("register", spec, "--version", "bench")
                times.append(time.perf_counter() - started)
                assert "already in the bucket" in again.stderr and "unchanged" in again.stdout, again
        finally:
            run("sandbox", "down")
    print(f"sandbox_up_s: {up:.2f} s")
    print(f"register_bundle_ms: {statistics.median(times) * 1000:.0f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
