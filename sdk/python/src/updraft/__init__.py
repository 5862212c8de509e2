"""Updraft's Python SDK: tasks and workflows as typed Python functions.

    import updraft

    @updraft.task(cache=True, cache_version="1")
    def square(x: int) -> int:
        return x * x

    @updraft.workflow
    def squares(n: int) -> list[int]:
        return updraft.map(square)(x=numbers(n=n))

`updraft run FILE.py`, `updraft validate`, `compile` and `register` take the file
as they take YAML; `python -m updraft spec FILE.py` shows the spec it stands for.
See docs/python.md.
"""

from ._core import (
    Cron,
    LaunchPlan,
    Rate,
    Secret,
    Task,
    UpdraftError,
    Workflow,
    conditional,
    configure,
    map,
    map_task,
    task,
    workflow,
)
from ._types import Columns, DataFrameFile, Directory, File, Format

__all__ = [
    "Columns",
    "Cron",
    "DataFrameFile",
    "Directory",
    "File",
    "Format",
    "LaunchPlan",
    "Rate",
    "Secret",
    "Task",
    "UpdraftError",
    "Workflow",
    "conditional",
    "configure",
    "map",
    "map_task",
    "task",
    "workflow",
]
