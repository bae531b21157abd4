"""constraints.json suggested from a baseline, and the violations of current data against it."""

from __future__ import annotations

import random

import pytest

from mlcicd.monitor.constraints import check, suggest_constraints
from mlcicd.monitor.statistics import Cell, dataset_statistics
from tests.monitor.helpers import FEATURES, iris_rows

ROWS = iris_rows()
COLUMNS: list[list[Cell]] = [[row[i] for row in ROWS] for i in range(4)]
BASELINE = dataset_statistics(FEATURES, COLUMNS, len(ROWS))
CONSTRAINTS = suggest_constraints(BASELINE, drift_threshold=0.1, method="Robust")


def run(
    columns: dict[str, list[Cell]],
    rows: int,
    *,
    method: str = "Robust",
    extra: tuple[str, ...] = (),
    baseline: dict = BASELINE,
    constraints: dict = CONSTRAINTS,
) -> tuple[dict, list[dict[str, str]]]:
    features, violations = check(
        baseline, constraints, columns, rows, extra=extra, drift_threshold=0.1, method=method
    )
    return {f.name: f for f in features}, violations


def sample(n: int, seed: int = 1) -> dict[str, list[Cell]]:
    rows = random.Random(seed).sample(ROWS, n)
    return {name: [row[i] for row in rows] for i, name in enumerate(FEATURES)}


def test_suggested_constraints_have_sagemakers_shape() -> None:
    assert CONSTRAINTS["version"] == 0.0
    assert CONSTRAINTS["features"][0] == {
        "name": "sepal_length",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }
    config = CONSTRAINTS["monitoring_config"]
    assert config["distribution_constraints"] == {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    }
    assert config["datatype_check_threshold"] == 1.0 and config["evaluate_constraints"] == "Enabled"


def test_data_like_the_baseline_violates_nothing() -> None:
    features, violations = run(sample(60), 60)
    assert violations == []
    assert all(f.drift == 0.0 for f in features.values())  # within the noise of 60 rows
    assert features["petal_length"].mean == pytest.approx(sum(sample(60)["petal_length"]) / 60)  # type: ignore[arg-type]


def test_a_shifted_feature_drifts_and_is_named() -> None:
    columns = sample(60)
    std = BASELINE["features"][2]["numerical_statistics"]["std_dev"]
    columns["petal_length"] = [v + 5 * std for v in columns["petal_length"]]  # type: ignore[operator]
    features, violations = run(columns, 60)
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("petal_length", "baseline_drift_check")
    ]
    assert "exceeds threshold: 0.1" in violations[0]["description"]
    assert features["petal_length"].distance == pytest.approx(1.0, abs=0.05)
    assert features["petal_length"].checks == ["baseline_drift_check"]


def test_simple_reports_what_robust_calls_noise() -> None:
    columns = sample(12, seed=3)
    _, simple = run(columns, 12, method="Simple")
    _, robust = run(columns, 12, method="Robust")
    assert {v["constraint_check_type"] for v in simple} == {"baseline_drift_check"}
    assert robust == []


def test_missing_values_break_completeness() -> None:
    columns = sample(40)
    columns["sepal_width"][:10] = [None] * 10
    features, violations = run(columns, 40)
    assert ("sepal_width", "completeness_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in violations
    }
    assert features["sepal_width"].missing_rate == pytest.approx(0.25)
    assert "Observed: only 75.0% of the rows" in violations[0]["description"]


def test_strings_in_a_numeric_feature_break_the_data_type() -> None:
    columns = sample(40)
    columns["sepal_length"][0] = "five"
    _, violations = run(columns, 40)
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("sepal_length", "data_type_check")
    ]
    assert "Expected data type: Fractional" in violations[0]["description"]


def test_whole_numbers_conform_to_an_integral_baseline_whatever_their_spelling() -> None:
    baseline = dataset_statistics(["count"], [[1.0, 2.0, 3.0, 4.0]], 4)
    constraints = suggest_constraints(baseline, drift_threshold=0.1, method="Robust")
    assert constraints["features"][0]["inferred_type"] == "Integral"
    _, ok = run({"count": [2.0, 3.0]}, 2, baseline=baseline, constraints=constraints)
    _, bad = run({"count": [2.0, 3.5]}, 2, baseline=baseline, constraints=constraints)
    assert ok == [] and [v["constraint_check_type"] for v in bad] == ["data_type_check"]


def test_missing_and_extra_columns() -> None:
    columns = sample(30)
    del columns["petal_width"]
    features, violations = run(columns, 30, extra=("_c4",))
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("petal_width", "missing_column_check"),
        ("_c4", "extra_column_check"),
    ]
    assert features["_c4"].baseline_type is None


def test_string_features_check_their_domain_and_their_drift() -> None:
    colours = ["red"] * 50 + ["blue"] * 30 + ["green"] * 20
    baseline = dataset_statistics(["colour"], [colours], 100)
    constraints = suggest_constraints(baseline, drift_threshold=0.1, method="Robust")
    assert constraints["features"][0]["string_constraints"] == {"domains": ["blue", "green", "red"]}
    _, same = run(
        {"colour": ["red", "blue", "red", "green", "red"] * 4},
        20,
        baseline=baseline,
        constraints=constraints,
    )
    assert same == []
    _, changed = run(
        {"colour": ["black"] * 5 + ["blue"] * 15}, 20, baseline=baseline, constraints=constraints
    )
    assert {v["constraint_check_type"] for v in changed} == {
        "categorical_values_check",
        "baseline_drift_check",
    }
    assert "unknown values: black" in next(
        v["description"] for v in changed if "domain" in v["description"]
    )
