"""Gradient boosting recompiled onto the flattened tree walk of :mod:`mlcicd.compiler.forest`.

Both families start every row at a raw prediction, add each stage's tree values to it column by
column (one column per class when multiclass, else one), and read the answer off the sum:

    GradientBoosting*      start: the init estimator's raw prediction (``_raw_predict_init``;
                           the same for every row with the default Dummy* init or
                           ``init='zero'``, so computed once, by scikit-learn, at load);
                           then ``learning_rate * value`` of each tree, stage by stage
                           (``predict_stages``); rows cast to float32 as its trees compare
    HistGradientBoosting*  start: ``0 + _baseline_prediction``; then each predictor's leaf
                           value (the shrinkage is already in it), iteration by iteration
                           (``_predict_iterations``); rows as float64, NaN routed by each split's
                           ``missing_go_to_left``, ±inf compared as they are

    classifiers   label: one column → ``raw >= 0`` (GB) or ``raw > 0`` (HGB), else argmax; then
                  ``classes_``. Probabilities: the model's own ``_loss.predict_proba`` on the raw
                  sums (sigmoid, softmax, exponential loss's) — the very function it calls
    regressors    GB: the raw sum; HGB: ``_loss.link.inverse`` of it (identity, or exp for
                  poisson/gamma), again the model's own

Not compiled (they keep ``model.predict``): HistGradientBoosting with categorical features,
GradientBoosting whose init estimator is not a DummyClassifier/DummyRegressor (the defaults) or
is a DummyClassifier(strategy='stratified') (random answers), and subclasses overriding a method
used here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcicd.compiler.base import Array, Compiled, Lean, sk
from mlcicd.compiler.forest import FlatForest, hist_predictor, sklearn_tree


def _unchanged_kind(model: Any, Classifier: Any, Regressor: Any) -> bool | None:
    """Whether ``model`` is the classifier (True) or the regressor (False), with the
    prediction methods scikit-learn gave it; None if it is neither or overrides one."""
    cls = type(model)
    if isinstance(model, Classifier):
        methods = ("predict", "decision_function", "predict_proba")
        return True if all(getattr(cls, m) is getattr(Classifier, m) for m in methods) else None
    if isinstance(model, Regressor) and cls.predict is Regressor.predict:
        return False
    return None


def compile_gradient_boosting(model: Any) -> Lean | None:
    """GradientBoostingClassifier / GradientBoostingRegressor, or None."""
    gb = sk("sklearn.ensemble._gb")
    Base = gb.BaseGradientBoosting
    Classifier, Regressor = gb.GradientBoostingClassifier, gb.GradientBoostingRegressor
    cls = type(model)
    if not (
        isinstance(model, Base)
        and cls._raw_predict is Base._raw_predict
        and cls._raw_predict_init is Base._raw_predict_init
    ):
        return None
    classifier = _unchanged_kind(model, Classifier, Regressor)
    if classifier is None:
        return None
    estimators = np.asarray(model.estimators_, dtype=object)
    if estimators.ndim != 2 or estimators.size == 0:
        return None
    n_columns = estimators.shape[1]
    start = _gradient_boosting_start(model, n_columns)
    if start is None:
        return None
    scale = float(model.learning_rate)
    # C order: stage by stage, and within a stage column by column, as predict_stages adds
    forest = FlatForest([sklearn_tree(t.tree_, scale) for t in estimators.ravel()])
    if forest.n_values != 1:
        return None
    stages = f"{estimators.shape[0]} stage(s)"

    def raw(X: Array) -> Array:
        return forest.boosted(X, start)

    if not classifier:

        def regress(X: Array) -> Array:
            out: Array = raw(X).ravel()
            return out

        return Lean(regress, None, f"{cls.__name__} (flattened, {stages})")
    return _classifier(model, raw, n_columns, ties_positive=True, stages=stages)


def compile_hist_gradient_boosting(model: Any) -> Lean | None:
    """HistGradientBoostingClassifier / HistGradientBoostingRegressor, or None."""
    hgb = sk("sklearn.ensemble._hist_gradient_boosting.gradient_boosting")
    Base = hgb.BaseHistGradientBoosting
    Classifier = hgb.HistGradientBoostingClassifier
    Regressor = hgb.HistGradientBoostingRegressor
    cls = type(model)
    if not (
        isinstance(model, Base)
        and cls._raw_predict is Base._raw_predict
        and cls._predict_iterations is Base._predict_iterations
        and cls._preprocess_X is Base._preprocess_X
    ):
        return None
    classifier = _unchanged_kind(model, Classifier, Regressor)
    if classifier is None:
        return None
    categorical = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None or (
        categorical is not None and bool(np.any(categorical))
    ):
        return None
    n_columns = int(model.n_trees_per_iteration_)
    predictors = list(model._predictors)
    if not predictors or any(len(stage) != n_columns for stage in predictors):
        return None
    baseline = np.asarray(model._baseline_prediction)
    if baseline.dtype != np.float64 or baseline.size != n_columns:
        return None
    start = np.zeros(n_columns) + baseline.reshape(-1)  # raw = zeros; raw += baseline
    trees = [hist_predictor(p.nodes) for stage in predictors for p in stage]
    forest = FlatForest(trees, float32=False)
    stages = f"{len(predictors)} iteration(s)"

    def raw(X: Array) -> Array:
        return forest.boosted(X, start)

    if not classifier:
        inverse = model._loss.link.inverse

        def regress(X: Array) -> Array:
            out: Array = inverse(raw(X).ravel())
            return out

        return Lean(regress, None, f"{cls.__name__} (flattened, {stages})")
    return _classifier(model, raw, n_columns, ties_positive=False, stages=stages)


def _gradient_boosting_start(model: Any, n_columns: int) -> Array | None:
    """The init estimator's raw prediction when it is the same for every row, else None."""
    init = model.init_
    if isinstance(init, str):
        if init != "zero":
            return None
    else:
        dummy = sk("sklearn.dummy")
        if not (
            type(init) is dummy.DummyRegressor
            or (type(init) is dummy.DummyClassifier and init.strategy != "stratified")
        ):
            return None
    # scikit-learn's own computation (predict/predict_proba, clip, link) on one row
    one = np.zeros((1, model.n_features_in_), dtype=np.float32)
    start = np.asarray(model._raw_predict_init(one), dtype=np.float64)
    if start.shape != (1, n_columns):
        return None
    row: Array = start[0].copy()
    return row


def _classifier(
    model: Any, raw: Compiled, n_columns: int, *, ties_positive: bool, stages: str
) -> Lean:
    classes = np.asarray(model.classes_)
    loss = model._loss

    def decision(X: Array) -> Array:
        sums = raw(X)
        out: Array = sums.ravel() if n_columns == 1 else sums
        return out

    def predict(X: Array) -> Array:
        d = decision(X)
        if d.ndim == 1:
            indices = (d >= 0 if ties_positive else d > 0).astype(np.intp)
        else:
            indices = d.argmax(axis=1)
        out: Array = classes.take(indices, axis=0)
        return out

    def proba(X: Array) -> Array:
        # GB passes decision_function's (n,), HGB _raw_predict's (n, 1): the binary losses
        # squeeze the latter to the former, so one call serves both
        out: Array = loss.predict_proba(decision(X))
        return out

    kind = f"{stages}, {classes.size} classes"
    return Lean(predict, proba, f"{type(model).__name__} (flattened, {kind})", decision)


__all__ = ["compile_gradient_boosting", "compile_hist_gradient_boosting"]
