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

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.config import Config, MonitorConfig
from mlcicd.errors import MonitorError
from mlcicd.monitor.baseline import (
    CONSTRAINTS,
    STATISTICS,
    VIOLATIONS,
    baseline_of,
    encode_document,
    label_column,
    load_baseline,
    parse_baseline_document,
    store_check,
)
from mlcicd.monitor.constraints import check, violations_document
from mlcicd.monitor.dataset import Table, read_channel
from mlcicd.monitor.statistics import dataset_statistics
from mlcicd.processing.base import (
    DATA_CHECK_BASELINE_INPUT,
    DATA_CHECK_INPUT,
    DATA_CHECK_OUTPUT,
    DATA_CHECK_REPORT,
    ProcessingPaths,
)
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
    violations = check_table(table, statistics, constraints, config.monitor)
    statistics_uri, violations_uri = store_check(
        project.store,
        config.store.artifacts_bucket,
        f"{config.pipeline}/data-check/run-{run_id}",
        dataset_statistics(table.names, table.columns, table.rows),
        violations,
    )
    return DataCheckReport(
        WITH_VIOLATIONS if violations else PASSED,
        channel,
        model=model.arn,
        rows=table.rows,
        violations=violations,
        statistics_uri=statistics_uri,
        violations_uri=violations_uri,
    )


def check_table(
    table: Table, statistics: dict[str, Any], constraints: dict[str, Any], monitor: MonitorConfig
) -> list[dict[str, str]]:
    """The violations of ``table`` (a channel, read by ``read_channel``) against a baseline's
    statistics and constraints: the monitoring schedule's checks, with ``monitor``'s threshold
    and method."""
    known = {f["name"] for f in constraints["features"]}
    columns = dict(zip(table.names, table.columns, strict=True))
    _, violations = check(
        statistics,
        constraints,
        {n: c for n, c in columns.items() if n in known},
        table.rows,
        extra=[n for n in table.names if n not in known],
        drift_threshold=monitor.drift_threshold,
        method=monitor.comparison_method,
    )
    return violations


def processing_job(argv: Sequence[str] | None = None) -> int:
    """The data check as a SageMaker ProcessingJob: what the stack's training Lambda runs in the
    project's image (``python3 /opt/ml/processing/input/code/datacheck.py --channel NAME
    [--label COLUMN] --drift-threshold X --method Robust``).

    Reads the channel from ``input/data/`` and, when given, production's baseline
    (statistics.json and constraints.json) from ``input/baseline/``; writes to
    ``output/datacheck/`` the channel's own baseline (the new model's, registered with it),
    its violations and ``report.json`` (``status``: Passed, CompletedWithViolations, Skipped or
    Unreadable). The Lambda decides what a violation means (``data_check: warn|fail``): the
    job exits 0 whenever it could look. Memory and time are bounded as a baseline's are: the
    channel is streamed once and sampled to ``MAX_ROWS`` rows."""
    parser = argparse.ArgumentParser(prog="datacheck.py")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--label")
    parser.add_argument("--drift-threshold", type=float, default=MonitorConfig.drift_threshold)
    parser.add_argument("--method", choices=("Robust", "Simple"), default="Robust")
    args = parser.parse_args(argv)
    monitor = MonitorConfig(
        channel=args.channel,
        label=args.label,
        drift_threshold=args.drift_threshold,
        comparison_method=args.method,
    )
    paths = ProcessingPaths(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")))
    out = paths.output(DATA_CHECK_OUTPUT)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"channel": args.channel, "violations": []}
    try:
        table = read_channel(paths.input(DATA_CHECK_INPUT), channel=args.channel, label=args.label)
        documents = baseline_of(table, args.channel, monitor)
    except MonitorError as exc:  # no CSV, no rows, the label gone: the Lambda says what it means
        report.update(status="Unreadable", reason=exc.message)
        (out / DATA_CHECK_REPORT).write_bytes(encode_document(report))
        return 0
    (out / STATISTICS).write_bytes(encode_document(documents.statistics))
    (out / CONSTRAINTS).write_bytes(encode_document(documents.constraints))
    report["rows"] = table.rows
    baseline = paths.input(DATA_CHECK_BASELINE_INPUT)
    if not (baseline / STATISTICS).is_file() or not (baseline / CONSTRAINTS).is_file():
        report.update(status=SKIPPED, reason="no approved model has a baseline")
    else:
        try:
            statistics = parse_baseline_document(baseline / STATISTICS, f"baseline {STATISTICS}")
            constraints = parse_baseline_document(baseline / CONSTRAINTS, f"baseline {CONSTRAINTS}")
        except MonitorError as exc:  # production's baseline, from the models bucket
            report.update(status="Unreadable", reason=exc.message)
            (out / DATA_CHECK_REPORT).write_bytes(encode_document(report))
            return 0
        violations = check_table(table, statistics, constraints, monitor)
        report.update(status=WITH_VIOLATIONS if violations else PASSED, violations=violations)
        (out / VIOLATIONS).write_bytes(encode_document(violations_document(violations)))
    (out / DATA_CHECK_REPORT).write_bytes(encode_document(report))
    return 0


__all__ = [
    "DataCheckReport",
    "check_table",
    "check_training_data",
    "processing_job",
    "production_model",
]
