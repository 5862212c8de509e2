"""`updraft run` in a real terminal (tmux): a running task's lines reach the screen
while it runs, and the status line's elapsed time moves (docs/cli.md, "Progress")."""

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
UPDRAFT = TARGET / "debug" / "updraft"

TICKS = """\
import sys, time
for i in range(1, 6):
    print(f"tick {i}", flush=True)
    time.sleep(0.6)
open(sys.argv[1], "w").write("5")
"""

SPEC = """\
tasks:
  ticks:
    image: python:3.11-slim
    command: [python3, "{{code_dir}}/ticks.py", "{{outputs.n}}"]
    outputs: {n: int}
workflows:
  w:
    nodes:
      slow: {task: ticks}
"""


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_task_lines_and_elapsed_time_reach_the_terminal_while_the_task_runs(tmp_path: Path) -> None:
    (tmp_path / "ticks.py").write_text(TICKS)
    (tmp_path / "spec.yaml").write_text(SPEC)
    session = f"updraft-{uuid.uuid4().hex[:8]}"
    command = f"UPDRAFT_HOME={tmp_path / 'home'} {UPDRAFT} run spec.yaml --no-cache; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", "-c", str(tmp_path), command],
                   check=True)
    try:
        seen_running: list[tuple[str, float]] = []  # (screen, elapsed on the status line) while running
        deadline = time.time() + 30
        while time.time() < deadline:
            shown = screen(session)
            if "SUCCEEDED in" in shown:
                break
            status = re.search(r"running: slow (\d+\.\d)s", shown)
            if status:
                seen_running.append((shown, float(status.group(1))))
            time.sleep(0.3)
        else:
            pytest.fail(f"the run did not end within 30 s:\n{screen(session)}")
        final = screen(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert seen_running, f"no status line while the task ran:\n{final}"
    # Lines the task printed were on screen before it ended, the status line under them.
    early = [s for s, _ in seen_running if "slow | tick 2" in s and "tick 5" not in s]
    assert early, "a task's line reached the terminal only after the task ended:\n" + seen_running[-1][0]
    elapsed = [e for _, e in seen_running]
    assert max(elapsed) - min(elapsed) >= 1.0, f"the elapsed time did not move: {elapsed}"
    assert "running:" not in final.split("SUCCEEDED in")[-1], "the status line is gone at the end"
    assert all(f"slow | tick {i}" in final for i in range(1, 6)), final
