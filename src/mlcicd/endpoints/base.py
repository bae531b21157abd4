"""The endpoint lifecycle, whatever serves it: SageMaker's nouns as plain data.

A :class:`ProductionVariant` is one model behind an endpoint; an :class:`EndpointConfig`
names what an endpoint serves; an :class:`EndpointBackend` makes an endpoint serve it
(``deploy`` creates or updates, and blocks until InService or failure) and reports on it,
its :class:`~mlcicd.shapes.EndpointMetrics` included. A failed update leaves the endpoint
serving its previous config, as on SageMaker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mlcicd.errors import EndpointError
from mlcicd.shapes import NAME_RE, NAME_RULE, DataCapture, DeploymentPolicy, EndpointMetrics

if TYPE_CHECKING:
    from mlcicd.config import AutoscalingConfig, DeployConfig

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint limit
DEFAULT_MODEL_TIMEOUT = 60.0  # SageMaker's invocation limit (fixed there)

# SageMaker's endpoint statuses that a backend reports.
CREATING = "Creating"
UPDATING = "Updating"
IN_SERVICE = "InService"
FAILED = "Failed"
OUT_OF_SERVICE = "OutOfService"
STATUSES = (CREATING, UPDATING, IN_SERVICE, FAILED, OUT_OF_SERVICE)


@dataclass(frozen=True)
class ProductionVariant:
    """One model behind an endpoint, with the code and interpreter that serve it."""

    name: str  # "AllTraffic" when there is only one
    model_data: Path  # model.tar.gz
    model_sha256: str  # checked before the model is extracted
    code_dir: Path  # holds the inference entry point
    entry_point: str  # "inference.py"
    python: Path  # the model environment's interpreter (with uvicorn, httptools, orjson, mlcicd)
    weight: float = 1.0
    environment: Mapping[str, str] = field(default_factory=dict)


def deployment_policy(deploy: DeployConfig) -> DeploymentPolicy:
    """``deploy.strategy`` with its step and wait, and ``deploy.alarms``: what the deploy
    stage gives every backend, and what the stack gives the pipeline's deploy Lambda."""
    alarms = deploy.alarms
    wait = {
        "canary": deploy.canary.bake_seconds,
        "linear": deploy.linear.interval_seconds,
    }.get(deploy.strategy, alarms.bake_seconds)
    return DeploymentPolicy(
        strategy=deploy.strategy,
        canary_percent=deploy.canary.percent,
        linear_step_percent=deploy.linear.step_percent,
        wait_seconds=wait,
        max_5xx_rate=alarms.max_5xx_rate,
        max_p99_latency_ms=alarms.max_p99_latency_ms,
        min_invocations=alarms.min_invocations,
    )


def data_capture(deploy: DeployConfig, destination: Path | str | None = None) -> DataCapture | None:
    """``deploy.data_capture`` (None when it is not enabled), written to ``destination``."""
    capture = deploy.data_capture
    if not capture.enabled:
        return None
    return DataCapture(
        sampling_percentage=capture.sampling_percentage,
        capture_input="input" in capture.capture,
        capture_output="output" in capture.capture,
        destination=destination,
    )


@dataclass(frozen=True)
class EndpointConfig:
    """What an endpoint serves and how; ``name`` identifies this exact config."""

    name: str
    endpoint_name: str
    variants: tuple[ProductionVariant, ...]
    port: int | None = None  # None: keep the current port, or any free one
    workers: int = 2
    startup_timeout: float = 60.0  # for model_fn in every worker, per generation
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    drain_timeout: float = 30.0  # for in-flight requests of a retiring generation
    header_timeout: float = 10.0  # for a client to send a request's headers
    body_timeout: float = 60.0  # then its body
    model_timeout: float = (
        DEFAULT_MODEL_TIMEOUT  # for a request's handlers; then its worker is replaced
    )
    shadow: ProductionVariant | None = None  # gets a copy of the traffic; never answers
    data_capture: DataCapture | None = None
    deployment: DeploymentPolicy = field(default_factory=DeploymentPolicy)
    # SageMaker's ClarifyExplainerConfig (inline ShapBaseline): online explanations
    explainer: Mapping[str, Any] | None = None
    autoscaling: AutoscalingConfig | None = None  # deploy.autoscaling; None: ``workers`` always


@dataclass
class EndpointDescription:
    """An endpoint as its backend sees it now (``describe`` reconciles with reality)."""

    name: str
    status: str  # one of STATUSES
    url: str | None
    port: int | None
    pid: int | None
    config_name: str | None
    model_sha256: str | None
    failure_reason: str | None
    last_update_failure: str | None
    created_at: float | None = None  # seconds since the epoch
    updated_at: float | None = None
    generation: int | None = None  # bumps with every successful update
    log_path: Path | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)  # name, weight, model_sha256
    last_rollback: dict[str, Any] | None = None  # the alarm and its figures
    traffic: dict[str, Any] | None = None  # during a canary/linear update: the new config's share
    # deploy.autoscaling as it acts now: bounds, target, workers now and wanted, the measured
    # rate, the last change and why (serving.autoscale's record); None without a policy
    autoscaling: dict[str, Any] | None = None
    arn: str | None = None  # SageMaker's EndpointArn (SageMaker endpoints have no url, port or pid)


# The columns a person reads of each variant's metrics (the CLI's table and the dashboard's):
# (heading, key in EndpointMetrics["variants"][name]).
METRIC_COLUMNS = (
    ("invocations", "Invocations"),
    ("4xx", "Invocation4XXErrors"),
    ("5xx", "Invocation5XXErrors"),
    ("model p50 ms", "ModelLatencyp50_ms"),
    ("p90 ms", "ModelLatencyp90_ms"),
    ("p99 ms", "ModelLatencyp99_ms"),
    ("overhead p99 ms", "OverheadLatencyp99_ms"),
)


def metric_rows(
    variants: Mapping[str, Mapping[str, Any]],
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The headings, and a row of :data:`METRIC_COLUMNS` per variant in ``variants``' order."""
    headings = ["variant", *(heading for heading, _ in METRIC_COLUMNS)]
    rows = [(name, *(m.get(key) for _, key in METRIC_COLUMNS)) for name, m in variants.items()]
    return headings, rows


def scaling_lines(scaling: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``deploy.autoscaling`` as it acts now (:attr:`EndpointDescription.autoscaling`), as a
    person reads it (the CLI's describe and the dashboard's endpoint page): the workers now and
    wanted within the bounds, the measured rate against the target, the last change and why."""
    if not scaling:
        return []
    rate = scaling.get("invocations_per_instance")
    desired = scaling.get("desired_instances")
    lines = [
        (
            "workers",
            f"{scaling.get('current_instances')} "
            f"(min {scaling.get('min_instances')}, max {scaling.get('max_instances')}"
            + (f", wanted {desired})" if desired is not None else ")"),
        ),
        (
            "invocations/worker",
            f"{'-' if rate is None else f'{rate:g}'} a minute "
            f"(target {scaling.get('target_invocations_per_instance'):g})",
        ),
    ]
    change = scaling.get("last_change")
    if change:
        lines.append(
            (
                "last scaling",
                f"{change.get('at')}: {change.get('from')} → {change.get('to')}, "
                f"{change.get('reason')}",
            )
        )
    return lines


class EndpointBackend(Protocol):
    """Creates, updates, describes and deletes endpoints of one kind."""

    TYPE: ClassVar[str]

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        """Create the endpoint or update it to ``config``; block until InService.

        Raises ``EndpointError`` with the reason when it fails (``PortInUseError`` if the port
        is taken); a failed update leaves the previous config serving.
        """
        ...

    def describe(self, name: str) -> EndpointDescription:
        """The endpoint now; ``NotFoundError`` if there is none of that name."""
        ...

    def list(self) -> list[EndpointDescription]:
        """Every endpoint of this backend."""
        ...

    def delete(self, name: str) -> None:
        """Stop the endpoint (in-flight requests finish) and forget it."""
        ...

    def restart(self, name: str) -> EndpointDescription:
        """Serve endpoint ``name`` again, as it was, after what serves it died (a kill, a
        crash, a reboot): ``mlcicd up`` calls it for the endpoints served on this machine
        (:data:`mlcicd.endpoints.ON_THIS_MACHINE`). A no-op while it serves; its address is
        kept when it can be. ``EndpointError`` with the reason (the server's last log lines)
        when it does not serve again.
        """
        ...

    def set_weights(self, name: str, weights: dict[str, float]) -> EndpointDescription:
        """New traffic weights for some of the serving config's variants, without a new
        config or a restart (SageMaker's ``UpdateEndpointWeightsAndCapacities``); the others
        keep theirs. ``EndpointError`` for an unknown variant or a weight that is not a
        number >= 0, or if no variant would keep a weight above 0."""
        ...

    def metrics(self, name: str, window: float | None = None) -> EndpointMetrics:
        """Each variant's invocations, errors and p50/p90/p99 latencies over the last
        ``window`` seconds (None: since the endpoint started); a variant without requests
        has zero counts and None percentiles. ``NotFoundError`` if there is no such endpoint."""
        ...


def checked_weights(
    endpoint: str, weights: Mapping[str, float], current: Mapping[str, float]
) -> dict[str, float]:
    """Every variant's weight once ``weights`` are applied over ``current`` (each variant's
    weight now), checked as :meth:`EndpointBackend.set_weights` says."""
    unknown = sorted(set(weights) - set(current))
    if unknown:
        raise EndpointError(
            f"endpoint {endpoint} has no variant {', '.join(unknown)}",
            hint=f"its variants: {', '.join(current) or 'none'}",
        )
    for variant, weight in weights.items():
        if not (weight >= 0 and weight < float("inf")):
            raise EndpointError(f"variant {variant}: weight must be a number >= 0, got {weight}")
    merged = {v: float(weights.get(v, w)) for v, w in current.items()}
    if not any(merged.values()):
        raise EndpointError("at least one variant needs a weight above 0")
    return merged


def check_name(name: object, what: str = "endpoint name") -> str:
    """``name`` if it follows SageMaker's rule for endpoint (and endpoint config) names, which
    every backend holds to: a name SageMaker would refuse fails here, before a backend makes
    a directory or a container of it, not later inside podman or on SageMaker alone."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise EndpointError(
            f"{what} {name!r} is not valid: SageMaker's rule is {NAME_RULE}",
            hint="rename it by that rule: deploy.endpoint_name in mlcicd.yaml, or the name given",
        )
    return name
