"""SHAP values for one model: the explainer chosen from what the model is, and a report.

Runs in the model's build environment (:mod:`mlcicd.explain.compute`), where its classes
unpickle. The explainer (tree, linear or kernel) is chosen and built by
:mod:`mlcicd.serving.explainers`, the code the endpoint's online explanations use too, and
recorded with the report.

Every report is checked for local accuracy before it is kept: for each explained row the
attributions plus the expected value equal the model's output (in the recorded ``output``
space: ``probability``, ``margin`` or ``value``) within :data:`EXACT_TOLERANCE` for the exact
explainers and :data:`KERNEL_TOLERANCE` for the kernel one — a report that fails it is an
error, never a plausible-looking table.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlcicd.errors import ExplainError
from mlcicd.serving.explainers import (
    EXACT_TOLERANCE,
    KERNEL_TOLERANCE,
    Predict,
    accuracy_error,
    build,
    check_numeric,
    choose,
    output_names,
    shap_values,
    summary,
)

__all__ = ["EXACT_TOLERANCE", "KERNEL_TOLERANCE", "Predict", "explain"]


def explain(
    model: Any,
    rows: np.ndarray,
    background: np.ndarray,
    features: list[str],
    *,
    fallback: Predict | None = None,
    fallback_output: str = "value",
) -> dict[str, Any]:
    """The report: mean |SHAP| per feature (per output for several), checked for local
    accuracy on every row of ``rows``. ``background`` is the baseline (rows, or a summary);
    the summary used (at most 10 rows) is kept as the report's ``baseline``, which an endpoint
    serving online explanations uses as its ``ShapBaseline``."""
    check_numeric(rows, "the explained rows")
    check_numeric(background, "the baseline")
    if rows.shape[1] != len(features) or background.shape[1] != len(features):
        raise ExplainError(
            f"{len(features)} features named, but the rows have {rows.shape[1]} columns and "
            f"the baseline {background.shape[1]}",
            hint="the baseline file must have the training channel's feature columns",
        )
    started = time.perf_counter()
    choice = choose(model, fallback, fallback_output)
    baseline = summary(background)
    values, expected = shap_values(choice, build(choice, model, baseline), rows)
    seconds = time.perf_counter() - started
    tolerance = choice.tolerance
    error = accuracy_error(choice, rows, values, expected)
    if not error <= tolerance:
        raise ExplainError(
            f"the {choice.explainer} explainer's attributions do not add up to the model's "
            f"{choice.output}: off by {error:.3g} (tolerance {tolerance:g})",
            hint="report this model's type; set explain.required: false to register it "
            "without an explanation",
        )
    outputs = output_names(choice, values.shape[2])
    importance = np.abs(values).mean(axis=0)  # (features, outputs)
    per_output = {
        name: dict(zip(features, map(float, importance[:, i]), strict=True))
        for i, name in enumerate(outputs)
    }
    overall = importance.mean(axis=1)
    return {
        "explainer": choice.explainer,
        "model_type": type(model).__name__,
        "output": choice.output,
        "features": features,
        "importance": dict(zip(features, map(float, overall), strict=True)),
        "importance_by_output": per_output if len(outputs) > 1 else {},
        "expected_value": dict(zip(outputs, map(float, expected), strict=True)),
        "rows": len(rows),
        "local_accuracy": {"max_error": error, "tolerance": tolerance},
        "baseline": np.asarray(baseline, dtype=float).tolist(),
        "seconds": {"explain": seconds},
    }
