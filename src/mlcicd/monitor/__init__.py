"""Model monitoring in SageMaker Model Monitor's terms (data quality), on this machine.

    statistics.py   statistics.json: per-feature statistics, KLL sketches, drift distances
    constraints.py  constraints.json suggested from a baseline; constraint_violations.json
    dataset.py      rows from a training channel's CSV files and from captured request bodies
    capture.py      captured records, from a directory or S3, within a time window
    baseline.py     a model version's baseline: computed, stored beside the model, recorded
    check.py        an endpoint's captured requests against its models' baselines
    schedule.py     the checks `mlcicd up` runs every ``monitor.schedule``: windows, executions

A model gets its baseline when it is registered; ``mlcicd monitor check ENDPOINT`` compares
what the endpoint captured with it, and `mlcicd up` does so on a schedule (docs/monitor.md).
"""

from __future__ import annotations

from mlcicd.monitor.baseline import compute_baseline, ensure_baseline, load_baseline, rebaseline
from mlcicd.monitor.check import (
    VIOLATIONS_EXIT_CODE,
    CheckReport,
    VariantCheck,
    check_endpoint,
    parse_since,
)

__all__ = [
    "VIOLATIONS_EXIT_CODE",
    "CheckReport",
    "VariantCheck",
    "check_endpoint",
    "compute_baseline",
    "ensure_baseline",
    "load_baseline",
    "parse_since",
    "rebaseline",
]
