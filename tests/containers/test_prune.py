"""mlcicd image prune: the old images of a pipeline go, the ones in use stay."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.images.prune import prune_images
from tests.containers.conftest import write

pytestmark = pytest.mark.integration


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def pipeline(base_image: str, tmp_path: Path) -> Iterator[str]:
    """A pipeline of its own (nothing else on the machine has its images) with four images,
    v1 oldest, each its own image (a label of its own; created at a fixed time)."""
    name = f"prune-{uuid.uuid4().hex[:8]}"
    for n in range(1, 5):
        context = write(tmp_path / f"ctx{n}" / "Containerfile", f"FROM {base_image}\nLABEL n={n}\n")
        podman(
            "build",
            "--quiet",
            "--timestamp",
            str(1_700_000_000 + n * 1000),
            "--tag",
            f"localhost/mlcicd/{name}:v{n}",
            str(context.parent),
        )
    yield name
    for n in range(1, 5):
        subprocess.run(
            ["podman", "rmi", "--force", f"localhost/mlcicd/{name}:v{n}"], capture_output=True
        )


def image_id(tag: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", tag).strip()


def test_prune_keeps_the_newest_and_what_is_in_use(
    pipeline: str, base_image: str, tmp_path: Path
) -> None:
    repo = f"localhost/mlcicd/{pipeline}"
    state = tmp_path / "state"
    write(
        state / "container-endpoints" / "iris" / "endpoint.json",
        json.dumps({"image_id": f"sha256:{image_id(f'{repo}:v1')}"}),
    )
    container = f"mlcicd-prune-test-{pipeline}"
    podman("create", "--name", container, f"{repo}:v2", "true")
    try:
        planned = prune_images(pipeline, state, keep=1, dry_run=True)
        assert planned.removed == [f"{repo}:v3"]
        assert podman("image", "exists", f"{repo}:v3") == ""  # a dry run removes nothing

        pruned = prune_images(pipeline, state, keep=1)
    finally:
        podman("rm", "--force", container)
    assert pruned.removed == [f"{repo}:v3"] and pruned.failed == {}
    assert pruned.kept == {
        f"{repo}:v4": "one of the 1 newest",
        f"{repo}:v2": "a container was made from it",
        f"{repo}:v1": "an endpoint serves it",
    }
    assert subprocess.run(["podman", "image", "exists", f"{repo}:v3"]).returncode == 1
    assert subprocess.run(["podman", "image", "exists", base_image]).returncode == 0
