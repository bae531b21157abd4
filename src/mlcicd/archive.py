"""model.tar.gz: packed reproducibly, extracted safely.

Packing is deterministic (sorted names, zeroed mtimes/owners, fixed gzip header), so the
same model directory always has the same sha256 — which is what lets a rerun recognise the
model it already deployed.

Extraction trusts nothing in the archive, and relies on its own checks, not on the
standard library's extraction filter:

- only regular files and directories are extracted. Links of any kind are refused, even
  ones pointing inside (we never pack them): with no link on disk, no later member can be
  redirected through one, which is how every known filter bypass works (a chain such as
  ``d1 -> .``, ``d1/d2 -> ..``, ``d2/x``). Devices, fifos and sparse files are refused too;
- names are relative and have no ``..`` component;
- the number of members and the sum of their sizes are capped (:class:`Limits`), and each
  header is checked before its data is read, so a size bomb stops at its first header and
  an archive of a million members at the cap;
- the archive is read in one pass over one open file: the bytes hashed are the bytes
  extracted (no window in which the file could be swapped between check and use). What is
  extracted goes to a private staging directory that becomes the target only when the digest
  matches; in a model tree the marker :data:`MARKER` (the digest, written last) says the
  tree is complete (:func:`ensure_extracted`).

Python: the ``filter="data"`` argument arrived in 3.11.4 (PEP 706), hence
``requires-python >= 3.11.4``. Up to 3.11.12, 3.12.10 and 3.13.3 the filter itself can be
bypassed (CVE-2025-4517, CVE-2025-4330, CVE-2025-4138, CVE-2024-12718; fixed in 3.11.13,
3.12.11, 3.13.4) — every one of them through a link member, which the checks here refuse
before anything is written. The filter is kept as a second layer only, so an older patch
release (the development machines run 3.11.7) is not a hole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlcicd.errors import ArtifactError
from mlcicd.fsutil import atomic_open, sha256_file


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def pack_dir(src: Path, dest: Path) -> str:
    """Pack the contents of ``src`` (not the directory itself) into ``dest``; return its sha256."""
    if not src.is_dir():
        raise ArtifactError(f"cannot pack {src}: not a directory")
    with (
        atomic_open(dest, "wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel_root = Path(root).relative_to(src)
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                arcname = name if rel_root == Path(".") else str(rel_root / name)
                info = tar.gettarinfo(str(full), arcname=arcname)
                if info.issym() or info.islnk():
                    # A link in a model directory would dangle or escape on the other side.
                    raise ArtifactError(
                        f"cannot pack {full}: links are not allowed in a model directory",
                        hint="copy the file instead of linking it",
                    )
                _normalize(info)
                if info.isfile():
                    with open(full, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
    return sha256_file(dest)


MARKER = ".mlcicd-extracted"
"""Written last into an extracted tree: ``{"sha256": …}``. A tree without it is incomplete."""

MAX_BYTES_ENV = "MLCICD_MAX_MODEL_BYTES"
MAX_MEMBERS_ENV = "MLCICD_MAX_MODEL_MEMBERS"


@dataclass(frozen=True)
class Limits:
    """How much one archive may unpack to: the sum of its members' sizes, and their number.

    Generous for real models; set lower (or higher) with the environment variables
    ``MLCICD_MAX_MODEL_BYTES`` and ``MLCICD_MAX_MODEL_MEMBERS`` of the process that extracts
    (``mlcicd`` itself for local endpoints, the Model's environment for a SageMaker container).
    """

    max_bytes: int = 10 * 1024**3
    max_members: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(
            max_bytes=_positive_int(env, MAX_BYTES_ENV, cls.max_bytes),
            max_members=_positive_int(env, MAX_MEMBERS_ENV, cls.max_members),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ArtifactError(
            f"environment variable {name}={raw!r} is not a positive whole number",
            hint=f"set it to a count (bytes for sizes), or unset it for the default {default}",
        )
    return value


class _HashingReader:
    """Reads ``raw`` front to back and hashes every byte read, so what tarfile parses is
    exactly what is hashed."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        """Hash whatever tarfile left unread (padding, trailing bytes); the file's digest."""
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse anything but a plain file or directory with a clean relative name."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or os.path.isabs(name) or ".." in parts or "\0" in name:
        raise ArtifactError(f"refusing to extract {archive}: member {name!r} escapes the target")
    if member.issym() or member.islnk():
        raise ArtifactError(
            f"refusing to extract {archive}: {name!r} is a link (-> {member.linkname!r}); "
            "model archives hold only files and directories",
            hint="copy the file the link points to into the model directory instead",
        )
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        kind = (
            "a device or fifo"
            if member.ischr() or member.isblk() or member.isfifo()
            else (f"of tar type {member.type!r}")
        )
        raise ArtifactError(f"refusing to extract {archive}: {name!r} is {kind}")
    if [p for p in parts if p not in ("", ".")] == [MARKER]:
        raise ArtifactError(
            f"refusing to extract {archive}: {name!r} is the name mlcicd marks trees with"
        )


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    limits: Limits | None = None,
    mark: bool = False,
) -> str:
    """Extract ``archive`` into ``dest`` (created whole, or not at all); return its sha256.

    With ``expected_sha256`` nothing becomes ``dest`` unless the archive has that digest: a
    model is never deserialised from bytes we did not record. ``limits`` default to
    :meth:`Limits.from_env`. With ``mark`` the tree gets :data:`MARKER` (see
    :func:`ensure_extracted`). A previous ``dest`` is replaced.
    """
    limits = Limits.from_env() if limits is None else limits
    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed below, after the last byte is hashed
    except FileNotFoundError as exc:
        raise ArtifactError(f"model artifact {archive} does not exist") from exc
    except OSError as exc:
        raise ArtifactError(f"cannot open model artifact {archive}: {exc.strerror or exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent)).resolve()
    try:
        with raw:
            reader = _HashingReader(raw)
            try:
                _extract_stream(reader, archive, staging, limits)
            except ArtifactError:
                # A changed file says so first, whatever else is wrong with it.
                _check_digest(archive, reader.drain(), expected_sha256)
                raise
            actual = reader.drain()
        _check_digest(archive, actual, expected_sha256)
        if mark:
            _write_marker(staging, actual)
        if dest.exists():
            shutil.rmtree(dest)  # a crash here leaves dest without its marker: re-extracted
        os.replace(staging, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return actual


def _check_digest(archive: Path, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise ArtifactError(
            f"model artifact {archive} has sha256 {actual[:12]}…, expected {expected[:12]}…",
            hint="the artifact was changed after it was recorded; retrain with --force",
        )


def _extract_stream(reader: _HashingReader, archive: Path, staging: Path, limits: Limits) -> None:
    members = total = 0
    try:
        # Stream mode ("r|*") reads front to back and never seeks: one pass, one open file.
        with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
            for member in tar:
                _check_member(member, archive)
                members += 1
                total += member.size
                if members > limits.max_members:
                    raise ArtifactError(
                        f"refusing to extract {archive}: more than {limits.max_members} members",
                        hint=f"raise {MAX_MEMBERS_ENV} if the model really has that many files",
                    )
                if total > limits.max_bytes:
                    raise ArtifactError(
                        f"refusing to extract {archive}: its members hold more than "
                        f"{limits.max_bytes} bytes (at {member.name!r})",
                        hint=f"raise {MAX_BYTES_ENV} if the model really is that large",
                    )
                # The data filter is a second layer; the checks above already refused
                # everything it would.
                tar.extract(member, staging, filter="data")
    except tarfile.FilterError as exc:
        raise ArtifactError(f"refusing to extract {archive}: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArtifactError(f"cannot read model artifact {archive}: {exc}") from exc


def _write_marker(tree: Path, sha256: str) -> None:
    with atomic_open(tree / MARKER, "w") as out:
        json.dump({"sha256": sha256}, out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def extracted_sha256(tree: Path) -> str | None:
    """The digest of the archive ``tree`` was extracted from, if the extraction finished."""
    try:
        data: Any = json.loads((tree / MARKER).read_text())
    except (OSError, ValueError):
        return None
    sha256 = data.get("sha256") if isinstance(data, dict) else None
    return sha256 if isinstance(sha256, str) else None


def ensure_extracted(
    archive: Path, dest: Path, *, expected_sha256: str, limits: Limits | None = None
) -> Path:
    """``dest`` holding the model ``archive`` (of digest ``expected_sha256``), extracted once.

    A tree whose marker names that digest is used as it is; any other (a crash left it
    without its marker, or it holds another model) is removed and extracted again.
    """
    if extracted_sha256(dest) == expected_sha256:
        return dest
    safe_extract(archive, dest, expected_sha256=expected_sha256, limits=limits, mark=True)
    return dest
