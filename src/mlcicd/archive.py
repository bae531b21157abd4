"""model.tar.gz: packed reproducibly, extracted safely.

Packing is deterministic (sorted names, zeroed mtimes/owners, fixed gzip header), so the
same model directory always has the same sha256 — which is what lets a rerun recognise the
model it already deployed. Extraction refuses anything that could write outside the target:
absolute names, ``..``, links pointing out, devices and fifos.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

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
    with atomic_open(dest, "wb") as out, gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6
    ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
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


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    name = member.name
    target = (dest / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(dest):
        raise ArtifactError(f"refusing to extract {archive}: member {name!r} escapes the target")
    if member.issym() or member.islnk():
        link = member.linkname
        base = target.parent if member.issym() else dest
        if os.path.isabs(link) or not (base / link).resolve().is_relative_to(dest):
            raise ArtifactError(
                f"refusing to extract {archive}: link {name!r} -> {link!r} points outside the target"
            )
    elif not (member.isfile() or member.isdir()):
        raise ArtifactError(f"refusing to extract {archive}: {name!r} is a device or fifo")


def safe_extract(archive: Path, dest: Path, *, expected_sha256: str | None = None) -> None:
    """Extract ``archive`` into ``dest`` (created whole, or not at all).

    With ``expected_sha256`` the archive's digest is checked first: a model is never
    deserialised from bytes we did not record.
    """
    if not archive.is_file():
        raise ArtifactError(f"model artifact {archive} does not exist")
    if expected_sha256 is not None:
        actual = sha256_file(archive)
        if actual != expected_sha256:
            raise ArtifactError(
                f"model artifact {archive} has sha256 {actual[:12]}…, expected {expected_sha256[:12]}…",
                hint="the artifact was changed after it was recorded; retrain with --force",
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent)).resolve()
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, staging, archive)
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
            if isinstance(exc, tarfile.FilterError):
                raise ArtifactError(f"refusing to extract {archive}: {exc}") from exc
            raise ArtifactError(f"cannot read model artifact {archive}: {exc}") from exc
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
