"""The model compiler: common scikit-learn estimators recompiled to plain numpy ("lean
predictors"), behind the endpoint's default ``predict_fn`` (:mod:`mlcicd.serving.handlers`),
and behind a user's own handlers, which call the model's methods themselves: there
:func:`bind_methods` binds the compiled ``predict``, ``predict_proba``, ``predict_log_proba``
and ``decision_function`` on the model instance (the same object, its class untouched).

scikit-learn's ``predict`` spends most of a one-row call validating input and dispatching
(~150 µs for a LogisticRegression whose math takes ~2 µs; ~7 ms for a 100-tree forest that
a vectorised walk does in well under 1 ms). An endpoint validates its input once per request
anyway, so at model load :func:`compile_model` recognises the estimator and returns a
:class:`LeanPredictor` that repeats scikit-learn's arithmetic exactly, operation for operation:

    linear classifiers  predict/decision_function are LinearClassifierMixin's (LogisticRegression,
                        SGDClassifier, LinearSVC, Perceptron; RidgeClassifier, single-label)
    linear regressors   predict/_decision_function are LinearModel's, or overrides known to
                        only defer to them (LinearRegression, Ridge, Lasso, ElasticNet, …;
                        both in :mod:`.linear`)
    trees and forests   DecisionTree*, ExtraTree*, RandomForest*, ExtraTrees* (single output):
                        all trees flattened into one node table and walked level by level
                        (:mod:`.forest`)
    gradient boosting   GradientBoosting*, HistGradientBoosting* (numerical features): the
                        same walk, stage sums as scikit-learn adds them (:mod:`.boosting`)
    Pipeline            StandardScaler / MinMaxScaler steps in front of any of the above
                        (the scalers in :mod:`.linear`, the Pipeline here)

A method is recognised by identity (``type(model).predict is ForestClassifier.predict``), so
a subclass that overrides it is not mistaken for its parent. SVC, kNN, multi-output and
multilabel models are not compiled (yet): they keep ``model.predict``. Anything else, and any
input the lean path does not cover (not a 2-D numeric array, float32, NaN or infinity — except
for a bare HistGradientBoosting, which takes them as they are — the wrong width), goes to the
model's own ``predict``: answers never change, only their cost. So does a call of more rows
than the compiled code wins on (:data:`LEAN_ROWS`, per family: the tree walk costs more a row
than scikit-learn's, whose per-call cost a large call spreads thin).

Belt and braces: :func:`compile_model` runs the compiled predictor and the estimator side by
side on synthetic rows (random ones and rows made of the trees' own thresholds, where float32
rounding decides the branch; with NaN and ±inf holes for HistGradientBoosting) and keeps the
compiled one only if every answer is identical (:mod:`.verify`).

scikit-learn is imported only in this package (through :func:`.base.sk`), only when a model
is inspected (the model's environment has it if the model is an estimator); :mod:`.forest`
and :mod:`.boosting` are imported at the first model load, never at a request.
``MLCICD_FASTPATH=0`` turns the lean path off.

    __init__.py   compile_model, and register/lookup: each loaded model's predictor, by identity
    base.py       LeanPredictor (the compiled path, else model.predict); the shared types
    linear.py     linear classifiers and regressors; the StandardScaler/MinMaxScaler transforms
    forest.py     trees and forests: FlatForest, the flattened node table and its walk
    boosting.py   GradientBoosting* and HistGradientBoosting* on that walk
    verify.py     the side-by-side check against the estimator on synthetic rows
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any

from mlcicd.compiler.base import Array, Compiled, Lean, LeanPredictor, sk
from mlcicd.compiler.linear import (
    compile_linear_classifier,
    compile_linear_regressor,
    compile_scaler,
)
from mlcicd.compiler.verify import agrees, probe_rows

log = logging.getLogger("mlcicd.compiler")

# Above how many rows a call goes to the estimator's own method, by family (None: never).
# The compiled code wins by skipping scikit-learn's per-call cost, which a large call spreads
# thin, while its tree walk costs more a row than scikit-learn's; measured on the project's
# 2-core machine (docs/benchmarks.md, "crossover"), with a margin to the slower side.
LEAN_ROWS: dict[str, int | None] = {"linear": None, "trees": 384, "boosting": 192}


def compile_model(model: Any) -> LeanPredictor | None:
    """A verified lean predictor for ``model``, or None (then use ``model.predict``)."""
    if not enabled():
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
    width, lean, nonfinite, family = built
    predictor = LeanPredictor(model, width, lean, nonfinite, max_rows=LEAN_ROWS[family])
    if not agrees(predictor, model):
        log.warning("lean predictor for %s disagreed with predict; not used", type(model).__name__)
        return None
    log.info("lean predictor: %s", predictor.description)
    return predictor


def enabled() -> bool:
    """Is the lean path on (``MLCICD_FASTPATH`` is not 0/false/no/off)?"""
    return os.environ.get("MLCICD_FASTPATH", "1").strip().lower() not in ("0", "false", "no", "off")


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


_GETSTATE = "__getstate__"


def bind_methods(model: Any) -> tuple[str, ...]:
    """Answer ``model``'s own prediction methods through its lean predictor; which ones.

    For a user's ``predict_fn``, which calls ``model.predict`` / ``predict_proba`` /
    ``predict_log_proba`` / ``decision_function`` itself: the compiled methods are bound on
    the instance (its ``__dict__``, which attribute lookup reads before the class), so the
    handlers get the same object — ``isinstance`` holds, every other attribute is untouched —
    and each method still answers any input the compiled code does not cover through the
    class's own (:class:`LeanPredictor` calls those, never the instance's). Nothing is bound
    when the model is not compiled or the lean path is off.

    The bindings hold compiled closures, which cannot be pickled: a ``__getstate__`` bound
    beside them leaves them out, so a handler that pickles, joblib-dumps or deep-copies its
    model gets the plain estimator (answering the same, through scikit-learn).
    """
    predictor = register(model)
    if predictor is None or not hasattr(model, "__dict__"):
        return ()
    methods = predictor.methods
    for name in methods:
        vars(model)[name] = getattr(predictor, name)
    vars(model)["__getstate__"] = functools.partial(_state_without, model, (*methods, _GETSTATE))
    return methods


def _state_without(model: Any, bound: tuple[str, ...]) -> Any:
    """The model's state as its class gives it, minus what :func:`bind_methods` bound.

    ``object.__reduce_ex__`` (pickle, joblib, ``copy``) reads ``__getstate__`` from the
    instance, so this one, bound there, is asked instead of the class's."""
    class_getstate: Any = type(model).__getstate__
    state = class_getstate(model)
    if isinstance(state, dict):
        return {key: value for key, value in state.items() if key not in bound}
    return state


# -------------------------------------------------------------------------- recognition


def _build(model: Any) -> tuple[int, Lean, bool, str] | None:
    sklearn = sk("sklearn")
    if sklearn.get_config().get("transform_output", "default") != "default":
        return None
    width = getattr(model, "n_features_in_", None)
    if not isinstance(width, int) or width < 1:
        return None
    found = _compile(model)
    if found is None:
        return None
    lean, family = found
    # A bare HistGradientBoosting takes NaN and ±inf as they are (NaN follows each split's
    # missing_go_to_left); in a Pipeline the scalers reject inf, so there they go to predict.
    # (Its module is loaded if the model is one: no import for every other model.)
    hist = sys.modules.get("sklearn.ensemble._hist_gradient_boosting.gradient_boosting")
    nonfinite = hist is not None and isinstance(model, hist.BaseHistGradientBoosting)
    return width, lean, nonfinite, family


def _compile(model: Any) -> tuple[Lean, str] | None:
    """The compiled model and its family (a key of :data:`LEAN_ROWS`)."""
    Pipeline = sk("sklearn.pipeline").Pipeline
    if type(model) is Pipeline:
        return _compile_pipeline(model)
    from mlcicd.compiler import boosting, forest

    for compile_one, family in (
        (compile_linear_classifier, "linear"),
        (compile_linear_regressor, "linear"),
        (forest.compile_trees, "trees"),
        (boosting.compile_gradient_boosting, "boosting"),
        (boosting.compile_hist_gradient_boosting, "boosting"),
    ):
        result = compile_one(model)
        if result is not None:
            return result, family
    return None


def _compile_pipeline(pipe: Any) -> tuple[Lean, str] | None:
    # Called for exact Pipeline instances only (its predict is an available_if descriptor, so
    # there is no stable function to compare): transform each step, predict with the last.
    transforms: list[Compiled] = []
    names: list[str] = []
    for _, _, step in pipe._iter(with_final=False):
        transform = compile_scaler(step)
        if transform is None:
            return None
        transforms.append(transform)
        names.append(type(step).__name__)
    found = _compile(pipe.steps[-1][1])
    if found is None:
        return None
    final, family = found

    def run(X: Array) -> Array:
        for transform in transforms:
            X = transform(X)
        return X

    def after(method: Compiled | None) -> Compiled | None:
        if method is None:
            return None
        final_method = method

        def piped(X: Array) -> Array:
            return final_method(run(X))

        return piped

    predict = after(final.predict)
    assert predict is not None
    description = " → ".join([*names, final.description])
    return Lean(predict, after(final.proba), description, after(final.decision)), family


__all__ = [
    "LEAN_ROWS",
    "LeanPredictor",
    "bind_methods",
    "compile_model",
    "enabled",
    "lookup",
    "probe_rows",
    "register",
]
