"""Python tasks that probe the warm workers (cli/tests/python.rs)."""

import os
import time
from pathlib import Path
from typing import NamedTuple

import updraft

SEEN: list[str] = []  # module state: each task must start with it empty


@updraft.task
def remember(tag: str) -> int:
    """Changes the module's global and the environment, as a careless task would."""
    SEEN.append(tag)
    os.environ["LEAKED"] = tag
    return len(SEEN)


@updraft.task
def look(first: int, second: int) -> str:
    return f"{os.environ.get('LEAKED', '')}|{','.join(SEEN)}|{first},{second}"


def parent_command() -> str:
    return Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@updraft.task
def warm_parent() -> str:
    return parent_command()


@updraft.task(fresh_process=True)
def fresh_parent() -> str:
    return parent_command()


@updraft.task(gpu=1)
def gpu_parent() -> str:
    return f"{parent_command()}|{os.environ['CUDA_VISIBLE_DEVICES']}"


@updraft.workflow
def on_gpu() -> str:
    return gpu_parent()


class Seen(NamedTuple):
    first: int
    second: int
    look: str
    warm: str
    fresh: str


@updraft.workflow
def isolation() -> Seen:
    first = remember(tag="a")
    second = remember(tag="b")
    return Seen(first, second, look(first=first, second=second), warm_parent(), fresh_parent())


@updraft.task(retries=1)
def flaky() -> int:
    if os.environ["UPDRAFT_ATTEMPT"] == "1":
        raise RuntimeError("the first attempt fails")
    return int(os.environ["UPDRAFT_ATTEMPT"])


@updraft.task
def boom(x: int) -> int:
    raise ValueError(f"no good: {x}")


@updraft.task
def double(x: int) -> int:
    return 2 * x


@updraft.workflow
def failures() -> int:
    return double(x=boom(x=flaky()))


@updraft.task(timeout="1s")
def stuck(pidfile: str) -> int:
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(300)
    return 0


@updraft.workflow
def slow(pidfile: str) -> int:
    return stuck(pidfile=pidfile)


@updraft.task
def sleeper(pidfile: str) -> int:
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(300)
    return 0


@updraft.workflow
def asleep(pidfile: str) -> int:
    return sleeper(pidfile=pidfile)
