"""What the compilers share: the array and compiled-function types, the predictor they
make, and scikit-learn imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

Array = np.ndarray[Any, Any]
Compiled = Callable[[Array], Array]

# The methods a lean predictor may answer for its model (and bind on it, see bind_methods).
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


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
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.shape[1] == self.n_features
            and X.shape[0] > 0
            and (self.max_rows is None or X.shape[0] <= self.max_rows)
            and (X.dtype == np.float64 or X.dtype.kind in "iu")
            and (self.allow_nonfinite or bool(np.isfinite(X).all()))
        )

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
