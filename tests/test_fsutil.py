"""Atomic writes: whole or not at all, durable once they return, the owner's alone; the lock."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from mlcicd.fsutil import atomic_open, atomic_write_text, locked


def test_the_directory_is_synced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until its directory is synced, a renamed file can come back as the old one after a
    power loss. What was fsynced is seen through the real os.fsync, by the inode it named."""
    synced: list[os.stat_result] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    path = tmp_path / "state" / "record.json"
    atomic_write_text(path, "{}")
    directory = path.parent.stat()
    assert [stat.S_ISDIR(s.st_mode) for s in synced] == [
        False,
        True,
    ]  # the file, then its directory
    assert (synced[1].st_dev, synced[1].st_ino) == (directory.st_dev, directory.st_ino)
    assert (synced[0].st_dev, synced[0].st_ino) == (path.stat().st_dev, path.stat().st_ino)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path, "wb") as fh:
        fh.write(b"half")
        raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_the_file_is_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    atomic_write_text(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _try_lock(path: Path) -> bool:
    """Whether another open file (as another process would have) gets the lock now."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def test_locked_excludes_other_holders_until_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "made" / ".lock"
    with locked(path):
        assert not _try_lock(path)
    assert _try_lock(path)


def test_locked_is_released_when_the_block_raises(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with pytest.raises(RuntimeError), locked(path):
        raise RuntimeError("boom")
    assert _try_lock(path)
