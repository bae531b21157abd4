"""A stored output as a directory again: what the next step (or training) reads.

An output is stored as a tar.gz of its directory, recorded with its sha256. Reading it back
extracts it with :func:`mlcicd.archive.safe_extract` — the hardened extraction a model gets:
links, absolute names and ``..`` refused, sizes capped, the digest checked on the bytes
extracted — into ``<root>/<sha256>/``, once: ``safe_extract`` creates its target whole or not
at all, so a directory that exists is complete.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlcicd.archive import safe_extract
from mlcicd.project import Project
from mlcicd.store import ArtifactStore


def extracted_artifact(store: ArtifactStore, uri: str, sha256: str, root: Path) -> Path:
    """The directory holding the archive ``uri`` (of digest ``sha256``), extracted once."""
    dest = root / sha256
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    local = store.local_path(uri)
    if local is not None:
        safe_extract(local, dest, expected_sha256=sha256)
        return dest
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        archive = store.get_file(uri, Path(tmp) / "artifact.tar.gz", expected_sha256=sha256)
        safe_extract(archive, dest, expected_sha256=sha256)
    return dest


def output_directory(project: Project, artifact: Mapping[str, str]) -> Path:
    """A stored output (or a model), ``{"uri", "sha256"}``, as a directory under the project's
    ``.mlcicd/extracted/``."""
    return extracted_artifact(
        project.store, artifact["uri"], artifact["sha256"], project.state_dir / "extracted"
    )
