"""Tasks, workflows and launch plans as Python objects.

`@task` wraps a typed function; `@workflow` wraps a function whose body calls
tasks: it is traced once, with `Promise`s standing in for values, and the calls
it makes become the nodes of the spec. Nothing here decides what a spec means:
`updraft._spec` writes these objects as the spec document that YAML holds, and
the Rust compiler checks it (errors come back with this file's lines).
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar

from . import _types
from ._types import UpdraftTypeError

P = ParamSpec("P")
R = TypeVar("R")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class UpdraftError(Exception):
    """A mistake in the Python that describes tasks and workflows, with where it is."""

    def __init__(self, message: str, where: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{self.where}: {self.message}{hint}"


def _where(filename: str, line: int) -> str:
    relative = os.path.relpath(filename)
    return f"{filename if relative.startswith('..') else relative}:{line}"


def caller_location() -> str:
    """`file:line` of the user's code that called into this package."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return _where(frame.f_code.co_filename, frame.f_lineno)


def _definition_location(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return caller_location()
    return _where(code.co_filename, code.co_firstlineno)


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret by reference (never its value): Secrets Manager or SSM, as env or as a file."""

    secrets_manager: str | None = None
    ssm: str | None = None
    mount: str = "env"

    def spec(self) -> dict[str, str]:
        out = {"secrets_manager": self.secrets_manager} if self.secrets_manager else {"ssm": self.ssm or ""}
        if self.mount != "env":
            out["mount"] = self.mount
        return out


@dataclasses.dataclass
class _Settings:
    project: str | None = None
    domain: str | None = None
    image: str = "python:3.11-slim"


_SETTINGS: dict[str, _Settings] = {}


def configure(*, project: str | None = None, domain: str | None = None, image: str | None = None) -> None:
    """Project, domain and default image for the tasks and workflows of the calling module."""
    module = sys._getframe(1).f_globals.get("__name__", "__main__")
    settings = _SETTINGS.setdefault(module, _Settings())
    if project is not None:
        settings.project = project
    if domain is not None:
        settings.domain = domain
    if image is not None:
        settings.image = image


def settings_of(module: str) -> _Settings:
    return _SETTINGS.get(module, _Settings())


# ---- interfaces ----


@dataclasses.dataclass
class Variable:
    name: str
    hint: Any
    type: Any
    default: Any = inspect.Parameter.empty

    def spec(self) -> Any:
        if self.default is inspect.Parameter.empty:
            return self.type
        return {"type": self.type, "default": _types.to_json(self.default)}


def _output_fields(annotation: Any) -> list[tuple[str, Any]]:
    """Outputs from a return annotation: a NamedTuple names them; one plain type is `o0`."""
    if annotation is None or annotation is type(None) or annotation is inspect.Signature.empty:
        return []
    if isinstance(annotation, type) and issubclass(annotation, tuple) and hasattr(annotation, "_fields"):
        hints = typing.get_type_hints(annotation, include_extras=True)
        return [(name, hints[name]) for name in annotation._fields]
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if not items or items[-1] is Ellipsis:
            raise UpdraftTypeError("a tuple of outputs names each one's type: tuple[int, str]")
        return [(f"o{i}", item) for i, item in enumerate(items)]
    return [("o0", annotation)]


def interface_of(fn: Callable[..., Any], what: str) -> tuple[list[Variable], list[Variable]]:
    where = _definition_location(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:  # a hint that does not resolve: an undefined name, a typo
        raise UpdraftError(f"{what} {fn.__name__}: its type hints cannot be read: {e}", where) from e
    inputs = []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise UpdraftError(
                f"{what} {fn.__name__}: *{parameter.name} has no fixed inputs", where, "name every input"
            )
        if parameter.name not in hints:
            raise UpdraftError(
                f"{what} {fn.__name__}: input {parameter.name!r} has no type hint",
                where,
                f"annotate it, e.g. {parameter.name}: int; inputs are typed so that runs can be checked and cached",
            )
        inputs.append(_variable(fn, what, parameter.name, hints[parameter.name], parameter.default, where))
    if "return" not in hints:
        raise UpdraftError(
            f"{what} {fn.__name__}: the return type is missing",
            where,
            "annotate it: -> float, -> NamedTuple('Out', [('model', Path)]), or -> None for no outputs",
        )
    try:
        fields = _output_fields(hints["return"])
    except UpdraftTypeError as e:
        raise UpdraftError(f"{what} {fn.__name__}: its return type: {e}", where) from e
    outputs = [_variable(fn, what, name, hint, inspect.Parameter.empty, where) for name, hint in fields]
    return inputs, outputs


def _variable(fn: Callable[..., Any], what: str, name: str, hint: Any, default: Any, where: str) -> Variable:
    try:
        return Variable(name, hint, _types.spec_type(hint), default)
    except UpdraftTypeError as e:
        raise UpdraftError(f"{what} {fn.__name__}: {name!r}: {e}", where) from e


# ---- tracing ----


class _Trace:
    """The workflow being traced: its nodes in call order."""

    def __init__(self, workflow: Workflow[Any, Any]) -> None:
        self.workflow = workflow
        self.nodes: dict[str, Node] = {}

    def add(self, node: Node) -> Node:
        base, n = node.name, 1
        while node.name in self.nodes:
            n += 1
            node.name = f"{base}_{n}"
        self.nodes[node.name] = node
        return node


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("updraft_trace", default=None)


class _Comparable:
    """Comparisons that build branch conditions (`total.sum > 100`) instead of booleans."""

    def _compare(self, op: str, other: Any) -> Condition:
        raise NotImplementedError

    def __gt__(self, other: Any) -> Condition:
        return self._compare(">", other)

    def __ge__(self, other: Any) -> Condition:
        return self._compare(">=", other)

    def __lt__(self, other: Any) -> Condition:
        return self._compare("<", other)

    def __le__(self, other: Any) -> Condition:
        return self._compare("<=", other)

    def __eq__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("!=", other)

    __hash__ = object.__hash__


class Promise(_Comparable):
    """A value that a workflow will have when it runs: a workflow input or a node's output."""

    def __init__(self, node: Node | None, name: str, hint: Any) -> None:
        self.node = node
        self.name = name
        self.hint = hint

    def ref(self) -> str:
        return f"$inputs.{self.name}" if self.node is None else f"${self.node.name}.{self.name}"

    def _compare(self, op: str, other: Any) -> Condition:
        return Condition(f"{self.ref()} {op} {_operand(other)}", [self, other])

    def __bool__(self) -> bool:
        raise UpdraftError(
            f"{self.ref()} has no value while the workflow is traced",
            caller_location(),
            "a workflow's body only wires tasks together; branch with updraft.conditional(...)",
        )

    def __getattr__(self, name: str) -> Any:
        # Only names that are not attributes arrive here; dunders and a half-built object's own are real misses.
        if name.startswith("__") or name in ("node", "name", "hint"):
            raise AttributeError(name)
        return _no_field(self.ref(), self.hint, name)

    def __repr__(self) -> str:
        return f"Promise({self.ref()})"


def _no_field(ref: str, hint: Any, name: str) -> Any:
    """Reading a field of a value that exists only when the workflow runs."""
    fields = [f.name for f in dataclasses.fields(hint)] if dataclasses.is_dataclass(hint) else []
    what = f"{ref} is a {getattr(hint, '__name__', 'value')}"
    if name in fields:
        raise UpdraftError(
            f"{what}, and its field {name!r} is not a value of its own while the workflow is traced",
            caller_location(),
            f"pass {ref} whole to a task that reads .{name}, or make {name} an output of its own (return a NamedTuple)",
        )
    raise UpdraftError(
        f"{what} with no attribute {name!r}" + (f"; its fields: {', '.join(fields)}" if fields else ""),
        caller_location(),
        "a workflow's body only wires tasks together: compute with values inside a task",
    )


def _no_arithmetic(op: str) -> Callable[..., Any]:
    def refuse(self: Any, *other: Any) -> Any:
        ref = self.ref() if isinstance(self, Promise) else self._single().ref()
        raise UpdraftError(
            f"{ref} {op} ...: a promise has no value while the workflow is traced",
            caller_location(),
            "a workflow's body only wires tasks together: do the arithmetic inside a task and pass its result on",
        )

    return refuse


def _operand(value: Any) -> str:
    if isinstance(value, Promise):
        return value.ref()
    if isinstance(value, NodeOutputs):
        return value._single().ref()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        quote = '"' if '"' not in value else "'"
        if quote in value:
            raise UpdraftError("a string in a condition cannot hold both quote characters", caller_location())
        return f"{quote}{value}{quote}"
    raise UpdraftError(f"cannot compare with {type(value).__name__} in a condition", caller_location())


class Condition:
    """A branch condition; combine with `&` and `|` (Python's `and`/`or` cannot be traced)."""

    def __init__(self, text: str, parts: list[Any]) -> None:
        self.text = text
        self.parts = parts

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) and ({other.text})", [self, other])

    def __or__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) or ({other.text})", [self, other])

    def render(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        raise UpdraftError(
            "a condition has no truth value while the workflow is traced",
            caller_location(),
            "combine conditions with & and | (not and/or), and branch with updraft.conditional(...)",
        )


class NodeOutputs(_Comparable):
    """What calling a task or workflow in a workflow returns: its outputs as promises.

    One output: pass it on as it is. Several: unpack them (`train, test = split(...)`)
    or read them by name (`split(...).train`)."""

    def __init__(self, node: Node, outputs: list[Variable]) -> None:
        self._node = node
        self._outputs = outputs

    def __getattr__(self, name: str) -> Promise:
        if name.startswith("_"):
            raise AttributeError(name)
        for v in self._outputs:
            if v.name == name:
                return Promise(self._node, name, v.hint)
        if len(self._outputs) == 1 and dataclasses.is_dataclass(self._outputs[0].hint):
            single = self._outputs[0]
            return typing.cast(Promise, _no_field(f"${self._node.name}.{single.name}", single.hint, name))
        raise UpdraftError(
            f"{self._node.name} has no output {name!r}; it has: {', '.join(v.name for v in self._outputs) or 'none'}",
            caller_location(),
        )

    def __iter__(self) -> Iterator[Promise]:
        return iter([Promise(self._node, v.name, v.hint) for v in self._outputs])

    def __len__(self) -> int:
        return len(self._outputs)

    def _single(self) -> Promise:
        if len(self._outputs) != 1:
            raise UpdraftError(
                f"{self._node.name} has {len(self._outputs)} outputs, so it cannot be passed as one value",
                caller_location(),
                "pass one of them: node.NAME, or unpack them",
            )
        return Promise(self._node, self._outputs[0].name, self._outputs[0].hint)

    def _compare(self, op: str, other: Any) -> Condition:
        return self._single()._compare(op, other)


# Arithmetic and indexing on promises cannot be traced: each says so where it is written.
for _op, _names in {
    "+": ["__add__", "__radd__"],
    "-": ["__sub__", "__rsub__", "__neg__"],
    "*": ["__mul__", "__rmul__"],
    "/": ["__truediv__", "__rtruediv__"],
    "//": ["__floordiv__", "__rfloordiv__"],
    "%": ["__mod__", "__rmod__"],
    "**": ["__pow__", "__rpow__"],
    "[]": ["__getitem__"],
}.items():
    for _name in _names:
        setattr(Promise, _name, _no_arithmetic(_op))
        if _op != "[]":
            setattr(NodeOutputs, _name, _no_arithmetic(_op))


def binding(value: Any) -> Any:
    """A value passed to a node as the spec writes it: references, or a literal."""
    if isinstance(value, Conditional):
        value = value.results()
    if isinstance(value, Promise):
        return value.ref()
    if isinstance(value, NodeOutputs):
        return value._single().ref()
    if isinstance(value, str):
        return "$" + value if value.startswith("$") else value
    if isinstance(value, (list, tuple)):
        return [binding(v) for v in value]
    if isinstance(value, dict):
        return {str(k): binding(v) for k, v in value.items()}
    return _types.to_json(value)


@dataclasses.dataclass
class Node:
    name: str
    where: str
    body: dict[str, Any]
    inputs: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {**self.body, "inputs": {k: binding(v) for k, v in self.inputs.items()}}


def _bind(
    target: Task[Any, Any] | Workflow[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any], where: str
) -> dict[str, Any]:
    names = [v.name for v in target.inputs]
    if args:
        # As flytekit: in a workflow, inputs are bound by name, so reordering a task's
        # parameters can never silently swap what two nodes pass each other.
        example = ", ".join(f"{name}=..." for name in names[: max(len(args), 1)])
        raise UpdraftError(
            f"{target.kind} {target.name} is called with {len(args)} positional argument(s) in a workflow",
            where,
            f"pass inputs by name: {target.name}({example})",
        )
    bound: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in names:
            raise UpdraftError(
                f"{target.kind} {target.name} has no input {key!r}; it takes: {', '.join(names) or 'nothing'}", where
            )
        if key in bound:
            raise UpdraftError(f"input {key!r} of {target.name} is given twice", where)
        bound[key] = value
    return bound


# ---- tasks ----


class Task(Generic[P, R]):
    """A typed Python function that runs as an Updraft task (`@updraft.task`)."""

    kind = "task"

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None,
        image: str | None,
        cpu: float | str | None,
        memory: str | None,
        gpu: int | None,
        cache: bool,
        cache_version: str | None,
        retries: int,
        timeout: datetime.timedelta | str | None,
        env: Mapping[str, str] | None,
        secrets: Mapping[str, Secret] | None,
        fresh_process: bool,
    ) -> None:
        self.function = fn
        self.name = name or fn.__name__
        self.module = fn.__module__
        self.where = _definition_location(fn)
        self.inputs, self.outputs = interface_of(fn, "task")
        self.image = image
        self.resources = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpu", gpu)) if v is not None}
        self.cache = cache
        self.cache_version = cache_version
        self.retries = retries
        self.timeout = timeout
        self.env = dict(env or {})
        self.secrets = dict(secrets or {})
        self.fresh_process = fresh_process
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = _TRACE.get()
        if trace is None:
            return self.function(*args, **kwargs)
        where = caller_location()
        node = trace.add(Node(self.name, where, {"task": self.name}, _bind(self, args, kwargs, where)))
        trace.workflow.callees.append(self)
        return typing.cast(R, NodeOutputs(node, self.outputs))

    def entry_point(self) -> str:
        """`module:function`, what `python -m updraft.task` imports and calls."""
        return f"{self.module}:{self.function.__name__}"

    def spec(self) -> dict[str, Any]:
        command = ["python3", "-m", "updraft.task"]
        if self.fresh_process:
            command.append("--fresh-process")
        command.append(self.entry_point())
        out: dict[str, Any] = {}
        doc = inspect.getdoc(self.function)
        if doc:
            out["description"] = doc.split("\n\n")[0].replace("\n", " ")
        out["image"] = self.image or settings_of(self.module).image
        out["command"] = command
        if self.env:
            out["env"] = self.env
        out["inputs"] = {v.name: v.spec() for v in self.inputs}
        out["outputs"] = {v.name: v.type for v in self.outputs}
        if self.resources:
            out["resources"] = self.resources
        if self.cache:
            version = self.cache_version
            if version == "auto":
                from ._source import auto_version

                version = auto_version(self.function)
            out["cache"] = {"version": version} if version is not None else True
        if self.retries:
            out["retries"] = self.retries
        if self.timeout is not None:
            timeout = self.timeout
            out["timeout"] = _types.format_duration(timeout) if isinstance(timeout, datetime.timedelta) else timeout
        if self.secrets:
            out["secrets"] = {k: s.spec() for k, s in self.secrets.items()}
        return out


@typing.overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@typing.overload
def task(
    *,
    name: str | None = None,
    image: str | None = None,
    cpu: float | str | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    cache: bool = False,
    cache_version: str | None = None,
    retries: int = 0,
    timeout: datetime.timedelta | str | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, Secret] | None = None,
    fresh_process: bool = False,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Any = None, /, **options: Any) -> Any:
    """Makes a typed function an Updraft task.

    `cache=True, cache_version="1"` caches its outputs by cache key (`cache_version="auto"`:
    a digest of the function's source and the project-local code it reaches); `cpu`, `memory`
    (`"2Gi"`) and `gpu` are what one run needs; `retries`, `timeout` (`"30m"` or a
    timedelta), `env`, `secrets` as in the spec. Locally the task runs in a process
    forked from a warm worker that has imported its module; `fresh_process=True`
    starts a new interpreter for it instead (docs/python.md)."""
    defaults: dict[str, Any] = {
        "name": None,
        "image": None,
        "cpu": None,
        "memory": None,
        "gpu": None,
        "cache": False,
        "cache_version": None,
        "retries": 0,
        "timeout": None,
        "env": None,
        "secrets": None,
        "fresh_process": False,
    }
    unknown = set(options) - set(defaults)
    if unknown:
        raise UpdraftError(
            f"@task has no option {', '.join(sorted(unknown))}",
            caller_location(),
            f"its options are: {', '.join(defaults)}",
        )
    settings = {**defaults, **options}
    if fn is None:
        return lambda f: Task(f, **settings)
    return Task(fn, **settings)


# ---- workflows ----


class Workflow(Generic[P, R]):
    """A DAG of tasks, written as a Python function that calls them (`@updraft.workflow`)."""

    kind = "workflow"

    def __init__(self, fn: Callable[P, R], name: str | None, on_failure: str | None) -> None:
        self.function = fn
        self.name = name or fn.__name__
        self.module = fn.__module__
        self.where = _definition_location(fn)
        self.inputs, self.outputs = interface_of(fn, "workflow")
        self.on_failure = on_failure
        self.callees: list[Task[Any, Any] | Workflow[Any, Any]] = []
        self._traced: _Trace | None = None
        self.__doc__ = fn.__doc__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = _TRACE.get()
        if trace is None:
            raise UpdraftError(
                f"workflow {self.name} runs through Updraft, not as a plain call",
                caller_location(),
                f"run it with: updraft run {self.where.split(':')[0]} {self.name}",
            )
        where = caller_location()
        node = trace.add(Node(self.name, where, {"workflow": self.name}, _bind(self, args, kwargs, where)))
        trace.workflow.callees.append(self)
        return typing.cast(R, NodeOutputs(node, self.outputs))

    def trace(self) -> _Trace:
        """Runs the body once with promises for the inputs; its calls become the nodes."""
        if self._traced is not None:
            return self._traced
        trace = _Trace(self)
        token = _TRACE.set(trace)
        try:
            body: Callable[..., Any] = self.function
            result = body(*[Promise(None, v.name, v.hint) for v in self.inputs])
        finally:
            _TRACE.reset(token)
        for pending in list(trace.nodes.values()):
            branch = pending.body.get("_builder")
            if isinstance(branch, Conditional):
                branch.close()
        self._returned = self._output_bindings(result)
        self._traced = trace
        return trace

    def _output_bindings(self, result: Any) -> dict[str, str]:
        names = [v.name for v in self.outputs]
        if result is None:
            values: list[Any] = []
        elif (isinstance(result, (NodeOutputs, Conditional)) and len(names) != 1) or isinstance(result, tuple):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(names):
            raise UpdraftError(
                f"workflow {self.name} returns {len(values)} value(s), but its return type declares {len(names)}",
                self.where,
                "return one promise per declared output",
            )
        values = [v.results() if isinstance(v, Conditional) else v for v in values]
        out = {}
        for name, value in zip(names, values, strict=True):
            if not isinstance(value, (Promise, NodeOutputs)):
                raise UpdraftError(
                    f"workflow {self.name}: output {name!r} is {type(value).__name__}, not a task's output",
                    self.where,
                    "return what the tasks it calls return",
                )
            out[name] = binding(value)
        return out

    def spec(self) -> dict[str, Any]:
        trace = self.trace()
        out: dict[str, Any] = {}
        doc = inspect.getdoc(self.function)
        if doc:
            out["description"] = doc.split("\n\n")[0].replace("\n", " ")
        out["inputs"] = {v.name: v.spec() for v in self.inputs}
        out["nodes"] = {name: node.spec() for name, node in trace.nodes.items()}
        types_by_name = {v.name: v.type for v in self.outputs}
        out["outputs"] = {name: {"type": types_by_name[name], "from": ref} for name, ref in self._returned.items()}
        if self.on_failure:
            out["on_failure"] = self.on_failure
        return out


@typing.overload
def workflow(fn: Callable[P, R], /) -> Workflow[P, R]: ...


@typing.overload
def workflow(
    *, name: str | None = None, on_failure: str | None = None
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...


def workflow(fn: Any = None, /, *, name: str | None = None, on_failure: str | None = None) -> Any:
    """Makes a function whose body calls tasks a workflow; its inputs and return are typed.

    `on_failure="finish_independent"` lets nodes that do not depend on a failure finish."""
    if fn is None:
        return lambda f: Workflow(f, name, on_failure)
    return Workflow(fn, name, on_failure)


# ---- maps ----


class MappedTask:
    """`updraft.map(task)`: one run of the task per element of its list inputs."""

    def __init__(
        self,
        target: Task[Any, Any],
        over: Sequence[str] | None,
        concurrency: int | None,
        min_success_ratio: float | None,
    ) -> None:
        self.target = target
        self.over = list(over) if over is not None else None
        self.concurrency = concurrency
        self.min_success_ratio = min_success_ratio

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        trace = _TRACE.get()
        where = caller_location()
        if trace is None:
            raise UpdraftError("updraft.map(...) is called inside a workflow", where)
        bound = _bind(self.target, args, kwargs, where)
        over = self.over if self.over is not None else list(bound)
        body: dict[str, Any] = {"task": self.target.name, "over": over}
        if self.concurrency is not None:
            body["concurrency"] = self.concurrency
        if self.min_success_ratio is not None:
            body["min_success_ratio"] = self.min_success_ratio
        node = trace.add(Node(self.target.name, where, {"map": body}, bound))
        trace.workflow.callees.append(self.target)
        # Failed items are null when a map may succeed partly: list<optional<T>>.
        partial = self.min_success_ratio is not None and self.min_success_ratio < 1
        optional: Any = typing.Optional
        listed: Any = list
        outputs = [
            Variable(
                v.name,
                listed[optional[v.hint]] if partial else listed[v.hint],
                {"list": {"optional": v.type} if partial else v.type},
            )
            for v in self.target.outputs
        ]
        return NodeOutputs(node, outputs)


def map(
    target: Task[Any, Any],
    *,
    over: Sequence[str] | None = None,
    concurrency: int | None = None,
    min_success_ratio: float | None = None,
) -> MappedTask:
    """Runs `target` once per element: the inputs named in `over` (default: every input
    given) take lists of what the task takes; each output becomes a list."""
    return MappedTask(target, over, concurrency, min_success_ratio)


map_task = map


# ---- branches ----


class Conditional:
    """`updraft.conditional("name").if_(cond).then(task(...)).elif_(...).then(...).else_().then(...)`."""

    def __init__(self, name: str) -> None:
        trace = _TRACE.get()
        self.where = caller_location()
        if trace is None:
            raise UpdraftError("updraft.conditional(...) is used inside a workflow", self.where)
        self.trace = trace
        self.cases: list[dict[str, Any]] = []
        self.otherwise: dict[str, Any] | None = None
        self.outputs: list[Variable] | None = None
        self.node = trace.add(Node(name, self.where, {"_builder": self}, {}))
        self._pending: Condition | None = None
        self._else = False

    def if_(self, condition: Condition) -> Conditional:
        if not isinstance(condition, Condition):
            raise UpdraftError("if_ takes a comparison of promises, such as total.sum > 100", caller_location())
        self._pending = condition
        return self

    elif_ = if_

    def else_(self) -> Conditional:
        self._else = True
        return self

    def _target(self, outputs: Any) -> dict[str, Any]:
        if not isinstance(outputs, NodeOutputs) or outputs._node.name not in self.trace.nodes:
            raise UpdraftError(
                "then(...) takes the call of a task or workflow, e.g. then(describe(x=...))", caller_location()
            )
        node = self.trace.nodes.pop(outputs._node.name)
        if self.outputs is None:
            self.outputs = outputs._outputs
        return node.spec()

    def then(self, outputs: Any) -> Conditional:
        target = self._target(outputs)
        if self._else:
            self.otherwise = target
        elif self._pending is not None:
            self.cases.append({"if": self._pending.render(), "then": target})
            self._pending = None
        else:
            raise UpdraftError("then(...) follows if_(...), elif_(...) or else_()", caller_location())
        return self

    def fail(self, message: str) -> Conditional:
        if not self._else:
            raise UpdraftError("fail(...) follows else_()", caller_location())
        self.otherwise = {"fail": message}
        return self

    def close(self) -> None:
        branch: dict[str, Any] = {"cases": self.cases}
        if self.otherwise is not None:
            branch["else"] = self.otherwise
        self.node.body = {"branch": branch}

    def results(self) -> NodeOutputs:
        """The branch node's outputs: those of its cases."""
        return NodeOutputs(self.node, self.outputs or [])

    def __getattr__(self, name: str) -> Promise:
        if name.startswith("_") or self.outputs is None:
            raise AttributeError(name)
        return getattr(self.results(), name)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Promise]:
        return iter(self.results())

    def _single(self) -> Promise:
        return self.results()._single()


def conditional(name: str) -> Conditional:
    """A branch node named `name`: the first case whose condition holds runs."""
    return Conditional(name)


# ---- launch plans ----


class Cron(NamedTuple):
    """A cron schedule: five fields or @daily etc., in an IANA time zone (UTC by default)."""

    expression: str
    timezone: str | None = None


class Rate(NamedTuple):
    """A fixed-rate schedule: `Rate("6h")`."""

    every: str


class LaunchPlan:
    """A workflow with bound inputs and, optionally, a schedule."""

    instances: typing.ClassVar[list[LaunchPlan]] = []

    def __init__(
        self,
        name: str,
        workflow: Workflow[Any, Any],
        *,
        default_inputs: Mapping[str, Any] | None = None,
        fixed_inputs: Mapping[str, Any] | None = None,
        schedule: Cron | Rate | None = None,
        kickoff_input: str | None = None,
        active: bool = True,
    ) -> None:
        self.name = name
        self.workflow = workflow
        self.where = caller_location()
        self.default_inputs = dict(default_inputs or {})
        self.fixed_inputs = dict(fixed_inputs or {})
        self.schedule = schedule
        self.kickoff_input = kickoff_input
        self.active = active
        LaunchPlan.instances.append(self)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workflow": self.workflow.name}
        if self.default_inputs:
            out["default_inputs"] = _types.to_json(self.default_inputs)
        if self.fixed_inputs:
            out["fixed_inputs"] = _types.to_json(self.fixed_inputs)
        if self.schedule is not None:
            schedule: dict[str, Any]
            if isinstance(self.schedule, Cron):
                schedule = {"cron": self.schedule.expression}
                if self.schedule.timezone:
                    schedule["timezone"] = self.schedule.timezone
            else:
                schedule = {"rate": self.schedule.every}
            if self.kickoff_input:
                schedule["kickoff_input"] = self.kickoff_input
            out["schedule"] = schedule
        if not self.active:
            out["active"] = False
        return out
