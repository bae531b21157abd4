"""The artifact store interface.

Keys follow S3's layout — ``<bucket>/<prefix>/<job>/output/model.tar.gz`` — so the same
pipeline writes the same names locally and on S3. Every artifact is recorded with its
sha256 and checked against it when read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class ArtifactRef:
    uri: str
    sha256: str
    size: int


class ArtifactStore(Protocol):
    TYPE: ClassVar[str]

    def uri(self, bucket: str, key: str) -> str:
        """The URI an artifact at ``bucket``/``key`` has (whether or not it exists yet)."""
        ...

    def put_file(self, source: Path, bucket: str, key: str) -> ArtifactRef:
        """Copy ``source`` to ``bucket``/``key`` atomically; return its URI and digest."""
        ...

    def put_bytes(self, data: bytes, bucket: str, key: str) -> ArtifactRef:
        """Write ``data`` as ``bucket``/``key`` in one piece (a complete new file or object,
        never an append); return its URI and digest. For small things made in memory."""
        ...

    def get_file(self, uri: str, dest: Path, *, expected_sha256: str) -> Path:
        """Fetch ``uri`` to ``dest``, refusing it if its sha256 is not ``expected_sha256``."""
        ...

    def local_path(self, uri: str) -> Path | None:
        """Where ``uri`` is on this machine, if it is (lets local stages skip a copy)."""
        ...

    def exists(self, uri: str) -> bool: ...

    def list_uris(self, bucket: str, prefix: str = "") -> list[str]:
        """The URIs of every artifact in the folder ``bucket``/``prefix`` and below it, in key
        order (what others wrote there, e.g. data capture files)."""
        ...

    def read_bytes(self, uri: str) -> bytes:
        """The bytes of ``uri``, unverified: for artifacts nobody recorded a digest of (data
        capture files). Anything recorded is read with :meth:`get_file` instead."""
        ...
