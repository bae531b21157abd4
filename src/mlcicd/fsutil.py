"""Atomic writes and digests, the two things every artifact relies on; a lock across processes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync and rename it into place, then
    fsync the directory.

    On any exception the temp file is removed and ``path`` is untouched, so a reader sees
    either the old file or the whole new one, never half of it. The file is created 0600
    (``mkstemp``): artifacts, captured data and state are the owner's alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its directory, if missing) for the
    block: one holder at a time across processes. The lock is ``flock``'s, on an open file,
    so the kernel releases it when a holder dies: nothing stale is left to clean up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fsync_dir(directory: Path) -> None:
    """Make the names in ``directory`` durable: a rename is an update of the directory, and
    until the directory is synced a power loss can bring back the old file, or no file at
    all, even though the new file's bytes are on disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> Path:
    """``directory``, created if missing, accessible to its owner only (0700).

    One that exists with access for others is tightened, if it is ours: a state directory
    made by an older mlcicd (0755), or one shared on purpose, would otherwise keep showing
    its logs, captured requests and tokens to every user of the machine.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.chmod(directory, 0o700)
    return directory


def private_file(path: Path) -> None:
    """Tighten ``path`` to 0600 if it is looser and ours; nothing if it does not exist.

    By name, never by opening it: closing any descriptor of a SQLite database drops every
    lock this process holds on it, those of its other connections too.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.chmod(path, 0o600)


def open_private_log(path: Path, mode: str = "a") -> IO[Any]:
    """``path`` opened to append (``"a"`` text, ``"ab"`` bytes), created 0600 with its
    directory: logs show what a project's code printed, and that can be anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:  # an older mlcicd's
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", buffering=1)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing, partly written or not an object."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_NOT_CODE = ("__pycache__", ".git")


def link_or_copy(src: str, dst: str) -> str:
    """Hard-link ``src`` as ``dst`` (instant for big data), or copy it where links cannot go
    (another filesystem). ``shutil.copytree``'s ``copy_function``."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def link_into(source: Path, target: Path) -> None:
    """A job's input: the files of ``source`` (or the one file it is) in the new directory
    ``target``, linked where they can be — so a job must never write into its inputs in place:
    they may be the originals."""
    target.mkdir(parents=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)
    else:
        link_or_copy(str(source), str(target / source.name))


def copy_code(source_dir: Path, dest: Path, *, skip: Path) -> None:
    """A job's copy of its script's ``source_dir``, without caches, ``.git`` or ``skip`` (the
    jobs' root may sit inside source_dir: never copy jobs into jobs)."""
    skip = skip.absolute()

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _NOT_CODE or Path(directory, n).absolute() == skip}

    shutil.copytree(source_dir, dest, ignore=ignore)
