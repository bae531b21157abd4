"""The data check: new training data against the baseline of the model in production.

Before a run trains, its training channel is profiled as a baseline is (the same reading,
:func:`~mlcicd.monitor.dataset.read_channel`, and the same statistics) and checked with
the constraints of the model production serves — the endpoint's current model, else the
newest Approved one — by the same :func:`~mlcicd.monitor.constraints.check` a monitoring
schedule runs on captured requests: every column present, of its type, as complete, and
each feature's distribution within ``monitor.drift_threshold`` of the baseline's. A model
without a baseline (or no model yet) means there is nothing to check against: the check is
``Skipped``, never a failure.

The report (the channel's statistics.json and constraint_violations.json) goes to the
artifacts bucket under ``<pipeline>/data-check/run-<id>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.config import Config
from mlcicd.monitor.baseline import label_column, load_baseline
from mlcicd.monitor.constraints import check, violations_document
from mlcicd.monitor.dataset import read_channel
from mlcicd.monitor.statistics import dataset_statistics
from mlcicd.project import Project
from mlcicd.state import ModelPackage

PASSED, WITH_VIOLATIONS, SKIPPED = "Passed", "CompletedWithViolations", "Skipped"


@dataclass
class DataCheckReport:
    status: str  # Passed | CompletedWithViolations | Skipped
    channel: str
    model: str | None = None  # group/version whose baseline the data was checked against
    reason: str | None = None  # why it was skipped
    rows: int = 0
    violations: list[dict[str, str]] = field(default_factory=list)
    statistics_uri: str | None = None
    violations_uri: str | None = None

    def summary(self) -> str:
        """One line per violation, each naming its column."""
        return "; ".join(
            f"{v['feature_name']}: {v['constraint_check_type']} ({v['description']})"
            for v in self.violations
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def production_model(project: Project, config: Config) -> ModelPackage | None:
    """The model production serves (the endpoint's), else the newest Approved one."""
    state = project.state
    endpoint = state.get_endpoint(config.endpoint_name)
    if endpoint is not None and endpoint.model_group and endpoint.model_version is not None:
        return state.get_model_package(endpoint.model_group, endpoint.model_version)
    approved = [p for p in state.list_model_packages(config.pipeline) if p.status == "Approved"]
    return approved[0] if approved else None


def check_training_data(
    project: Project, config: Config, channel: str, path: Path, run_id: int
) -> DataCheckReport:
    """Check the channel ``channel`` at ``path`` against production's baseline."""
    model = production_model(project, config)
    if model is None:
        return DataCheckReport(SKIPPED, channel, reason="no model has been approved yet")
    baseline = project.state.get_baseline(model.group_name, model.version)
    if baseline is None:
        return DataCheckReport(
            SKIPPED, channel, model=model.arn, reason=f"model {model.arn} has no baseline"
        )
    statistics, constraints = load_baseline(project, baseline)
    table = read_channel(path, channel=channel, label=label_column(config))
    known = {f["name"] for f in constraints["features"]}
    columns = dict(zip(table.names, table.columns, strict=True))
    _, violations = check(
        statistics,
        constraints,
        {n: c for n, c in columns.items() if n in known},
        table.rows,
        extra=[n for n in table.names if n not in known],
        drift_threshold=config.monitor.drift_threshold,
        method=config.monitor.comparison_method,
    )
    folder = f"{config.pipeline}/data-check/run-{run_id}"
    store, bucket = project.store, config.store.artifacts_bucket
    current = dataset_statistics(table.names, table.columns, table.rows)
    return DataCheckReport(
        WITH_VIOLATIONS if violations else PASSED,
        channel,
        model=model.arn,
        rows=table.rows,
        violations=violations,
        statistics_uri=store.put_bytes(_encode(current), bucket, f"{folder}/statistics.json").uri,
        violations_uri=store.put_bytes(
            _encode(violations_document(violations)),
            bucket,
            f"{folder}/constraint_violations.json",
        ).uri,
    )


def _encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


__all__ = ["DataCheckReport", "check_training_data", "production_model"]
