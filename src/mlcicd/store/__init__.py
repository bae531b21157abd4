"""Artifact stores: one interface, a local-disk and an S3 implementation side by side.

    base.py    ArtifactStore, the interface, and ArtifactRef (a stored artifact's uri and digest)
    local.py   LocalArtifactStore: a directory on this machine
    s3.py      S3ArtifactStore: a bucket and prefix

``open_store`` picks one from ``store.uri``.
"""

from __future__ import annotations

from pathlib import Path

from mlcicd.errors import ArtifactError, ConfigError
from mlcicd.store.base import ArtifactRef, ArtifactStore
from mlcicd.store.local import LocalArtifactStore
from mlcicd.store.s3 import S3ArtifactStore


def open_store(uri: str | None, *, default_root: Path) -> ArtifactStore:
    """The store a config's ``store.uri`` names: ``s3://bucket[/prefix]`` or a local path."""
    if uri and uri.startswith("s3://"):
        try:
            return S3ArtifactStore(uri)
        except ArtifactError as exc:
            raise ConfigError(
                exc.message, key="store.uri", hint="write it as s3://bucket or s3://bucket/prefix"
            ) from exc
    if uri:
        return LocalArtifactStore(Path(uri.removeprefix("file://")))
    return LocalArtifactStore(default_root)


__all__ = ["ArtifactRef", "ArtifactStore", "LocalArtifactStore", "S3ArtifactStore", "open_store"]
