"""The quality gate's rule: a model's metrics against the thresholds of mlcicd.yaml.

The local gate stage (:mod:`mlcicd.stages.gate`) and the training Lambda (on SageMaker's
FinalMetricDataList) both decide through :func:`evaluate_thresholds`. A threshold whose
metric is ``<report>.<json path>`` reads a processing step's report instead (SageMaker
Pipelines' PropertyFile and JsonGet): ``evaluation.metrics.accuracy`` is
``report["metrics"]["accuracy"]``, a number, or an object whose ``value`` is one (the
SageMaker examples' ``{"accuracy": {"value": 0.9}}``). It lives apart from
the stage so that the Lambda package imports the rule alone, not the pipeline, the state
database and the endpoints the stage needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mlcicd.config import Threshold


def report_value(report: Any, path: str) -> float:
    """The number at ``path`` (dot-separated keys; a whole number indexes a list) in ``report``;
    ValueError says where the path stops, or what it found instead of a number."""
    value: Any = report
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(walked) or "the top level"
            keys = ", ".join(map(str, value)) if isinstance(value, Mapping) else ""
            raise ValueError(
                f"the report has no {part!r} at {where}" + (f" (has {keys})" if keys else "")
            )
        walked.append(part)
    if isinstance(value, Mapping) and "value" in value:
        value = value["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"the report holds {value!r} at {path}, not a number")
    return float(value)


def shown_value(metric: str, metrics: Mapping[str, float], reports: Mapping[str, Any]) -> object:
    """What a gate's log line shows for ``metric``: the number it reads, or why it has none."""
    first, dot, path = metric.partition(".")
    if dot and first in reports:
        try:
            return report_value(reports[first], path)
        except ValueError as exc:
            return str(exc)
    return metrics.get(metric, "not reported")


def evaluate_thresholds(
    thresholds: Iterable[Threshold],
    metrics: Mapping[str, float],
    reports: Mapping[str, Any] | None = None,
) -> list[str]:
    """The failed checks, each as one sentence; empty when the model passes. ``reports`` are
    the processing steps' reports by the names a gate key may start with."""
    failures = []
    for threshold in thresholds:
        first, dot, path = threshold.metric.partition(".")
        if reports and dot and first in reports:
            try:
                number = report_value(reports[first], path)
            except ValueError as exc:
                failures.append(f"{threshold.metric}: {exc} (needed {threshold})")
                continue
            if not threshold.passes(number):
                failures.append(f"{threshold.metric} = {number:g} does not meet {threshold}")
            continue
        value = metrics.get(threshold.metric)
        if value is None:
            failures.append(
                f"{threshold.metric} was not reported by the training job "
                f"(needed {threshold}; check train.metric_definitions)"
            )
        elif not threshold.passes(value):
            failures.append(f"{threshold.metric} = {value:g} does not meet {threshold}")
    return failures


__all__ = ["evaluate_thresholds", "report_value", "shown_value"]
