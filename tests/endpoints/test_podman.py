"""The container backend's bookkeeping that needs no podman (its containers are
tests/containers')."""

from __future__ import annotations

from pathlib import Path

from mlcicd.endpoints.podman import RECORD_FILE, PodmanEndpointBackend
from mlcicd.fsutil import atomic_write_json


def test_list_passes_over_a_directory_that_is_no_endpoints(tmp_path: Path) -> None:
    """As the local backend does: a directory whose name breaks the rule is nothing it
    deployed, and listing must not fail on it."""
    stray = tmp_path / "endpoints" / "not an endpoint"
    stray.mkdir(parents=True)
    atomic_write_json(stray / RECORD_FILE, {"container": "x", "generation": 1})
    assert PodmanEndpointBackend(tmp_path / "endpoints").list() == []
