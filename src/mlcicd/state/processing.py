"""Processing jobs: each run of a ``processing:`` step, its outputs and its report.

A job is recorded under its cache key (its script, arguments and the digests of its inputs),
so a later run whose step would read the same things reuses the completed job's outputs.
"""

from __future__ import annotations

import json

from mlcicd.errors import NotFoundError
from mlcicd.state.db import Tables
from mlcicd.state.records import ProcessingJobRecord


class Processing(Tables):
    """Processing jobs."""

    def record_processing_job(self, job: ProcessingJobRecord) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO processing_jobs VALUES (:name, :run_id, :step,"
                " :cache_key, :status, :failure_reason, :exit_message, :inputs, :outputs,"
                " :report, :log_path, :started_at, :ended_at)",
                {
                    **job.__dict__,
                    "inputs": json.dumps(job.inputs),
                    "outputs": json.dumps(job.outputs),
                    "report": json.dumps(job.report),
                },
            )

    def get_processing_job(self, name: str) -> ProcessingJobRecord:
        job: ProcessingJobRecord | None = self.db.one(
            ProcessingJobRecord, "SELECT * FROM processing_jobs WHERE name=?", name
        )
        if job is None:
            raise NotFoundError(f"processing job {name} does not exist")
        return job

    def processing_jobs(self, *, run_id: int) -> list[ProcessingJobRecord]:
        return self.db.all(
            ProcessingJobRecord,
            "SELECT * FROM processing_jobs WHERE run_id=? ORDER BY started_at",
            run_id,
        )

    def find_completed_processing_job(self, cache_key: str) -> ProcessingJobRecord | None:
        job: ProcessingJobRecord | None = self.db.one(
            ProcessingJobRecord,
            "SELECT * FROM processing_jobs WHERE cache_key=? AND status='Completed'"
            " ORDER BY ended_at DESC LIMIT 1",
            cache_key,
        )
        return job
