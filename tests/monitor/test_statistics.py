"""statistics.json and the drift distances, against reference calculations in plain Python
(no numpy, no scipy): the statistics module, the definitions, and brute force."""

from __future__ import annotations

import math
import random
import statistics as py
from collections import Counter

import numpy as np
import pytest

from mlcicd.monitor import statistics as st

RANDOM = random.Random(7)
NORMAL = [RANDOM.gauss(5.0, 2.0) for _ in range(500)]


def ecdf(values: list[float], x: float) -> float:
    return sum(v <= x for v in values) / len(values)


def ks_brute_force(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic, by its definition."""
    return max(abs(ecdf(a, x) - ecdf(b, x)) for x in a + b)


def weighted_cdf(levels: list[list[float]], x: float) -> float:
    total = sum(len(level) * 2**h for h, level in enumerate(levels))
    return sum(2**h for h, level in enumerate(levels) for v in level if v <= x) / total


def test_numerical_statistics_match_the_definitions() -> None:
    feature = st.feature_statistics("x", [*NORMAL, None, None])
    stats = feature["numerical_statistics"]
    assert feature["inferred_type"] == "Fractional"
    assert stats["common"] == {"num_present": 500, "num_missing": 2}
    assert stats["mean"] == pytest.approx(py.fmean(NORMAL), rel=1e-12)
    assert stats["sum"] == pytest.approx(math.fsum(NORMAL), rel=1e-12)
    assert stats["std_dev"] == pytest.approx(
        py.pstdev(NORMAL), rel=1e-12
    )  # the population's, as Deequ's
    assert (stats["min"], stats["max"]) == (min(NORMAL), max(NORMAL))


def test_ten_equal_width_buckets_hold_every_value_once() -> None:
    buckets = st.feature_statistics("x", NORMAL)["numerical_statistics"]["distribution"]["kll"][
        "buckets"
    ]
    low, high = min(NORMAL), max(NORMAL)
    width = (high - low) / 10
    assert len(buckets) == 10
    for i, bucket in enumerate(buckets):
        assert bucket["lower_bound"] == pytest.approx(low + i * width)
        assert bucket["upper_bound"] == pytest.approx(low + (i + 1) * width)
        last = i == 9
        expected = sum(
            bucket["lower_bound"] <= v < bucket["upper_bound"] or (last and v == high)
            for v in NORMAL
        )
        assert bucket["count"] == expected
    assert sum(b["count"] for b in buckets) == len(NORMAL)


def test_a_constant_feature_has_one_bucket() -> None:
    stats = st.feature_statistics("x", [2.0, 2.0, 2.0])["numerical_statistics"]
    assert stats["distribution"]["kll"]["buckets"] == [
        {"lower_bound": 2.0, "upper_bound": 2.0, "count": 3.0}
    ]
    assert stats["std_dev"] == 0.0


def test_up_to_k_values_the_sketch_holds_them_all() -> None:
    sketch = st.feature_statistics("x", NORMAL)["numerical_statistics"]["distribution"]["kll"][
        "sketch"
    ]
    assert sketch["parameters"] == {"c": 0.64, "k": 2048.0}
    assert sketch["data"] == [sorted(NORMAL)]


def test_beyond_k_the_sketch_keeps_the_weight_and_the_quantiles() -> None:
    values = [RANDOM.uniform(0, 1) for _ in range(20_000)]
    levels = st.kll_levels(np.asarray(values), k=200)
    assert len(levels) > 1
    total = sum(len(level) * 2**h for h, level in enumerate(levels))
    assert abs(total - len(values)) <= len(levels)  # an odd level keeps one item back
    assert sum(len(level) for level in levels) < 1000
    for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        x = sorted(values)[int(q * len(values))]
        assert weighted_cdf(levels, x) == pytest.approx(q, abs=0.03)
    assert (
        st.kll_levels(np.asarray(values), k=200) == levels
    )  # deterministic: same data, same sketch


def test_types_are_inferred_as_deequ_does() -> None:
    assert st.infer_type([1.0, 2.0, None]) == "Integral"
    assert st.infer_type([1.0, 2.5]) == "Fractional"
    assert st.infer_type([1.0, "red"]) == "String"
    assert st.infer_type([None, None]) == "Unknown"
    assert [st.to_cell(v) for v in ("3", " 3.0 ", "", "nan", "inf", "red", 4, True, None, [1])] == [
        3.0,
        3.0,
        None,
        None,
        "inf",
        "red",
        4.0,
        "true",
        None,
        "[1]",
    ]
    assert (
        st.conforms(3.0, "Fractional")
        and not st.conforms(3.5, "Integral")
        and st.conforms("x", "String")
    )


def test_string_features_count_their_values() -> None:
    feature = st.feature_statistics("colour", ["red", "blue", "red", None, 3.0])
    strings = feature["string_statistics"]
    assert feature["inferred_type"] == "String"
    assert strings["common"] == {"num_present": 4, "num_missing": 1}
    assert strings["distinct_count"] == 3
    counted = {b["value"]: b["count"] for b in strings["distribution"]["categorical"]["buckets"]}
    assert counted == dict(Counter(["red", "blue", "red", "3"]))


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0, 5.0])
def test_the_cdf_distance_is_the_kolmogorov_smirnov_statistic(shift: float) -> None:
    current = [RANDOM.gauss(5.0 + shift * 2.0, 2.0) for _ in range(120)]
    feature = st.feature_statistics("x", NORMAL)
    distribution = st.sketch_distribution(feature)
    assert distribution is not None
    assert st.cdf_distance(distribution, np.asarray(current)) == pytest.approx(
        ks_brute_force(NORMAL, current)
    )


def test_the_cdf_distance_reads_a_compacted_sketch_by_its_weights() -> None:
    values = [RANDOM.uniform(0, 1) for _ in range(5000)]
    current = [RANDOM.uniform(0.5, 1.5) for _ in range(300)]
    levels = st.kll_levels(np.asarray(values), k=100)
    points = sorted({*(v for level in levels for v in level), *current})
    reference = max(abs(weighted_cdf(levels, x) - ecdf(current, x)) for x in points)
    feature = {"numerical_statistics": {"distribution": {"kll": {"sketch": {"data": levels}}}}}
    distribution = st.sketch_distribution(feature)
    assert distribution is not None
    assert st.cdf_distance(distribution, np.asarray(current)) == pytest.approx(reference)
    assert reference == pytest.approx(ks_brute_force(values, current), abs=0.05)


def test_the_robust_margin_is_the_ks_critical_value_at_99_percent() -> None:
    # c(0.01) = sqrt(-ln(0.005) / 2) = 1.6276 (the table value is 1.63).
    assert st.critical_distance(150, 50) == pytest.approx(
        1.6276 * math.sqrt(200 / (150 * 50)), rel=1e-4
    )


def test_categorical_distance_is_the_largest_frequency_gap() -> None:
    baseline = {"red": 50.0, "blue": 30.0, "green": 20.0}
    current = Counter({"red": 10, "blue": 10, "black": 5})
    gaps = {"red": abs(0.5 - 0.4), "blue": abs(0.3 - 0.4), "green": 0.2, "black": 0.2}
    assert st.categorical_distance(baseline, current) == pytest.approx(max(gaps.values()))
    assert st.categorical_distance(baseline, Counter()) == 0.0


def test_statistics_json_has_sagemakers_shape() -> None:
    document = st.dataset_statistics(["a", "b"], [[1.0, 2.0], ["x", None]], 2)
    assert document["version"] == 0.0 and document["dataset"] == {"item_count": 2}
    a, b = document["features"]
    assert set(a) == {"name", "inferred_type", "numerical_statistics"}
    assert set(a["numerical_statistics"]) == {
        "common",
        "mean",
        "sum",
        "std_dev",
        "min",
        "max",
        "distribution",
    }
    assert set(b) == {"name", "inferred_type", "string_statistics"}
