"""The state database: runs, stage executions, training jobs, the model registry, endpoints.

SQLite in WAL mode, one file per state directory. Every state change in mlcicd goes through
this module; nothing else opens the database. Writes are single transactions, so a crash
leaves each record either before or after a change, never between; with
``synchronous=FULL`` a write that returned survives a power loss too (a queued run, an
approval, a registered model are not silently undone). Writes are rare — a few per stage —
so the millisecond or few of an fsync per commit does not show.

The state directory is the owner's alone (0700, tightened if it was looser) and so is the
database file (0600; SQLite gives its -wal and -shm files the same mode): it holds webhook
deliveries, approvals and who gave them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import NotFoundError, StateError
from mlcicd.fsutil import private_dir, private_file
from mlcicd.state_monitor import MONITOR_SCHEMA, MonitorState
from mlcicd.state_rollback import RollbackQueue
from mlcicd.state_service import (
    ADDED_COLUMNS,
    SERVICE_SCHEMA,
    ServiceState,
    add_event,
    note_endpoint_change,
    note_run_end,
)

# 2: the run queue, webhook deliveries, approvals, events, endpoint history (state_service.py)
# 3: model versions' data-quality baselines (state_monitor.py)
# 4: monitoring executions of endpoints' schedules (state_monitor.py)
# 5: the digests of webhook bodies, so a replay under a new delivery id is known (state_service.py)
SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline        TEXT NOT NULL,
    project_dir     TEXT NOT NULL,
    status          TEXT NOT NULL,          -- Queued | Running | WaitingForApproval | Succeeded | Failed | Stopped | Superseded
    commit_sha      TEXT,
    branch          TEXT,
    author          TEXT,
    message         TEXT,
    dirty           INTEGER NOT NULL DEFAULT 0,
    forced          INTEGER NOT NULL DEFAULT 0,
    pid             INTEGER,
    pid_start       INTEGER,                -- with pid: the process's identity (pids are reused)
    started_at      REAL NOT NULL,
    ended_at        REAL,
    failed_stage    TEXT,
    failure_reason  TEXT,
    ref             TEXT,                   -- what was asked to run (queued runs)
    trigger         TEXT NOT NULL DEFAULT '{}',  -- {"kind": "webhook" | "hook" | "poll" | "retry" | "rollback", …}
    queued_at       REAL,
    retry_of        INTEGER
);
CREATE TABLE IF NOT EXISTS stage_executions (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    stage       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL,              -- Pending | Running | Succeeded | Cached | Failed | Stopped | Skipped
    started_at  REAL,
    ended_at    REAL,
    message     TEXT,
    log_path    TEXT,
    outputs     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS training_jobs (
    name            TEXT PRIMARY KEY,
    run_id          INTEGER REFERENCES runs(id),
    cache_key       TEXT NOT NULL,
    status          TEXT NOT NULL,
    secondary_status TEXT,
    failure_reason  TEXT,
    build_digest    TEXT,
    data_digest     TEXT,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    metrics         TEXT NOT NULL DEFAULT '{}',
    model_uri       TEXT,
    model_sha256    TEXT,
    log_path        TEXT,
    started_at      REAL,
    ended_at        REAL
);
CREATE INDEX IF NOT EXISTS training_jobs_cache ON training_jobs(cache_key, status);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- Approved | Rejected | PendingManualApproval
    status_reason   TEXT,
    model_uri       TEXT NOT NULL,
    model_sha256    TEXT NOT NULL,
    metrics         TEXT NOT NULL DEFAULT '{}',
    training_job    TEXT,
    build_digest    TEXT,
    commit_sha      TEXT,
    run_id          INTEGER,
    lineage         TEXT NOT NULL DEFAULT '{}',
    created_at      REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
CREATE TABLE IF NOT EXISTS endpoints (
    name            TEXT PRIMARY KEY,
    backend         TEXT NOT NULL,
    status          TEXT NOT NULL,
    url             TEXT,
    port            INTEGER,
    pid             INTEGER,
    config_name     TEXT,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    failure_reason  TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_configs (
    name            TEXT PRIMARY KEY,
    endpoint_name   TEXT NOT NULL,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    run_id          INTEGER,
    reason          TEXT,
    spec            TEXT NOT NULL DEFAULT '{}',
    created_at      REAL NOT NULL
);
"""


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


@dataclass
class Run:
    id: int
    pipeline: str
    project_dir: str
    status: str
    commit_sha: str | None
    branch: str | None
    author: str | None
    message: str | None
    dirty: bool
    forced: bool
    pid: int | None
    pid_start: int | None
    started_at: float
    ended_at: float | None
    failed_stage: str | None
    failure_reason: str | None
    ref: str | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    queued_at: float | None = None
    retry_of: int | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


@dataclass
class StageExecution:
    run_id: int
    stage: str
    position: int
    status: str
    started_at: float | None
    ended_at: float | None
    message: str | None
    log_path: str | None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at


@dataclass
class TrainingJobRecord:
    name: str
    run_id: int | None
    cache_key: str
    status: str
    secondary_status: str | None
    failure_reason: str | None
    build_digest: str | None
    data_digest: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    model_uri: str | None
    model_sha256: str | None
    log_path: str | None
    started_at: float | None
    ended_at: float | None


@dataclass
class ModelPackage:
    group_name: str
    version: int
    status: str
    status_reason: str | None
    model_uri: str
    model_sha256: str
    metrics: dict[str, float]
    training_job: str | None
    build_digest: str | None
    commit_sha: str | None
    run_id: int | None
    lineage: dict[str, Any]
    created_at: float

    @property
    def arn(self) -> str:
        """SageMaker-style identifier: group/version."""
        return f"{self.group_name}/{self.version}"


@dataclass
class EndpointRecord:
    name: str
    backend: str
    status: str
    url: str | None
    port: int | None
    pid: int | None
    config_name: str | None
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    failure_reason: str | None
    created_at: float
    updated_at: float


@dataclass
class EndpointConfigRecord:
    name: str
    endpoint_name: str
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    run_id: int | None
    reason: str | None
    spec: dict[str, Any]
    created_at: float


_JSON_COLUMNS = {
    "outputs",
    "hyperparameters",
    "metrics",
    "lineage",
    "spec",
    "trigger",
    "summary",
    "data",
    "dataset",
    "variants",
}
_BOOL_COLUMNS = {"dirty", "forced"}


def _row(cls: type[Any], row: sqlite3.Row) -> Any:
    values = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not iterable by key
        value = row[key]
        if key in _JSON_COLUMNS:
            value = _loads(value)
        elif key in _BOOL_COLUMNS:
            value = bool(value)
        values[key] = value
    return cls(**values)


class State(ServiceState, RollbackQueue, MonitorState):
    """The state database of one state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dir(path.parent)
            self._db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            for name in (
                path,
                path.with_name(f"{path.name}-wal"),
                path.with_name(f"{path.name}-shm"),
            ):
                private_file(
                    name
                )  # before WAL mode: SQLite creates -wal and -shm with the file's mode
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{path} was written by a newer mlcicd (schema {version}, this one knows {SCHEMA_VERSION})",
                    hint="upgrade mlcicd",
                )
            if version < SCHEMA_VERSION:
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from exc
        except OSError as exc:
            raise StateError(
                f"cannot create state database {path}: {exc.strerror or exc}",
                hint=f"{path.parent} must be a directory this user can write to",
            ) from exc

    def _migrate(self) -> None:
        """Create what is missing, add the columns later schemas added; one transaction."""
        # executescript commits on its own, so the whole script is one transaction.
        self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}{SERVICE_SCHEMA}{MONITOR_SCHEMA}")
        try:
            for table, column, declaration in ADDED_COLUMNS:
                present = {
                    r["name"] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()
                }
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` so concurrent writers queue, not fail."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, cls: type[Any], sql: str, *args: Any) -> Any:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else _row(cls, row)

    def _all(self, cls: type[Any], sql: str, *args: Any) -> list[Any]:
        return [_row(cls, r) for r in self._db.execute(sql, args).fetchall()]

    # --- runs ------------------------------------------------------------------------

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
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (pipeline, project_dir, status, commit_sha, branch, author, message,"
                " dirty, forced, pid, pid_start, started_at) VALUES (?, ?, 'Running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                "INSERT INTO stage_executions (run_id, stage, position, status) VALUES (?, ?, ?, 'Pending')",
                [(run_id, stage, i) for i, stage in enumerate(stages)],
            )
        return self.get_run(run_id)

    def update_run_source(
        self, run_id: int, *, commit_sha: str, branch: str, author: str, message: str, dirty: bool
    ) -> None:
        with self._tx() as db:
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
        with self._tx() as db:
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
        run: Run | None = self._one(Run, "SELECT * FROM runs WHERE id=?", run_id)
        if run is None:
            raise NotFoundError(
                f"run {run_id} does not exist", hint="`mlcicd runs list` shows the runs"
            )
        return run

    def list_runs(self, *, pipeline: str | None = None, limit: int = 50) -> list[Run]:
        self._reap_orphans()
        if pipeline:
            return self._all(
                Run, "SELECT * FROM runs WHERE pipeline=? ORDER BY id DESC LIMIT ?", pipeline, limit
            )
        return self._all(Run, "SELECT * FROM runs ORDER BY id DESC LIMIT ?", limit)

    def _reap_orphans(self) -> None:
        """A run whose process is gone (kill -9, power loss) is failed, with the reason."""
        for row in self._db.execute(
            "SELECT id, pid, pid_start FROM runs WHERE status='Running'"
        ).fetchall():
            if row["pid"] and not procinfo.is_alive(row["pid"], row["pid_start"]):
                reason = (
                    f"the process running it (pid {row['pid']}) exited without finishing the run"
                )
                self.fail_run_in_progress(row["id"], reason)

    # --- stage executions --------------------------------------------------------------

    def start_stage(self, run_id: int, stage: str, *, log_path: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE stage_executions SET status='Running', started_at=?, log_path=? WHERE run_id=? AND stage=?",
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
        with self._tx() as db:
            db.execute(
                "UPDATE stage_executions SET status=?, ended_at=?, message=?, outputs=? WHERE run_id=? AND stage=?",
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
        return self._all(
            StageExecution,
            "SELECT * FROM stage_executions WHERE run_id=? ORDER BY position",
            run_id,
        )

    def last_outputs(self, stage: str, *, key: str, value: str) -> dict[str, Any] | None:
        """Outputs of the newest successful execution of ``stage`` whose outputs[key] == value."""
        row = self._db.execute(
            "SELECT outputs FROM stage_executions WHERE stage=? AND status='Succeeded'"
            " AND json_extract(outputs, '$.' || ?) = ? ORDER BY run_id DESC LIMIT 1",
            (stage, key, value),
        ).fetchone()
        return None if row is None else dict(_loads(row["outputs"]))

    # --- training jobs -------------------------------------------------------------------

    def record_training_job(self, job: TrainingJobRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO training_jobs VALUES"
                " (:name, :run_id, :cache_key, :status, :secondary_status, :failure_reason, :build_digest,"
                " :data_digest, :hyperparameters, :metrics, :model_uri, :model_sha256, :log_path,"
                " :started_at, :ended_at)",
                {
                    **job.__dict__,
                    "hyperparameters": json.dumps(job.hyperparameters),
                    "metrics": json.dumps(job.metrics),
                },
            )

    def get_training_job(self, name: str) -> TrainingJobRecord:
        job: TrainingJobRecord | None = self._one(
            TrainingJobRecord, "SELECT * FROM training_jobs WHERE name=?", name
        )
        if job is None:
            raise NotFoundError(f"training job {name} does not exist")
        return job

    def training_jobs(self, *, run_id: int) -> list[TrainingJobRecord]:
        return self._all(
            TrainingJobRecord,
            "SELECT * FROM training_jobs WHERE run_id=? ORDER BY started_at",
            run_id,
        )

    def find_completed_training_job(self, cache_key: str) -> TrainingJobRecord | None:
        job: TrainingJobRecord | None = self._one(
            TrainingJobRecord,
            "SELECT * FROM training_jobs WHERE cache_key=? AND status='Completed' ORDER BY ended_at DESC LIMIT 1",
            cache_key,
        )
        return job

    # --- model registry ----------------------------------------------------------------------

    def register_model_package(
        self,
        *,
        group_name: str,
        status: str,
        model_uri: str,
        model_sha256: str,
        metrics: dict[str, float],
        training_job: str | None,
        build_digest: str | None,
        commit_sha: str | None,
        run_id: int | None,
        lineage: dict[str, Any],
        status_reason: str | None = None,
    ) -> ModelPackage:
        """Add the next version to ``group_name`` (1, 2, 3…) in one transaction."""
        with self._tx() as db:
            version = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name=?",
                (group_name,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group_name,
                    version,
                    status,
                    status_reason,
                    model_uri,
                    model_sha256,
                    json.dumps(metrics),
                    training_job,
                    build_digest,
                    commit_sha,
                    run_id,
                    json.dumps(lineage, default=str),
                    time.time(),
                ),
            )
            add_event(
                db,
                "registered",
                f"{group_name}/{version}",
                {"status": status, "reason": status_reason, "metrics": metrics, "run_id": run_id},
            )
        return self.get_model_package(group_name, version)

    def get_model_package(self, group_name: str, version: int) -> ModelPackage:
        package: ModelPackage | None = self._one(
            ModelPackage,
            "SELECT * FROM model_packages WHERE group_name=? AND version=?",
            group_name,
            version,
        )
        if package is None:
            raise NotFoundError(
                f"model package {group_name}/{version} does not exist",
                hint="`mlcicd models list` shows them",
            )
        return package

    def find_model_package(self, group_name: str, model_sha256: str) -> ModelPackage | None:
        package: ModelPackage | None = self._one(
            ModelPackage,
            "SELECT * FROM model_packages WHERE group_name=? AND model_sha256=? ORDER BY version DESC LIMIT 1",
            group_name,
            model_sha256,
        )
        return package

    def list_model_packages(self, group_name: str | None = None) -> list[ModelPackage]:
        if group_name:
            return self._all(
                ModelPackage,
                "SELECT * FROM model_packages WHERE group_name=? ORDER BY version DESC",
                group_name,
            )
        return self._all(
            ModelPackage, "SELECT * FROM model_packages ORDER BY group_name, version DESC"
        )

    def set_model_package_status(
        self, group_name: str, version: int, status: str, *, reason: str | None = None
    ) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE model_packages SET status=?, status_reason=? WHERE group_name=? AND version=?",
                (status, reason, group_name, version),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"model package {group_name}/{version} does not exist")
            kind = {"Approved": "approved", "Rejected": "rejected"}.get(status, "status_changed")
            add_event(db, kind, f"{group_name}/{version}", {"status": status, "reason": reason})

    # --- endpoints ---------------------------------------------------------------------------

    def record_endpoint_config(self, config: EndpointConfigRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoint_configs VALUES"
                " (:name, :endpoint_name, :model_group, :model_version, :model_sha256, :run_id, :reason,"
                " :spec, :created_at)",
                {**config.__dict__, "spec": json.dumps(config.spec, default=str)},
            )

    def endpoint_configs(self, endpoint_name: str) -> list[EndpointConfigRecord]:
        return self._all(
            EndpointConfigRecord,
            "SELECT * FROM endpoint_configs WHERE endpoint_name=? ORDER BY created_at DESC",
            endpoint_name,
        )

    def upsert_endpoint(self, endpoint: EndpointRecord) -> None:
        with self._tx() as db:
            previous = db.execute(
                "SELECT config_name FROM endpoints WHERE name=?", (endpoint.name,)
            ).fetchone()
            note_endpoint_change(db, previous["config_name"] if previous else None, endpoint)
            db.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (:name, :backend, :status, :url, :port, :pid,"
                " :config_name, :model_group, :model_version, :model_sha256, :failure_reason,"
                " :created_at, :updated_at)",
                endpoint.__dict__,
            )

    def get_endpoint(self, name: str) -> EndpointRecord | None:
        endpoint: EndpointRecord | None = self._one(
            EndpointRecord, "SELECT * FROM endpoints WHERE name=?", name
        )
        return endpoint

    def list_endpoints(self) -> list[EndpointRecord]:
        return self._all(EndpointRecord, "SELECT * FROM endpoints ORDER BY name")

    def delete_endpoint(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM endpoints WHERE name=?", (name,))
