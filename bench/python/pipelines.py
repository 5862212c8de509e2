"""The Python-task cases of ./bench/run: a chain of 50 trivial tasks and a map over 100."""

import updraft


@updraft.task
def inc(x: int) -> int:
    return x + 1


@updraft.task
def numbers(count: int) -> list[int]:
    return list(range(count))


@updraft.task
def square(x: int) -> int:
    return x * x


@updraft.workflow
def chain50(start: int = 0) -> int:
    x = start
    for _ in range(50):
        x = inc(x=x)
    return x


@updraft.workflow
def fanout100(count: int = 100) -> list[int]:
    return updraft.map(square)(x=numbers(count=count))


@updraft.workflow
def one(start: int = 0) -> int:
    return inc(x=start)
