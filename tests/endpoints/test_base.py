"""What a person reads of an endpoint, whichever backend described it; the name rule
every backend holds to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlcicd.endpoints.base import EndpointConfig, ProductionVariant, check_name, scaling_lines
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.endpoints.podman import PodmanEndpointBackend
from mlcicd.errors import EndpointError
from mlcicd.images.podman import PODMAN_ENV

RULE = "SageMaker's rule is 1-63 letters, digits and hyphens, starting and ending with a letter"
# SageMaker refuses each; "iris\n" passed a ``$``-anchored rule, and a space reached podman.
BAD_NAMES = ["my endpoint", "iris\n", "-iris", "iris-", "iris_1", "a" * 64, "../iris", ""]


def test_the_scaling_reads_as_workers_rate_and_last_change() -> None:
    lines = dict(
        scaling_lines(
            {
                "min_instances": 1,
                "max_instances": 4,
                "target_invocations_per_instance": 600.0,
                "current_instances": 3,
                "desired_instances": 3,
                "invocations_per_instance": 512.5,
                "last_change": {"at": "T", "from": 1, "to": 3, "reason": "1500 > target 600"},
            }
        )
    )
    assert lines == {
        "workers": "3 (min 1, max 4, wanted 3)",
        "invocations/worker": "512.5 a minute (target 600)",
        "last scaling": "T: 1 → 3, 1500 > target 600",
    }


def test_no_policy_no_lines() -> None:
    assert scaling_lines(None) == []


def test_the_name_rule_is_sagemakers() -> None:
    assert check_name("iris") == "iris"
    assert check_name("a--b-" + "c" * 58) == "a--b-" + "c" * 58  # 63 characters
    for bad in BAD_NAMES:
        with pytest.raises(EndpointError) as refused:
            check_name(bad)
        assert refused.value.message == f"endpoint name {bad!r} is not valid: {RULE} or digit"


@pytest.mark.parametrize("backend", [LocalEndpointBackend, PodmanEndpointBackend])
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_every_backend_refuses_a_name_sagemaker_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: type, bad: str
) -> None:
    """Before anything is made of it: no directory, and podman never looked for (there is
    none on PATH here, and the image does not exist)."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    monkeypatch.delenv(PODMAN_ENV, raising=False)
    nowhere = tmp_path / "nowhere"
    variant = ProductionVariant("AllTraffic", nowhere, "0" * 64, nowhere, "inference.py", nowhere)
    endpoints = backend(tmp_path / "endpoints")
    if backend is PodmanEndpointBackend:
        endpoints = PodmanEndpointBackend(tmp_path / "endpoints", "localhost/never-built")
    with pytest.raises(
        EndpointError, match=re.escape(f"endpoint name {bad!r} is not valid: {RULE}")
    ):
        endpoints.deploy(EndpointConfig("cfg-1", bad, (variant,)))
    with pytest.raises(EndpointError, match=f"endpoint config name 'a b' is not valid: {RULE}"):
        endpoints.deploy(EndpointConfig("a b", "iris", (variant,)))
    assert not (tmp_path / "endpoints").exists()
