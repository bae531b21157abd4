"""Lean predictors answer exactly as scikit-learn does: labels equal, probabilities within 1e-9."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

from mlcicd.serving import fastpath
from mlcicd.serving.fastpath import LeanPredictor, compile_model, probe_rows
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from tests.serving.helpers import NO_HANDLERS, IrisModel, write_code

X_IRIS, Y_IRIS = load_iris(return_X_y=True)

CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "logistic": lambda: LogisticRegression(max_iter=1000),
    "ridge_classifier": lambda: RidgeClassifier(),
    "sgd": lambda: SGDClassifier(random_state=0),
    "linear_svc": lambda: LinearSVC(),
    "perceptron": lambda: Perceptron(random_state=0),
    "tree": lambda: DecisionTreeClassifier(random_state=0),
    "extra_tree": lambda: ExtraTreeClassifier(random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=10, random_state=0),
    "scaled_logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "minmax_forest": lambda: make_pipeline(
        MinMaxScaler(clip=True), RandomForestClassifier(n_estimators=8, random_state=0)
    ),
    "two_scalers_tree": lambda: make_pipeline(
        StandardScaler(), MinMaxScaler(), DecisionTreeClassifier(max_depth=4, random_state=0)
    ),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "linear": lambda: LinearRegression(),
    "ridge": lambda: Ridge(),
    "lasso": lambda: Lasso(alpha=0.01),
    "elastic_net": lambda: ElasticNet(alpha=0.01),
    "tree_regressor": lambda: DecisionTreeRegressor(random_state=0),
    "forest_regressor": lambda: RandomForestRegressor(n_estimators=10, random_state=0),
    "extra_trees_regressor": lambda: ExtraTreesRegressor(n_estimators=10, random_state=0),
    "scaled_ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
}


def fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a few iterations: not the point
        return estimator.fit(X, y)


def assert_same(lean: LeanPredictor, model: Any, rows: np.ndarray) -> None:
    assert lean.covers(rows)
    ours, theirs = lean.predict(rows), model.predict(rows)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    if hasattr(model, "predict_proba") and lean._proba is not None:
        np.testing.assert_allclose(lean.predict_proba(rows), model.predict_proba(rows), atol=1e-9)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifiers_on_iris(name: str) -> None:
    model = fit(CLASSIFIERS[name](), X_IRIS, Y_IRIS)
    lean = compile_model(model)
    assert lean is not None, f"{name} is not compiled"
    assert_same(lean, model, X_IRIS)
    for i in range(0, len(X_IRIS), 7):  # single rows: the endpoint's usual request
        assert_same(lean, model, X_IRIS[i : i + 1])
    assert_same(lean, model, probe_rows(model, X_IRIS.shape[1]))
    assert_same(lean, model, np.rint(X_IRIS).astype(np.int64))  # integer JSON bodies


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressors(name: str) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    y = X @ rng.normal(size=5) + rng.normal(scale=0.1, size=200)
    model = fit(REGRESSORS[name](), X, y)
    lean = compile_model(model)
    assert lean is not None, f"{name} is not compiled"
    assert_same(lean, model, X)
    assert_same(lean, model, X[:1])
    assert_same(lean, model, probe_rows(model, 5))


def test_binary_and_string_labels() -> None:
    y = np.where(Y_IRIS == 0, "setosa", "other")
    for estimator in (
        LogisticRegression(max_iter=1000),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ):
        model = fit(estimator, X_IRIS, y)
        lean = compile_model(model)
        assert lean is not None
        assert_same(lean, model, X_IRIS)
        assert_same(lean, model, X_IRIS[50:51])


@st.composite
def problems(draw: st.DrawFn) -> tuple[Any, np.ndarray]:
    n_features = draw(st.integers(1, 6))
    n_classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["logistic", "sgd", "tree", "forest", "extra_trees", "regressor"]))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(n_classes * 3, 60))
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.1, 100, size=n_features)
    X = np.round(X, draw(st.integers(0, 3)))  # ties and repeated values, as real data has
    if kind == "regressor":
        y: np.ndarray = X @ rng.normal(size=n_features)
        model = fit(
            draw(st.sampled_from([LinearRegression(), RandomForestRegressor(n_estimators=7)])),
            X,
            y,
        )
    else:
        y = np.arange(n) % n_classes
        rng.shuffle(y)
        estimator = {
            "logistic": LogisticRegression(max_iter=300),
            "sgd": SGDClassifier(random_state=seed % 1000),
            "tree": DecisionTreeClassifier(max_depth=draw(st.none() | st.integers(1, 6))),
            "forest": RandomForestClassifier(n_estimators=draw(st.integers(1, 12))),
            "extra_trees": ExtraTreesClassifier(n_estimators=draw(st.integers(1, 12))),
        }[kind]
        if draw(st.booleans()):
            estimator = make_pipeline(StandardScaler(), estimator)
        model = fit(estimator, X, y)
    rows = np.vstack(
        [
            rng.normal(size=(draw(st.integers(1, 30)), n_features)) * X.std(axis=0) * 2,
            X[: draw(st.integers(1, n))],
            probe_rows(model, n_features, n=8),
        ]
    )
    return model, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_random_models_agree_with_scikit_learn(problem: tuple[Any, np.ndarray]) -> None:
    model, rows = problem
    lean = compile_model(model)
    assert lean is not None
    assert_same(lean, model, rows)
    for i in range(min(len(rows), 5)):
        assert_same(lean, model, rows[i : i + 1])


def test_inputs_it_does_not_cover_go_to_predict() -> None:
    model = fit(RandomForestClassifier(n_estimators=5, random_state=0), X_IRIS, Y_IRIS)
    lean = compile_model(model)
    assert lean is not None
    single = X_IRIS[:3].astype(np.float32)
    assert not lean.covers(single)  # float32: scikit-learn keeps it, so we do not guess
    np.testing.assert_array_equal(lean.predict(single), model.predict(single))
    assert not lean.covers(X_IRIS[:, :3])
    with pytest.raises(ValueError, match="features"):
        lean.predict(X_IRIS[:, :3])  # scikit-learn's own error
    nan = X_IRIS[:2].copy()
    nan[0, 0] = np.nan
    assert not lean.covers(nan)
    np.testing.assert_array_equal(lean.predict(nan), model.predict(nan))
    assert not lean.covers(X_IRIS[0])  # 1-D
    linear = compile_model(fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS))
    assert linear is not None
    inf = X_IRIS[:1].copy()
    inf[0, 1] = np.inf
    with pytest.raises(ValueError):
        linear.predict(inf)


class Custom(LogisticRegression):
    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


class NotSklearn:
    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


def test_unrecognised_models_are_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compile_model(fit(Custom(max_iter=500), X_IRIS, Y_IRIS)) is None  # overrides predict
    assert compile_model(NotSklearn()) is None
    gb = fit(GradientBoostingClassifier(n_estimators=5), X_IRIS, Y_IRIS)
    assert compile_model(gb) is None
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    assert compile_model(fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)) is None


def test_a_predictor_that_disagrees_at_load_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    model = fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)
    real = fastpath._compile

    def off_by_one(model: Any) -> Any:
        predict, proba, description = real(model)
        return (lambda X: (predict(X) + 1) % 3), proba, description

    monkeypatch.setattr(fastpath, "_compile", off_by_one)
    assert compile_model(model) is None


def test_the_default_predict_fn_uses_it(code_dir: Path, iris: IrisModel) -> None:
    handlers = load_handlers(write_code(code_dir, NO_HANDLERS))
    model = handlers.load_model(iris.model_dir)
    LoadedVariant("AllTraffic", handlers, model)
    lean = fastpath.lookup(model)
    assert lean is not None and lean.model is model
    assert fastpath.register(model) is lean  # compiled once
    out = handlers.predict_fn(iris.X[:4], model)
    np.testing.assert_array_equal(out, iris.model.predict(iris.X[:4]))
