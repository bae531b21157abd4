"""Lean predictors answer exactly as scikit-learn does: labels equal, probabilities within 1e-9."""

from __future__ import annotations

import copy
import io
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
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

from mlcicd import compiler
from mlcicd.compiler import LeanPredictor, compile_model, probe_rows, verify

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
    """Every compiled method, on ``rows`` in calls of at most ``lean.max_rows`` (all covered)."""
    step = lean.max_rows or len(rows)
    for start in range(0, len(rows), step):
        assert_same_call(lean, model, rows[start : start + step])


def assert_same_call(lean: LeanPredictor, model: Any, rows: np.ndarray) -> None:
    assert lean.covers(rows)
    ours, theirs = lean.predict(rows), model.predict(rows)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    if "decision_function" in lean.methods:
        np.testing.assert_array_equal(lean.decision_function(rows), model.decision_function(rows))
    if hasattr(model, "predict_proba") and lean._proba is not None:
        np.testing.assert_allclose(lean.predict_proba(rows), model.predict_proba(rows), atol=1e-9)
    if "predict_log_proba" in lean.methods:
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(
                np.exp(lean.predict_log_proba(rows)),
                np.exp(model.predict_log_proba(rows)),
                atol=1e-9,
            )


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


BOOSTED_CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "gb": lambda: GradientBoostingClassifier(n_estimators=30, random_state=0),
    "gb_exponential": lambda: GradientBoostingClassifier(
        loss="exponential", n_estimators=20, random_state=0
    ),
    "gb_zero_init": lambda: GradientBoostingClassifier(init="zero", n_estimators=20),
    "gb_subsampled": lambda: GradientBoostingClassifier(
        n_estimators=20, subsample=0.6, max_depth=5, random_state=0
    ),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "hgb_deep": lambda: HistGradientBoostingClassifier(
        max_iter=15, max_leaf_nodes=None, max_depth=8, random_state=0
    ),
    "scaled_hgb": lambda: make_pipeline(
        StandardScaler(), HistGradientBoostingClassifier(max_iter=10)
    ),
}
BOOSTED_REGRESSORS: dict[str, Callable[[], Any]] = {
    "gb": lambda: GradientBoostingRegressor(n_estimators=30, random_state=0),
    "gb_huber": lambda: GradientBoostingRegressor(loss="huber", n_estimators=20, random_state=0),
    "gb_quantile": lambda: GradientBoostingRegressor(loss="quantile", alpha=0.3, n_estimators=20),
    "gb_zero_init": lambda: GradientBoostingRegressor(init="zero", n_estimators=20),
    "hgb": lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
    "hgb_poisson": lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=20),
}


def threshold_rows(model: Any, width: int) -> np.ndarray:
    """Rows at every split threshold, one float64 ulp either side, and its float32 rounding."""
    per_feature = verify._thresholds(model, width)
    columns = []
    for values in per_feature:
        near = np.concatenate(
            [
                values,
                np.nextafter(values, np.inf),
                np.nextafter(values, -np.inf),
                values.astype(np.float32).astype(np.float64),
            ]
        )
        columns.append(near if near.size else np.zeros(1))
    n = max(c.size for c in columns)
    rows = np.empty((n, width))
    for f, column in enumerate(columns):
        rows[:, f] = np.resize(column, n)  # cycled: each threshold meets others' in its row
    return rows


def assert_identical(lean: LeanPredictor, model: Any, rows: np.ndarray) -> None:
    """As assert_same, and bit-identical probabilities (same sums in the same order)."""
    assert_same(lean, model, rows)
    if lean._proba is not None:
        np.testing.assert_array_equal(lean.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize(
    ("name", "n_classes"),
    [
        (name, n)
        for name in sorted(BOOSTED_CLASSIFIERS)
        for n in (2, 3)
        if not (name == "gb_exponential" and n == 3)  # exponential loss is binary only
    ],
)
def test_gradient_boosting_classifiers(name: str, n_classes: int) -> None:
    X, y = X_IRIS, Y_IRIS if n_classes == 3 else np.where(Y_IRIS == 1, "versicolor", "other")
    model = fit(BOOSTED_CLASSIFIERS[name](), X, y)
    lean = compile_model(model)
    assert lean is not None, f"{name} is not compiled"
    assert lean.description.endswith(f"{n_classes} classes)")
    assert_identical(lean, model, X)
    for i in range(0, len(X), 11):
        assert_identical(lean, model, X[i : i + 1])
    assert_identical(lean, model, probe_rows(model, X.shape[1]))
    assert_identical(lean, model, threshold_rows(model, X.shape[1]))
    assert_identical(lean, model, np.rint(X).astype(np.int64))
    rng = np.random.default_rng(3)
    assert_identical(lean, model, X.mean(axis=0) + rng.normal(size=(200, 4)) * X.std(axis=0) * 2)


@pytest.mark.parametrize("name", sorted(BOOSTED_REGRESSORS))
def test_gradient_boosting_regressors(name: str) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5))
    y = np.exp(X @ rng.normal(scale=0.5, size=5)) + rng.normal(scale=0.1, size=300)
    model = fit(BOOSTED_REGRESSORS[name](), X, np.abs(y))
    lean = compile_model(model)
    assert lean is not None, f"{name} is not compiled"
    for rows in (X, X[:1], X[7:8], rng.normal(size=(100, 5)) * 3, threshold_rows(model, 5)):
        rows = rows[: lean.max_rows]  # larger calls go to the estimator (LEAN_ROWS)
        assert lean.covers(rows)
        np.testing.assert_array_equal(lean.predict(rows), model.predict(rows))  # bit for bit


def test_hist_gradient_boosting_takes_nan_and_inf_as_it_does() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    target = X[:, 3] * 2 + 1
    X[rng.random(X.shape) < 0.15] = np.nan  # missing in training: splits learn where it goes
    classifier = fit(HistGradientBoostingClassifier(max_iter=20, random_state=0), X, y)
    regressor = fit(HistGradientBoostingRegressor(max_iter=20), X, target)
    holes = np.vstack([threshold_rows(classifier, 4), rng.normal(size=(100, 4))])
    holes[rng.random(holes.shape) < 0.3] = np.nan
    holes[::7, 1] = np.inf
    holes[3::7, 2] = -np.inf
    for model in (classifier, regressor):
        lean = compile_model(model)
        assert lean is not None and lean.allow_nonfinite
        assert lean.covers(holes[: lean.max_rows])
        assert_identical(lean, model, holes)
        assert_identical(lean, model, np.full((1, 4), np.nan))
    scaled = fit(make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)), X, y)
    lean = compile_model(scaled)
    assert lean is not None and not lean.allow_nonfinite  # the scaler rejects inf: its error
    assert not lean.covers(holes)
    np.testing.assert_array_equal(lean.predict(X[:20]), scaled.predict(X[:20]))


class ZeroGB(GradientBoostingRegressor):
    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


def test_gradient_boosting_it_cannot_repeat_is_not_compiled() -> None:
    codes = np.random.default_rng(5).integers(0, 4, size=(len(X_IRIS), 1))
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
    not_compiled = [
        fit(categorical, np.hstack([codes, X_IRIS]), Y_IRIS),  # category bitsets: not walked
        # an init estimator whose raw prediction varies by row (or at random)
        fit(GradientBoostingClassifier(n_estimators=5, init=LogisticRegression()), X_IRIS, Y_IRIS),
        fit(
            GradientBoostingClassifier(n_estimators=5, init=DummyClassifier(strategy="stratified")),
            X_IRIS,
            Y_IRIS,
        ),
        fit(GradientBoostingRegressor(n_estimators=5, init=LinearRegression()), X_IRIS, Y_IRIS),
        fit(ZeroGB(n_estimators=5), X_IRIS, Y_IRIS),  # overrides predict
    ]
    for model in not_compiled:
        assert compile_model(model) is None, model


@st.composite
def problems(draw: st.DrawFn) -> tuple[Any, np.ndarray]:
    n_features = draw(st.integers(1, 6))
    n_classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(
        st.sampled_from(
            ["logistic", "sgd", "tree", "forest", "extra_trees", "boosting", "regressor"]
        )
    )
    rng = np.random.default_rng(seed)
    n = draw(st.integers(n_classes * 3, 60))
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.1, 100, size=n_features)
    X = np.round(X, draw(st.integers(0, 3)))  # ties and repeated values, as real data has
    if kind == "regressor":
        y: np.ndarray = X @ rng.normal(size=n_features)
        regressors = [
            LinearRegression(),
            RandomForestRegressor(n_estimators=7),
            GradientBoostingRegressor(n_estimators=7),
            HistGradientBoostingRegressor(max_iter=7),
        ]
        model = fit(draw(st.sampled_from(regressors)), X, y)
    else:
        y = np.arange(n) % n_classes
        rng.shuffle(y)
        estimator = {
            "logistic": LogisticRegression(max_iter=300),
            "sgd": SGDClassifier(random_state=seed % 1000),
            "tree": DecisionTreeClassifier(max_depth=draw(st.none() | st.integers(1, 6))),
            "forest": RandomForestClassifier(n_estimators=draw(st.integers(1, 12))),
            "extra_trees": ExtraTreesClassifier(n_estimators=draw(st.integers(1, 12))),
            "boosting": draw(
                st.sampled_from(
                    [
                        GradientBoostingClassifier(n_estimators=draw(st.integers(1, 8))),
                        HistGradientBoostingClassifier(max_iter=draw(st.integers(1, 8))),
                    ]
                )
            ),
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
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    assert compile_model(fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)) is None


def test_a_predictor_that_disagrees_at_load_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    model = fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)
    real = compiler._compile

    def off_by_one(model: Any) -> Any:
        lean, family = real(model)
        return lean._replace(predict=lambda X: (lean.predict(X) + 1) % 3), family

    monkeypatch.setattr(compiler, "_compile", off_by_one)
    assert compile_model(model) is None


def test_a_decision_function_that_disagrees_drops_the_predictor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)
    real = compiler._compile

    def shifted(model: Any) -> Any:
        lean, family = real(model)
        assert lean.decision is not None
        decision = lean.decision
        return lean._replace(decision=lambda X: decision(X) + 1e-9), family

    monkeypatch.setattr(compiler, "_compile", shifted)
    assert compile_model(model) is None


@pytest.mark.parametrize(
    ("make", "family"),
    [
        (lambda: RandomForestClassifier(n_estimators=5, random_state=0), "trees"),
        (lambda: GradientBoostingClassifier(n_estimators=5, random_state=0), "boosting"),
    ],
)
def test_large_calls_go_to_the_estimator(
    make: Callable[[], Any], family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above LEAN_ROWS the estimator's own predict is the faster: the predictor hands over."""
    model = fit(make(), X_IRIS, Y_IRIS)
    lean = compile_model(model)
    assert lean is not None and lean.max_rows == compiler.LEAN_ROWS[family] is not None
    rows = np.vstack([X_IRIS] * 4)[: lean.max_rows + 1]
    assert lean.covers(rows[:-1]) and not lean.covers(rows)
    calls: list[int] = []
    own = lean._own["predict"]
    assert own is not None

    def counted(X: Any) -> Any:
        calls.append(len(X))
        return own(X)

    lean._own["predict"] = counted
    np.testing.assert_array_equal(lean.predict(rows), model.predict(rows))
    assert calls == [len(rows)]
    lean.predict(rows[:-1])
    assert calls == [len(rows)]  # the compiled path: the estimator was not called


def test_linear_models_have_no_row_limit() -> None:
    lean = compile_model(fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS))
    assert lean is not None and lean.max_rows is None
    assert lean.covers(np.vstack([X_IRIS] * 100))


def test_bind_methods_answers_through_the_compiled_code_on_the_same_object() -> None:
    model = fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), X_IRIS, Y_IRIS)
    before = {k: v for k, v in vars(model).items()}
    bound = compiler.bind_methods(model)
    added = {*bound, "__getstate__"}
    assert bound == ("predict", "predict_proba", "predict_log_proba", "decision_function")
    lean = compiler.lookup(model)
    assert lean is not None
    for name in bound:  # each method is the predictor's, bound on the instance only
        assert getattr(model, name) == getattr(lean, name)
    assert {k: v for k, v in vars(model).items() if k not in added} == before
    assert type(model).__name__ == "Pipeline" and isinstance(model, type(lean.model))
    fresh = fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), X_IRIS, Y_IRIS)
    assert_same(lean, fresh, X_IRIS)
    np.testing.assert_array_equal(model.predict(X_IRIS), fresh.predict(X_IRIS))
    np.testing.assert_array_equal(model.decision_function(X_IRIS), fresh.decision_function(X_IRIS))
    # input the compiled code does not cover: the class's own method, not a recursion
    single = X_IRIS[:5].astype(np.float32)
    assert not lean.covers(single)
    np.testing.assert_array_equal(model.predict(single), fresh.predict(single))
    np.testing.assert_allclose(model.predict_proba(single), fresh.predict_proba(single))
    with pytest.raises(ValueError, match="features"):
        model.predict(X_IRIS[:, :3])  # scikit-learn's own error


def test_bind_methods_skips_what_the_model_cannot_answer() -> None:
    hgb = fit(HistGradientBoostingClassifier(max_iter=5), X_IRIS, Y_IRIS)
    assert compiler.bind_methods(hgb) == ("predict", "predict_proba", "decision_function")
    assert "predict_log_proba" not in vars(hgb)
    scaled = fit(
        make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)), X_IRIS, Y_IRIS
    )
    assert "predict_log_proba" not in compiler.bind_methods(scaled)
    regressor = fit(RandomForestRegressor(n_estimators=3, random_state=0), X_IRIS, Y_IRIS)
    assert compiler.bind_methods(regressor) == ("predict",)


def test_bind_methods_binds_nothing_when_off_or_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compiler.bind_methods(NotSklearn()) == ()
    assert compiler.bind_methods(fit(Custom(max_iter=500), X_IRIS, Y_IRIS)) == ()
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    model = fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)
    assert compiler.bind_methods(model) == ()
    assert "predict" not in vars(model)


def test_a_model_with_bound_methods_pickles_and_copies_without_them() -> None:
    """A user's handler may pickle or deep-copy the model it was given (to cache it, to
    ship it to a thread): the compiled bindings hold closures that cannot be pickled, so
    they are left out and the copy is the plain estimator, answering as before."""
    model = fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), X_IRIS, Y_IRIS)
    bound = compiler.bind_methods(model)
    assert bound
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), copy.copy(model)):
        assert type(clone) is type(model)
        assert not set(vars(clone)) & {*bound, "__getstate__"}
        np.testing.assert_array_equal(clone.predict(X_IRIS), model.predict(X_IRIS))
        np.testing.assert_allclose(clone.predict_proba(X_IRIS), model.predict_proba(X_IRIS))
    assert compiler.lookup(model) is not None and model.predict == compiler.lookup(model).predict
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict(X_IRIS), model.predict(X_IRIS))


def test_covers_refuses_every_non_finite_row_and_takes_integers() -> None:
    """The small-input finiteness test (a sum of the values) misses no NaN or infinity;
    an overflowing sum only sends the row to the estimator, which answers it as before."""
    model = fit(LogisticRegression(max_iter=500), X_IRIS, Y_IRIS)
    lean = compile_model(model)
    assert lean is not None
    row = X_IRIS[:1].copy()
    for bad in (np.nan, np.inf, -np.inf):
        for at in range(4):
            holed = row.copy()
            holed[0, at] = bad
            assert not lean.covers(holed)
            assert not lean.covers(np.vstack([X_IRIS[:3], holed]))
    assert not lean.covers(np.array([[np.inf, -np.inf, 1.0, 1.0]]))
    huge = np.array([[1e308, 1e308, 0.0, 0.0]])
    assert not lean.covers(huge)  # the sum overflows: the estimator's answer, unchanged
    np.testing.assert_array_equal(lean.predict(huge), model.predict(huge))
    assert lean.covers(np.array([[5, 3, 1, 0]]))
    assert lean.covers(row) and not lean.covers(row.astype(">f8").astype(">f8"))
    big = np.vstack([X_IRIS] * 2)  # past the small-input test: numpy's
    assert lean.covers(big)
    big[-1, -1] = np.nan
    assert not lean.covers(big)
