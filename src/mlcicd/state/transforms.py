"""Batch transform jobs: one row per TransformJobName, from InProgress to how it ended.

A job is recorded InProgress with the process running it (pid and start time) before its
first worker starts, and finished in one update. A job whose process died without
finishing (``kill -9``, a reboot) is read back as Failed, saying so: the row itself is left
as it was, the truth of what happened.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import NotFoundError, StateError
from mlcicd.state.db import Tables
from mlcicd.state.records import TransformJobRecord

_IN_PROGRESS, _FAILED = "InProgress", "Failed"


class Transforms(Tables):
    """Batch transform jobs, newest first."""

    def create_transform_job(self, job: TransformJobRecord) -> TransformJobRecord:
        """Record a job InProgress, run by this process; a name already used is refused."""
        job.status, job.started_at = _IN_PROGRESS, job.started_at or time.time()
        job.pid = os.getpid()
        job.pid_start = procinfo.start_time(job.pid)
        values = {**job.__dict__, "settings": json.dumps(job.settings, sort_keys=True)}
        columns = ", ".join(values)
        with self.db.tx() as db:
            if db.execute("SELECT 1 FROM transform_jobs WHERE name=?", (job.name,)).fetchone():
                raise StateError(
                    f"transform job {job.name} exists already", hint="choose another --job-name"
                )
            db.execute(
                f"INSERT INTO transform_jobs ({columns}) VALUES "
                f"({', '.join(':' + k for k in values)})",
                values,
            )
        return job

    def finish_transform_job(
        self,
        name: str,
        status: str,
        *,
        failure_reason: str | None = None,
        objects: int = 0,
        rows_in: int = 0,
        rows_out: int = 0,
    ) -> TransformJobRecord:
        with self.db.tx() as db:
            db.execute(
                "UPDATE transform_jobs SET status=?, failure_reason=?, objects=?, rows_in=?,"
                " rows_out=?, ended_at=?, pid=NULL, pid_start=NULL WHERE name=?",
                (status, failure_reason, objects, rows_in, rows_out, time.time(), name),
            )
        return self.get_transform_job(name)

    def get_transform_job(self, name: str) -> TransformJobRecord:
        job: TransformJobRecord | None = self.db.one(
            TransformJobRecord, "SELECT * FROM transform_jobs WHERE name=?", name
        )
        if job is None:
            raise NotFoundError(
                f"transform job {name} does not exist", hint="see `mlcicd transforms list`"
            )
        return _as_seen(job)

    def transform_jobs(
        self, model_group: str | None = None, model_version: int | None = None, *, limit: int = 50
    ) -> list[TransformJobRecord]:
        """The newest jobs first: all, or those of one model (group, and version)."""
        sql, args = "SELECT * FROM transform_jobs", list[Any]()
        if model_group is not None:
            sql += " WHERE model_group=?"
            args.append(model_group)
            if model_version is not None:
                sql += " AND model_version=?"
                args.append(model_version)
        sql += " ORDER BY started_at DESC LIMIT ?"
        return [_as_seen(j) for j in self.db.all(TransformJobRecord, sql, *args, limit)]


def _as_seen(job: TransformJobRecord) -> TransformJobRecord:
    if job.status == _IN_PROGRESS and not procinfo.is_alive(job.pid, job.pid_start):
        job.status = _FAILED
        job.failure_reason = (
            f"the process running it (pid {job.pid}) ended without finishing: it was killed "
            "or the machine restarted; run the job again"
        )
    return job
