"""The SHAP explainer chosen from what a model is: one piece of code for the register-time
report (:mod:`mlcicd.explain.shapley`) and the endpoint's online explanations
(:mod:`mlcicd.serving.explanations`), so both explain a model the same way.

Imports only numpy (and ``shap`` when an explainer is built): it runs in the model's build
environment, where the workers run and the model's classes unpickle. scikit-learn's
estimators are recognised by their fitted attributes, never by importing scikit-learn.

Three explainers, chosen in this order:

- ``tree``: shap's exact TreeExplainer, for the tree ensembles its C++ code reads;
- ``linear``: shap's exact LinearExplainer on the coefficients — a scaler before the linear
  model (a ``Pipeline`` of ``StandardScaler`` and ``LogisticRegression``) is folded into them,
  so the attributions are in the raw features the request carries;
- ``kernel``: KernelExplainer over the model's own ``predict_fn`` answer (its probabilities,
  else its numeric predictions), for anything else.

The attributions plus the expected value equal the model's output (in the chosen ``output``
space: ``probability``, ``margin`` or ``value``) within :data:`EXACT_TOLERANCE` for the exact
explainers and :data:`KERNEL_TOLERANCE` for the kernel one.
"""

from __future__ import annotations

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

    @property
    def tolerance(self) -> float:
        """How closely the attributions plus the expected value equal the output."""
        return KERNEL_TOLERANCE if self.explainer == "kernel" else EXACT_TOLERANCE


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


def numeric_predict(predict: Any, probe: np.ndarray, key: str) -> tuple[Predict | None, str]:
    """``predict_fn``'s answer as numbers: its ``probabilities``, else its predictions when
    they are numbers; None when it gives labels only (the caller says what is missing)."""

    def probabilities(rows: np.ndarray) -> np.ndarray:
        return np.asarray(predict(rows)["probabilities"], dtype=float)

    def values(rows: np.ndarray) -> np.ndarray:
        answer = predict(rows)
        return np.asarray(answer[key] if isinstance(answer, dict) else answer, dtype=float)

    answer = predict(probe)
    if isinstance(answer, dict) and "probabilities" in answer:
        return probabilities, "probability"
    try:
        values(probe)
    except (TypeError, ValueError, KeyError):
        return None, "value"
    return values, "value"


def check_numeric(data: np.ndarray, what: str) -> None:
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise ExplainError(
            f"{what} are not a table of numbers (dtype {data.dtype}, shape {data.shape})",
            hint="SHAP explains numeric features; encode text columns before training",
        )


def summary(background: np.ndarray) -> np.ndarray:
    """At most BASELINE_CLUSTERS rows standing for the background: k-means centres (as shap's
    ``kmeans``, with 3 initialisations instead of its 10: a fifth of the time, and the same
    centres on data with clusters), or the rows themselves when there are few."""
    if len(background) <= BASELINE_CLUSTERS:
        return background
    from sklearn.cluster import KMeans  # shap's own dependency: there wherever shap is

    fitted = KMeans(n_clusters=BASELINE_CLUSTERS, random_state=0, n_init=3).fit(background)
    centres: np.ndarray = fitted.cluster_centers_
    return centres


def build(choice: Choice, model: Any, baseline: np.ndarray) -> Any:
    """The shap explainer for ``choice``; ``baseline`` is at most a few rows (see
    :func:`summary`). Built once: for a worker, at load, never per request."""
    import shap

    if choice.explainer == "tree":
        return shap.TreeExplainer(model)  # path-dependent: exact, no background needed
    if choice.explainer == "linear":
        assert choice.coefficients is not None
        coef, intercept = choice.coefficients
        return shap.LinearExplainer(
            (coef if len(coef) > 1 else coef[0], intercept if len(coef) > 1 else intercept[0]),
            baseline,
        )
    return shap.KernelExplainer(choice.predict, baseline)


def shap_values(
    choice: Choice, explainer: Any, rows: np.ndarray, **kernel: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Attributions as (rows, features, outputs) and the expected value per output;
    ``kernel``: KernelExplainer's options (``nsamples``, ``l1_reg``)."""
    if choice.explainer == "tree":
        values = explainer.shap_values(rows, check_additivity=False)
    elif choice.explainer == "linear":
        values = explainer.shap_values(rows)
    else:
        values = explainer.shap_values(rows, silent=True, **kernel)
    values = np.asarray(values, dtype=float)
    if values.ndim == 3 and values.shape[0] != len(rows):  # a list per output, older shap
        values = np.moveaxis(values, 0, 2)
    if values.ndim == 2:
        values = values[:, :, None]
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float)).reshape(-1)
    return values, expected


def accuracy_error(
    choice: Choice, rows: np.ndarray, values: np.ndarray, expected: np.ndarray
) -> float:
    """The largest gap between attributions plus expected value and the model's output."""
    output = np.asarray(choice.predict(rows), dtype=float).reshape(len(rows), -1)
    return float(np.max(np.abs(values.sum(axis=1) + expected - output)))


def output_names(choice: Choice, count: int) -> list[str]:
    if choice.classes is not None and len(choice.classes) == count:
        return choice.classes
    if count == 1:
        return [choice.output]
    return [f"output_{i}" for i in range(count)]
