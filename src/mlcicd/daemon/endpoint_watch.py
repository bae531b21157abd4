"""Keep endpoints serving: a crashed endpoint server is restarted (with backoff) and the
restart recorded in the endpoint's history; at `mlcicd up`, endpoints whose server is gone
(a reboot, a kill) come back serving the endpoint config they served.

The restart is the backend's :meth:`~mlcicd.endpoints.base.EndpointBackend.restart`, for
every backend served on this machine (:data:`mlcicd.endpoints.ON_THIS_MACHINE`): a local
endpoint's supervisor is launched again on its own recorded ``config.json`` (variants and
weights, shadow, capture, policy, workers, timeouts), on its old port when that is free; a
container endpoint gets a new container from its recorded ``endpoint.json``, on its
listener's socket — the same address. A staging endpoint left behind by a run that died is
deleted instead (:func:`mlcicd.stages.staging.remove_orphans`).

It also keeps the endpoints' metric history (:meth:`EndpointWatch.sample`): every
:data:`SAMPLE_EVERY` seconds, each serving endpoint's counts since the start of the current
minute (the backend's ``metrics`` over that window: what ``/metrics`` counts, to the 5 s of
its series) are written as that minute's row, per variant, with the variant's traffic
share; the first sample in a new minute writes the minute that ended in full first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from mlcicd.endpoints import ON_THIS_MACHINE, open_backend
from mlcicd.endpoints.base import (
    FAILED,
    IN_SERVICE,
    OUT_OF_SERVICE,
    UPDATING,
    EndpointBackend,
    EndpointDescription,
)
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.project import Project
from mlcicd.stages.staging import remove_orphans
from mlcicd.state import EndpointRecord, MinuteMetrics

MAX_BACKOFF = 60.0
HEALTHY_RESET = 60.0  # serving this long after a restart forgets earlier crashes
SAMPLE_EVERY = 10.0  # seconds between two samples of an endpoint's metrics


class EndpointWatch:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._crashes: dict[
            tuple[str, str], tuple[int, float, float]
        ] = {}  # attempts, next try, restarted at
        self._sampled: dict[tuple[str, str], tuple[float, int]] = {}  # at (monotonic), minute

    def sample(self, project: Project, *, now: float | None = None) -> None:
        """Record the metrics of the project's serving endpoints for the current minute
        (and the whole of the one that just ended), each at most every SAMPLE_EVERY s."""
        backends: dict[str, EndpointBackend] = {}
        for record in project.state.list_endpoints():
            if record.backend not in ON_THIS_MACHINE or record.status != IN_SERVICE:
                continue
            key = (str(project.state_dir), record.name)
            at = time.time() if now is None else now
            minute = int(at // 60 * 60)
            last_at, last_minute = self._sampled.get(key, (-SAMPLE_EVERY, minute))
            if minute == last_minute and time.monotonic() - last_at < SAMPLE_EVERY:
                continue
            if record.backend not in backends:
                backends[record.backend] = open_backend(record.backend, project)
            backend = backends[record.backend]
            self._sampled[key] = (time.monotonic(), minute)
            try:
                described = backend.describe(record.name)
                rows = []
                if last_minute == minute - 60:  # the minute that ended, to its end (and a bit on)
                    rows += _minute(backend, record.name, described, last_minute, at)
                rows += _minute(backend, record.name, described, minute, at)
            except (MlcicdError, OSError) as exc:
                reason = exc.headline if isinstance(exc, MlcicdError) else str(exc)
                self.log(f"endpoint {record.name}: metrics not sampled: {reason}")
                continue
            if rows:
                project.state.record_endpoint_minute(rows, now=at)

    def check(self, project: Project, *, restoring: bool = False) -> None:
        """Restart the project's endpoints served on this machine whose server is gone
        (when their backoff allows)."""
        # A staging endpoint whose run died is removed, never brought back (stages/staging.py).
        with contextlib.suppress(MlcicdError, OSError):
            remove_orphans(project, project.config, self.log)
        backends: dict[str, EndpointBackend] = {}
        for record in project.state.list_endpoints():
            if record.backend not in ON_THIS_MACHINE:
                continue
            if record.backend not in backends:
                backends[record.backend] = open_backend(record.backend, project)
            backend = backends[record.backend]
            key = (str(project.state_dir), record.name)
            try:
                described = backend.describe(record.name)
            except NotFoundError:
                continue
            attempts, next_try, restarted_at = self._crashes.get(key, (0, 0.0, 0.0))
            if described.status == IN_SERVICE:
                if attempts and time.monotonic() - restarted_at > HEALTHY_RESET:
                    self._crashes.pop(key, None)
                continue
            was_serving = record.status in (IN_SERVICE, UPDATING, OUT_OF_SERVICE)
            if not (
                described.status == OUT_OF_SERVICE or (described.status == FAILED and was_serving)
            ):
                continue
            if time.monotonic() < next_try:
                continue
            attempts += 1
            delay = min(MAX_BACKOFF, 2.0 ** (attempts - 1))
            self._crashes[key] = (attempts, time.monotonic() + delay, time.monotonic())
            why = (
                "restored at service start"
                if restoring
                else f"its server had stopped (attempt {attempts})"
            )
            self._restart(project, backend, record, why, described.failure_reason)

    def _restart(
        self,
        project: Project,
        backend: EndpointBackend,
        record: EndpointRecord,
        why: str,
        cause: str | None,
    ) -> None:
        self.log(f"endpoint {record.name}: restarting {record.config_name}: {why}")
        try:
            described = backend.restart(record.name)
        except (MlcicdError, OSError) as exc:
            reason = (
                exc.headline if isinstance(exc, MlcicdError) else f"{type(exc).__name__}: {exc}"
            )
            self.log(f"endpoint {record.name}: restart failed: {reason}")
            project.state.record_endpoint_change(
                record.name,
                reason="restart_failed",
                detail=reason,
                config_name=record.config_name,
                model_group=record.model_group,
                model_version=record.model_version,
                model_sha256=record.model_sha256,
            )
            # The record says Failed (and why) when the backend does.
            with contextlib.suppress(MlcicdError, OSError):
                refresh(project.state, backend, record.name)
            return
        refresh(project.state, backend, record.name, live=described)
        project.state.record_endpoint_change(
            record.name,
            reason="restart",
            detail=f"{why}" + (f"; it had: {cause}" if cause else ""),
            config_name=record.config_name,
            model_group=record.model_group,
            model_version=record.model_version,
            model_sha256=record.model_sha256,
        )
        self.log(
            f"endpoint {record.name}: {described.status} at {described.url} (pid {described.pid})"
        )


def _minute(
    backend: EndpointBackend,
    name: str,
    described: EndpointDescription,
    minute: int,
    now: float,
) -> list[MinuteMetrics]:
    """The rows of ``minute``: each variant's counts from the minute's start to ``now``."""
    answer = backend.metrics(name, max(1.0, now - minute))
    total = sum(float(v.get("weight") or 0.0) for v in described.variants) or 1.0
    shares = {str(v.get("name")): float(v.get("weight") or 0.0) / total for v in described.variants}
    shift = described.traffic.get("percent") if isinstance(described.traffic, dict) else None
    return [
        MinuteMetrics(
            endpoint=name,
            minute=minute,
            variant=variant,
            invocations=int(counts.get("Invocations") or 0),
            errors_4xx=int(counts.get("Invocation4XXErrors") or 0),
            errors_5xx=int(counts.get("Invocation5XXErrors") or 0),
            model_p50_ms=counts.get("ModelLatencyp50_ms"),
            model_p99_ms=counts.get("ModelLatencyp99_ms"),
            overhead_p50_ms=counts.get("OverheadLatencyp50_ms"),
            overhead_p99_ms=counts.get("OverheadLatencyp99_ms"),
            share=shares.get(variant),
            shift_percent=float(shift) if isinstance(shift, int | float) else None,
        )
        for variant, counts in (answer.get("variants") or {}).items()
    ]
