"""Fan-out and fan-in in Python: square each of N numbers in parallel (a map node),
sum the squares, then branch on the result. fanout.yaml is the same workflow in YAML.

Run it locally:  updraft run examples/fanout/fanout.py --input count=12
"""

from typing import NamedTuple

import updraft


@updraft.task
def numbers(count: int) -> list[int]:
    return list(range(1, count + 1))


@updraft.task(cache=True, cache_version="1", cpu="250m", memory="128Mi")
def square(x: int) -> int:
    return x * x


@updraft.task
def total(values: list[int]) -> int:
    return sum(values)


@updraft.task
def describe(label: str, value: int) -> str:
    return f"{label}: {value}"


class Verdict(NamedTuple):
    sum: int
    verdict: str


@updraft.workflow
def fanout(count: int = 100, threshold: int = 100000) -> Verdict:
    squares = updraft.map(square, concurrency=16)(x=numbers(count=count))
    sum_ = total(values=squares)
    verdict = (
        updraft.conditional("verdict")
        .if_(sum_ > threshold)
        .then(describe(label="large", value=sum_))
        .else_()
        .then(describe(label="small", value=sum_))
    )
    return Verdict(sum_, verdict)
