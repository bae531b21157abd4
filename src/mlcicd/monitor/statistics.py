"""statistics.json: per-feature statistics in SageMaker Model Monitor's shape, and the
distribution distance between two of them.

A dataset is a list of columns of cells. A cell is a number (``float``), a string, or None
(missing). A number is *Integral* when it is whole, whatever its spelling (``3`` and ``3.0``
alike), else *Fractional*; a column's ``inferred_type`` is String if any of its present cells
is a string, else Fractional if any number is fractional, else Integral (Unknown when nothing
is present) — the order Deequ, under SageMaker's analyzer, infers types in.

Numerical statistics are SageMaker's: ``mean``, ``sum``, ``std_dev`` (the population standard
deviation), ``min``, ``max``, and the distribution as 10 equal-width buckets plus a KLL
quantile sketch (``c`` 0.64, ``k`` 2048: up to 2,048 values the sketch holds them all, so it
is exact; beyond, levels are compacted, level ``h`` weighing ``2**h``). String statistics are
``distinct_count`` and the categorical buckets (value, count).

The drift distance of a numerical feature is the L-infinity distance between the baseline's
cumulative distribution (read from its sketch) and the current data's: the largest gap
between the two CDFs, i.e. the two-sample Kolmogorov-Smirnov statistic (SageMaker's
``Simple``). ``Robust`` takes off the statistic's critical value at 99 % for the two sample
sizes, so that a small sample's noise is not reported as drift. A string feature's distance
is the L-infinity distance between the category frequencies (SageMaker's ``LInfinity``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

Cell = float | str | None

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)
BUCKETS = 10  # SageMaker materialises the distribution in 10 buckets
KLL_K, KLL_C = 2048, 0.64
ROBUST_ALPHA = 0.01
# c(alpha) of the two-sample Kolmogorov-Smirnov test: D > c * sqrt((n + m) / (n m)) rejects.
KS_COEFFICIENT = math.sqrt(-math.log(ROBUST_ALPHA / 2) / 2)

FArray = np.ndarray[Any, np.dtype[np.float64]]


# --- cells ---------------------------------------------------------------------------------


def to_cell(value: Any) -> Cell:
    """A value from a CSV cell or a JSON document as a cell: a finite number, a string, or
    None for missing (None, an empty string, NaN). Infinities and nested values are strings."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        if math.isfinite(number):
            return number
        return None if math.isnan(number) else str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        if math.isfinite(number):
            return number
        return None if math.isnan(number) else text
    return str(value)


def cell_type(cell: float | str) -> str:
    if isinstance(cell, str):
        return STRING
    return INTEGRAL if cell.is_integer() else FRACTIONAL


def infer_type(cells: Iterable[Cell]) -> str:
    seen = {cell_type(c) for c in cells if c is not None}
    for kind in (STRING, FRACTIONAL, INTEGRAL):
        if kind in seen:
            return kind
    return UNKNOWN


def conforms(cell: float | str, expected: str) -> bool:
    """Whether a present cell is of ``expected`` type; a whole number is also Fractional, and
    anything can be a String."""
    if expected == STRING:
        return True
    if isinstance(cell, str):
        return False
    return expected == FRACTIONAL or cell.is_integer()


def text(cell: float | str) -> str:
    """A cell as the text a string feature counts: whole numbers without ``.0``."""
    if isinstance(cell, str):
        return cell
    return str(int(cell)) if cell.is_integer() and abs(cell) < 2**63 else repr(cell)


def numbers(cells: Iterable[Cell]) -> FArray:
    return np.fromiter((c for c in cells if isinstance(c, float)), dtype=np.float64)


# --- statistics.json ----------------------------------------------------------------------


def dataset_statistics(
    names: Sequence[str], columns: Sequence[Sequence[Cell]], item_count: int
) -> dict[str, Any]:
    """statistics.json of a dataset of ``item_count`` rows, one feature per name."""
    return {
        "version": 0.0,
        "dataset": {"item_count": item_count},
        "features": [
            feature_statistics(name, cells) for name, cells in zip(names, columns, strict=True)
        ],
    }


def feature_statistics(name: str, cells: Sequence[Cell]) -> dict[str, Any]:
    present = [c for c in cells if c is not None]
    common = {"num_present": len(present), "num_missing": len(cells) - len(present)}
    kind = infer_type(present)
    if kind in NUMERIC_TYPES:
        return {
            "name": name,
            "inferred_type": kind,
            "numerical_statistics": numerical(numbers(present), common),
        }
    counts = Counter(text(c) for c in present)
    strings: dict[str, Any] = {"common": common, "distinct_count": float(len(counts))}
    if counts:
        buckets = [
            {"value": value, "count": float(n)}
            for value, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
        ]
        strings["distribution"] = {"categorical": {"buckets": buckets}}
    return {"name": name, "inferred_type": kind, "string_statistics": strings}


def numerical(values: FArray, common: dict[str, int]) -> dict[str, Any]:
    low, high = float(values.min()), float(values.max())
    return {
        "common": common,
        "mean": float(values.mean()),
        "sum": float(values.sum()),
        "std_dev": float(values.std()),
        "min": low,
        "max": high,
        "distribution": {
            "kll": {
                "buckets": buckets(values, low, high),
                "sketch": {
                    "parameters": {"c": KLL_C, "k": float(KLL_K)},
                    "data": kll_levels(values),
                },
            }
        },
    }


def buckets(values: FArray, low: float, high: float) -> list[dict[str, float]]:
    """``BUCKETS`` equal-width buckets from min to max, each holding ``lower <= x < upper``
    (the last one its upper bound too); one bucket when every value is the same."""
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    edges = np.linspace(low, high, BUCKETS + 1)
    counts, _ = np.histogram(values, bins=edges)
    return [
        {
            "lower_bound": float(edges[i]),
            "upper_bound": float(edges[i + 1]),
            "count": float(counts[i]),
        }
        for i in range(BUCKETS)
    ]


def kll_levels(values: FArray, k: int = KLL_K, c: float = KLL_C) -> list[list[float]]:
    """A KLL sketch's levels (level 0 first, each sorted); an item at level ``h`` stands for
    ``2**h`` values. Compaction is deterministic (alternating offsets), so the same data
    gives the same sketch, and the same bytes."""
    levels: list[FArray] = [np.sort(values)]
    flips = 0
    while True:
        height = len(levels)
        full = [
            h
            for h in range(height)
            if levels[h].size > max(2, math.ceil(k * c ** (height - 1 - h)))
        ]
        if not full:
            return [level.tolist() for level in levels]
        h = full[0]
        items = np.sort(levels[h])
        keep, body = (items[-1:], items[:-1]) if items.size % 2 else (items[:0], items)
        promoted = body[flips % 2 :: 2]
        flips += 1
        levels[h] = keep
        if h + 1 == height:
            levels.append(promoted)
        else:
            levels[h + 1] = np.sort(np.concatenate([levels[h + 1], promoted]))


def sketch_distribution(feature: dict[str, Any]) -> tuple[FArray, FArray] | None:
    """A numerical feature's sketch as sorted items and their cumulative weights."""
    try:
        levels = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    except (KeyError, TypeError):
        return None
    items = [np.asarray(level, dtype=np.float64) for level in levels]
    weights = [np.full(level.size, 2.0**h) for h, level in enumerate(items)]
    if not items or sum(level.size for level in items) == 0:
        return None
    values, weight = np.concatenate(items), np.concatenate(weights)
    order = np.argsort(values, kind="stable")
    return values[order], np.cumsum(weight[order])


# --- distances ------------------------------------------------------------------------------


def cdf_distance(baseline: tuple[FArray, FArray], current: FArray) -> float:
    """The L-infinity distance between the baseline's CDF (sorted items, cumulative weights)
    and the empirical CDF of ``current``: both are step functions, so the largest gap is at
    one of their steps."""
    items, cumulative = baseline
    values = np.sort(current)
    points = np.union1d(items, values)
    at_base = np.searchsorted(items, points, side="right")
    base_cdf = np.where(at_base > 0, cumulative[np.maximum(at_base - 1, 0)], 0.0) / cumulative[-1]
    current_cdf = np.searchsorted(values, points, side="right") / values.size
    return float(np.max(np.abs(base_cdf - current_cdf)))


def critical_distance(n: float, m: float) -> float:
    """The two-sample Kolmogorov-Smirnov critical value at ``1 - ROBUST_ALPHA`` for samples of
    ``n`` and ``m`` values: distances below it are within sampling noise."""
    return KS_COEFFICIENT * math.sqrt((n + m) / (n * m))


def categorical_distance(baseline: dict[str, float], current: Counter[str]) -> float:
    """The L-infinity distance between two category frequency distributions."""
    base_total, current_total = sum(baseline.values()), sum(current.values())
    if not base_total or not current_total:
        return 0.0
    return max(
        abs(baseline.get(value, 0.0) / base_total - current.get(value, 0) / current_total)
        for value in set(baseline) | set(current)
    )


def categorical_counts(feature: dict[str, Any]) -> dict[str, float]:
    try:
        found = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    except (KeyError, TypeError):
        return {}
    return {str(b["value"]): float(b["count"]) for b in found}


__all__ = [
    "FRACTIONAL",
    "INTEGRAL",
    "NUMERIC_TYPES",
    "STRING",
    "UNKNOWN",
    "Cell",
    "categorical_counts",
    "categorical_distance",
    "cdf_distance",
    "cell_type",
    "conforms",
    "critical_distance",
    "dataset_statistics",
    "feature_statistics",
    "infer_type",
    "kll_levels",
    "numbers",
    "sketch_distribution",
    "text",
    "to_cell",
]
