"""Target tracking on an endpoint's workers: how many should serve now, and why.

SageMaker scales a variant's instances to keep ``SageMakerVariantInvocationsPerInstance``
(invocations per instance per minute) near a target; here the supervisor scales the serving
generation's worker processes the same way (``deploy.autoscaling``). Once a second it hands
an :class:`Autoscaler` the endpoint's invocation count (every worker's, summed from the
metrics board, :mod:`mlcicd.serving.metrics`); the rate over the last ``window_seconds`` says
how many workers would each see the target:

    desired = ceil(invocations per minute / target), kept within [min_instances, max_instances]

and :meth:`Autoscaler.decide` says whether to move there now, as Application Auto Scaling's
target tracking does: out at once to ``desired`` (then not out again for
``scale_out_cooldown``), in one worker at a time, only ``scale_in_cooldown`` after the last
change of either kind — out fast, in slowly, so a dip in the load does not drop capacity that
the next burst needs. Nothing is decided before the first full window.

How a worker joins and leaves is :class:`~mlcicd.serving.workers.WorkerPool.resize`'s: a new
one accepts connections only once its model is loaded, a removed one drains like a retiring
generation's, so no request is lost either way. Stdlib only, and no process here: the
supervisor does the sampling and the resizing, which keeps this testable as plain data.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from mlcicd.serving.config import AutoscalingSpec
from mlcicd.serving.status import utcnow

SAMPLE_INTERVAL = 1.0  # seconds between two looks at the invocation count


@dataclass(frozen=True)
class ScalingDecision:
    """Go to ``workers`` workers, because ``reason``."""

    workers: int
    reason: str


class Autoscaler:
    """One endpoint's invocation rate, and the scaling it decided: its last change and when."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._next_sample = 0.0
        self.rate: float | None = None  # invocations per minute, all workers, over the window
        self.desired: int | None = None
        self.last_change: dict[str, Any] | None = None
        self._last_out = -math.inf  # monotonic time of the last scale-out
        self._last_change = -math.inf  # of the last change, out or in

    def due(self, now: float) -> bool:
        """Whether it is time for the next sample."""
        return now >= self._next_sample

    def observe(self, now: float, invocations: int, window: float) -> None:
        """The endpoint's invocation count (it only grows) at monotonic time ``now``."""
        self._next_sample = now + SAMPLE_INTERVAL
        self._samples.append((now, invocations))
        start = now - window
        # Keep one sample at or before the window's start: the rate is measured from it.
        while len(self._samples) > 1 and self._samples[1][0] <= start:
            self._samples.popleft()
        first_at, first = self._samples[0]
        if first_at > start or now <= first_at:
            self.rate = None  # not a full window yet
            return
        self.rate = max(0, invocations - first) * 60.0 / (now - first_at)

    def decide(self, spec: AutoscalingSpec, current: int, now: float) -> ScalingDecision | None:
        """Where ``current`` workers should go now, or None: stay."""
        if current != spec.clamp(current):
            self.desired = spec.clamp(current)
            return ScalingDecision(
                self.desired,
                f"{current} worker(s) is outside min_instances {spec.min_instances} .. "
                f"max_instances {spec.max_instances}",
            )
        if self.rate is None:
            self.desired = None
            return None
        target = spec.target_invocations_per_instance
        self.desired = spec.clamp(math.ceil(round(self.rate / target, 6)))
        per_worker = self.rate / current
        measured = (
            f"{per_worker:.0f} invocations per worker per minute over the last "
            f"{spec.window_seconds:g}s"
        )
        if self.desired > current and now - self._last_out >= spec.scale_out_cooldown:
            return ScalingDecision(self.desired, f"{measured} > target {target:g}")
        if self.desired < current and now - self._last_change >= spec.scale_in_cooldown:
            return ScalingDecision(current - 1, f"{measured} < target {target:g}")
        return None

    def changed(self, before: int, after: int, reason: str, now: float) -> None:
        """Record that the workers went from ``before`` to ``after``."""
        if after > before:
            self._last_out = now
        self._last_change = now
        self.last_change = {"at": utcnow(), "from": before, "to": after, "reason": reason}

    def record(self, spec: AutoscalingSpec, current: int) -> dict[str, Any]:
        """What ``status.json`` says of the scaling: the bounds and target, the workers now
        and wanted, the measured rate, and the last change with its reason."""
        return {
            **spec.to_dict(),
            "current_instances": current,
            "desired_instances": self.desired,
            "invocations_per_minute": None if self.rate is None else round(self.rate, 1),
            "invocations_per_instance": None
            if self.rate is None or not current
            else round(self.rate / current, 1),
            "last_change": self.last_change,
        }
