"""The latency histogram's quantiles against numpy's on known samples: four buckets per
octave, so an estimate is never more than one bucket (a factor 2^(1/4)) from the sample at its
rank, and on a smooth, dense distribution within five percent of the exact quantile. And
retired.json, folded into by two supervisors at once during a handover."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcicd.serving.metrics import BOUNDS_US, PERCENTILES, VariantMetrics, quantile, read_all

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


FOLDS = 300  # per process: enough that two unlocked read-modify-writes meet every time
_FOLDER = """
import sys
from pathlib import Path
from mlcicd.serving.metrics import fold_worker
sys.stdin.readline()  # both are started: fold at once
for i in range({folds}):
    fold_worker(Path(sys.argv[1]), f"{{sys.argv[2]}}{{i}}")
"""


@pytest.mark.integration  # processes
def test_two_supervisors_folding_at_once_lose_no_count(tmp_path: Path) -> None:
    """During a handover the old supervisor's workers drain while the new one's may exit:
    both fold into retired.json, and no fold may undo the other's (a counter going back)."""
    snapshot = {"series": {"cfg|AllTraffic": {"Invocations": 1}}, "counters": {"Shed": 1}}
    for prefix in ("g1-", "g2-"):
        for i in range(FOLDS):
            (tmp_path / f"w-{prefix}{i}.json").write_text(json.dumps(snapshot))
    folders = [
        subprocess.Popen(
            [sys.executable, "-c", _FOLDER.format(folds=FOLDS), str(tmp_path), prefix],
            stdin=subprocess.PIPE,
        )
        for prefix in ("g1-", "g2-")
    ]
    for folder in folders:
        assert folder.stdin is not None
        folder.stdin.write(b"go\n")
        folder.stdin.close()
    assert [folder.wait(timeout=120) for folder in folders] == [0, 0]
    assert list(tmp_path.glob("w-*.json")) == []
    summed = read_all(tmp_path)
    assert summed["series"]["cfg|AllTraffic"]["Invocations"] == 2 * FOLDS
    assert summed["counters"] == {"Shed": 2 * FOLDS}
