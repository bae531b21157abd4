"""Loading mlcicd.yaml: the YAML walked against the schema's type hints.

An unknown key, a wrong type or a bad value fails here with the file, the key path
(``train.hyperparameters.C``) and what was expected; the config built is then validated by
``mlcicd.config.checks`` — all before any stage runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcicd.config.checks import _check_semantics
from mlcicd.config.schema import CONFIG_FILE, Config
from mlcicd.errors import ConfigError

_THRESHOLD_RE = re.compile(r"^\s*(>=|<=|==|>|<)?\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def load_config(project_dir: Path) -> Config:
    """Read and validate ``<project_dir>/mlcicd.yaml``."""
    path = project_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            "file not found",
            path=str(path),
            hint="run `mlcicd init` to create one, or pass the project directory",
        )
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))


def parse_config(text: str, *, source: str = CONFIG_FILE) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", path=source) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings at the top level", path=source)
    data = dict(data)
    if "gate" in data:
        data["gate"] = _gate_to_thresholds(data["gate"], source)
    if isinstance(data.get("approve"), str):  # `approve: manual` is `approve: {mode: manual}`
        data["approve"] = {"mode": data["approve"]}
    config: Config = _build(Config, data, "", source)
    _check_semantics(config, source)
    return config


def _gate_to_thresholds(raw: Any, source: str) -> dict[str, Any]:
    """``gate: {accuracy: ">= 0.85"}`` → ``{"thresholds": [...]}``; a bare number means ``>=``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f'expected a mapping of metric: threshold (e.g. accuracy: ">= 0.85"), got {_kind(raw)}',
            path=source,
            key="gate",
        )
    thresholds = []
    challenger = raw.get("challenger")
    for metric, spec in raw.items():
        if metric == "challenger":
            continue
        key = f"gate.{metric}"
        if isinstance(spec, bool) or not isinstance(spec, int | float | str):
            raise ConfigError(
                f'expected a threshold like ">= 0.85", got {_kind(spec)}', path=source, key=key
            )
        match = _THRESHOLD_RE.match(str(spec))
        if not match:
            raise ConfigError(
                f'cannot read threshold {spec!r}; write it as "OP NUMBER" with OP one of >=, >, '
                "<=, <, ==",
                path=source,
                key=key,
            )
        thresholds.append(
            {"metric": str(metric), "op": match.group(1) or ">=", "value": float(match.group(2))}
        )
    return {
        "thresholds": thresholds,
        **({"challenger": challenger} if challenger is not None else {}),
    }


def _build(cls: type[Any], data: Any, keypath: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping, got {_kind(data)}", path=source, key=keypath or None
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{keypath}.{key}" if keypath else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(fields)}"
            raise ConfigError("unknown key", path=source, key=sub, hint=hint)
        kwargs[key] = _coerce(hints[key], value, sub, source)
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            sub = f"{keypath}.{name}" if keypath else name
            raise ConfigError("required key is missing", path=source, key=sub)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, keypath: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, keypath, source)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # Optional[X]: X's own error names the key that is wrong
            raise errors[0]
        expected = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise ConfigError(f"expected {expected}, got {_kind(value)}", path=source, key=keypath)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"expected one of {allowed}, got {value!r}", path=source, key=keypath)
        return value
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type[Any], tp), value, keypath, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {_kind(value)}", path=source, key=keypath)
        return tuple(_coerce(args[0], v, f"{keypath}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {_kind(value)}", path=source, key=keypath)
        return {str(k): _coerce(args[1], v, f"{keypath}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(
                f"expected true or false, got {_kind(value)}", path=source, key=keypath
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_kind(value)}", path=source, key=keypath)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_kind(value)}", path=source, key=keypath)
        if not math.isfinite(value):  # YAML's .inf and .nan: no setting means either
            raise ConfigError(f"expected a finite number, got {value}", path=source, key=keypath)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_kind(value)}", path=source, key=keypath)
        return value
    raise TypeError(
        f"config schema uses unsupported type {tp!r} at {keypath}"
    )  # a bug in the schema


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"{type(value).__name__} ({value!r})"


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is dict or dataclasses.is_dataclass(tp):  # a section is a mapping in the file
        return "a mapping"
    if origin is tuple:
        return "a list"
    return getattr(tp, "__name__", str(tp))
