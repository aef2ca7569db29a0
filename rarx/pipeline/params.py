"""Typed stage parameters: a YAML mapping checked against a frozen dataclass.

Each stage kind declares its parameters as a frozen dataclass; :func:`parse_params`
turns the mapping a pipeline file gives into one, or raises a :class:`ConfigError`
that names the place (file, stage index and kind), the key, and what is accepted.
Only the few types stage parameters use are understood: ``str``, ``int``, ``float``,
``bool``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` and nested dataclasses,
and :data:`rarx.llm.LLMRef` (a model name or a mapping with ``model``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from rarx.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        item = _type_name(get_args(tp)[0])
        return f"a list of ({item})" if " or " in item else f"a list of {item}"
    if origin is not None and origin in (Mapping, dict):
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {_accepted(tp)}"
    return getattr(tp, "__name__", str(tp))


def _accepted(cls: Any) -> str:
    return "{" + ", ".join(f.name for f in dataclasses.fields(cls)) + "}"


def _found(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, Mapping) else "a mapping"


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked (and for tuples/dataclasses converted) against ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {_found(value)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is tuple:
        if isinstance(value, list | tuple):
            item = get_args(tp)[0]
            return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    elif origin is not None and origin in (Mapping, dict, typing.Mapping):
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return parse_params(tp, value, where)  # type: ignore[arg-type]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a stage declared a type this module does not know
        raise TypeError(f"unsupported parameter type {tp!r}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, found {_found(value)}")


def parse_params(cls: type[T], raw: Mapping[str, Any] | None, where: str) -> T:
    """An instance of the frozen dataclass ``cls`` from ``raw``; unknown keys, missing
    required keys and wrong types are errors naming ``where`` and the key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: parameters must be a mapping of {_accepted(cls)}, found {_found(raw)}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    unknown = sorted(str(k) for k in raw if k not in fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter {unknown[0]!r}; accepted: {', '.join(fields)}"
        )
    values = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(
                    f"{where}: missing required parameter {name!r} ({_type_name(hints[name])})"
                )
            continue
        values[name] = _convert(raw[name], hints[name], f"{where}: parameter {name!r}")
    try:
        return cls(**values)
    except (ValueError, ConfigError) as exc:  # a dataclass's own cross-field checks
        raise ConfigError(f"{where}: {exc}") from None
