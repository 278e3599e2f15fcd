"""Typed configs: dataclasses loaded from TOML, overridable with ``key.sub=value`` strings.

Each component keeps its own ``@dataclass`` config beside its code (like nanoGPT's
``GPTConfig``); this module only knows how to build any of them from plain data, rejecting
unknown keys and wrong types with a message that names the key.

Value ranges are declared beside the fields, one class attribute per dataclass::

    RANGES: ClassVar[dict[str, str]] = {"epochs": ">= 1", "dropout": "[0, 1)", "lr": "> 0"}

``from_dict`` checks them (element-wise for lists) before any work starts, and every float
must be finite. Cross-field rules live in an optional ``check(self)`` method it calls last
(raising ValueError, re-raised as ``ConfigError`` with the key's path).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses recurse. Unknown keys raise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: expected a table, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: unknown key(s) {unknown}; "
                          f"known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}{name}")
    ranges: dict[str, str] = getattr(cls, "RANGES", {})
    for name, value in kwargs.items():
        if name in ranges:
            check_range(value, ranges[name], f"{where}{name}")
    try:
        cfg = cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a __post_init__ rule
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {exc}") from None
    check = getattr(cfg, "check", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:  # ConfigError is a ValueError
            raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {exc}") from None
    return cfg


_INTERVAL = re.compile(r"^([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$")
_BOUND = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")


def in_range(value: float, spec: str) -> bool:
    """Whether ``value`` lies in ``spec``: an interval such as ``"[0, 1)"`` or ``">= 1"``."""
    if (m := _INTERVAL.match(spec)):
        lo, hi = float(m[2]), float(m[3])
        return ((lo <= value if m[1] == "[" else lo < value)
                and (value <= hi if m[4] == "]" else value < hi))
    if (m := _BOUND.match(spec)):
        bound = float(m[2])
        return {">=": value >= bound, ">": value > bound, "<=": value <= bound,
                "<": value < bound}[m[1]]
    raise ValueError(f"bad range spec {spec!r}")


def check_range(value: Any, spec: str, where: str) -> None:
    """Raise ``ConfigError`` naming ``where``, the value and ``spec`` unless it holds.

    Lists and tuples are checked element-wise; ``None`` (an unset optional) passes.
    """
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_range(v, spec, f"{where}[{i}]")
        return
    if not in_range(value, spec):
        word = "in" if spec[0] in "[(" else ""
        raise ConfigError(f"{where} = {value!r}: must be {word} {spec}".replace("  ", " "))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {value} is too large for a float") from None
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.d_model=128"`` -> (["model", "d_model"], 128). Values parse as JSON, else str."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[:depth + 1])} is a "
                                  "value, not a table")
        node[path[-1]] = value
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, updated by the TOML file at ``path`` and then by ``overrides``."""
    data: dict[str, Any] = to_dict(cls())
    if path is not None:
        file_data = read_toml(path)
        data = _merge(data, file_data)
    data = apply_overrides(data, overrides or [])
    return from_dict(cls, data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's tables; a missing, non-UTF-8 or malformed file raises ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (looked at {path.resolve()})")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
