"""The state on disk: synced before a write returns, the owner's alone, and opened
without disturbing the locks of the process's other connections."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.errors import StateError
from mlcicd.state import State

STAGES = ["source", "build", "train"]


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path / "state.db")


def test_writes_are_synced_before_they_return(state: State) -> None:
    """synchronous=FULL (2): a queued run, an approval, a registered model survive a power loss."""
    assert state._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_state_directory_and_database_are_the_owners_alone(tmp_path: Path) -> None:
    state = State(tmp_path / "new" / "state.db")
    state.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (state.path.parent, *state.path.parent.iterdir())
    }
    assert modes == {"new": 0o700, "state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_a_looser_state_directory_and_database_are_tightened(tmp_path: Path) -> None:
    """As an older mlcicd left them (0755, 0644): readable by every user of the machine."""
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    State(old / "state.db").close()
    os.chmod(old, 0o755)
    os.chmod(old / "state.db", 0o644)
    State(old / "state.db").close()
    assert [stat.S_IMODE(p.stat().st_mode) for p in (old, old / "state.db")] == [0o700, 0o600]


def test_a_state_directory_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="cannot create state database"):
        State(tmp_path / "file" / "state.db")


def test_opening_the_state_leaves_the_other_connections_locks_alone(tmp_path: Path) -> None:
    """Closing any descriptor of the database file drops every lock this process holds on it.
    Were opening a State to do that, the next process to close its connection would find
    itself the last one, checkpoint and delete the WAL under the service: a malformed database."""
    path = tmp_path / "state.db"
    first = State(path)
    first.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    State(path).close()
    code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('SELECT 1 FROM runs').fetchall(); c.close()"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert path.with_name("state.db-wal").exists()  # still ours: the other process was not the last
    assert first.get_run(1).pipeline == "iris"
