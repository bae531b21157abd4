"""Runs and their stage executions: created, advanced stage by stage, finished.

A run is recorded with the pid (and the start time, as pids are reused) of the process that
runs it; a run whose process is gone (``kill -9``, power loss) is failed with the reason the
next time runs are read (:meth:`Runs._reap_orphans`). How runs are queued, claimed and
resumed is :mod:`mlcicd.state.queue`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import NotFoundError
from mlcicd.state.db import Tables, loads
from mlcicd.state.events import add_event
from mlcicd.state.records import Run, StageExecution

ROLLBACK = "rollback"
# Whether a run is a rollback, NULL-safe (a trigger '{}' has no kind), for WHERE and ORDER BY.
IS_ROLLBACK = "json_extract(trigger, '$.kind') IS 'rollback'"
NOT_ROLLBACK = "json_extract(trigger, '$.kind') IS NOT 'rollback'"


def note_run_end(db: sqlite3.Connection, run_id: int) -> None:
    """A rollback run that ended without deploying: a ``rollback_failed`` event (same tx).

    One that deployed has its ``rolled_back`` event already, from the endpoint's change."""
    row = db.execute(
        "SELECT status, trigger, failure_reason FROM runs WHERE id=?", (run_id,)
    ).fetchone()
    if row is None or row["status"] not in ("Failed", "Stopped"):
        return
    trigger = json.loads(row["trigger"] or "{}")
    if trigger.get("kind") != ROLLBACK:
        return
    add_event(
        db,
        "rollback_failed",
        str(trigger.get("endpoint") or trigger.get("to") or ""),
        {
            "run_id": run_id,
            "to": trigger.get("to"),
            "by": trigger.get("by"),
            "why": trigger.get("reason"),
            "failure": row["failure_reason"],
        },
    )


class Runs(Tables):
    """Runs and stage executions."""

    def create_run(
        self,
        *,
        pipeline: str,
        project_dir: str,
        stages: list[str],
        commit_sha: str | None = None,
        branch: str | None = None,
        author: str | None = None,
        message: str | None = None,
        dirty: bool = False,
        forced: bool = False,
    ) -> Run:
        now = time.time()
        with self.db.tx() as db:
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, branch, author,"
                " message, dirty, forced, pid, pid_start, started_at)"
                " VALUES (?, ?, 'Running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pipeline,
                    project_dir,
                    commit_sha,
                    branch,
                    author,
                    message,
                    dirty,
                    forced,
                    os.getpid(),
                    procinfo.start_time(os.getpid()),
                    now,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO stage_executions (run_id, stage, position, status)"
                " VALUES (?, ?, ?, 'Pending')",
                [(run_id, stage, i) for i, stage in enumerate(stages)],
            )
        return self.get_run(run_id)

    def update_run_source(
        self, run_id: int, *, commit_sha: str, branch: str, author: str, message: str, dirty: bool
    ) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET commit_sha=?, branch=?, author=?, message=?, dirty=? WHERE id=?",
                (commit_sha, branch, author, message, dirty, run_id),
            )

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        failed_stage: str | None = None,
        failure_reason: str | None = None,
    ) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE runs SET status=?, ended_at=?, failed_stage=?, failure_reason=? WHERE id=?",
                (status, time.time(), failed_stage, failure_reason, run_id),
            )
            # Stages that never started are skipped, not pending forever.
            db.execute(
                "UPDATE stage_executions SET status='Skipped' WHERE run_id=? AND status='Pending'",
                (run_id,),
            )
            note_run_end(db, run_id)

    def get_run(self, run_id: int) -> Run:
        self._reap_orphans()
        run: Run | None = self.db.one(Run, "SELECT * FROM runs WHERE id=?", run_id)
        if run is None:
            raise NotFoundError(
                f"run {run_id} does not exist", hint="`mlcicd runs list` shows the runs"
            )
        return run

    def list_runs(self, *, pipeline: str | None = None, limit: int = 50) -> list[Run]:
        self._reap_orphans()
        if pipeline:
            return self.db.all(
                Run, "SELECT * FROM runs WHERE pipeline=? ORDER BY id DESC LIMIT ?", pipeline, limit
            )
        return self.db.all(Run, "SELECT * FROM runs ORDER BY id DESC LIMIT ?", limit)

    def runs_with_status(self, status: str, pipeline: str | None = None) -> list[Run]:
        if pipeline is None:
            return self.db.all(Run, "SELECT * FROM runs WHERE status=? ORDER BY id", status)
        return self.db.all(
            Run, "SELECT * FROM runs WHERE status=? AND pipeline=? ORDER BY id", status, pipeline
        )

    def has_run_for_commit(self, pipeline: str, commit_sha: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM runs WHERE pipeline=? AND commit_sha=? LIMIT 1", pipeline, commit_sha
        ).fetchone()
        return row is not None

    def _reap_orphans(self) -> None:
        """A run whose process is gone (kill -9, power loss) is failed, with the reason."""
        for row in self.db.execute(
            "SELECT id, pid, pid_start FROM runs WHERE status='Running'"
        ).fetchall():
            if row["pid"] and not procinfo.is_alive(row["pid"], row["pid_start"]):
                reason = (
                    f"the process running it (pid {row['pid']}) exited without finishing the run"
                )
                self.fail_run_in_progress(row["id"], reason)

    def fail_run_in_progress(self, run_id: int, reason: str) -> None:
        """A run whose process ended without finishing it: Failed with ``reason``, at its stage."""
        now = time.time()
        with self.db.tx() as db:
            db.execute(
                "UPDATE stage_executions SET status='Failed', ended_at=?, message=?"
                " WHERE run_id=? AND status='Running'",
                (now, reason, run_id),
            )
            failed = db.execute(
                "UPDATE runs SET status='Failed', ended_at=?, failure_reason=?, pid=NULL,"
                " failed_stage=(SELECT stage FROM stage_executions"
                " WHERE run_id=? AND status='Failed' LIMIT 1)"
                " WHERE id=? AND status='Running'",
                (now, reason, run_id, run_id),
            )
            if failed.rowcount:
                note_run_end(db, run_id)
            db.execute(
                "UPDATE stage_executions SET status='Skipped' WHERE run_id=? AND status='Pending'",
                (run_id,),
            )
            db.execute(
                "UPDATE training_jobs SET status='Stopped', secondary_status='Interrupted',"
                " failure_reason=?, ended_at=? WHERE run_id=? AND status='InProgress'",
                (reason, now, run_id),
            )

    # --- stage executions --------------------------------------------------------------

    def start_stage(self, run_id: int, stage: str, *, log_path: str | None = None) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE stage_executions SET status='Running', started_at=?, log_path=?"
                " WHERE run_id=? AND stage=?",
                (time.time(), log_path, run_id, stage),
            )

    def finish_stage(
        self,
        run_id: int,
        stage: str,
        status: str,
        *,
        message: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        with self.db.tx() as db:
            db.execute(
                "UPDATE stage_executions SET status=?, ended_at=?, message=?, outputs=?"
                " WHERE run_id=? AND stage=?",
                (
                    status,
                    time.time(),
                    message,
                    json.dumps(outputs or {}, default=str),
                    run_id,
                    stage,
                ),
            )

    def stages(self, run_id: int) -> list[StageExecution]:
        return self.db.all(
            StageExecution,
            "SELECT * FROM stage_executions WHERE run_id=? ORDER BY position",
            run_id,
        )

    def last_outputs(self, stage: str, *, key: str, value: str) -> dict[str, Any] | None:
        """Outputs of the newest successful execution of ``stage`` whose outputs[key] == value."""
        row = self.db.execute(
            "SELECT outputs FROM stage_executions WHERE stage=? AND status='Succeeded'"
            " AND json_extract(outputs, '$.' || ?) = ? ORDER BY run_id DESC LIMIT 1",
            stage,
            key,
            value,
        ).fetchone()
        return None if row is None else dict(loads(row["outputs"]))
