"""The state of model monitoring: each model version's data-quality baseline.

A baseline is SageMaker Model Monitor's pair of files, ``statistics.json`` and
``constraints.json``, computed from the model's training channel and kept in the artifact
store beside the model; this table records where they are, their sha256 and what they were
computed from (``dataset``: channel, files, label, rows). One baseline per model version:
recomputing it (``mlcicd monitor baseline``) replaces the record in one transaction.

These are methods of :class:`mlcicd.state.State` (mixed in); only state.py opens the
database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

MONITOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_baselines (
    group_name          TEXT NOT NULL,
    version             INTEGER NOT NULL,
    statistics_uri      TEXT NOT NULL,
    statistics_sha256   TEXT NOT NULL,
    constraints_uri     TEXT NOT NULL,
    constraints_sha256  TEXT NOT NULL,
    dataset             TEXT NOT NULL DEFAULT '{}',  -- {"channel", "files", "label", "item_count", …}
    created_at          REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
"""


@dataclass
class ModelBaseline:
    group_name: str
    version: int
    statistics_uri: str
    statistics_sha256: str
    constraints_uri: str
    constraints_sha256: str
    dataset: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def arn(self) -> str:
        """The model package it belongs to: group/version."""
        return f"{self.group_name}/{self.version}"


class MonitorState:
    """Mixed into ``State``: data-quality baselines of model versions."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _one(self, cls: type[Any], sql: str, *args: Any) -> Any: ...

    def record_baseline(self, baseline: ModelBaseline) -> ModelBaseline:
        """Record (or replace) the baseline of ``group/version``."""
        baseline.created_at = baseline.created_at or time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO model_baselines VALUES (:group_name, :version, :statistics_uri,"
                " :statistics_sha256, :constraints_uri, :constraints_sha256, :dataset, :created_at)",
                {**baseline.__dict__, "dataset": json.dumps(baseline.dataset, default=str)},
            )
        return baseline

    def get_baseline(self, group_name: str, version: int) -> ModelBaseline | None:
        baseline: ModelBaseline | None = self._one(
            ModelBaseline, "SELECT * FROM model_baselines WHERE group_name=? AND version=?", group_name, version
        )
        return baseline


__all__ = ["MONITOR_SCHEMA", "ModelBaseline", "MonitorState"]
