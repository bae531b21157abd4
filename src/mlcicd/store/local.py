"""Artifacts on local disk: ``<root>/<bucket>/<key>``, written atomically."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from mlcicd.errors import ArtifactError
from mlcicd.fsutil import atomic_open, sha256_bytes, sha256_file
from mlcicd.store.base import ArtifactRef


class LocalArtifactStore:
    TYPE: ClassVar[str] = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def uri(self, bucket: str, key: str) -> str:
        return (self.root / bucket / key).as_uri()

    def _path(self, uri: str) -> Path:
        if not uri.startswith("file://"):
            raise ArtifactError(f"{uri} is not a local artifact URI (expected file://)")
        path = Path(uri.removeprefix("file://")).resolve()
        if not path.is_relative_to(self.root):
            raise ArtifactError(f"{uri} is outside the artifact store {self.root}")
        return path

    def _dest(self, bucket: str, key: str) -> Path:
        dest = (self.root / bucket / key).resolve()
        if not dest.is_relative_to(self.root / bucket):
            raise ArtifactError(f"artifact key {key!r} escapes bucket {bucket!r}")
        return dest

    def put_file(self, source: Path, bucket: str, key: str) -> ArtifactRef:
        dest = self._dest(bucket, key)
        with self._writing(dest), open(source, "rb") as src, atomic_open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return ArtifactRef(uri=dest.as_uri(), sha256=sha256_file(dest), size=dest.stat().st_size)

    def put_bytes(self, data: bytes, bucket: str, key: str) -> ArtifactRef:
        dest = self._dest(bucket, key)
        with self._writing(dest), atomic_open(dest, "wb") as out:
            out.write(data)
        return ArtifactRef(uri=dest.as_uri(), sha256=sha256_bytes(data), size=len(data))

    @contextlib.contextmanager
    def _writing(self, dest: Path) -> Iterator[None]:
        """A failed write (a file where a folder should be, a full disk…) as ArtifactError."""
        try:
            yield
        except OSError as exc:
            raise ArtifactError(
                f"cannot write {dest}: {exc.strerror or exc}",
                hint=f"check the artifact store at {self.root} (store.uri in mlcicd.yaml)",
            ) from exc

    def get_file(self, uri: str, dest: Path, *, expected_sha256: str) -> Path:
        path = self.verified_path(uri, expected_sha256)
        with open(path, "rb") as src, atomic_open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return dest

    def verified_path(self, uri: str, expected_sha256: str) -> Path:
        path = self._path(uri)
        if not path.is_file():
            raise ArtifactError(
                f"artifact {uri} is missing", hint="rerun the pipeline with --force"
            )
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ArtifactError(
                f"artifact {uri} has sha256 {actual[:12]}…, recorded {expected_sha256[:12]}…",
                hint="it was changed after it was written; rerun the pipeline with --force",
            )
        return path

    def local_path(self, uri: str) -> Path | None:
        return self._path(uri)

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def list_uris(self, bucket: str, prefix: str = "") -> list[str]:
        folder = self._dest(bucket, prefix or ".")
        if not folder.is_dir():
            return []
        # atomic_open's temp files (".name.tmp") are writes in progress, not artifacts.
        files = (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(p.as_uri() for p in files)

    def read_bytes(self, uri: str) -> bytes:
        path = self._path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {uri} is missing") from exc
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
