"""Artifact stores: one interface, a local-disk and an S3 implementation side by side."""

from __future__ import annotations

from pathlib import Path

from mlcicd.errors import ConfigError
from mlcicd.store.base import ArtifactRef, ArtifactStore
from mlcicd.store.local import LocalArtifactStore


def open_store(uri: str | None, *, default_root: Path) -> ArtifactStore:
    """The store a config's ``store.uri`` names: ``s3://bucket-prefix`` or a local path."""
    if uri and uri.startswith("s3://"):
        raise ConfigError(
            f"the S3 artifact store ({uri}) is not available in this version",
            key="store.uri",
            hint="remove store.uri to keep artifacts in the project's state directory",
        )
    if uri:
        return LocalArtifactStore(Path(uri.removeprefix("file://")))
    return LocalArtifactStore(default_root)


__all__ = ["ArtifactRef", "ArtifactStore", "LocalArtifactStore", "open_store"]
