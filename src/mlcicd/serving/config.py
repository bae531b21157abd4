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
DEFAULT_MODEL_TIMEOUT = 60.0  # SageMaker's invocation limit: a worker stalled longer is replaced
STRATEGIES = ("all_at_once", "canary", "linear")
CAPTURE_QUEUE_SIZE = 1000
# How far back the invocation rate that drives autoscaling is measured (SageMaker: one minute).
DEFAULT_SCALING_WINDOW = 10.0
# Worker processes of one config on this machine: an update runs two generations at once, and
# the connection board has 64 slots (balance.SLOTS). mlcicd.config.infrastructure says the same.
MAX_WORKERS = 32


@dataclass(frozen=True)
class CaptureSpec:
    """What to capture, how often and where: an absolute directory, or an ``s3://bucket/prefix``
    URI (the S3 artifact store's ``data-capture`` prefix; SageMaker's ``DestinationS3Uri``)."""

    destination: str
    sampling_percentage: float = 100.0
    capture_input: bool = True
    capture_output: bool = True
    queue_size: int = CAPTURE_QUEUE_SIZE

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "sampling_percentage": self.sampling_percentage,
            "capture_input": self.capture_input,
            "capture_output": self.capture_output,
            "queue_size": self.queue_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaptureSpec:
        return cls(
            destination=str(data["destination"]),
            sampling_percentage=float(data.get("sampling_percentage", 100.0)),
            capture_input=bool(data.get("capture_input", True)),
            capture_output=bool(data.get("capture_output", True)),
            queue_size=int(data.get("queue_size", CAPTURE_QUEUE_SIZE)),
        )


@dataclass(frozen=True)
class DeploymentSpec:
    """How an update moves traffic (SageMaker's blue/green ``TrafficRoutingConfiguration``).

    ``all_at_once`` moves everything, ``canary`` first ``canary_percent`` then the rest,
    ``linear`` ``linear_step_percent`` at a time; each step then waits ``wait_seconds``
    (bake time, interval) while the alarms watch the new config's variants. An alarm that
    trips moves all traffic back (auto-rollback).
    """

    strategy: str = "all_at_once"
    canary_percent: float = 10.0
    linear_step_percent: float = 25.0
    wait_seconds: float = 0.0
    max_5xx_rate: float | None = None  # 5XX errors / invocations, 0..1
    max_p99_latency_ms: float | None = None  # p99 of ModelLatency
    min_invocations: int = 1  # fewer invocations during a wait decide nothing

    @property
    def has_alarms(self) -> bool:
        return self.max_5xx_rate is not None or self.max_p99_latency_ms is not None

    @property
    def shifts(self) -> bool:
        """Whether the update serves old and new side by side (else: a plain generation swap)."""
        return self.strategy != "all_at_once" or (self.has_alarms and self.wait_seconds > 0)

    def steps(self) -> list[float]:
        """The new config's share of traffic after each step, in percent."""
        if self.strategy == "canary":
            return [self.canary_percent, 100.0] if self.canary_percent < 100 else [100.0]
        if self.strategy == "linear":
            out, share = [], 0.0
            while share < 100.0:
                share = min(100.0, share + self.linear_step_percent)
                out.append(share)
            return out
        return [100.0]

    def problems(self) -> list[str]:
        out = []
        if self.strategy not in STRATEGIES:
            out.append(
                f"deployment.strategy: one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if not 0 < self.canary_percent <= 100:
            out.append(f"deployment.canary_percent: between 0 and 100, got {self.canary_percent}")
        if not 0 < self.linear_step_percent <= 100:
            out.append(
                f"deployment.linear_step_percent: between 0 and 100, got {self.linear_step_percent}"
            )
        if self.wait_seconds < 0:
            out.append(f"deployment.wait_seconds: must not be negative, got {self.wait_seconds}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "canary_percent": self.canary_percent,
            "linear_step_percent": self.linear_step_percent,
            "wait_seconds": self.wait_seconds,
            "max_5xx_rate": self.max_5xx_rate,
            "max_p99_latency_ms": self.max_p99_latency_ms,
            "min_invocations": self.min_invocations,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            strategy=str(data.get("strategy", "all_at_once")),
            canary_percent=float(data.get("canary_percent", 10.0)),
            linear_step_percent=float(data.get("linear_step_percent", 25.0)),
            wait_seconds=float(data.get("wait_seconds", 0.0)),
            max_5xx_rate=number("max_5xx_rate"),
            max_p99_latency_ms=number("max_p99_latency_ms"),
            min_invocations=int(data.get("min_invocations", 1)),
        )


@dataclass(frozen=True)
class AutoscalingSpec:
    """Target tracking on the workers (``deploy.autoscaling``; SageMaker's
    ``SageMakerVariantInvocationsPerInstance`` policy): between ``min_instances`` and
    ``max_instances`` workers, about ``target_invocations_per_instance`` invocations per worker
    per minute, measured over the last ``window_seconds``. A scale-out waits
    ``scale_out_cooldown`` after the previous one; a scale-in (one worker at a time)
    ``scale_in_cooldown`` after any change."""

    min_instances: int = 1
    max_instances: int = 1
    target_invocations_per_instance: float = 1000.0
    scale_in_cooldown: float = 300.0
    scale_out_cooldown: float = 60.0
    window_seconds: float = DEFAULT_SCALING_WINDOW

    def problems(self) -> list[str]:
        out = []
        if self.min_instances < 1:
            out.append(f"autoscaling.min_instances: at least 1, got {self.min_instances}")
        if self.max_instances < self.min_instances:
            out.append(
                f"autoscaling.max_instances: at least min_instances ({self.min_instances}), "
                f"got {self.max_instances}"
            )
        if not (
            self.target_invocations_per_instance > 0
            and math.isfinite(self.target_invocations_per_instance)
        ):
            out.append(
                "autoscaling.target_invocations_per_instance: a positive number, got "
                f"{self.target_invocations_per_instance}"
            )
        if self.max_instances > MAX_WORKERS:
            out.append(
                f"autoscaling.max_instances: at most {MAX_WORKERS}, got {self.max_instances}"
            )
        for key in ("scale_in_cooldown", "scale_out_cooldown"):
            if not 0 <= getattr(self, key) < math.inf:
                out.append(
                    f"autoscaling.{key}: a finite number of seconds, 0 or more, got "
                    f"{getattr(self, key)}"
                )
        if not 0 < self.window_seconds < math.inf:
            out.append(
                "autoscaling.window_seconds: a finite, positive number of seconds, got "
                f"{self.window_seconds}"
            )
        return out

    def clamp(self, count: int) -> int:
        """``count`` workers, kept between ``min_instances`` and ``max_instances``."""
        return max(self.min_instances, min(self.max_instances, count))

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
            "target_invocations_per_instance": self.target_invocations_per_instance,
            "scale_in_cooldown": self.scale_in_cooldown,
            "scale_out_cooldown": self.scale_out_cooldown,
            "window_seconds": self.window_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> AutoscalingSpec:
        number = (int, float)
        return cls(
            min_instances=_get(data, "min_instances", where, int, 1),
            max_instances=_get(data, "max_instances", where, int, 1),
            target_invocations_per_instance=float(
                _get(data, "target_invocations_per_instance", where, number, 1000.0)
            ),
            scale_in_cooldown=float(_get(data, "scale_in_cooldown", where, number, 300.0)),
            scale_out_cooldown=float(_get(data, "scale_out_cooldown", where, number, 60.0)),
            window_seconds=float(
                _get(data, "window_seconds", where, number, DEFAULT_SCALING_WINDOW)
            ),
        )


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
    header_timeout: float = 10.0  # for a client to send a request's headers
    body_timeout: float = 60.0  # then for its body
    model_timeout: float = DEFAULT_MODEL_TIMEOUT  # for a request's handlers (the event loop)
    shadow: VariantSpec | None = None
    capture: CaptureSpec | None = None
    deployment: DeploymentSpec = field(default_factory=DeploymentSpec)
    # SageMaker's ClarifyExplainerConfig, as is: online explanations (serving.clarify checks it)
    explainer: Mapping[str, Any] | None = None
    autoscaling: AutoscalingSpec | None = None  # None: always ``workers`` workers

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
        if not 1 <= self.workers <= MAX_WORKERS:
            out.append(f"workers: 1 to {MAX_WORKERS}, got {self.workers}")
        if not 0 <= self.port <= 65535:
            out.append(f"port: must be between 0 and 65535, got {self.port}")
        if self.startup_timeout <= 0:
            out.append(f"startup_timeout: must be positive, got {self.startup_timeout}")
        if self.max_payload_bytes <= 0:
            out.append(f"max_payload_bytes: must be positive, got {self.max_payload_bytes}")
        for key in ("header_timeout", "body_timeout", "model_timeout"):
            if getattr(self, key) <= 0:
                out.append(f"{key}: must be positive, got {getattr(self, key)}")
        if self.shadow is not None and self.shadow.name in names:
            out.append(f"shadow: its name {self.shadow.name!r} is also a production variant's")
        if self.capture is not None and not 0 <= self.capture.sampling_percentage <= 100:
            out.append(
                "capture.sampling_percentage: between 0 and 100, got "
                f"{self.capture.sampling_percentage}"
            )
        if self.capture is not None and self.capture.destination.startswith("s3://"):
            bucket = self.capture.destination.removeprefix("s3://").partition("/")[0]
            if not bucket:
                out.append(f"capture.destination: {self.capture.destination!r} names no bucket")
        out.extend(self.deployment.problems())
        if self.explainer is not None:
            from mlcicd.serving.clarify import clarify_problems

            out.extend(clarify_problems(self.explainer))
        if self.autoscaling is not None:
            out.extend(self.autoscaling.problems())
        return out

    @property
    def initial_workers(self) -> int:
        """How many workers a generation of this config starts with: ``workers``, kept
        within the autoscaling bounds."""
        return self.autoscaling.clamp(self.workers) if self.autoscaling else self.workers

    @property
    def most_workers(self) -> int:
        """How many workers this config may serve with at once: autoscaling's
        ``max_instances``, else ``workers``."""
        return self.autoscaling.max_instances if self.autoscaling else self.workers

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
            "header_timeout": self.header_timeout,
            "body_timeout": self.body_timeout,
            "model_timeout": self.model_timeout,
            "variants": [v.to_dict() for v in self.variants],
            "shadow": self.shadow.to_dict() if self.shadow else None,
            "capture": self.capture.to_dict() if self.capture else None,
            "deployment": self.deployment.to_dict(),
            "explainer": dict(self.explainer) if self.explainer is not None else None,
            "autoscaling": self.autoscaling.to_dict() if self.autoscaling else None,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> ServingConfig:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"{where}: format {fmt!r} is not supported (expected {FORMAT})")
        raw_variants = _get(data, "variants", where, list)
        shadow = _get(data, "shadow", where, (dict, type(None)), None)
        capture = _get(data, "capture", where, (dict, type(None)), None)
        autoscaling = _get(data, "autoscaling", where, (dict, type(None)), None)
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
            header_timeout=float(_get(data, "header_timeout", where, (int, float), 10.0)),
            body_timeout=float(_get(data, "body_timeout", where, (int, float), 60.0)),
            model_timeout=float(
                _get(data, "model_timeout", where, (int, float), DEFAULT_MODEL_TIMEOUT)
            ),
            shadow=VariantSpec.from_dict(shadow, f"{where}: shadow") if shadow else None,
            capture=CaptureSpec.from_dict(capture) if capture else None,
            deployment=DeploymentSpec.from_dict(_get(data, "deployment", where, dict, {})),
            explainer=_get(data, "explainer", where, (dict, type(None)), None),
            autoscaling=AutoscalingSpec.from_dict(autoscaling, f"{where}: autoscaling")
            if autoscaling is not None
            else None,
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
    if isinstance(value, float) and not math.isfinite(value):  # json.loads takes NaN, Infinity
        raise ValueError(f"{where}: {key!r} must be a finite number, got {value}")
    return value


def _tuple(types: Any) -> tuple[Any, ...]:
    return types if isinstance(types, tuple) else (types,)


def _bad(where: str, index: int) -> VariantSpec:
    raise ValueError(f"{where}: variants[{index}] must be an object")
