"""The endpoint config's explainer: SageMaker's ``ClarifyExplainerConfig`` built from the
model's register-time report (docs/explain.md, "Online").

The report's baseline (the k-means summary it explained against, at most 10 rows) becomes
``ShapConfig.ShapBaselineConfig.ShapBaseline``, its features ``InferenceConfig.FeatureHeaders``
and its outputs (the classes, for a classifier) ``LabelHeaders``: an endpoint explains a
request against the same baseline the version's importance was computed on.
``EnableExplanations`` is ``false``: a record is explained when its request asks
(``X-Amzn-SageMaker-Enable-Explanations``), never by default.
"""

from __future__ import annotations

from typing import Any

from mlcicd.errors import ExplainError
from mlcicd.serving.explanations import DEFAULT_MAX_RECORDS, baseline_csv

ENABLE_BY_DEFAULT = "`false`"


def clarify_explainer_config(report: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """``ClarifyExplainerConfig`` for the model whose report is ``report`` (``model``: its
    ARN, for the errors); ``ExplainError`` when the report cannot give one."""
    if report is None:
        raise ExplainError(
            f"explain.online: model {model} was not explained at register, so its endpoint "
            "has no baseline to explain against",
            hint="run the pipeline with explain: set (the register stage explains the model)",
        )
    if "error" in report:
        raise ExplainError(
            f"explain.online: model {model} could not be explained at register: {report['error']}",
            hint="fix the cause (`mlcicd explain` says it), or set explain.online: false",
        )
    baseline = report.get("baseline")
    if not baseline:
        raise ExplainError(
            f"explain.online: the report of model {model} predates online explanations "
            "(it keeps no baseline)",
            hint="run the pipeline again: the register stage explains the model anew",
        )
    return {
        "EnableExplanations": ENABLE_BY_DEFAULT,
        "ShapConfig": {
            "ShapBaselineConfig": {"MimeType": "text/csv", "ShapBaseline": baseline_csv(baseline)},
        },
        "InferenceConfig": {
            "FeatureHeaders": list(report["features"]),
            "LabelHeaders": list(report["expected_value"]),
            "MaxRecordCount": DEFAULT_MAX_RECORDS,
        },
    }
