"""Belt and braces: a compiled predictor is kept only if it answers as the estimator does.

:func:`agrees` runs both side by side on synthetic rows (:func:`probe_rows`: random ones
around the data's scale, and rows made of the trees' own thresholds, where float32 rounding
decides the branch; with NaN and ±inf holes for HistGradientBoosting).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mlcicd.compiler.base import Array, LeanPredictor, own_method

log = logging.getLogger("mlcicd.compiler")

PROBE_ROWS = 64


def agrees(predictor: LeanPredictor, model: Any) -> bool:
    """Every compiled method against the estimator's own (:func:`.base.own_method`): labels
    and decision values identical, probabilities (and their logs, compared as probabilities)
    within 1e-12."""
    rows = probe_rows(model, predictor.n_features)
    batches = [rows, rows[:1]]
    if predictor.allow_nonfinite:
        holes = rows.copy()
        holes[np.random.default_rng(0x401E).random(holes.shape) < 0.3] = np.nan
        holes[::5, 0] = np.inf
        holes[2::5, -1] = -np.inf
        batches.append(holes)
    try:
        _forget_unanswered(predictor, rows[:1])
        methods = predictor.methods
        for batch in batches:
            if not _same(predictor._compiled(batch), own_method(model, "predict"), batch):
                return False
            if "decision_function" in methods:
                own = own_method(model, "decision_function")
                assert predictor._decision is not None
                if not _same(predictor._decision(batch), own, batch):
                    return False
            if predictor._proba is None or len(batch) == 1:
                continue
            mine = predictor._proba(batch)
            if not _close(mine, own_method(model, "predict_proba"), batch):
                return False
            if "predict_log_proba" in methods:
                own = own_method(model, "predict_log_proba")
                with np.errstate(divide="ignore"):  # log(0): -inf, for both
                    if not _close(np.exp(np.log(mine)), _exp(own), batch):
                        return False
        return True
    except Exception:
        log.debug("probing the lean predictor failed", exc_info=True)
        return False


def _forget_unanswered(predictor: LeanPredictor, row: Array) -> None:
    """Drop the optional methods the estimator has but cannot answer: a Pipeline defines
    ``predict_log_proba`` whatever its last step, which may have none
    (HistGradientBoosting)."""
    for name in ("predict_log_proba", "decision_function"):
        own = predictor._own[name]
        if own is None:
            continue
        try:
            with np.errstate(divide="ignore"):
                own(row)
        except AttributeError:
            predictor._own[name] = None


def _same(ours: Array, method: Any, batch: Array) -> bool:
    theirs = np.asarray(method(batch))
    return ours.shape == theirs.shape and bool(np.array_equal(ours, theirs))


def _close(ours: Array, method: Any, batch: Array) -> bool:
    theirs = np.asarray(method(batch))
    return ours.shape == theirs.shape and bool(np.allclose(ours, theirs, rtol=0, atol=1e-12))


def _exp(method: Any) -> Any:
    def exp(batch: Array) -> Array:
        out: Array = np.exp(np.asarray(method(batch)))
        return out

    return exp


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


__all__ = ["PROBE_ROWS", "agrees", "probe_rows"]
