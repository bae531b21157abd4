"""constraints.json and constraint_violations.json, in SageMaker Model Monitor's shapes.

A baseline *suggests* constraints, per feature: its ``inferred_type``, its ``completeness``
(the share of rows where it is present), ``num_constraints.is_non_negative`` for numbers
(recorded, as SageMaker does; no violation type checks it), and ``string_constraints.domains``
(the values seen) for strings of at most ``MAX_DOMAIN`` distinct values. ``monitoring_config``
holds the thresholds.

Checking current data against them gives SageMaker's violations, each
``{feature_name, constraint_check_type, description}``:

    data_type_check           fewer than datatype_check_threshold (100 %) of the present values
                              are of the baseline's type (a whole number is also Fractional)
    completeness_check        the feature is present in a smaller share of rows than the baseline's
    baseline_drift_check      the distribution distance (statistics.py) exceeds comparison_threshold
    missing_column_check      no row has the feature at all
    extra_column_check        rows have a column the baseline has not
    categorical_values_check  fewer than domain_content_threshold (100 %) of a string feature's
                              values are in the baseline's domain
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlcicd.monitor import statistics as st

MAX_DOMAIN = 20  # distinct values up to which a string feature's values become its domain
DATATYPE_CHECK_THRESHOLD = 1.0
DOMAIN_CONTENT_THRESHOLD = 1.0
_EPSILON = 1e-9


def suggest_constraints(
    statistics: dict[str, Any], *, drift_threshold: float, method: str
) -> dict[str, Any]:
    """constraints.json for a baseline's statistics.json."""
    rows = statistics["dataset"]["item_count"]
    features = []
    for feature in statistics["features"]:
        kind = feature["inferred_type"]
        stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        present = stats.get("common", {}).get("num_present", 0)
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": kind,
            "completeness": present / rows if rows else 0.0,
        }
        if kind in st.NUMERIC_TYPES:
            entry["num_constraints"] = {
                "is_non_negative": feature["numerical_statistics"]["min"] >= 0
            }
        elif kind == st.STRING:
            values = st.categorical_counts(feature)
            if len(values) <= MAX_DOMAIN:
                entry["string_constraints"] = {"domains": sorted(values)}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": monitoring_config(drift_threshold, method),
    }


def monitoring_config(drift_threshold: float, method: str) -> dict[str, Any]:
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": DATATYPE_CHECK_THRESHOLD,
        "domain_content_threshold": DOMAIN_CONTENT_THRESHOLD,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": drift_threshold,
            "comparison_method": method,
            "categorical_comparison_threshold": drift_threshold,
            "categorical_drift_method": "LInfinity",
        },
    }


@dataclass
class FeatureCheck:
    """One feature of the current data beside its baseline: the figures a person reads."""

    name: str
    baseline_type: str | None  # None: a column the baseline has not
    inferred_type: str
    n: int  # present values
    missing_rate: float
    mean: float | None = None
    std: float | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    distance: float | None = None  # L-infinity distance to the baseline's distribution
    drift: float | None = None  # what is compared with the threshold (Robust: distance less noise)
    checks: list[str] = field(default_factory=list)  # the constraint_check_types it violates


def check(
    baseline_statistics: dict[str, Any],
    constraints: dict[str, Any],
    columns: Mapping[str, Sequence[st.Cell]],
    rows: int,
    *,
    extra: Sequence[str] = (),
    drift_threshold: float,
    method: str,
) -> tuple[list[FeatureCheck], list[dict[str, str]]]:
    """Check the current data — ``columns`` by baseline feature name (a feature no row has is
    absent), ``rows`` rows, ``extra`` columns the baseline has not — against a baseline.
    Returns each feature's figures and the violations (constraint_violations.json's list)."""
    base = {f["name"]: f for f in baseline_statistics["features"]}
    violations: list[dict[str, str]] = []
    results: list[FeatureCheck] = []

    def violate(result: FeatureCheck, kind: str, description: str) -> None:
        result.checks.append(kind)
        violations.append(
            {"feature_name": result.name, "constraint_check_type": kind, "description": description}
        )

    for constraint in constraints["features"]:
        name, kind = constraint["name"], constraint["inferred_type"]
        feature = base.get(name, {})
        base_numbers = feature.get("numerical_statistics", {})
        result = FeatureCheck(
            name=name,
            baseline_type=kind,
            inferred_type=st.UNKNOWN,
            n=0,
            missing_rate=1.0,
            baseline_mean=base_numbers.get("mean"),
            baseline_std=base_numbers.get("std_dev"),
        )
        results.append(result)
        if name not in columns:
            violate(
                result,
                "missing_column_check",
                f"There is no column {name} in the current data; the baseline has "
                f"{len(constraints['features'])} "
                f"features",
            )
            continue
        cells = columns[name]
        present = [c for c in cells if c is not None]
        result.n, result.inferred_type = len(present), st.infer_type(present)
        result.missing_rate = 1 - len(present) / rows if rows else 0.0
        values = st.numbers(present)
        if values.size:
            result.mean, result.std = float(values.mean()), float(values.std())
        completeness = len(present) / rows if rows else 1.0
        if completeness < constraint.get("completeness", 0.0) - _EPSILON:
            violate(
                result,
                "completeness_check",
                f"Data completeness requirement is not met. Expected completeness: "
                f"{_percent(constraint['completeness'])}. Observed: only "
                f"{_percent(completeness)} of the rows "
                f"have {name}",
            )
        if present and kind in (*st.NUMERIC_TYPES, st.STRING):
            match = sum(st.conforms(c, kind) for c in present) / len(present)
            if match < DATATYPE_CHECK_THRESHOLD - _EPSILON:
                violate(
                    result,
                    "data_type_check",
                    f"Data type match requirement is not met. Expected data type: {kind}, "
                    "expected match: "
                    f"{_percent(DATATYPE_CHECK_THRESHOLD)}. Observed: only {_percent(match)} of "
                    "the values are "
                    f"{kind}",
                )
        _drift(result, feature, kind, present, values, drift_threshold, method, violate)
        domain = constraint.get("string_constraints", {}).get("domains")
        if kind == st.STRING and domain and present:
            known = set(domain)
            inside = sum(st.text(c) in known for c in present) / len(present)
            if inside < DOMAIN_CONTENT_THRESHOLD - _EPSILON:
                unknown = sorted({st.text(c) for c in present} - known)
                violate(
                    result,
                    "categorical_values_check",
                    f"Only {_percent(inside)} of the values are in the baseline's domain; "
                    "unknown values: "
                    f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}",
                )
    for name in extra:
        result = FeatureCheck(
            name=name, baseline_type=None, inferred_type=st.UNKNOWN, n=0, missing_rate=0.0
        )
        results.append(result)
        violate(
            result,
            "extra_column_check",
            f"There is a column {name} in the current data that the baseline has not; the "
            "baseline has "
            f"{len(constraints['features'])} features",
        )
    return results, violations


def _drift(
    result: FeatureCheck,
    feature: dict[str, Any],
    kind: str,
    present: Sequence[st.Cell],
    values: st.FArray,
    threshold: float,
    method: str,
    violate: Any,
) -> None:
    if kind in st.NUMERIC_TYPES:
        distribution = st.sketch_distribution(feature)
        if distribution is None or not values.size:
            return
        result.distance = st.cdf_distance(distribution, values)
        base_n = float(distribution[1][-1])
        noise = st.critical_distance(base_n, float(values.size)) if method == "Robust" else 0.0
        result.drift = max(0.0, result.distance - noise)
    elif kind == st.STRING:
        counts = st.categorical_counts(feature)
        if not counts or not present:
            return
        result.distance = result.drift = st.categorical_distance(
            counts, Counter(st.text(c) for c in present if c is not None)
        )
    if result.drift is not None and result.distance is not None and result.drift > threshold:
        how = (
            f"L-infinity distance {result.distance:.4g} less "
            f"{result.distance - result.drift:.4g} of sampling "
            f"noise for {values.size} values"
            if kind in st.NUMERIC_TYPES and method == "Robust"
            else "L-infinity distance between the distributions"
        )
        violate(
            result,
            "baseline_drift_check",
            f"Baseline drift distance: {result.drift:.4g} exceeds threshold: {threshold:g} ({how})",
        )


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def violations_document(violations: list[dict[str, str]]) -> dict[str, Any]:
    """constraint_violations.json."""
    return {"violations": violations}


__all__ = [
    "FeatureCheck",
    "check",
    "monitoring_config",
    "suggest_constraints",
    "violations_document",
]
