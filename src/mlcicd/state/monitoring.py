"""The state of model monitoring: each model version's data-quality baseline, and the
executions of an endpoint's monitoring schedule.

A baseline is SageMaker Model Monitor's pair of files, ``statistics.json`` and
``constraints.json``, computed from the model's training channel and kept in the artifact
store beside the model; this table records where they are, their sha256 and what they were
computed from (``dataset``: channel, files, label, rows). One baseline per model version:
recomputing it (``mlcicd monitor baseline``) replaces the record in one transaction.

A monitoring execution (SageMaker's term) is one scheduled check of what an endpoint captured
in its window ``[window_start, window_end)``; `mlcicd up` records each one, whatever its
outcome, and the next window starts where the last recorded one ended. Recording refuses a
window that overlaps one already recorded (same transaction), so a record is counted once
even if two services were to check the same endpoint. A check that found violations, or
could not run, appends a ``monitoring_violations`` or ``monitoring_failed`` event in the same
transaction; the service's notifier delivers it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlcicd.state.db import Tables
from mlcicd.state.events import add_event
from mlcicd.state.records import FAILED, WITH_VIOLATIONS, ModelBaseline, MonitoringExecution


class Monitoring(Tables):
    """Data-quality baselines of model versions, monitoring executions of endpoints."""

    def record_baseline(self, baseline: ModelBaseline) -> ModelBaseline:
        """Record (or replace) the baseline of ``group/version``."""
        baseline.created_at = baseline.created_at or time.time()
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO model_baselines VALUES (:group_name, :version,"
                " :statistics_uri, :statistics_sha256, :constraints_uri, :constraints_sha256,"
                " :dataset, :created_at)",
                {**baseline.__dict__, "dataset": json.dumps(baseline.dataset, default=str)},
            )
        return baseline

    def get_baseline(self, group_name: str, version: int) -> ModelBaseline | None:
        baseline: ModelBaseline | None = self.db.one(
            ModelBaseline,
            "SELECT * FROM model_baselines WHERE group_name=? AND version=?",
            group_name,
            version,
        )
        return baseline

    # --- monitoring executions ----------------------------------------------------------

    def record_monitoring_execution(
        self, execution: MonitoringExecution
    ) -> MonitoringExecution | None:
        """Record a finished execution, and its event when it found violations or failed;
        None (nothing recorded) when its window overlaps one recorded already."""
        with self.db.tx() as db:
            overlap = db.execute(
                "SELECT id FROM monitoring_executions"
                " WHERE endpoint_name=? AND window_start < ? AND window_end > ?",
                (execution.endpoint_name, execution.window_end, execution.window_start),
            ).fetchone()
            if overlap is not None:
                return None
            values = {**execution.__dict__, "variants": json.dumps(execution.variants, default=str)}
            del values["id"]
            cur = db.execute(
                "INSERT INTO monitoring_executions (endpoint_name, window_start, window_end,"
                " status, records, violation_count, variants, reason, started_at, ended_at)"
                " VALUES (:endpoint_name, :window_start, :window_end, :status, :records,"
                " :violation_count, :variants, :reason, :started_at, :ended_at)",
                values,
            )
            execution.id = int(cur.lastrowid or 0)
            if execution.status in (WITH_VIOLATIONS, FAILED):
                add_event(
                    db,
                    "monitoring_violations"
                    if execution.status == WITH_VIOLATIONS
                    else "monitoring_failed",
                    execution.endpoint_name,
                    _event_data(execution),
                )
        return execution

    def monitoring_executions(
        self, endpoint: str | None = None, *, limit: int = 50
    ) -> list[MonitoringExecution]:
        """The newest executions first (of ``endpoint``, or of every endpoint)."""
        if endpoint is None:
            return self.db.all(
                MonitoringExecution,
                "SELECT * FROM monitoring_executions ORDER BY window_end DESC, id DESC LIMIT ?",
                limit,
            )
        return self.db.all(
            MonitoringExecution,
            "SELECT * FROM monitoring_executions WHERE endpoint_name=?"
            " ORDER BY window_end DESC, id DESC LIMIT ?",
            endpoint,
            limit,
        )

    def last_monitored(self, endpoint: str) -> float | None:
        """Where the next window of ``endpoint`` starts: the end of the last one recorded."""
        row = self.db.execute(
            "SELECT MAX(window_end) FROM monitoring_executions WHERE endpoint_name=?", endpoint
        ).fetchone()
        return None if row[0] is None else float(row[0])


def _event_data(execution: MonitoringExecution) -> dict[str, Any]:
    """What a webhook hears: the execution, its window, and per variant what was found where."""
    return {
        "execution": execution.id,
        "window_start": execution.window_start,
        "window_end": execution.window_end,
        "status": execution.status,
        "records": execution.records,
        "violation_count": execution.violation_count,
        "reason": execution.reason,
        "variants": [
            {
                "variant": v.get("variant"),
                "model": v.get("model"),
                "violations_uri": v.get("violations_uri"),
                "violations": [
                    f"{x.get('feature_name')}: {x.get('constraint_check_type')}"
                    for x in v.get("violations", [])
                ],
            }
            for v in execution.variants
        ],
    }
