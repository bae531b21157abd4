"""The quality gate's rule: a model's metrics against the thresholds of mlcicd.yaml.

The local gate stage (:mod:`mlcicd.stages.gate`) and the training Lambda (on SageMaker's
FinalMetricDataList) both decide through :func:`evaluate_thresholds`. It lives apart from
the stage so that the Lambda package imports the rule alone, not the pipeline, the state
database and the endpoints the stage needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlcicd.config import Threshold


def evaluate_thresholds(thresholds: Iterable[Threshold], metrics: Mapping[str, float]) -> list[str]:
    """The failed checks, each as one sentence; empty when the model passes."""
    failures = []
    for threshold in thresholds:
        value = metrics.get(threshold.metric)
        if value is None:
            failures.append(
                f"{threshold.metric} was not reported by the training job "
                f"(needed {threshold}; check train.metric_definitions)"
            )
        elif not threshold.passes(value):
            failures.append(f"{threshold.metric} = {value:g} does not meet {threshold}")
    return failures


__all__ = ["evaluate_thresholds"]
