"""What the compilers share: the array and compiled-function types, the predictor they
make, and scikit-learn imported on first use."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

Array = np.ndarray[Any, Any]
Compiled = Callable[[Array], Array]

# The methods a lean predictor may answer for its model (and bind on it, see bind_methods).
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


_FLOAT64 = np.dtype(np.float64)
# Up to this many values the finiteness test is a Python sum of the values: ~5x cheaper
# than np.isfinite(X).all() on a row (two ufunc calls), the same verdict on finite rows.
_SMALL = 256


class Lean(NamedTuple):
    """What a compiler makes of an estimator: its compiled methods and a description."""

    predict: Compiled
    proba: Compiled | None
    description: str
    decision: Compiled | None = None


def own_method(model: Any, name: str) -> Callable[..., Any] | None:
    """``model.<name>`` as its class defines it, whatever is bound on the instance (None if
    the class has no such method, or says it is unavailable, as ``available_if`` does)."""
    attr = getattr(type(model), name, None)
    if attr is None or not hasattr(attr, "__get__"):
        return None
    try:
        method: Callable[..., Any] = attr.__get__(model, type(model))
    except AttributeError:
        return None
    return method


class LeanPredictor:
    """The compiled path when ``X`` is one it covers, else the estimator's own method.

    The estimator's methods are taken from its class (:func:`own_method`), so the fallback
    stays the original even after :func:`mlcicd.compiler.bind_methods` has bound this
    predictor's methods on the instance.
    """

    __slots__ = (
        "_compiled",
        "_decision",
        "_own",
        "_proba",
        "allow_nonfinite",
        "description",
        "max_rows",
        "model",
        "n_features",
    )

    def __init__(
        self,
        model: Any,
        n_features: int,
        lean: Lean,
        allow_nonfinite: bool = False,
        max_rows: int | None = None,
    ) -> None:
        self.model = model
        self.n_features = n_features
        self._compiled = lean.predict
        self._proba = lean.proba
        self._decision = lean.decision
        self.description = lean.description
        self.allow_nonfinite = allow_nonfinite
        # Above this many rows a call goes to the estimator, which is faster there (None: never)
        self.max_rows = max_rows
        self._own = {name: own_method(model, name) for name in METHODS}

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods answered through compiled code (for covered input)."""
        compiled = {
            "predict": self._compiled,
            "predict_proba": self._proba,
            "predict_log_proba": self._proba,
            "decision_function": self._decision,
        }
        return tuple(
            name for name in METHODS if compiled[name] is not None and self._own[name] is not None
        )

    def covers(self, X: Any) -> bool:
        """Is ``X`` an input the compiled path answers exactly as the estimator would, and
        no faster by the estimator's own method?"""
        # Per request, on a row or a few: each numpy call here costs about a microsecond, as
        # much as the compiled arithmetic, so the cheap tests come first and the dtype is
        # compared by identity before equality (``dtype == np.float64`` converts the type).
        if type(X) is not np.ndarray:
            return False
        shape = X.shape
        if len(shape) != 2 or shape[1] != self.n_features or not shape[0]:
            return False
        if self.max_rows is not None and shape[0] > self.max_rows:
            return False
        dtype = X.dtype
        if dtype.kind in "iu":
            return True  # integers are finite
        if dtype is not _FLOAT64 and dtype != _FLOAT64:
            return False
        if self.allow_nonfinite:
            return True
        if X.size <= _SMALL:  # a sum is NaN or ±inf if any value is (or if it overflows: then
            return math.isfinite(sum(X.ravel().tolist()))  # the estimator answers, as it may)
        return bool(np.isfinite(X).all())

    def predict(self, X: Any) -> Any:
        if self.covers(X):
            return self._compiled(X)
        return self._call_own("predict", X)

    def predict_proba(self, X: Any) -> Any:
        if self._proba is not None and self.covers(X):
            return self._proba(X)
        return self._call_own("predict_proba", X)

    def predict_log_proba(self, X: Any) -> Any:
        # scikit-learn's is np.log(predict_proba(X)) for every family compiled (verified)
        if self._proba is not None and self.covers(X):
            return np.log(self._proba(X))
        return self._call_own("predict_log_proba", X)

    def decision_function(self, X: Any) -> Any:
        if self._decision is not None and self.covers(X):
            return self._decision(X)
        return self._call_own("decision_function", X)

    def _call_own(self, name: str, X: Any) -> Any:
        method = self._own[name]
        if method is None:
            raise AttributeError(f"{type(self.model).__name__} has no method {name}")
        return method(X)


def sk(name: str) -> Any:
    """A scikit-learn module, imported on first use (and untyped, as far as mypy knows)."""
    return importlib.import_module(name)


__all__ = ["METHODS", "Array", "Compiled", "Lean", "LeanPredictor", "own_method", "sk"]
