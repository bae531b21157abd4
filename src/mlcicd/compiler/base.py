"""What the compilers share: the array and compiled-function types, the predictor they
make, and scikit-learn imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
Compiled = Callable[[Array], Array]
Lean = tuple[Compiled, Compiled | None, str]  # predict, predict_proba, description


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


def sk(name: str) -> Any:
    """A scikit-learn module, imported on first use (and untyped, as far as mypy knows)."""
    return importlib.import_module(name)


__all__ = ["Array", "Compiled", "Lean", "LeanPredictor", "sk"]
