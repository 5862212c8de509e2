"""Flyte's version of the paired cases (flytekit 1.16.31): the same task code as bench/python/pipelines.py."""

from flytekit import map_task, task, workflow


@task
def inc(x: int) -> int:
    return x + 1


@task
def numbers(count: int) -> list[int]:
    return list(range(count))


@task
def square(x: int) -> int:
    return x * x


@workflow
def chain50(start: int = 0) -> int:
    x = start
    for _ in range(50):
        x = inc(x=x)
    return x


@workflow
def fanout100(count: int = 100) -> list[int]:
    return map_task(square)(x=numbers(count=count))


@workflow
def one(start: int = 0) -> int:
    return inc(x=start)
