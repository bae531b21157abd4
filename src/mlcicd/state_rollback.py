"""Rollbacks in the run queue: a rollback an operator asks for while `mlcicd up` serves the
project is a run of its own kind (``trigger.kind == "rollback"``), queued durably like any run.

It differs from a pipeline run in three ways (the queue stays one table, ``runs``):

* it is claimed before queued pipeline runs of its pipeline (an operator's rollback does not
  wait behind new commits), still only when no run of the pipeline is Running;
* a newer commit does not supersede it; a newer rollback of the same endpoint does
  (Superseded, the reason naming the run that replaced it);
* its target version is fixed when it is asked for (``trigger.version``), never re-resolved.

The queue's rules for them (claim order, supersession, the ``rollback_failed`` event) are in
:mod:`mlcicd.state_service`; this mixin of :class:`mlcicd.state.State` queues them. Every
change is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from mlcicd.state_service import IS_ROLLBACK, ROLLBACK, add_event

if TYPE_CHECKING:
    from mlcicd.state import Run


class RollbackQueue:
    """Mixed into ``State``: queued rollbacks."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def get_run(self, run_id: int) -> Run: ...
        def _all(self, cls: type[Any], sql: str, *args: Any) -> list[Any]: ...

    def enqueue_rollback(
        self,
        *,
        pipeline: str,
        project_dir: str,
        endpoint: str,
        commit_sha: str,
        trigger: dict[str, Any],
        message: str,
    ) -> tuple[Run, list[int]]:
        """Queue a rollback of ``endpoint``; a rollback of it queued before (not started) is
        Superseded by this one. The run and the ids it replaced; a ``rollback_queued`` event."""
        now = time.time()
        trigger = {**trigger, "kind": ROLLBACK, "endpoint": endpoint}
        with self._tx() as db:
            older = [
                int(r["id"])
                for r in db.execute(
                    f"SELECT id FROM runs WHERE pipeline=? AND status='Queued' AND {IS_ROLLBACK}"
                    " AND json_extract(trigger, '$.endpoint') = ? ORDER BY id",
                    (pipeline, endpoint),
                ).fetchall()
            ]
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, message, trigger, queued_at,"
                " started_at) VALUES (?, ?, 'Queued', ?, ?, ?, ?, ?, ?)",
                (
                    pipeline,
                    project_dir,
                    commit_sha,
                    commit_sha,
                    message,
                    json.dumps(trigger),
                    now,
                    now,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            by = trigger.get("by") or "unknown"
            for old in older:
                db.execute(
                    "UPDATE runs SET status='Superseded', ended_at=?, failure_reason=? WHERE id=?",
                    (
                        now,
                        f"replaced by rollback run {run_id} (to {trigger.get('to')}, asked by {by}) "
                        "before it started",
                        old,
                    ),
                )
            add_event(
                db,
                "rollback_queued",
                endpoint,
                {
                    "run_id": run_id,
                    "to": trigger.get("to"),
                    "from": trigger.get("from"),
                    "by": by,
                    "why": trigger.get("reason"),
                    "replaces": older,
                },
            )
        return self.get_run(run_id), older

    def set_trigger_detail(self, run_id: int, detail: str) -> None:
        """What the endpoint's history will say about this run (known once it starts)."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET trigger=json_set(trigger, '$.detail', ?) WHERE id=?",
                (detail, run_id),
            )

    def queued_rollbacks(self, pipeline: str) -> list[Run]:
        from mlcicd.state import Run

        return self._all(
            Run,
            f"SELECT * FROM runs WHERE pipeline=? AND status='Queued' AND {IS_ROLLBACK} ORDER BY id",
            pipeline,
        )
