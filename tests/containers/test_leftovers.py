"""The container tests' leftover check sees the test's own containers only: under pytest-xdist,
or with two checkouts testing at once, another test's containers exist meanwhile, and
removing them (as a machine-wide listing did) breaks that test."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.containers.conftest import containers_mounting


def create(base_image: str, mounted: Path) -> str:
    """A container (created, never started) mounting ``mounted``, named as mlcicd names them."""
    mounted.mkdir(parents=True, exist_ok=True)
    name = f"mlcicd-leftover-{uuid.uuid4().hex[:12]}"
    volume = f"{mounted}:/opt/ml/model:ro"
    subprocess.run(
        ["podman", "create", "--name", name, "--volume", volume, base_image, "true"],
        check=True,
        capture_output=True,
    )
    return name


def test_only_the_containers_mounting_from_the_tests_directory_are_its_own(
    base_image: str, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    other = tmp_path.parent / f"{tmp_path.name}-other-session"
    made: list[str] = []
    try:
        made.append(create(base_image, other))
        made.append(create(base_image, mine / "endpoints" / "iris" / "model"))
        assert containers_mounting(mine) == [made[1]]
        assert containers_mounting(other) == [made[0]]
    finally:
        subprocess.run(["podman", "rm", "--force", *made], capture_output=True)
