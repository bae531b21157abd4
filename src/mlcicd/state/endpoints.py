"""Endpoints, the configs they were deployed with, and each endpoint's history.

When an endpoint starts serving another config, :func:`note_endpoint_change` writes a
history row and a ``deployed`` or ``rolled_back`` event in the same transaction as the
endpoint's record; a change that is not a new config (a restart after a crash, an alarm) is
recorded by :meth:`Endpoints.record_endpoint_change`.
"""

from __future__ import annotations

import json
import sqlite3
import time

from mlcicd.state.db import Tables
from mlcicd.state.events import add_event
from mlcicd.state.records import EndpointChange, EndpointConfigRecord, EndpointRecord
from mlcicd.state.runs import ROLLBACK


def note_endpoint_change(
    db: sqlite3.Connection, previous_config: str | None, record: EndpointRecord
) -> None:
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
        "INSERT INTO endpoint_history (endpoint_name, config_name, model_group, model_version,"
        " model_sha256, reason, detail, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


class Endpoints(Tables):
    """Endpoints, endpoint configs, endpoint history."""

    def record_endpoint_config(self, config: EndpointConfigRecord) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoint_configs VALUES"
                " (:name, :endpoint_name, :model_group, :model_version, :model_sha256, :run_id,"
                " :reason, :spec, :created_at)",
                {**config.__dict__, "spec": json.dumps(config.spec, default=str)},
            )

    def endpoint_configs(self, endpoint_name: str) -> list[EndpointConfigRecord]:
        return self.db.all(
            EndpointConfigRecord,
            "SELECT * FROM endpoint_configs WHERE endpoint_name=? ORDER BY created_at DESC",
            endpoint_name,
        )

    def upsert_endpoint(self, endpoint: EndpointRecord) -> None:
        with self.db.tx() as db:
            previous = db.execute(
                "SELECT config_name FROM endpoints WHERE name=?", (endpoint.name,)
            ).fetchone()
            note_endpoint_change(db, previous["config_name"] if previous else None, endpoint)
            db.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (:name, :backend, :status, :url, :port,"
                " :pid, :config_name, :model_group, :model_version, :model_sha256,"
                " :failure_reason, :created_at, :updated_at)",
                endpoint.__dict__,
            )

    def get_endpoint(self, name: str) -> EndpointRecord | None:
        endpoint: EndpointRecord | None = self.db.one(
            EndpointRecord, "SELECT * FROM endpoints WHERE name=?", name
        )
        return endpoint

    def list_endpoints(self) -> list[EndpointRecord]:
        return self.db.all(EndpointRecord, "SELECT * FROM endpoints ORDER BY name")

    def delete_endpoint(self, name: str) -> None:
        with self.db.tx() as db:
            db.execute("DELETE FROM endpoints WHERE name=?", (name,))

    # --- history ------------------------------------------------------------------------

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
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO endpoint_history (endpoint_name, config_name, model_group,"
                " model_version, model_sha256, reason, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        return self.db.all(
            EndpointChange,
            "SELECT * FROM endpoint_history WHERE endpoint_name=? ORDER BY id",
            endpoint,
        )
