"""Linear models, and the scalers in front of them in a Pipeline, as numpy arithmetic.

linear classifiers  predict/decision_function are LinearClassifierMixin's (LogisticRegression,
                    SGDClassifier, LinearSVC, Perceptron; RidgeClassifier, single-label);
                    predict_proba for LogisticRegression
linear regressors   predict/_decision_function are LinearModel's, or overrides known to
                    only defer to them (LinearRegression, Ridge, Lasso, ElasticNet, …)
scalers             StandardScaler, MinMaxScaler: the transform of a Pipeline step
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcicd.compiler.base import Array, Compiled, Lean, sk


def compile_scaler(step: Any) -> Compiled | None:
    preprocessing = sk("sklearn.preprocessing")
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


def compile_linear_classifier(model: Any) -> Lean | None:
    LogisticRegression = sk("sklearn.linear_model").LogisticRegression
    LinearClassifierMixin = sk("sklearn.linear_model._base").LinearClassifierMixin
    cls = type(model)
    # predict methods known to be LinearClassifierMixin's, or to defer to it for single-label y
    predicts = {LinearClassifierMixin.predict}
    ridge = getattr(sk("sklearn.linear_model._ridge"), "_RidgeClassifierMixin", None)
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

    return Lean(predict, proba, f"{cls.__name__} (numpy, {classes.size} classes)", scores)


def compile_linear_regressor(model: Any) -> Lean | None:
    base = sk("sklearn.linear_model._base")
    LinearModel = base.LinearModel
    cls = type(model)
    # LinearModel.predict, or overrides that only call it (for their docstrings)
    predicts = {LinearModel.predict}
    for owner in (base, sk("sklearn.linear_model._ridge")):
        for name in ("MultiOutputLinearModel", "Ridge"):
            klass = getattr(owner, name, None)
            if klass is not None:
                predicts.add(klass.predict)
    # ElasticNet's (and Lasso's) only adds a sparse branch in front of LinearModel's
    decisions = {LinearModel._decision_function}
    elastic = getattr(sk("sklearn.linear_model"), "ElasticNet", None)
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

    return Lean(predict, None, f"{cls.__name__} (numpy)")


__all__ = ["compile_linear_classifier", "compile_linear_regressor", "compile_scaler"]
