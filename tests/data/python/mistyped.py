"""A string passed where an int is expected: the compiler's error points here."""

import updraft


@updraft.task
def name() -> str:
    return "seven"


@updraft.task
def double(x: int) -> int:
    return 2 * x


@updraft.workflow
def wrong() -> int:
    label = name()
    return double(x=label)
