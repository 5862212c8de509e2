"""Python type hints as spec types, and values between Python and the task contract.

One direction for each: `spec_type(hint)` writes the type as the spec language
does (docs/spec.md, "Types"); `from_input(json, hint)` turns an input of
`inputs.json` into the Python value a task receives; `write_output(value, hint,
path)` writes a returned value where the task contract expects output NAME.
The Rust side checks every output against the declared type: nothing here is a
second set of type rules.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import os
import pathlib
import re
import shutil
import types
import typing
from typing import Any, Union


class UpdraftTypeError(TypeError):
    """A hint that has no spec type, with what to write instead."""


@dataclasses.dataclass(frozen=True)
class Format:
    """The format of a file or dataframe: `Annotated[Path, Format("joblib")]`."""

    name: str


@dataclasses.dataclass(frozen=True)
class Columns:
    """A dataframe's column schema: `Annotated[pd.DataFrame, Columns(age=int, bmi=float)]`."""

    types: dict[str, Any]

    def __init__(self, **columns: Any) -> None:
        object.__setattr__(self, "types", dict(columns))


@dataclasses.dataclass(frozen=True)
class _Kind:
    """Marks a `Path` as a directory or as a dataframe given as a path."""

    name: str


DIRECTORY_KIND = _Kind("directory")
DATAFRAME_KIND = _Kind("dataframe")

File = pathlib.Path
"""A file, given to the task as a local path (`file`; `Annotated[File, Format("csv")]` for `file<csv>`)."""
Directory = typing.Annotated[pathlib.Path, DIRECTORY_KIND]
"""A directory tree, given as a local path (`directory`)."""
DataFrameFile = typing.Annotated[pathlib.Path, DATAFRAME_KIND]
"""A dataframe given as the path of its CSV or Parquet file (no pandas needed)."""

_SIMPLE: dict[Any, str] = {
    int: "int",
    float: "float",
    str: "string",
    bool: "bool",
    datetime.datetime: "datetime",
    datetime.timedelta: "duration",
}


def _is_pandas_frame(hint: Any) -> bool:
    return getattr(hint, "__name__", None) == "DataFrame" and getattr(hint, "__module__", "").startswith("pandas")


def _split_annotated(hint: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        return base, extras
    return hint, []


def _optional_inner(hint: Any) -> Any | None:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
        raise UpdraftTypeError(f"{_show(hint)}: a union is not a spec type; only Optional[T] (T | None) is")
    return None


def _show(hint: Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def spec_type(hint: Any) -> Any:
    """The spec type of a hint: a string such as `list<int>` or a mapping form."""
    base, extras = _split_annotated(hint)
    fmt = next((e.name for e in extras if isinstance(e, Format)), None)
    columns = next((e for e in extras if isinstance(e, Columns)), None)
    kind = next((e for e in extras if isinstance(e, _Kind)), None)
    if base in _SIMPLE and not extras:
        return _SIMPLE[base]
    inner = _optional_inner(base)
    if inner is not None:
        return {"optional": spec_type(inner)}
    if base is pathlib.Path or base is pathlib.PurePath or base is os.PathLike:
        if kind is DIRECTORY_KIND:
            return "directory"
        if kind is DATAFRAME_KIND or columns is not None:
            return _dataframe(fmt, columns)
        return {"file": {"format": fmt}} if fmt else "file"
    if _is_pandas_frame(base):
        return _dataframe(fmt, columns)
    origin = typing.get_origin(base)
    if origin in (list, typing.List):  # noqa: UP006 - both spellings name a list
        (item,) = typing.get_args(base) or (None,)
        if item is None:
            raise UpdraftTypeError("list needs its item type: list[int]")
        return {"list": spec_type(item)}
    if origin in (dict, typing.Dict):  # noqa: UP006
        args = typing.get_args(base)
        if len(args) != 2:
            raise UpdraftTypeError("dict needs its key and value types: dict[str, float]")
        if args[0] is not str:
            raise UpdraftTypeError(f"map keys are strings: write dict[str, ...], not dict[{_show(args[0])}, ...]")
        return {"map": spec_type(args[1])}
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        hints = typing.get_type_hints(base, include_extras=True)
        return {"struct": {f.name: spec_type(hints[f.name]) for f in dataclasses.fields(base)}}
    if base is typing.Any or base is None or base is type(None):
        raise UpdraftTypeError(f"{_show(base)} is not a spec type; give a concrete type such as int or list[str]")
    raise UpdraftTypeError(
        f"{_show(hint)} is not a spec type; use int, float, str, bool, datetime, timedelta, list[T], "
        "dict[str, T], Optional[T], a dataclass, pathlib.Path (file), updraft.Directory, "
        "pandas.DataFrame or updraft.DataFrameFile"
    )


def _dataframe(fmt: str | None, columns: Columns | None) -> Any:
    frame: dict[str, Any] = {"format": fmt or "csv"}
    if columns is not None:
        frame["columns"] = {name: spec_type(t) for name, t in columns.types.items()}
    return {"dataframe": frame}


def _format_of(hint: Any, default: str) -> str:
    _, extras = _split_annotated(hint)
    return next((e.name for e in extras if isinstance(e, Format)), default)


# ---- values: Python literals in a spec (defaults, bindings) ----


def format_duration(value: datetime.timedelta) -> str:
    millis = round(value.total_seconds() * 1000)
    if millis < 0:
        raise ValueError(f"a duration is not negative: {value}")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> datetime.timedelta:
    if text.isdigit():
        return datetime.timedelta(seconds=int(text))
    parts = _DURATION.findall(text)
    if not parts or "".join(a + u for a, u in parts) != text:
        raise ValueError(f"cannot read duration {text!r}")
    return datetime.timedelta(milliseconds=sum(int(a) * _UNIT_MS[u] for a, u in parts))


def to_json(value: Any) -> Any:
    """A Python value as the plain JSON the spec and the task contract use."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return format_duration(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise UpdraftTypeError(f"{type(value).__name__} value {value!r} cannot be written in a spec")


# ---- inputs: inputs.json → Python ----


def from_input(value: Any, hint: Any) -> Any:
    """An input from `inputs.json` (files as local paths) as the Python value of `hint`."""
    if value is None:
        return None
    base, extras = _split_annotated(hint)
    inner = _optional_inner(base)
    if inner is not None:
        return from_input(value, inner)
    if base is float:
        return float(value)
    if base in (int, str, bool):
        return value
    if base is datetime.datetime:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if base is datetime.timedelta:
        return parse_duration(value)
    if base in (pathlib.Path, pathlib.PurePath, os.PathLike):
        return pathlib.Path(value)
    if _is_pandas_frame(base):
        pandas: Any = importlib.import_module("pandas")
        if _format_of(hint, "csv") == "parquet":
            return pandas.read_parquet(value)
        return pandas.read_csv(value)
    origin = typing.get_origin(base)
    if origin in (list, typing.List):  # noqa: UP006
        (item,) = typing.get_args(base)
        return [from_input(v, item) for v in value]
    if origin in (dict, typing.Dict):  # noqa: UP006
        item = typing.get_args(base)[1]
        return {k: from_input(v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        hints = typing.get_type_hints(base, include_extras=True)
        return base(**{f.name: from_input(value.get(f.name), hints[f.name]) for f in dataclasses.fields(base)})
    del extras
    return value


# ---- outputs: Python → the task contract's output paths ----


def write_output(value: Any, hint: Any, path: str) -> None:
    """Writes a returned value where the contract expects it; `None` writes nothing (absent)."""
    if value is None:
        return
    base, _ = _split_annotated(hint)
    inner = _optional_inner(base)
    if inner is not None:
        write_output(value, inner, path)
        return
    if _is_pandas_frame(base) or _is_pandas_frame(type(value)):
        if _format_of(hint, "csv") == "parquet":
            value.to_parquet(path, index=False)
        else:
            value.to_csv(path, index=False)
        return
    if base in (pathlib.Path, pathlib.PurePath, os.PathLike):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"expected a path for a file or directory output, got {type(value).__name__}")
        source = os.fspath(value)
        if os.path.isdir(source):
            shutil.copytree(source, path, symlinks=False)
        else:
            shutil.copyfile(source, path)
        return
    with open(path, "w", encoding="utf-8") as out:
        json.dump(to_json(value), out)
