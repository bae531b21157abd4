"""The latency histogram's quantiles against numpy's on known samples: four buckets per
octave, so an estimate is never more than one bucket (a factor 2^(1/4)) from the sample at its
rank, and on a smooth, dense distribution within five percent of the exact quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcicd.serving.metrics import BOUNDS_US, PERCENTILES, VariantMetrics, quantile

ONE_BUCKET = 2 ** (1 / 4)


def histogram(seconds: np.ndarray) -> dict[str, int]:
    metrics = VariantMetrics()
    for value in seconds:
        metrics.observe(float(value), 0.0)
    buckets: dict[str, int] = metrics.to_dict()["ModelLatency"]
    assert sum(buckets.values()) == len(seconds)
    return buckets


RNG = np.random.default_rng(15)
SAMPLES = {
    "lognormal": RNG.lognormal(math.log(2e-3), 0.8, 20_000),
    "exponential": RNG.exponential(3e-3, 20_000),
    "uniform": RNG.uniform(1e-3, 5e-3, 20_000),
    "bimodal": np.concatenate([RNG.normal(1e-3, 1e-4, 15_000), RNG.normal(2e-2, 2e-3, 5_000)]),
    "fifty": RNG.lognormal(math.log(2e-3), 0.8, 50),
    "one": np.array([7e-3]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_quantile_is_within_one_bucket_of_the_sample_at_its_rank(name: str) -> None:
    samples = np.sort(SAMPLES[name] * 1e6)  # microseconds, as the histogram counts
    buckets = histogram(SAMPLES[name])
    for _, q in PERCENTILES:
        estimate = quantile(buckets, q)
        assert estimate is not None
        at_rank = samples[max(math.ceil(q * len(samples)) - 1, 0)]
        assert at_rank / ONE_BUCKET <= estimate <= at_rank * ONE_BUCKET, (q, estimate, at_rank)


@pytest.mark.parametrize("name", ["lognormal", "exponential"])
def test_on_a_smooth_dense_distribution_a_quantile_is_within_five_percent(name: str) -> None:
    buckets = histogram(SAMPLES[name])
    for _, q in PERCENTILES:
        exact = float(np.quantile(SAMPLES[name] * 1e6, q))
        assert quantile(buckets, q) == pytest.approx(exact, rel=0.05), q


def test_empty_and_out_of_range() -> None:
    assert quantile({}, 0.5) is None
    assert quantile({"3": 0}, 0.5) is None
    # Beyond the last bound (about 67 s) the estimate stays at that bound, never infinite.
    assert quantile(histogram(np.array([1000.0])), 0.99) == BOUNDS_US[-1]
