"""How an update replaces the serving generation, and what ``status.json`` says of updates.

An ``all_at_once`` update starts the new generation and, once all its workers are ready,
makes it the serving one; the old one drains.

A canary or linear update (or one that bakes under alarms) is blue/green inside the
workers: the new generation loads the serving config too and sends ``green_percent`` of
requests to the new one; the supervisor moves the share step by step through
``traffic.json`` (the workers poll it), and between steps watches the new config's
metrics. An alarm that trips (5XX rate or p99 ModelLatency above its threshold) sends all
traffic back at once, starts a generation of the old config, and records the rollback with
its figures (``last_rollback``, and ``last_update_failure`` for the deployer).

A :class:`Rollout` runs in the supervisor's process and drives it through the
:class:`Host` it is given (the supervisor, which imports this module, not the other way):
``start_generation``, ``promote`` (make a generation the serving one), ``idle`` (let time
pass, the workers tended meanwhile), ``stopping``, ``write_status``; it reads ``current``
and sets ``status``. The update fields of ``status.json`` are its own (:meth:`Rollout.record`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

from mlcicd.fsutil import atomic_write_json
from mlcicd.serving import metrics
from mlcicd.serving.config import ServingConfig
from mlcicd.serving.generation import Generation
from mlcicd.serving.layout import TRAFFIC_FILE
from mlcicd.serving.status import utcnow

ALARM_CHECK_INTERVAL = 0.5

# The supervisor's log lines: a rollout is a part of its work, in its process.
log = logging.getLogger("mlcicd.serving.supervisor")


class Host(Protocol):
    """What a rollout drives: the endpoint's supervisor
    (:class:`mlcicd.serving.supervisor.Supervisor`)."""

    state_dir: Path
    current: Generation | None
    status: str

    def start_generation(
        self,
        config: ServingConfig,
        digest: str,
        *,
        blue: ServingConfig | None = None,
        green_percent: float = 100.0,
    ) -> Generation | str:
        """A generation of ``config`` with all its workers ready, or why not."""
        ...

    def promote(self, gen: Generation) -> Generation:
        """Make ``gen`` the serving generation; the one it replaces (returned) drains."""
        ...

    def idle(self, seconds: float) -> None:
        """Let up to ``seconds`` pass, tending the workers meanwhile."""
        ...

    def stopping(self) -> bool:
        """SIGTERM or SIGINT has arrived."""
        ...

    def write_status(self) -> None:
        """Write status.json as things are now."""
        ...


class Rollout:
    """One endpoint's updates: how each replaces the serving generation, and how it went."""

    def __init__(self, supervisor: Host) -> None:
        self.supervisor = supervisor
        self.state_dir = supervisor.state_dir
        self.metrics_dir = self.state_dir / metrics.METRICS_DIR
        self.last_update_failure: str | None = None
        self.last_update_digest: str | None = None
        self.last_update_at: str | None = None
        self.last_rollback: dict[str, Any] | None = None
        self.traffic: dict[str, Any] | None = None  # during a shift: who gets what share

    def record(self) -> dict[str, Any]:
        """What ``status.json`` says of the updates: the last one's outcome, the last
        rollback, and the traffic split of the one under way."""
        return {
            "last_update_failure": self.last_update_failure,
            "last_update_digest": self.last_update_digest,
            "last_update_at": self.last_update_at,
            "last_rollback": self.last_rollback,
            "traffic": self.traffic,
        }

    def update(self, config: ServingConfig, digest: str) -> None:
        """Replace the serving generation with one of ``config``, as its deployment says."""
        supervisor = self.supervisor
        if config.deployment.shifts:
            self._shift(config, digest)
            return
        started = supervisor.start_generation(config, digest)
        if isinstance(started, str):
            if not supervisor.stopping():
                self.failed(digest, started)
            return
        self._done(None, digest)
        old = supervisor.promote(started)
        supervisor.status = "InService"
        log.info(  # before status.json says so: its readers may read the log next
            "InService: %s (generation %d); generation %d draining",
            config.name,
            started.number,
            old.number,
        )
        supervisor.write_status()

    def failed(self, digest: str | None, reason: str) -> None:
        """Record why the update to ``digest`` failed; the serving generation goes on."""
        current = self.supervisor.current
        log.error(
            "update failed, generation %d keeps serving: %s",
            current.number if current else 0,
            reason,
        )
        self._done(reason, digest)
        self.supervisor.status = "InService"
        self.supervisor.write_status()

    def _done(self, failure: str | None, digest: str | None) -> None:
        self.last_update_failure, self.last_update_digest, self.last_update_at = (
            failure,
            digest,
            utcnow(),
        )

    def _shift(self, config: ServingConfig, digest: str) -> None:
        """Blue/green inside the workers: move traffic step by step, roll back on an alarm."""
        supervisor = self.supervisor
        old = supervisor.current
        assert old is not None
        deployment = config.deployment
        steps = deployment.steps()
        started = supervisor.start_generation(
            config, digest, blue=old.config, green_percent=steps[0]
        )
        if isinstance(started, str):
            if not supervisor.stopping():
                self.failed(digest, started)
            return
        self._set_traffic(started, steps[0], old.config.name)
        supervisor.promote(started)
        baseline = metrics.read_all(self.metrics_dir)
        for index, share in enumerate(steps):
            if index:
                self._set_traffic(started, share, old.config.name)
            log.info(
                "%s gets %g%% of the traffic; waiting %gs",
                config.name,
                share,
                deployment.wait_seconds,
            )
            alarm = self._bake(config, baseline, deployment.wait_seconds)
            if supervisor.stopping():
                return
            if alarm is not None:
                self._roll_back(started, old, digest, share, alarm)
                return
        self.traffic = None
        self._done(None, digest)
        supervisor.status = "InService"
        log.info(  # before status.json says so, as in update()
            "InService: %s (generation %d) after a %s update",
            config.name,
            started.number,
            deployment.strategy,
        )
        supervisor.write_status()

    def _set_traffic(self, gen: Generation, percent: float, blue_name: str) -> None:
        atomic_write_json(
            self.state_dir / TRAFFIC_FILE, {"generation": gen.number, "green_percent": percent}
        )
        self.traffic = {
            "config_name": gen.config.name,
            "percent": percent,
            "previous_config_name": blue_name,
            "strategy": gen.config.deployment.strategy,
        }
        self.supervisor.write_status()

    def _bake(
        self, config: ServingConfig, baseline: dict[str, Any], seconds: float
    ) -> dict[str, Any] | None:
        """Wait ``seconds`` watching the alarms on ``config``'s variants; the alarm that tripped."""
        deployment = config.deployment
        watching = deployment.has_alarms and seconds > 0
        # The workers write their counts every FLUSH_INTERVAL: look once more after that.
        end = time.monotonic() + seconds + (2 * metrics.FLUSH_INTERVAL if watching else 0.0)
        next_check = 0.0
        while not self.supervisor.stopping():
            now = time.monotonic()
            if watching and (now >= next_check or now >= end):
                next_check = now + ALARM_CHECK_INTERVAL
                alarm = self._alarm(config, baseline)
                if alarm is not None:
                    return alarm
            if now >= end:
                return None
            self.supervisor.idle(min(0.1, end - now))
        return None

    def _alarm(self, config: ServingConfig, baseline: dict[str, Any]) -> dict[str, Any] | None:
        deployment = config.deployment
        since = metrics.difference(metrics.read_all(self.metrics_dir), baseline)
        counts = metrics.merge(
            {"series": {"x": c}} for c in metrics.by_variant(since, config.name).values()
        )["series"].get("x")
        if not counts or counts["Invocations"] < max(1, deployment.min_invocations):
            return None
        invocations, errors = counts["Invocations"], counts["Invocation5XXErrors"]
        rate = errors / invocations
        p99 = metrics.quantile(counts["ModelLatency"], 0.99)
        p99_ms = None if p99 is None else round(p99 / 1000, 3)
        figures = {
            "invocations": invocations,
            "5xx_errors": errors,
            "5xx_rate": round(rate, 4),
            "p99_model_latency_ms": p99_ms,
        }
        if deployment.max_5xx_rate is not None and rate > deployment.max_5xx_rate:
            return {
                "alarm": "max_5xx_rate",
                "threshold": deployment.max_5xx_rate,
                **figures,
                "message": f"5XX rate {rate:.2%} ({errors} of {invocations} invocations) "
                f"> max_5xx_rate {deployment.max_5xx_rate:g}",
            }
        limit = deployment.max_p99_latency_ms
        if limit is not None and p99_ms is not None and p99_ms > limit:
            return {
                "alarm": "max_p99_latency_ms",
                "threshold": limit,
                **figures,
                "message": f"p99 ModelLatency {p99_ms:g} ms (over {invocations} invocations) "
                f"> max_p99_latency_ms {limit:g}",
            }
        return None

    def _roll_back(
        self, mixed: Generation, old: Generation, digest: str, share: float, alarm: dict[str, Any]
    ) -> None:
        """All traffic back to the old config at once, then a generation of it alone."""
        self._set_traffic(mixed, 0.0, old.config.name)
        reason = (
            f"rolled back to {old.config.name} at {share:g}% of the traffic: alarm "
            f"{alarm['message']}"
        )
        log.error("%s", reason)
        self.last_rollback = {
            **alarm,
            "at": utcnow(),
            "config_name": mixed.config.name,
            "rolled_back_to": old.config.name,
            "traffic_percent": share,
        }
        back = self.supervisor.start_generation(old.config, old.digest)
        if isinstance(back, str):  # the mixed generation keeps serving, all of it to the old model
            log.error(
                "could not restart %s alone (%s); it keeps serving beside %s",
                old.config.name,
                back,
                mixed.config.name,
            )
        else:
            self.supervisor.promote(back)
            self.traffic = None
        self.failed(digest, reason)
