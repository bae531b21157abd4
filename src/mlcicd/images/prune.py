"""``mlcicd image prune``: remove the project's old images, never one still in use.

Every commit that builds gets its own tag (``localhost/mlcicd/<pipeline>:<commit[:12]>``),
about 500 MB each until layers are shared, so tags pile up. An image is kept when:

- it is among the ``keep`` newest of the pipeline (a rollback or a rerun may want it), or
- a container endpoint of the project serves it (``endpoint.json``'s image id), or
- any container on this machine, running or not, was made from it (podman refuses to remove
  those anyway; a training job's container is one).

The others are untagged with ``podman rmi TAG``; podman frees the layers no other image
shares. Only the pipeline's own repository is looked at: the base image and other
projects' images are never touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mlcicd.errors import BuildError
from mlcicd.fsutil import read_object
from mlcicd.images.podman import podman, tail

ENDPOINTS_DIR = "container-endpoints"  # under the project's state dir (stages/deploy.py)


@dataclass
class Pruned:
    removed: list[str] = field(default_factory=list)  # tags
    kept: dict[str, str] = field(default_factory=dict)  # tag -> why
    failed: dict[str, str] = field(default_factory=dict)  # tag -> podman's words


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _images(repository: str) -> list[tuple[str, str, int]]:
    """(tag, image id, created) of every tag in ``repository``, newest first."""
    done = podman(
        ["images", "--format", "json", "--filter", f"reference={repository}"],
        error=BuildError,
        what=f"listing the images of {repository}",
    )
    found: list[tuple[str, str, int]] = []
    for image in json.loads(done.stdout or "[]"):
        for name in image.get("Names") or []:
            if name.startswith(f"{repository}:"):
                found.append((name, _short(str(image["Id"])), int(image.get("Created") or 0)))
    return sorted(found, key=lambda row: (-row[2], row[0]))


def _used_by_containers() -> set[str]:
    done = podman(
        ["ps", "--all", "--format", "json"], error=BuildError, what="listing the containers"
    )
    return {_short(str(c.get("ImageID") or "")) for c in json.loads(done.stdout or "[]")}


def _served(endpoints_root: Path) -> set[str]:
    served: set[str] = set()
    if endpoints_root.is_dir():
        for edir in endpoints_root.iterdir():
            record = read_object(edir / "endpoint.json") or {}
            if record.get("image_id"):
                served.add(_short(str(record["image_id"])))
    return served


def prune_images(pipeline: str, state_dir: Path, *, keep: int = 3, dry_run: bool = False) -> Pruned:
    """Remove the images of ``pipeline`` that nothing needs (the module says what that is)."""
    if keep < 0:
        raise BuildError(f"--keep {keep}: the number of images to keep cannot be negative")
    repository = f"localhost/mlcicd/{pipeline.lower()}"
    images = _images(repository)
    served = _served(state_dir / ENDPOINTS_DIR)
    in_containers = _used_by_containers()
    # The newest images, not tags: the commits of one context share one image.
    newest = set(list(dict.fromkeys(image_id for _, image_id, _ in images))[:keep])
    result = Pruned()
    for tag, image_id, _ in images:
        if image_id in newest:
            result.kept[tag] = f"one of the {keep} newest"
        elif image_id in served:
            result.kept[tag] = "an endpoint serves it"
        elif image_id in in_containers:
            result.kept[tag] = "a container was made from it"
        elif dry_run:
            result.removed.append(tag)
        else:
            done = podman(["rmi", tag], error=BuildError, what=f"removing {tag}", check=False)
            if done.returncode == 0:
                result.removed.append(tag)
            else:
                result.failed[tag] = tail(done.stderr or done.stdout, 2)
    return result
