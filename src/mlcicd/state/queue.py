"""The run queue: runs asked for (a push, a poll, a retry, a rollback), claimed one at a time.

Every change is one transaction, so a crash or ``kill -9`` leaves each run either queued,
running (its pid recorded, so a dead one is found), waiting, or finished — never in between.

Queue states of a run::

    Queued ──claim──▶ Running ──▶ Succeeded | Failed | Stopped
      │                  └──▶ WaitingForApproval ──approve/reject/timeout──▶ Running …
      └──newer commit──▶ Superseded

A rollback an operator asks for while `mlcicd up` serves the project is a run of its own kind
(``trigger.kind == "rollback"``), queued durably like any run, in the same table. It differs
from a pipeline run in three ways:

* it is claimed before queued pipeline runs of its pipeline (an operator's rollback does not
  wait behind new commits), still only when no run of the pipeline is Running;
* a newer commit does not supersede it; a newer rollback of the same endpoint does
  (Superseded, the reason naming the run that replaced it);
* its target version is fixed when it is asked for (``trigger.version``), never re-resolved.

A rollback run that ends without deploying is a ``rollback_failed`` event
(:func:`mlcicd.state.runs.note_run_end`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import StateError
from mlcicd.state.events import add_event, remember_delivery
from mlcicd.state.records import Delivery, Run
from mlcicd.state.runs import IS_ROLLBACK, NOT_ROLLBACK, ROLLBACK, Runs


class Queue(Runs):
    """The run queue, rollbacks in it, and runs waiting for an approval."""

    def enqueue_run(
        self,
        *,
        pipeline: str,
        project_dir: str,
        ref: str,
        trigger: dict[str, Any],
        commit_sha: str | None = None,
        delivery: Delivery | None = None,
        retry_of: int | None = None,
        forced: bool = False,
    ) -> tuple[Run | None, list[int]]:
        """Queue a run of ``ref``; older queued runs of the pipeline are Superseded (not
        queued rollbacks: an operator's rollback still runs, first).

        Returns the run (None when ``delivery`` — its id or its body — was seen before; when the
        same commit is already queued or running, that run) and the superseded ids.
        """
        now = time.time()
        with self.db.tx() as db:
            if delivery is not None and not remember_delivery(db, delivery):
                return None, []
            if commit_sha is not None and retry_of is None:
                same = db.execute(
                    "SELECT id FROM runs WHERE pipeline=? AND commit_sha=?"
                    f" AND status IN ('Queued', 'Running') AND {NOT_ROLLBACK}",
                    (pipeline, commit_sha),
                ).fetchone()
                if same is not None:
                    return self.db.one(Run, "SELECT * FROM runs WHERE id=?", same["id"]), []
            older = [
                r["id"]
                for r in db.execute(
                    f"SELECT id FROM runs WHERE pipeline=? AND status='Queued' AND {NOT_ROLLBACK}",
                    (pipeline,),
                ).fetchall()
            ]
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, trigger,"
                " queued_at, retry_of, started_at, forced)"
                " VALUES (?, ?, 'Queued', ?, ?, ?, ?, ?, ?, ?)",
                (
                    pipeline,
                    project_dir,
                    commit_sha,
                    ref,
                    json.dumps(trigger),
                    now,
                    retry_of,
                    now,
                    forced,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            for old in older:
                db.execute(
                    "UPDATE runs SET status='Superseded', ended_at=?, failure_reason=? WHERE id=?",
                    (
                        now,
                        f"superseded by run {run_id} ({(commit_sha or ref)[:12]})"
                        " before it started",
                        old,
                    ),
                )
            if delivery is not None:
                db.execute(
                    "UPDATE webhook_deliveries SET run_id=? WHERE delivery_id=?",
                    (run_id, delivery.id),
                )
        return self.get_run(run_id), older

    def create_started_run(
        self, *, pipeline: str, project_dir: str, commit_sha: str | None, trigger: dict[str, Any]
    ) -> Run:
        """A run this process starts now, outside the queue (a rollback); Running, by this pid.
        Refused while a run of the pipeline is Running (checked in the same transaction)."""
        now, pid = time.time(), os.getpid()
        self._reap_orphans()
        with self.db.tx() as db:
            busy = db.execute(
                "SELECT id FROM runs WHERE pipeline=? AND status='Running'", (pipeline,)
            ).fetchone()
            if busy is not None:
                raise StateError(f"run {busy['id']} of {pipeline} is in progress")
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, trigger, pid,"
                " pid_start, started_at) VALUES (?, ?, 'Running', ?, ?, ?, ?, ?, ?)",
                (
                    pipeline,
                    project_dir,
                    commit_sha,
                    commit_sha,
                    json.dumps(trigger),
                    pid,
                    procinfo.start_time(pid),
                    now,
                ),
            )
        return self.get_run(int(cur.lastrowid or 0))

    def claim_next_run(
        self, pipeline: str, pid: int, *, rollbacks_only: bool = False
    ) -> Run | None:
        """The next queued run of ``pipeline`` — the oldest rollback, else the oldest run —
        marked Running by ``pid``, unless a run of the pipeline runs already (one at a time).
        Atomic: two claimers never get the same run."""
        self._reap_orphans()
        with self.db.tx() as db:
            busy = db.execute(
                "SELECT 1 FROM runs WHERE pipeline=? AND status='Running'", (pipeline,)
            ).fetchone()
            if busy is not None:
                return None
            only = f" AND {IS_ROLLBACK}" if rollbacks_only else ""
            row = db.execute(
                f"SELECT id FROM runs WHERE pipeline=? AND status='Queued'{only}"
                f" ORDER BY {IS_ROLLBACK} DESC, id LIMIT 1",
                (pipeline,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status='Running', pid=?, pid_start=? WHERE id=?",
                (pid, procinfo.start_time(pid), row["id"]),
            )
        return self.get_run(int(row["id"]))

    def start_queued_run(self, run_id: int, stages: list[str]) -> Run:
        """The claimed run starts here, in this process, with these stages."""
        now, pid = time.time(), os.getpid()
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='Running', pid=?, pid_start=?, started_at=? WHERE id=?"
                " AND status IN ('Queued', 'Running')",
                (pid, procinfo.start_time(pid), now, run_id),
            )
            if cur.rowcount == 0:
                raise StateError(f"run {run_id} is not queued; it cannot start")
            db.execute("DELETE FROM stage_executions WHERE run_id=?", (run_id,))
            db.executemany(
                "INSERT INTO stage_executions (run_id, stage, position, status)"
                " VALUES (?, ?, ?, 'Pending')",
                [(run_id, stage, i) for i, stage in enumerate(stages)],
            )
        return self.get_run(run_id)

    def wait_for_approval(self, run_id: int) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET status='WaitingForApproval', pid=NULL, pid_start=NULL WHERE id=?",
                (run_id,),
            )

    def resume_run(self, run_id: int, pid: int | None = None) -> Run:
        """A run waiting for approval (with a decision) continues in ``pid`` (default: this one)."""
        pid = pid or os.getpid()
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='Running', pid=?, pid_start=?"
                " WHERE id=? AND status='WaitingForApproval'"
                " AND EXISTS (SELECT 1 FROM approvals WHERE run_id=? AND status != 'Pending')",
                (pid, procinfo.start_time(pid), run_id, run_id),
            )
            if cur.rowcount == 0:
                raise StateError(f"run {run_id} is not waiting for approval with a decision")
        return self.get_run(run_id)

    # --- rollbacks ----------------------------------------------------------------------

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
        with self.db.tx() as db:
            older = [
                int(r["id"])
                for r in db.execute(
                    f"SELECT id FROM runs WHERE pipeline=? AND status='Queued' AND {IS_ROLLBACK}"
                    " AND json_extract(trigger, '$.endpoint') = ? ORDER BY id",
                    (pipeline, endpoint),
                ).fetchall()
            ]
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, message,"
                " trigger, queued_at, started_at) VALUES (?, ?, 'Queued', ?, ?, ?, ?, ?, ?)",
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
                        f"replaced by rollback run {run_id} (to {trigger.get('to')},"
                        f" asked by {by}) before it started",
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
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET trigger=json_set(trigger, '$.detail', ?) WHERE id=?",
                (detail, run_id),
            )

    def queued_rollbacks(self, pipeline: str) -> list[Run]:
        return self.db.all(
            Run,
            f"SELECT * FROM runs WHERE pipeline=? AND status='Queued' AND {IS_ROLLBACK}"
            " ORDER BY id",
            pipeline,
        )
