"""The connection to the state database: opening it, migrating it, one write transaction.

SQLite in WAL mode, one file per state directory; nothing outside :mod:`mlcicd.state`
opens it. Writes are single transactions, so a crash leaves each record either before or
after a change, never between; with ``synchronous=FULL`` a write that returned survives a
power loss too (a queued run, an approval, a registered model are not silently undone).
Writes are rare — a few per stage — so the millisecond or few of an fsync per commit does
not show.

The state directory is the owner's alone (0700, tightened if it was looser) and so is the
database file (0600; SQLite gives its -wal and -shm files the same mode): it holds webhook
deliveries, approvals and who gave them.

Each group of tables (:mod:`~mlcicd.state.runs`, :mod:`~mlcicd.state.registry`, …) is a
:class:`Tables` over one :class:`Database`; reading a row into its record is here, once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlcicd.errors import StateError
from mlcicd.fsutil import private_dir, private_file
from mlcicd.state.schema import ADDED_COLUMNS, SCHEMA, SCHEMA_VERSION

# Columns stored as JSON text and read back as dicts or lists, and those stored as 0/1.
JSON_COLUMNS = {
    "outputs",
    "hyperparameters",
    "metrics",
    "lineage",
    "spec",
    "trigger",
    "summary",
    "data",
    "dataset",
    "variants",
    "inputs",
    "report",
    "settings",
}
BOOL_COLUMNS = {"dirty", "forced"}


def loads(text: str | None) -> Any:
    """A JSON column's value; an empty one is an empty dict."""
    return json.loads(text) if text else {}


def to_record(cls: type[Any], row: sqlite3.Row) -> Any:
    """The record ``cls`` of ``row``, its JSON and boolean columns decoded."""
    values = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not iterable by key
        value = row[key]
        if key in JSON_COLUMNS:
            value = loads(value)
        elif key in BOOL_COLUMNS:
            value = bool(value)
        values[key] = value
    return cls(**values)


class Database:
    """One connection to the state database at ``path``, created and migrated on open.

    The connection is shared by the threads of one process (the service's, a run's parallel
    processing steps): a transaction is a state of the connection, so each takes ``_lock``
    for its whole length, and reads take it too, never seeing another thread's half-done
    transaction. Other processes have their own connections; SQLite queues them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            private_dir(path.parent)
            self.connection = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            for name in (
                path,
                path.with_name(f"{path.name}-wal"),
                path.with_name(f"{path.name}-shm"),
            ):
                # before WAL mode: SQLite creates -wal and -shm with the file's mode
                private_file(name)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{path} was written by a newer mlcicd (schema {version}, "
                    f"this one knows {SCHEMA_VERSION})",
                    hint="upgrade mlcicd",
                )
            if version < SCHEMA_VERSION:
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from exc
        except OSError as exc:
            raise StateError(
                f"cannot create state database {path}: {exc.strerror or exc}",
                hint=f"{path.parent} must be a directory this user can write to",
            ) from exc

    def _migrate(self) -> None:
        """Create what is missing, add the columns later schemas added; one transaction."""
        db = self.connection
        # executescript commits on its own, so the whole script is one transaction.
        db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}")
        try:
            for table, column, declaration in ADDED_COLUMNS:
                present = {r["name"] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` so concurrent writers queue, not fail."""
        with self._lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        """A read outside a transaction."""
        with self._lock:
            return self.connection.execute(sql, args)

    def one(self, cls: type[Any], sql: str, *args: Any) -> Any:
        """The record of the first row ``sql`` selects, None when there is none."""
        with self._lock:
            row = self.connection.execute(sql, args).fetchone()
        return None if row is None else to_record(cls, row)

    def all(self, cls: type[Any], sql: str, *args: Any) -> list[Any]:
        """The records of every row ``sql`` selects."""
        with self._lock:
            rows = self.connection.execute(sql, args).fetchall()
        return [to_record(cls, r) for r in rows]


class Tables:
    """A group of tables over the one connection: the base of each module's class."""

    def __init__(self, db: Database) -> None:
        self.db = db
