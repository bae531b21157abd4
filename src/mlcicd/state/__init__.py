"""The state database of a state directory: runs, the queue, the registry, endpoints, events.

Every state change in mlcicd goes through this package; nothing else opens the database.
It is one SQLite file, and one module per group of tables, each a class over the one
connection (:class:`~mlcicd.state.db.Tables`):

* :mod:`~mlcicd.state.db` — opening, migrating, one write transaction, rows into records
* :mod:`~mlcicd.state.schema` — every table, and the version history of the schema
* :mod:`~mlcicd.state.records` — the records callers get (``Run``, ``ModelPackage``, …)
* :mod:`~mlcicd.state.runs` — runs and their stage executions
* :mod:`~mlcicd.state.queue` — the run queue, rollbacks in it, runs waiting for approval
* :mod:`~mlcicd.state.approvals` — approvals, and the rule for one whose deadline passed
* :mod:`~mlcicd.state.registry` — training jobs and model packages
* :mod:`~mlcicd.state.endpoints` — endpoints, their configs and their history
* :mod:`~mlcicd.state.events` — the event log, notifiers' cursors, webhook deliveries
* :mod:`~mlcicd.state.monitoring` — baselines and monitoring executions
* :mod:`~mlcicd.state.processing` — processing jobs, their outputs and reports
* :mod:`~mlcicd.state.transforms` — batch transform jobs
* :mod:`~mlcicd.state.metric_history` — endpoint metrics per minute, kept for a week

:class:`State` is the front callers hold: it opens the database and has every group's
methods. A new table goes into :mod:`~mlcicd.state.schema` (with a new
:data:`SCHEMA_VERSION` and a migration test) and its methods into the module of its group,
or a new module whose class :class:`State` then lists.
"""

from __future__ import annotations

from pathlib import Path

from mlcicd.state.approvals import Approvals
from mlcicd.state.db import Database
from mlcicd.state.endpoints import Endpoints
from mlcicd.state.events import Events
from mlcicd.state.metric_history import MetricHistory, MinuteMetrics
from mlcicd.state.monitoring import Monitoring
from mlcicd.state.processing import Processing
from mlcicd.state.queue import Queue
from mlcicd.state.records import (
    COMPLETED,
    FAILED,
    SKIPPED,
    WITH_VIOLATIONS,
    Approval,
    Delivery,
    EndpointChange,
    EndpointConfigRecord,
    EndpointRecord,
    Event,
    ModelBaseline,
    ModelPackage,
    MonitoringExecution,
    ProcessingJobRecord,
    Run,
    StageExecution,
    TrainingJobRecord,
    TransformJobRecord,
)
from mlcicd.state.registry import Registry
from mlcicd.state.schema import SCHEMA_VERSION
from mlcicd.state.transforms import Transforms


class State(
    Queue,
    Approvals,
    Registry,
    Endpoints,
    Events,
    Monitoring,
    Processing,
    Transforms,
    MetricHistory,
):
    """The state database of one state directory.

    Each base is one group of tables over the same :class:`~mlcicd.state.db.Database`
    (``self.db``), usable alone (``Registry(Database(path))``); none calls another's methods
    except :class:`~mlcicd.state.queue.Queue`, which is a :class:`~mlcicd.state.runs.Runs`
    with a queue. State is their union rather than a holder of them so that callers keep
    one flat ``state.get_run(...)``, ``state.upsert_endpoint(...)``.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(Database(path))
        self.path = path

    def close(self) -> None:
        self.db.close()


__all__ = [
    "COMPLETED",
    "FAILED",
    "SCHEMA_VERSION",
    "SKIPPED",
    "WITH_VIOLATIONS",
    "Approval",
    "Delivery",
    "EndpointChange",
    "EndpointConfigRecord",
    "EndpointRecord",
    "Event",
    "MinuteMetrics",
    "ModelBaseline",
    "ModelPackage",
    "MonitoringExecution",
    "ProcessingJobRecord",
    "Run",
    "StageExecution",
    "State",
    "TrainingJobRecord",
    "TransformJobRecord",
]
