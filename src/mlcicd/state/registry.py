"""Training jobs and the model registry: what was trained, and the versions of each group.

A training job is recorded under its cache key, so a later run with the same inputs reuses
the completed one. A model package is the next version of its group (1, 2, 3…), numbered
and recorded in one transaction with its ``registered`` event; a change of its status is an
``approved``/``rejected`` event in the same transaction.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlcicd.errors import NotFoundError
from mlcicd.state.db import Tables
from mlcicd.state.events import add_event
from mlcicd.state.records import ModelPackage, TrainingJobRecord


class Registry(Tables):
    """Training jobs and model packages."""

    def record_training_job(self, job: TrainingJobRecord) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO training_jobs VALUES"
                " (:name, :run_id, :cache_key, :status, :secondary_status, :failure_reason,"
                " :build_digest, :data_digest, :hyperparameters, :metrics, :model_uri,"
                " :model_sha256, :log_path, :started_at, :ended_at)",
                {
                    **job.__dict__,
                    "hyperparameters": json.dumps(job.hyperparameters),
                    "metrics": json.dumps(job.metrics),
                },
            )

    def get_training_job(self, name: str) -> TrainingJobRecord:
        job: TrainingJobRecord | None = self.db.one(
            TrainingJobRecord, "SELECT * FROM training_jobs WHERE name=?", name
        )
        if job is None:
            raise NotFoundError(f"training job {name} does not exist")
        return job

    def training_jobs(self, *, run_id: int) -> list[TrainingJobRecord]:
        return self.db.all(
            TrainingJobRecord,
            "SELECT * FROM training_jobs WHERE run_id=? ORDER BY started_at",
            run_id,
        )

    def find_completed_training_job(self, cache_key: str) -> TrainingJobRecord | None:
        job: TrainingJobRecord | None = self.db.one(
            TrainingJobRecord,
            "SELECT * FROM training_jobs WHERE cache_key=? AND status='Completed'"
            " ORDER BY ended_at DESC LIMIT 1",
            cache_key,
        )
        return job

    # --- model packages -----------------------------------------------------------------

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
        with self.db.tx() as db:
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
        package: ModelPackage | None = self.db.one(
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
        package: ModelPackage | None = self.db.one(
            ModelPackage,
            "SELECT * FROM model_packages WHERE group_name=? AND model_sha256=?"
            " ORDER BY version DESC LIMIT 1",
            group_name,
            model_sha256,
        )
        return package

    def list_model_packages(self, group_name: str | None = None) -> list[ModelPackage]:
        if group_name:
            return self.db.all(
                ModelPackage,
                "SELECT * FROM model_packages WHERE group_name=? ORDER BY version DESC",
                group_name,
            )
        return self.db.all(
            ModelPackage, "SELECT * FROM model_packages ORDER BY group_name, version DESC"
        )

    def set_model_package_status(
        self, group_name: str, version: int, status: str, *, reason: str | None = None
    ) -> None:
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE model_packages SET status=?, status_reason=?"
                " WHERE group_name=? AND version=?",
                (status, reason, group_name, version),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"model package {group_name}/{version} does not exist")
            kind = {"Approved": "approved", "Rejected": "rejected"}.get(status, "status_changed")
            add_event(db, kind, f"{group_name}/{version}", {"status": status, "reason": reason})

    def record_explanation(
        self, group_name: str, model_sha256: str, training_job: str | None, *, uri: str, sha256: str
    ) -> int:
        """The sha256 of the explanation report just stored at ``uri``, kept in the record of
        every package of that model as ``lineage["explanation"]`` (they share the report: its
        key follows from the group, the training job and the model's digest), so a reader can
        tell the report mlcicd wrote from one put there since (docs/explain.md). The packages
        updated are counted."""
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE model_packages SET lineage=json_set(lineage, '$.explanation', json(?))"
                " WHERE group_name=? AND model_sha256=? AND training_job IS ?",
                (
                    json.dumps({"uri": uri, "sha256": sha256}),
                    group_name,
                    model_sha256,
                    training_job,
                ),
            )
            count: int = cur.rowcount
        return count

    def record_staging(
        self,
        group_name: str,
        version: int,
        results: dict[str, Any],
        *,
        failure: str | None = None,
    ) -> None:
        """What the staging stage found of a model (its endpoint tests, its load figures),
        kept in its record as ``lineage["staging"]``; with ``failure``, the package becomes
        Rejected with that reason, in the same transaction, so the registry never says a
        model that failed staging is Approved."""
        subject = f"{group_name}/{version}"
        with self.db.tx() as db:
            cur = db.execute(
                "UPDATE model_packages SET lineage=json_set(lineage, '$.staging', json(?))"
                " WHERE group_name=? AND version=?",
                (json.dumps(results, default=str), group_name, version),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"model package {subject} does not exist")
            if failure is not None:
                db.execute(
                    "UPDATE model_packages SET status='Rejected', status_reason=?"
                    " WHERE group_name=? AND version=?",
                    (failure, group_name, version),
                )
            add_event(
                db,
                "staging_failed" if failure else "staging_passed",
                subject,
                {"reason": failure, "run_id": results.get("run_id")},
            )
