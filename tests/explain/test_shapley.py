"""The explainer chosen from the model, and local accuracy checked on real scikit-learn models:
attributions plus the expected value equal the model's output, row by row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlcicd.errors import ExplainError
from mlcicd.explain.shapley import EXACT_TOLERANCE, KERNEL_TOLERANCE, explain

X, Y = load_iris(return_X_y=True)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def attributions_add_up(report: dict[str, Any], tolerance: float) -> None:
    assert report["local_accuracy"]["tolerance"] == tolerance
    assert report["local_accuracy"]["max_error"] <= tolerance


@pytest.mark.parametrize(
    ("model", "explainer", "output"),
    [
        (LogisticRegression(max_iter=500), "linear", "margin"),
        (make_pipeline(StandardScaler(), LogisticRegression()), "linear", "margin"),
        (RandomForestClassifier(n_estimators=100, random_state=0), "tree", "probability"),
    ],
)
def test_exact_explainers_add_up_to_the_model_output(
    model: Any, explainer: str, output: str
) -> None:
    model.fit(X, Y)
    report = explain(model, X[::3], X, FEATURES)
    assert (report["explainer"], report["output"]) == (explainer, output)
    attributions_add_up(report, EXACT_TOLERANCE)
    # per class for a classifier, and the petals drive iris
    assert set(report["importance_by_output"]) == {"0", "1", "2"}
    top = max(report["importance"], key=report["importance"].get)
    assert top in ("petal_length", "petal_width")


def test_a_scaled_pipeline_is_explained_in_raw_features_as_its_unscaled_twin() -> None:
    """Folding the scaler into the coefficients: the same attributions as a plain model
    whose coefficients are the folded ones."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    report = explain(pipeline, X[:20], X, FEATURES)
    scaler, linear = pipeline[0], pipeline[-1]
    twin = LogisticRegression(max_iter=1000).fit(X, Y)
    twin.coef_ = linear.coef_ / scaler.scale_
    twin.intercept_ = linear.intercept_ - twin.coef_ @ scaler.mean_
    assert explain(twin, X[:20], X, FEATURES)["importance"] == pytest.approx(report["importance"])


def test_binary_boosting_is_explained_on_its_margin_and_regression_on_its_value() -> None:
    boosted = GradientBoostingClassifier(random_state=0).fit(X, Y == 1)
    report = explain(boosted, X[:30], X, FEATURES)
    assert (report["explainer"], report["output"]) == ("tree", "margin")
    attributions_add_up(report, EXACT_TOLERANCE)
    data, target = make_regression(n_samples=200, n_features=5, random_state=0)
    names = [f"x{i}" for i in range(5)]
    for model in (RandomForestRegressor(n_estimators=20, random_state=0), LinearRegression()):
        report = explain(model.fit(data, target), data[:40], data, names)
        assert report["output"] == "value"
        assert report["importance_by_output"] == {}
        attributions_add_up(report, EXACT_TOLERANCE)


class Custom:
    """A model shap cannot read: explained through its predict_fn's numbers."""

    def answer(self, rows: np.ndarray) -> np.ndarray:
        return np.c_[rows[:, 0] * rows[:, 1], np.tanh(rows[:, 2] - rows[:, 3])]


def test_any_other_model_goes_through_kernel_shap_within_its_stated_tolerance() -> None:
    model = Custom()
    report = explain(model, X[:15], X, FEATURES, fallback=model.answer, fallback_output="value")
    assert report["explainer"] == "kernel"
    attributions_add_up(report, KERNEL_TOLERANCE)
    # output_0 depends on the sepals only, output_1 on the petals only
    first, second = report["importance_by_output"].values()
    assert first["petal_length"] < 1e-9 < first["sepal_length"]
    assert second["sepal_width"] < 1e-9 < second["petal_width"]


def test_a_model_with_labels_only_is_an_error_saying_what_is_missing() -> None:
    with pytest.raises(ExplainError, match="returns labels only") as caught:
        explain(Custom(), X[:5], X, FEATURES, fallback=None)
    assert "probabilities" in caught.value.headline
    # a multiclass boosted model shap cannot read exactly, and labels only: the same
    boosted = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, Y)
    with pytest.raises(ExplainError, match="GradientBoostingClassifier"):
        explain(boosted, X[:5], X, FEATURES)


def test_a_scaler_that_does_not_fold_falls_back_to_the_predict_fn() -> None:
    pipeline = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=1000)).fit(X, Y)
    report = explain(
        pipeline, X[:5], X, FEATURES, fallback=pipeline.predict_proba, fallback_output="probability"
    )
    assert (report["explainer"], report["output"]) == ("kernel", "probability")
    attributions_add_up(report, KERNEL_TOLERANCE)


def test_text_features_and_mismatched_columns_are_errors() -> None:
    text = np.array([["a", "b", "c", "d"]])
    model = LogisticRegression(max_iter=500).fit(X, Y)
    with pytest.raises(ExplainError, match="not a table of numbers"):
        explain(model, text, X, FEATURES)
    with pytest.raises(ExplainError, match="4 features named, but the rows have 3 columns"):
        explain(model, X[:5, :3], X, FEATURES)
