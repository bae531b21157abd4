"""Lean predictors: common scikit-learn estimators recompiled to plain numpy, behind the default
``predict_fn``.

scikit-learn's ``predict`` spends most of a one-row call validating input and dispatching
(~150 µs for a LogisticRegression whose math takes ~2 µs; ~7 ms for a 100-tree forest that
a vectorised walk does in well under 1 ms). An endpoint validates its input once per request
anyway, so at model load :func:`compile_model` recognises the estimator and returns a
:class:`LeanPredictor` that repeats scikit-learn's arithmetic exactly, operation for operation:

    linear classifiers  predict/decision_function are LinearClassifierMixin's (LogisticRegression,
                        SGDClassifier, LinearSVC, Perceptron; RidgeClassifier, single-label)
    linear regressors   predict/_decision_function are LinearModel's, or overrides known to
                        only defer to them (LinearRegression, Ridge, Lasso, ElasticNet, …)
    trees and forests   DecisionTree*, ExtraTree*, RandomForest*, ExtraTrees* (single output):
                        all trees flattened into one node table and walked level by level
    gradient boosting   GradientBoosting*, HistGradientBoosting* (numerical features): the
                        same walk, stage sums as scikit-learn adds them (:mod:`.boosting`)
    Pipeline            StandardScaler / MinMaxScaler steps in front of any of the above

A method is recognised by identity (``type(model).predict is ForestClassifier.predict``), so
a subclass that overrides it is not mistaken for its parent. SVC, kNN, multi-output and
multilabel models are not compiled (yet): they keep ``model.predict``. Anything else, and any
input the lean path does not cover (not a 2-D numeric array, float32, NaN or infinity — except
for a bare HistGradientBoosting, which takes them as they are — the wrong width), goes to the
model's own ``predict``: answers never change, only their cost.

Belt and braces: :func:`compile_model` runs the compiled predictor and the estimator side by
side on synthetic rows (random ones and rows made of the trees' own thresholds, where float32
rounding decides the branch; with NaN and ±inf holes for HistGradientBoosting) and keeps the
compiled one only if every answer is identical.

scikit-learn is imported only here and in :mod:`.boosting`, only when a model is inspected
(the model's environment has it if the model is an estimator). ``MLCICD_FASTPATH=0`` turns the
lean path off.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
Compiled = Callable[[Array], Array]

log = logging.getLogger("mlcicd.serving.fastpath")

PROBE_ROWS = 64
_NUMERIC = frozenset("iuf")


class LeanPredictor:
    """``predict(X)``: the compiled path when ``X`` is one it covers, else ``model.predict``."""

    __slots__ = ("_compiled", "_proba", "allow_nonfinite", "description", "model", "n_features")

    def __init__(
        self,
        model: Any,
        n_features: int,
        compiled: Compiled,
        proba: Compiled | None,
        description: str,
        allow_nonfinite: bool = False,
    ) -> None:
        self.model = model
        self.n_features = n_features
        self._compiled = compiled
        self._proba = proba
        self.description = description
        self.allow_nonfinite = allow_nonfinite

    def covers(self, X: Any) -> bool:
        """Is ``X`` an input the compiled path answers exactly as the estimator would?"""
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.shape[1] == self.n_features
            and X.shape[0] > 0
            and (X.dtype == np.float64 or X.dtype.kind in "iu")
            and (self.allow_nonfinite or bool(np.isfinite(X).all()))
        )

    def predict(self, X: Any) -> Any:
        if self.covers(X):
            return self._compiled(X)
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> Any:
        if self._proba is not None and self.covers(X):
            return self._proba(X)
        return self.model.predict_proba(X)


def compile_model(model: Any) -> LeanPredictor | None:
    """A verified lean predictor for ``model``, or None (then use ``model.predict``)."""
    if os.environ.get("MLCICD_FASTPATH", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not type(model).__module__.startswith("sklearn."):
        return None
    try:
        built = _build(model)
    except Exception:  # an estimator we misread: never worse than model.predict
        log.warning("no lean predictor for %s", type(model).__name__, exc_info=True)
        return None
    if built is None:
        return None
    predictor = LeanPredictor(model, *built)
    if not _agrees(predictor, model):
        log.warning("lean predictor for %s disagreed with predict; not used", type(model).__name__)
        return None
    log.info("lean predictor: %s", predictor.description)
    return predictor


# The lean predictor of each loaded model, by identity (a model is served for the life of the
# worker; the predictor holds it, so an id is never reused while its entry stands).
_REGISTRY: dict[int, LeanPredictor] = {}


def register(model: Any) -> LeanPredictor | None:
    """Compile (once) and remember the lean predictor of ``model``; see :func:`lookup`."""
    known = lookup(model)
    if known is not None:
        return known
    predictor = compile_model(model)
    if predictor is not None:
        _REGISTRY[id(model)] = predictor
    return predictor


def lookup(model: Any) -> LeanPredictor | None:
    """The lean predictor :func:`register` made for ``model``, if any (a dict lookup)."""
    predictor = _REGISTRY.get(id(model))
    if predictor is not None and predictor.model is model:
        return predictor
    return None


# -------------------------------------------------------------------------- recognition


def _build(model: Any) -> tuple[int, Compiled, Compiled | None, str, bool] | None:
    sklearn = _sk("sklearn")
    if sklearn.get_config().get("transform_output", "default") != "default":
        return None
    width = getattr(model, "n_features_in_", None)
    if not isinstance(width, int) or width < 1:
        return None
    steps = _compile(model)
    if steps is None:
        return None
    compiled, proba, description = steps
    # A bare HistGradientBoosting takes NaN and ±inf as they are (NaN follows each split's
    # missing_go_to_left); in a Pipeline the scalers reject inf, so there they go to predict.
    # (Its module is loaded if the model is one: no import for every other model.)
    hist = sys.modules.get("sklearn.ensemble._hist_gradient_boosting.gradient_boosting")
    nonfinite = hist is not None and isinstance(model, hist.BaseHistGradientBoosting)
    return width, compiled, proba, description, nonfinite


def _compile(model: Any) -> tuple[Compiled, Compiled | None, str] | None:
    Pipeline = _sk("sklearn.pipeline").Pipeline
    if type(model) is Pipeline:
        return _compile_pipeline(model)
    from mlcicd.serving import boosting

    for compile_one in (
        _compile_linear_classifier,
        _compile_linear_regressor,
        _compile_trees,
        boosting.compile_gradient_boosting,
        boosting.compile_hist_gradient_boosting,
    ):
        result = compile_one(model)
        if result is not None:
            return result
    return None


def _compile_pipeline(pipe: Any) -> tuple[Compiled, Compiled | None, str] | None:
    # Called for exact Pipeline instances only (its predict is an available_if descriptor, so
    # there is no stable function to compare): transform each step, predict with the last.
    transforms: list[Compiled] = []
    names: list[str] = []
    for _, _, step in pipe._iter(with_final=False):
        transform = _compile_transform(step)
        if transform is None:
            return None
        transforms.append(transform)
        names.append(type(step).__name__)
    final = _compile(pipe.steps[-1][1])
    if final is None:
        return None
    predict, proba, description = final

    def run(X: Array) -> Array:
        for transform in transforms:
            X = transform(X)
        return X

    def pipe_predict(X: Array) -> Array:
        return predict(run(X))

    pipe_proba = None
    if proba is not None:
        final_proba = proba

        def pipe_proba(X: Array) -> Array:
            return final_proba(run(X))

    return pipe_predict, pipe_proba, " → ".join([*names, description])


def _compile_transform(step: Any) -> Compiled | None:
    preprocessing = _sk("sklearn.preprocessing")
    MinMaxScaler, StandardScaler = preprocessing.MinMaxScaler, preprocessing.StandardScaler
    if getattr(step, "_sklearn_output_config", {}).get("transform", "default") != "default":
        return None
    if type(step) is StandardScaler and type(step).transform is StandardScaler.transform:
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(X: Array) -> Array:
            X = X.astype(np.float64, copy=True)  # validate_data(copy=True, float dtypes)
            if mean is not None:
                X -= mean
            if scale is not None:
                X /= scale
            return X

        return standard
    if type(step) is MinMaxScaler and type(step).transform is MinMaxScaler.transform:
        mm_scale, mm_min = step.scale_, step.min_
        low, high = (np.float64(v) for v in step.feature_range)
        clip = bool(step.clip)

        def minmax(X: Array) -> Array:
            X = X.astype(np.float64, copy=True)
            X *= mm_scale
            X += mm_min
            if clip:
                np.clip(X, low, high, out=X)
            return X

        return minmax
    return None


def _compile_linear_classifier(model: Any) -> tuple[Compiled, Compiled | None, str] | None:
    LogisticRegression = _sk("sklearn.linear_model").LogisticRegression
    LinearClassifierMixin = _sk("sklearn.linear_model._base").LinearClassifierMixin
    cls = type(model)
    # predict methods known to be LinearClassifierMixin's, or to defer to it for single-label y
    predicts = {LinearClassifierMixin.predict}
    ridge = getattr(_sk("sklearn.linear_model._ridge"), "_RidgeClassifierMixin", None)
    binarizer = getattr(model, "_label_binarizer", None)
    if ridge is not None and not str(getattr(binarizer, "y_type_", "")).startswith("multilabel"):
        predicts.add(ridge.predict)
    if not (
        cls.predict in predicts and cls.decision_function is LinearClassifierMixin.decision_function
    ):
        return None
    coef = np.asarray(model.coef_)
    if coef.dtype != np.float64 or coef.ndim not in (1, 2):
        return None
    coef_t = coef.T if coef.ndim == 2 else coef
    intercept = model.intercept_
    classes = np.asarray(model.classes_)

    def scores(X: Array) -> Array:
        s: Array = X @ coef_t + intercept  # safe_sparse_dot(X, coef_.T) + intercept_, as is
        if s.ndim > 1 and s.shape[1] == 1:
            s = s.reshape(-1)
        return s

    def predict(X: Array) -> Array:
        s = scores(X)
        indices = (s > 0).astype(np.intp) if s.ndim == 1 else s.argmax(axis=1)
        out: Array = classes.take(indices, axis=0)
        return out

    proba: Compiled | None = None
    if cls is LogisticRegression and cls.predict_proba is LogisticRegression.predict_proba:
        binary = classes.size <= 2

        def proba(X: Array) -> Array:
            s = scores(X)
            if binary:  # expit, then the two columns, as _predict_proba_lr
                p = 1.0 / (1.0 + np.exp(-s))
                pair: Array = np.stack([1 - p, p], axis=1)
                return pair
            e: Array = s - s.max(axis=1).reshape(-1, 1)  # softmax, as extmath.softmax
            np.exp(e, out=e)
            e /= e.sum(axis=1).reshape(-1, 1)
            return e

    return predict, proba, f"{cls.__name__} (numpy, {classes.size} classes)"


def _compile_linear_regressor(model: Any) -> tuple[Compiled, Compiled | None, str] | None:
    base = _sk("sklearn.linear_model._base")
    LinearModel = base.LinearModel
    cls = type(model)
    # LinearModel.predict, or overrides that only call it (for their docstrings)
    predicts = {LinearModel.predict}
    for owner in (base, _sk("sklearn.linear_model._ridge")):
        for name in ("MultiOutputLinearModel", "Ridge"):
            klass = getattr(owner, name, None)
            if klass is not None:
                predicts.add(klass.predict)
    # ElasticNet's (and Lasso's) only adds a sparse branch in front of LinearModel's
    decisions = {LinearModel._decision_function}
    elastic = getattr(_sk("sklearn.linear_model"), "ElasticNet", None)
    if elastic is not None:
        decisions.add(elastic._decision_function)
    if not (
        getattr(cls, "predict", None) in predicts
        and getattr(cls, "_decision_function", None) in decisions
    ):
        return None
    coef = np.asarray(model.coef_)
    if coef.dtype != np.float64 or coef.ndim not in (1, 2):
        return None
    coef_t = coef if coef.ndim == 1 else coef.T
    intercept = model.intercept_

    def predict(X: Array) -> Array:
        out: Array = X @ coef_t + intercept
        return out

    return predict, None, f"{cls.__name__} (numpy)"


def _compile_trees(model: Any) -> tuple[Compiled, Compiled | None, str] | None:
    forests, trees_module = _sk("sklearn.ensemble._forest"), _sk("sklearn.tree")
    ForestClassifier, ForestRegressor = forests.ForestClassifier, forests.ForestRegressor
    BaseDecisionTree = trees_module.BaseDecisionTree
    DecisionTreeClassifier = trees_module.DecisionTreeClassifier
    from mlcicd.serving.forest import FlatForest, sklearn_tree

    cls = type(model)
    if getattr(model, "n_outputs_", None) != 1:
        return None
    if cls.predict is BaseDecisionTree.predict:
        classifier = isinstance(model, DecisionTreeClassifier)
        if classifier and cls.predict_proba is not DecisionTreeClassifier.predict_proba:
            return None
        trees = [model]
        average = False
    elif (
        cls.predict is ForestClassifier.predict
        and cls.predict_proba is ForestClassifier.predict_proba
    ):
        classifier, trees, average = True, list(model.estimators_), True
    elif cls.predict is ForestRegressor.predict:
        classifier, trees, average = False, list(model.estimators_), True
    else:
        return None
    if not trees or any(type(t).predict is not BaseDecisionTree.predict for t in trees):
        return None
    forest = FlatForest([sklearn_tree(t.tree_) for t in trees], average=average)
    if classifier:
        classes = np.asarray(model.classes_)
        if forest.n_values != classes.size:
            return None

        def predict(X: Array) -> Array:
            out: Array = classes.take(forest.values(X).argmax(axis=1), axis=0)
            return out

        def proba(X: Array) -> Array:
            return forest.values(X)

        kind = f"{len(trees)} tree(s), {classes.size} classes"
        return predict, proba, f"{cls.__name__} (flattened, {kind})"

    def regress(X: Array) -> Array:
        out: Array = forest.values(X)[:, 0]
        return out

    return regress, None, f"{cls.__name__} (flattened, {len(trees)} tree(s))"


def _sk(name: str) -> Any:
    """A scikit-learn module, imported on first use (and untyped, as far as mypy knows)."""
    return importlib.import_module(name)


# -------------------------------------------------------------------------- verification


def _agrees(predictor: LeanPredictor, model: Any) -> bool:
    rows = probe_rows(model, predictor.n_features)
    batches = [rows, rows[:1]]
    if predictor.allow_nonfinite:
        holes = rows.copy()
        holes[np.random.default_rng(0x401E).random(holes.shape) < 0.3] = np.nan
        holes[::5, 0] = np.inf
        holes[2::5, -1] = -np.inf
        batches.append(holes)
    try:
        for batch in batches:
            ours = predictor._compiled(batch)
            theirs = np.asarray(model.predict(batch))
            if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
                return False
            if predictor._proba is None or len(batch) == 1:
                continue
            mine = predictor._proba(batch)
            expected = np.asarray(model.predict_proba(batch))
            if mine.shape != expected.shape or not np.allclose(mine, expected, rtol=0, atol=1e-12):
                return False
        return True
    except Exception:
        log.debug("probing the lean predictor failed", exc_info=True)
        return False


def probe_rows(model: Any, width: int, n: int = PROBE_ROWS) -> Array:
    """Synthetic rows: random ones around the data's scale, and rows of exact split points."""
    rng = np.random.default_rng(0x5EED)
    thresholds = _thresholds(model, width)
    center = np.zeros(width)
    spread = np.ones(width)
    for f, values in enumerate(thresholds):
        if values.size:
            center[f] = float(np.median(values))
            spread[f] = float(values.max() - values.min()) or 1.0
    mean = getattr(model, "mean_", None)
    for step in getattr(model, "steps", []):
        mean = getattr(step[1], "mean_", mean)
        if isinstance(getattr(step[1], "scale_", None), np.ndarray) and mean is not None:
            center, spread = np.asarray(mean, float), np.asarray(step[1].scale_, float) * 2
            break
    random_rows = center + rng.normal(size=(n, width)) * spread
    split_rows = np.empty((n, width))
    for f in range(width):
        values = thresholds[f]
        if values.size:
            split_rows[:, f] = rng.choice(values, size=n)
        else:
            split_rows[:, f] = random_rows[::-1, f]
    return np.ascontiguousarray(np.vstack([random_rows, split_rows]))


def _thresholds(model: Any, width: int) -> list[Array]:
    """Each feature's split thresholds over all trees, in tree order."""
    trees: list[Any] = []
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(final, "tree_"):
        trees = [final.tree_]
    elif hasattr(final, "estimators_"):
        trees = [getattr(t, "tree_", None) for t in np.ravel(final.estimators_)]
    features: list[Array] = []
    thresholds: list[Array] = []
    for tree in trees:
        if tree is not None:
            inner = tree.children_left != -1
            features.append(tree.feature[inner])
            thresholds.append(tree.threshold[inner])
    for stage in getattr(final, "_predictors", None) or []:  # HistGradientBoosting
        for predictor in stage:
            inner = predictor.nodes["is_leaf"] == 0
            features.append(predictor.nodes["feature_idx"][inner])
            thresholds.append(predictor.nodes["num_threshold"][inner])
    if not features:
        return [np.empty(0) for _ in range(width)]
    feature, threshold = np.concatenate(features), np.concatenate(thresholds)
    return [threshold[feature == f] for f in range(width)]
