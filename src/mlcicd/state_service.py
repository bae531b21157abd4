"""The state of the long-running side: the run queue, webhook deliveries, approvals, the
registry's event log and every endpoint's history.

These are methods of :class:`mlcicd.state.State` (mixed in), kept here so state.py stays
small enough to hold in one's head; only state.py opens the database. Every change is one
transaction, so a crash or ``kill -9`` leaves each run either queued, running (its pid
recorded, so a dead one is found), waiting, or finished — never in between.

Queue states of a run::

    Queued ──claim──▶ Running ──▶ Succeeded | Failed | Stopped
      │                  └──▶ WaitingForApproval ──approve/reject/timeout──▶ Running …
      └──newer commit──▶ Superseded

A queued rollback (``trigger.kind == "rollback"``, :mod:`mlcicd.state_rollback`) is claimed
before the pipeline's other queued runs and superseded only by a newer rollback of its endpoint.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcicd import procinfo
from mlcicd.errors import NotFoundError, StateError

if TYPE_CHECKING:
    from mlcicd.state import Run

SERVICE_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id     TEXT PRIMARY KEY,
    event           TEXT NOT NULL,
    received_at     REAL NOT NULL,
    run_id          INTEGER
);
CREATE TABLE IF NOT EXISTS webhook_bodies (  -- schema 5: a replay is known by its body, whatever its id
    body_sha256     TEXT PRIMARY KEY,
    delivery_id     TEXT NOT NULL,
    received_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id          INTEGER PRIMARY KEY REFERENCES runs(id),
    model_group     TEXT NOT NULL,
    model_version   INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- Pending | Approved | Rejected
    requested_at    REAL NOT NULL,
    expires_at      REAL,
    decided_by      TEXT,
    comment         TEXT,
    decided_at      REAL,
    summary         TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              REAL NOT NULL,
    kind            TEXT NOT NULL,          -- registered | approved | rejected | deployed | rolled_back | restarted
    subject         TEXT NOT NULL,          -- model group/version or endpoint name
    data            TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS event_cursors (
    url             TEXT PRIMARY KEY,
    last_id         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_name   TEXT NOT NULL,
    config_name     TEXT,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    reason          TEXT NOT NULL,          -- deploy | rollback | alarm | restart
    detail          TEXT,
    run_id          INTEGER,
    at              REAL NOT NULL
);
"""

# Columns added to tables of schema 1, as (table, column, declaration).
ADDED_COLUMNS = (
    ("runs", "ref", "TEXT"),
    ("runs", "trigger", "TEXT NOT NULL DEFAULT '{}'"),
    ("runs", "queued_at", "REAL"),
    ("runs", "retry_of", "INTEGER"),
)

FINISHED = ("Succeeded", "Failed", "Stopped", "Superseded")

ROLLBACK = "rollback"
# Whether a run is a rollback, NULL-safe (a trigger '{}' has no kind), for WHERE and ORDER BY.
IS_ROLLBACK = "json_extract(trigger, '$.kind') IS 'rollback'"
NOT_ROLLBACK = "json_extract(trigger, '$.kind') IS NOT 'rollback'"


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery: GitHub's id for it, its event, and the digest of its signed body.

    The id (``X-GitHub-Delivery``) is not covered by the signature, so a captured body resent
    under a new id is recognised by the digest."""

    id: str
    event: str
    body_sha256: str


def remember_delivery(db: sqlite3.Connection, delivery: Delivery) -> bool:
    """Record ``delivery`` inside the caller's transaction; False if its id or body was seen."""
    now = time.time()
    new_id = db.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)",
        (delivery.id, delivery.event, now),
    ).rowcount
    new_body = db.execute(
        "INSERT OR IGNORE INTO webhook_bodies (body_sha256, delivery_id, received_at) VALUES (?, ?, ?)",
        (delivery.body_sha256, delivery.id, now),
    ).rowcount
    return bool(new_id and new_body)


@dataclass
class Approval:
    run_id: int
    model_group: str
    model_version: int
    status: str
    requested_at: float
    expires_at: float | None
    decided_by: str | None
    comment: str | None
    decided_at: float | None
    summary: dict[str, Any]


@dataclass
class Event:
    id: int
    at: float
    kind: str
    subject: str
    data: dict[str, Any]


@dataclass
class EndpointChange:
    id: int
    endpoint_name: str
    config_name: str | None
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    reason: str
    detail: str | None
    run_id: int | None
    at: float


def add_event(db: sqlite3.Connection, kind: str, subject: str, data: dict[str, Any]) -> None:
    """Append to the event log inside the caller's transaction."""
    db.execute(
        "INSERT INTO events (at, kind, subject, data) VALUES (?, ?, ?, ?)",
        (time.time(), kind, subject, json.dumps(data, default=str)),
    )


def note_endpoint_change(db: sqlite3.Connection, previous_config: str | None, record: Any) -> None:
    """When an endpoint starts serving another config: a history row and an event (same tx).

    Why it changed comes from the endpoint config (``reason``, e.g. ``alarm``) or, for a
    plain deploy, from what triggered the run that deployed it (a rollback is a deploy run).
    """
    if not record.config_name or record.config_name == previous_config:
        return
    if record.status not in ("InService", "Updating"):
        return
    row = db.execute(
        "SELECT reason, run_id FROM endpoint_configs WHERE name=?", (record.config_name,)
    ).fetchone()
    reason, run_id, detail, asked = "deploy", None, None, {}
    if row is not None:
        run_id = row["run_id"]
        if row["reason"] and row["reason"] != "deploy":
            reason = row["reason"]
        elif run_id is not None:
            trig = db.execute("SELECT trigger FROM runs WHERE id=?", (run_id,)).fetchone()
            trigger = json.loads(trig["trigger"]) if trig and trig["trigger"] else {}
            if trigger.get("kind") == ROLLBACK:
                reason, detail = "rollback", trigger.get("detail")
                asked = {"by": trigger.get("by"), "why": trigger.get("reason")}
            elif trigger.get("kind"):
                detail = f"run {run_id} ({trigger['kind']})"
    db.execute(
        "INSERT INTO endpoint_history (endpoint_name, config_name, model_group, model_version, model_sha256,"
        " reason, detail, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.name,
            record.config_name,
            record.model_group,
            record.model_version,
            record.model_sha256,
            reason,
            detail,
            run_id,
            time.time(),
        ),
    )
    add_event(
        db,
        "rolled_back" if reason == "rollback" else "deployed",
        record.name,
        {
            "config": record.config_name,
            "model": f"{record.model_group}/{record.model_version}",
            "previous_config": previous_config,
            "reason": reason,
            "run_id": run_id,
            **asked,
        },
    )


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


class ServiceState:
    """Mixed into ``State``: queue, deliveries, approvals, events, endpoint history."""

    _db: sqlite3.Connection

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _one(self, cls: type[Any], sql: str, *args: Any) -> Any: ...
        def _all(self, cls: type[Any], sql: str, *args: Any) -> list[Any]: ...
        def get_run(self, run_id: int) -> Run: ...
        def _reap_orphans(self) -> None: ...

    # --- the run queue ------------------------------------------------------------------

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
        from mlcicd.state import Run

        now = time.time()
        with self._tx() as db:
            if delivery is not None and not remember_delivery(db, delivery):
                return None, []
            if commit_sha is not None and retry_of is None:
                same = db.execute(
                    "SELECT id FROM runs WHERE pipeline=? AND commit_sha=? AND status IN ('Queued', 'Running')"
                    f" AND {NOT_ROLLBACK}",
                    (pipeline, commit_sha),
                ).fetchone()
                if same is not None:
                    return self._one(Run, "SELECT * FROM runs WHERE id=?", same["id"]), []
            older = [
                r["id"]
                for r in db.execute(
                    f"SELECT id FROM runs WHERE pipeline=? AND status='Queued' AND {NOT_ROLLBACK}",
                    (pipeline,),
                ).fetchall()
            ]
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, trigger, queued_at, retry_of,"
                " started_at, forced) VALUES (?, ?, 'Queued', ?, ?, ?, ?, ?, ?, ?)",
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
                        f"superseded by run {run_id} ({(commit_sha or ref)[:12]}) before it started",
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
        with self._tx() as db:
            busy = db.execute(
                "SELECT id FROM runs WHERE pipeline=? AND status='Running'", (pipeline,)
            ).fetchone()
            if busy is not None:
                raise StateError(f"run {busy['id']} of {pipeline} is in progress")
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, ref, trigger, pid, pid_start,"
                " started_at) VALUES (?, ?, 'Running', ?, ?, ?, ?, ?, ?)",
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

    def record_delivery(self, delivery: Delivery) -> bool:
        """Remember a webhook delivery that starts nothing; False if its id or body was seen."""
        with self._tx() as db:
            return remember_delivery(db, delivery)

    def claim_next_run(
        self, pipeline: str, pid: int, *, rollbacks_only: bool = False
    ) -> Run | None:
        """The next queued run of ``pipeline`` — the oldest rollback, else the oldest run —
        marked Running by ``pid``, unless a run of the pipeline runs already (one at a time).
        Atomic: two claimers never get the same run."""
        self._reap_orphans()
        with self._tx() as db:
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
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='Running', pid=?, pid_start=?, started_at=? WHERE id=?"
                " AND status IN ('Queued', 'Running')",
                (pid, procinfo.start_time(pid), now, run_id),
            )
            if cur.rowcount == 0:
                raise StateError(f"run {run_id} is not queued; it cannot start")
            db.execute("DELETE FROM stage_executions WHERE run_id=?", (run_id,))
            db.executemany(
                "INSERT INTO stage_executions (run_id, stage, position, status) VALUES (?, ?, ?, 'Pending')",
                [(run_id, stage, i) for i, stage in enumerate(stages)],
            )
        return self.get_run(run_id)

    def wait_for_approval(self, run_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status='WaitingForApproval', pid=NULL, pid_start=NULL WHERE id=?",
                (run_id,),
            )

    def resume_run(self, run_id: int, pid: int | None = None) -> Run:
        """A run waiting for approval (with a decision) continues in ``pid`` (default: this one)."""
        pid = pid or os.getpid()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='Running', pid=?, pid_start=? WHERE id=? AND status='WaitingForApproval'"
                " AND EXISTS (SELECT 1 FROM approvals WHERE run_id=? AND status != 'Pending')",
                (pid, procinfo.start_time(pid), run_id, run_id),
            )
            if cur.rowcount == 0:
                raise StateError(f"run {run_id} is not waiting for approval with a decision")
        return self.get_run(run_id)

    def fail_run_in_progress(self, run_id: int, reason: str) -> None:
        """A run whose process ended without finishing it: Failed with ``reason``, at its stage."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE stage_executions SET status='Failed', ended_at=?, message=? WHERE run_id=? AND status='Running'",
                (now, reason, run_id),
            )
            failed = db.execute(
                "UPDATE runs SET status='Failed', ended_at=?, failure_reason=?, pid=NULL,"
                " failed_stage=(SELECT stage FROM stage_executions WHERE run_id=? AND status='Failed' LIMIT 1)"
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
                "UPDATE training_jobs SET status='Stopped', secondary_status='Interrupted', failure_reason=?,"
                " ended_at=? WHERE run_id=? AND status='InProgress'",
                (reason, now, run_id),
            )

    def runs_with_status(self, status: str, pipeline: str | None = None) -> list[Run]:
        from mlcicd.state import Run

        if pipeline is None:
            return self._all(Run, "SELECT * FROM runs WHERE status=? ORDER BY id", status)
        return self._all(
            Run, "SELECT * FROM runs WHERE status=? AND pipeline=? ORDER BY id", status, pipeline
        )

    def has_run_for_commit(self, pipeline: str, commit_sha: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM runs WHERE pipeline=? AND commit_sha=? LIMIT 1", (pipeline, commit_sha)
        ).fetchone()
        return row is not None

    # --- approvals ----------------------------------------------------------------------

    def request_approval(
        self,
        run_id: int,
        group: str,
        version: int,
        *,
        timeout: float | None,
        summary: dict[str, Any],
    ) -> list[int]:
        """Record that ``run_id`` waits; older waiting runs of the group are Superseded (their ids)."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO approvals (run_id, model_group, model_version, status, requested_at,"
                " expires_at, summary) VALUES (?, ?, ?, 'Pending', ?, ?, ?)",
                (
                    run_id,
                    group,
                    version,
                    now,
                    now + timeout if timeout else None,
                    json.dumps(summary, default=str),
                ),
            )
            older = [
                int(r["run_id"])
                for r in db.execute(
                    "SELECT a.run_id FROM approvals a JOIN runs r ON r.id = a.run_id WHERE a.model_group=?"
                    " AND a.status='Pending' AND a.run_id != ? AND r.status='WaitingForApproval'",
                    (group, run_id),
                ).fetchall()
            ]
            for old in older:
                reason = f"superseded by run {run_id} while waiting for approval"
                db.execute(
                    "UPDATE approvals SET status='Rejected', decided_by='mlcicd', comment=?, decided_at=? WHERE run_id=?",
                    (reason, now, old),
                )
                db.execute(
                    "UPDATE runs SET status='Superseded', ended_at=?, failure_reason=? WHERE id=?",
                    (now, reason, old),
                )
                db.execute(
                    "UPDATE stage_executions SET status='Skipped' WHERE run_id=? AND status IN ('Pending', 'WaitingForApproval')",
                    (old,),
                )
        return older

    def get_approval(self, run_id: int) -> Approval | None:
        approval: Approval | None = self._one(
            Approval, "SELECT * FROM approvals WHERE run_id=?", run_id
        )
        return approval

    def decide_approval(
        self, run_id: int, approved: bool, *, by: str, comment: str | None
    ) -> Approval:
        """Approve or reject a pending approval (once): who and why are recorded."""
        with self._tx() as db:
            row = db.execute(
                "SELECT a.status, r.status AS run_status FROM approvals a JOIN runs r ON r.id = a.run_id"
                " WHERE a.run_id=?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"run {run_id} is not waiting for approval",
                    hint="`mlcicd runs list` shows runs in WaitingForApproval",
                )
            if row["status"] != "Pending" or row["run_status"] != "WaitingForApproval":
                raise StateError(
                    f"run {run_id} was already decided ({row['status']}, run {row['run_status']})"
                )
            db.execute(
                "UPDATE approvals SET status=?, decided_by=?, comment=?, decided_at=? WHERE run_id=?",
                ("Approved" if approved else "Rejected", by, comment, time.time(), run_id),
            )
        approval = self.get_approval(run_id)
        assert approval is not None
        return approval

    def expired_approvals(self, now: float | None = None) -> list[Approval]:
        return self._all(
            Approval,
            "SELECT a.* FROM approvals a JOIN runs r ON r.id = a.run_id WHERE a.status='Pending'"
            " AND r.status='WaitingForApproval' AND a.expires_at IS NOT NULL AND a.expires_at <= ?",
            now or time.time(),
        )

    def decided_waiting_runs(self) -> list[Run]:
        """Runs waiting for approval that now have a decision: ready to resume."""
        from mlcicd.state import Run

        return self._all(
            Run,
            "SELECT r.* FROM runs r JOIN approvals a ON a.run_id = r.id WHERE r.status='WaitingForApproval'"
            " AND a.status != 'Pending' ORDER BY r.id",
        )

    # --- events -------------------------------------------------------------------------

    def add_event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        with self._tx() as db:
            add_event(db, kind, subject, data)

    def events(self, *, after: int = 0, limit: int = 100) -> list[Event]:
        return self._all(
            Event, "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", after, limit
        )

    def recent_events(self, limit: int = 50) -> list[Event]:
        return list(
            reversed(self._all(Event, "SELECT * FROM events ORDER BY id DESC LIMIT ?", limit))
        )

    def event_cursor(self, url: str) -> int:
        """Where delivery to ``url`` stands; a new URL starts at the newest event (no backlog)."""
        with self._tx() as db:
            row = db.execute("SELECT last_id FROM event_cursors WHERE url=?", (url,)).fetchone()
            if row is not None:
                return int(row["last_id"])
            last = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
            db.execute("INSERT INTO event_cursors (url, last_id) VALUES (?, ?)", (url, last))
        return last

    def advance_event_cursor(self, url: str, last_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO event_cursors (url, last_id) VALUES (?, ?)", (url, last_id)
            )

    # --- endpoint history ---------------------------------------------------------------

    def record_endpoint_change(
        self,
        endpoint: str,
        *,
        reason: str,
        detail: str,
        config_name: str | None = None,
        model_group: str | None = None,
        model_version: int | None = None,
        model_sha256: str | None = None,
    ) -> None:
        """A change that is not a new config (a restart after a crash, an alarm)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO endpoint_history (endpoint_name, config_name, model_group, model_version,"
                " model_sha256, reason, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint,
                    config_name,
                    model_group,
                    model_version,
                    model_sha256,
                    reason,
                    detail,
                    time.time(),
                ),
            )
            add_event(
                db,
                "restarted" if reason == "restart" else reason,
                endpoint,
                {"config": config_name, "detail": detail},
            )

    def endpoint_history(self, endpoint: str) -> list[EndpointChange]:
        return self._all(
            EndpointChange,
            "SELECT * FROM endpoint_history WHERE endpoint_name=? ORDER BY id",
            endpoint,
        )
