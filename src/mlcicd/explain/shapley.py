"""SHAP values for one model: the explainer chosen from what the model is, and a report.

Runs in the model's build environment (:mod:`mlcicd.explain.compute`), where its classes
unpickle; it imports only numpy and ``shap``, and recognises scikit-learn's estimators by
their fitted attributes, never by importing scikit-learn.

Three explainers, chosen in this order and recorded with the report:

- ``tree``: shap's exact TreeExplainer, for the tree ensembles its C++ code reads;
- ``linear``: shap's exact LinearExplainer on the coefficients — a scaler before the linear
  model (a ``Pipeline`` of ``StandardScaler`` and ``LogisticRegression``) is folded into them,
  so the attributions are in the raw features the request carries;
- ``kernel``: KernelExplainer over the model's own ``predict_fn`` answer (its probabilities,
  else its numeric predictions), for anything else.

Every report is checked for local accuracy before it is kept: for each explained row the
attributions plus the expected value equal the model's output (in the recorded ``output``
space: ``probability``, ``margin`` or ``value``) within :data:`EXACT_TOLERANCE` for the exact
explainers and :data:`KERNEL_TOLERANCE` for the kernel one — a report that fails it is an
error, never a plausible-looking table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcicd.errors import ExplainError

EXACT_TOLERANCE = 1e-6
# KernelExplainer enforces the efficiency constraint in its regression, so the sum holds to
# the solver's precision even though the attributions themselves are estimates.
KERNEL_TOLERANCE = 1e-4
# The k-means summary of the training channel that stands for "feature absent".
BASELINE_CLUSTERS = 10

# Classifiers whose trees hold class probabilities (TreeExplainer explains predict_proba);
# the boosted ones hold margins (it explains decision_function).
PROBABILITY_TREES = {
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
}
MARGIN_TREES = {"GradientBoostingClassifier", "XGBClassifier", "LGBMClassifier"}
VALUE_TREES = {
    "DecisionTreeRegressor",
    "ExtraTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "XGBRegressor",
    "LGBMRegressor",
}

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Choice:
    """The explainer for a model, and the function whose output its attributions add up to."""

    explainer: str  # tree | linear | kernel
    output: str  # probability | margin | value
    predict: Predict  # rows -> (n,) or (n, outputs), in the ``output`` space
    classes: list[str] | None  # the outputs' names, for a classifier
    coefficients: tuple[np.ndarray, np.ndarray] | None = None  # linear: in raw features


def choose(model: Any, fallback: Predict | None, fallback_output: str) -> Choice:
    """The explainer for ``model``; ``fallback`` is the model's own predict_fn answer as
    numbers, used by the kernel explainer when the model is none shap reads exactly."""
    name = type(model).__name__
    classes = _classes(model)
    if name in PROBABILITY_TREES:
        return Choice("tree", "probability", model.predict_proba, classes)
    if name in MARGIN_TREES and len(classes or ()) <= 2:  # shap reads binary boosting only
        return Choice("tree", "margin", model.decision_function, classes)
    if name in VALUE_TREES:
        return Choice("tree", "value", model.predict, None)
    linear = _linear(model)
    if linear is not None:
        return linear
    if fallback is None:
        raise ExplainError(
            f"a {name} model has no numeric output to explain: its predict_fn returns labels only",
            hint="return class probabilities under a 'probabilities' key (or numbers under "
            "the prediction key) from predict_fn",
        )
    return Choice("kernel", fallback_output, fallback, None)


def _classes(model: Any) -> list[str] | None:
    classes = getattr(model, "classes_", None)
    return None if classes is None else [str(c) for c in classes]


def _linear(model: Any) -> Choice | None:
    """A linear model (alone, or last in a Pipeline after scalers) as raw-feature coefficients."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    coef, intercept = getattr(final, "coef_", None), getattr(final, "intercept_", None)
    if coef is None or intercept is None:
        return None
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=float))
    for _, step in (steps or [])[:-1]:
        if step in (None, "passthrough"):
            continue
        mean, scale = getattr(step, "mean_", None), getattr(step, "scale_", None)
        if scale is None or not hasattr(step, "with_mean"):  # only StandardScaler folds exactly
            return None
        mean = np.zeros(coef.shape[1]) if mean is None or not step.with_mean else mean
        scale = np.asarray(scale if step.with_std else np.ones(coef.shape[1]), dtype=float)
        # coef · (x - mean) / scale + b  ==  (coef / scale) · x + (b - coef · mean / scale)
        intercept = intercept - coef @ (np.asarray(mean, dtype=float) / scale)
        coef = coef / scale
    is_classifier = hasattr(final, "predict_proba") or hasattr(final, "classes_")
    if is_classifier:
        predict = model.decision_function
        output = "margin"
    else:
        predict, output = model.predict, "value"
    return Choice("linear", output, predict, _classes(final), (coef, intercept))


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
    accuracy on every row of ``rows``. ``background`` is the baseline (rows, or a summary)."""
    _check_numeric(rows, "the explained rows")
    _check_numeric(background, "the baseline")
    if rows.shape[1] != len(features) or background.shape[1] != len(features):
        raise ExplainError(
            f"{len(features)} features named, but the rows have {rows.shape[1]} columns and "
            f"the baseline {background.shape[1]}",
            hint="the baseline file must have the training channel's feature columns",
        )
    started = time.perf_counter()
    choice = choose(model, fallback, fallback_output)
    summary = _summary(background)
    values, expected = _shap_values(choice, model, rows, summary)
    seconds = time.perf_counter() - started
    output = np.asarray(choice.predict(rows), dtype=float)
    output = output.reshape(len(rows), -1)
    tolerance = KERNEL_TOLERANCE if choice.explainer == "kernel" else EXACT_TOLERANCE
    error = float(np.max(np.abs(values.sum(axis=1) + expected - output)))
    if not error <= tolerance:
        raise ExplainError(
            f"the {choice.explainer} explainer's attributions do not add up to the model's "
            f"{choice.output}: off by {error:.3g} (tolerance {tolerance:g})",
            hint="report this model's type; set explain.required: false to register it "
            "without an explanation",
        )
    outputs = _output_names(choice, values.shape[2])
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
        "seconds": {"explain": seconds},
    }


def _check_numeric(data: np.ndarray, what: str) -> None:
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise ExplainError(
            f"{what} are not a table of numbers (dtype {data.dtype}, shape {data.shape})",
            hint="SHAP explains numeric features; encode text columns before training",
        )


def _summary(background: np.ndarray) -> np.ndarray:
    """At most BASELINE_CLUSTERS rows standing for the background: k-means centres (shap's
    ``kmeans``), or the rows themselves when there are few."""
    if len(background) <= BASELINE_CLUSTERS:
        return background
    import shap

    summary: np.ndarray = shap.kmeans(background, BASELINE_CLUSTERS, round_values=False).data
    return summary


def _shap_values(
    choice: Choice, model: Any, rows: np.ndarray, summary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Attributions as (rows, features, outputs) and the expected value per output."""
    import shap

    if choice.explainer == "tree":
        explainer = shap.TreeExplainer(model)  # path-dependent: exact, no background needed
        values = explainer.shap_values(rows, check_additivity=False)
    elif choice.explainer == "linear":
        assert choice.coefficients is not None
        coef, intercept = choice.coefficients
        explainer = shap.LinearExplainer(
            (coef if len(coef) > 1 else coef[0], intercept if len(coef) > 1 else intercept[0]),
            summary,
        )
        values = explainer.shap_values(rows)
    else:
        explainer = shap.KernelExplainer(choice.predict, summary)
        values = explainer.shap_values(rows, silent=True)
    values = np.asarray(values, dtype=float)
    if values.ndim == 3 and values.shape[0] != len(rows):  # a list per output, older shap
        values = np.moveaxis(values, 0, 2)
    if values.ndim == 2:
        values = values[:, :, None]
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float)).reshape(-1)
    return values, expected


def _output_names(choice: Choice, count: int) -> list[str]:
    if choice.classes is not None and len(choice.classes) == count:
        return choice.classes
    if count == 1:
        return [choice.output]
    return [f"output_{i}" for i in range(count)]
