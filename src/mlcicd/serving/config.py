"""The serving config: what one generation of workers serves.

The endpoint backend writes it as ``<endpoint_dir>/config.json``; the supervisor reads it at
start and on SIGHUP, and hands each generation of workers a frozen copy. Paths in it are
absolute and ready to use: the model is already extracted, the code already copied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint limit


@dataclass(frozen=True)
class VariantSpec:
    """One production variant as a worker loads it."""

    name: str
    model_dir: str
    code_dir: str
    entry_point: str = "inference.py"
    model_sha256: str | None = None
    python: str | None = None
    weight: float = 1.0
    environment: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_dir": self.model_dir,
            "code_dir": self.code_dir,
            "entry_point": self.entry_point,
            "model_sha256": self.model_sha256,
            "python": self.python,
            "weight": self.weight,
            "environment": dict(self.environment),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> VariantSpec:
        env = _get(data, "environment", where, dict, {})
        return cls(
            name=_get(data, "name", where, str),
            model_dir=_get(data, "model_dir", where, str),
            code_dir=_get(data, "code_dir", where, str),
            entry_point=_get(data, "entry_point", where, str, "inference.py"),
            model_sha256=_get(data, "model_sha256", where, (str, type(None)), None),
            python=_get(data, "python", where, (str, type(None)), None),
            weight=float(_get(data, "weight", where, (int, float), 1.0)),
            environment={str(k): str(v) for k, v in env.items()},
        )


@dataclass(frozen=True)
class ServingConfig:
    """Everything the supervisor and its workers need, as plain data."""

    name: str  # the endpoint config's name
    variants: tuple[VariantSpec, ...]
    endpoint_name: str | None = None  # None: /endpoints/{any}/invocations is accepted
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    workers: int = 2
    startup_timeout: float = 60.0
    drain_timeout: float = 30.0
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.variants:
            out.append("variants: at least one production variant is needed")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            out.append(f"variants: names must be unique, got {names}")
        for v in self.variants:
            if not (v.weight > 0 and math.isfinite(v.weight)):
                out.append(f"variants.{v.name}.weight: must be a positive number, got {v.weight}")
        pythons = {v.python for v in self.variants}
        if len(pythons) > 1:
            out.append(
                "variants: all variants must use the same python (one worker serves them all)"
            )
        if self.workers < 1:
            out.append(f"workers: must be at least 1, got {self.workers}")
        if not 0 <= self.port <= 65535:
            out.append(f"port: must be between 0 and 65535, got {self.port}")
        if self.startup_timeout <= 0:
            out.append(f"startup_timeout: must be positive, got {self.startup_timeout}")
        if self.max_payload_bytes <= 0:
            out.append(f"max_payload_bytes: must be positive, got {self.max_payload_bytes}")
        return out

    @property
    def python(self) -> str | None:
        """The interpreter the workers run under (shared by all variants)."""
        return self.variants[0].python if self.variants else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "endpoint_name": self.endpoint_name,
            "host": self.host,
            "port": self.port,
            "workers": self.workers,
            "startup_timeout": self.startup_timeout,
            "drain_timeout": self.drain_timeout,
            "max_payload_bytes": self.max_payload_bytes,
            "variants": [v.to_dict() for v in self.variants],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> ServingConfig:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"{where}: format {fmt!r} is not supported (expected {FORMAT})")
        raw_variants = _get(data, "variants", where, list)
        variants = tuple(
            VariantSpec.from_dict(v, f"{where}: variants[{i}]")
            if isinstance(v, Mapping)
            else _bad(where, i)
            for i, v in enumerate(raw_variants)
        )
        return cls(
            name=_get(data, "name", where, str),
            variants=variants,
            endpoint_name=_get(data, "endpoint_name", where, (str, type(None)), None),
            host=_get(data, "host", where, str, "127.0.0.1"),
            port=_get(data, "port", where, int, 0),
            workers=_get(data, "workers", where, int, 2),
            startup_timeout=float(_get(data, "startup_timeout", where, (int, float), 60.0)),
            drain_timeout=float(_get(data, "drain_timeout", where, (int, float), 30.0)),
            max_payload_bytes=_get(
                data, "max_payload_bytes", where, int, DEFAULT_MAX_PAYLOAD_BYTES
            ),
        )


_MISSING = object()


def _get(data: Mapping[str, Any], key: str, where: str, types: Any, default: Any = _MISSING) -> Any:
    if key not in data:
        if default is _MISSING:
            raise ValueError(f"{where}: missing key {key!r}")
        return default
    value = data[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        raise ValueError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _tuple(types: Any) -> tuple[Any, ...]:
    return types if isinstance(types, tuple) else (types,)


def _bad(where: str, index: int) -> VariantSpec:
    raise ValueError(f"{where}: variants[{index}] must be an object")
