"""Monitoring on a schedule, as SageMaker's MonitoringSchedule runs it: `mlcicd up` checks the
project's endpoint every ``monitor.schedule`` over what it captured since the previous check.

Windows are ``[start, end)`` and meet end to end: each starts where the last recorded one
ended (across restarts of the service, since the end is read from the state database), so
no captured record is left out or counted twice. The first covers the one interval before
it. A window is checked :data:`CAPTURE_SETTLE` seconds (or one interval, when shorter) after
it ends, so that records still in a capture writer's buffer are on disk by then. After a
long stop, one execution covers at most :data:`MAX_INTERVALS` intervals; the next follows.

An execution is the check `mlcicd monitor check` runs (:func:`check_endpoint`), recorded
whatever its outcome: ``Completed``, ``CompletedWithViolations`` (with a
``monitoring_violations`` event), ``Skipped`` when there was nothing to check (no capture, no
request in the window, no baseline yet — the reason, no event), ``Failed`` otherwise (with a
``monitoring_failed`` event). Either way the schedule moves on to the next window.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from mlcicd.errors import MlcicdError, NothingToCheckError
from mlcicd.monitor.check import VariantCheck, check_endpoint
from mlcicd.project import Project
from mlcicd.state import COMPLETED, FAILED, SKIPPED, WITH_VIOLATIONS, MonitoringExecution

CAPTURE_SETTLE = 30.0  # seconds: capture writers flush every second; an S3 put may take some more
MAX_INTERVALS = 24  # a window covers at most this many intervals (its records are read into memory)


def next_window(last_end: float | None, interval: float, now: float) -> tuple[float, float] | None:
    """The window to check at ``now``; None while the next one has not ended and settled."""
    ready = now - min(CAPTURE_SETTLE, interval)
    if last_end is None:
        return ready - interval, ready
    intervals = int((ready - last_end) // interval)
    if intervals < 1:
        return None
    return last_end, last_end + min(intervals, MAX_INTERVALS) * interval


def run_execution(
    project: Project,
    endpoint: str,
    start: float,
    end: float,
    log: Callable[[str], None] | None = None,
) -> MonitoringExecution | None:
    """Check ``endpoint``'s records of ``[start, end)`` and record the execution; None when a
    window overlapping it was recorded meanwhile (by another service)."""
    execution = MonitoringExecution(
        endpoint_name=endpoint,
        window_start=start,
        window_end=end,
        status=FAILED,
        started_at=time.time(),
    )
    try:
        report = check_endpoint(project, endpoint, since=start, until=end)
    except NothingToCheckError as exc:
        execution.status, execution.reason = SKIPPED, exc.headline
    except MlcicdError as exc:
        execution.reason = exc.headline
    except (
        Exception
    ) as exc:  # a bug: still recorded, or the same window would fail again every second
        execution.reason = f"internal error: {type(exc).__name__}: {exc}"
        if log is not None:
            log(f"monitoring {endpoint}: {traceback.format_exc().rstrip()}")
    else:
        execution.status = WITH_VIOLATIONS if report.violation_count else COMPLETED
        execution.records, execution.violation_count = report.records, report.violation_count
        execution.variants = [_variant(v) for v in report.variants]
    execution.ended_at = time.time()
    return project.state.record_monitoring_execution(execution)


def _variant(check: VariantCheck) -> dict[str, Any]:
    return {
        "variant": check.variant,
        "model": check.model,
        "records": check.records,
        "rows": check.rows,
        "violations": check.violations,
        # each feature's drift, for the dashboard's drift-over-time chart
        "drift": {f.name: f.drift for f in check.features if f.drift is not None},
        "statistics_uri": check.statistics_uri,
        "violations_uri": check.violations_uri,
        "baseline_constraints": check.baseline_constraints,
    }


__all__ = ["CAPTURE_SETTLE", "MAX_INTERVALS", "next_window", "run_execution"]
