"""The event log, where each notifier's delivery stands in it, and the webhook deliveries seen.

An event (registered, approved, deployed, rolled_back, monitoring_violations, …) is appended
in the same transaction as the change it tells of, by :func:`add_event`; the service's
notifier delivers them to each configured URL from its cursor. A webhook delivery is
remembered by its id and by the digest of its body (:func:`remember_delivery`), so a replay
starts nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from mlcicd.state.db import Tables
from mlcicd.state.records import Delivery, Event


def add_event(db: sqlite3.Connection, kind: str, subject: str, data: dict[str, Any]) -> None:
    """Append to the event log inside the caller's transaction."""
    db.execute(
        "INSERT INTO events (at, kind, subject, data) VALUES (?, ?, ?, ?)",
        (time.time(), kind, subject, json.dumps(data, default=str)),
    )


def remember_delivery(db: sqlite3.Connection, delivery: Delivery) -> bool:
    """Record ``delivery`` inside the caller's transaction; False if its id or body was seen."""
    now = time.time()
    new_id = db.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, event, received_at)"
        " VALUES (?, ?, ?)",
        (delivery.id, delivery.event, now),
    ).rowcount
    new_body = db.execute(
        "INSERT OR IGNORE INTO webhook_bodies (body_sha256, delivery_id, received_at)"
        " VALUES (?, ?, ?)",
        (delivery.body_sha256, delivery.id, now),
    ).rowcount
    return bool(new_id and new_body)


class Events(Tables):
    """The event log, the notifiers' cursors, and webhook deliveries that start nothing."""

    def add_event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        with self.db.tx() as db:
            add_event(db, kind, subject, data)

    def events(self, *, after: int = 0, limit: int = 100) -> list[Event]:
        return self.db.all(
            Event, "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", after, limit
        )

    def recent_events(self, limit: int = 50) -> list[Event]:
        return list(
            reversed(self.db.all(Event, "SELECT * FROM events ORDER BY id DESC LIMIT ?", limit))
        )

    def event_cursor(self, url: str) -> int:
        """Where delivery to ``url`` stands; a new URL starts at the newest event (no backlog)."""
        with self.db.tx() as db:
            row = db.execute("SELECT last_id FROM event_cursors WHERE url=?", (url,)).fetchone()
            if row is not None:
                return int(row["last_id"])
            last = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
            db.execute("INSERT INTO event_cursors (url, last_id) VALUES (?, ?)", (url, last))
        return last

    def advance_event_cursor(self, url: str, last_id: int) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO event_cursors (url, last_id) VALUES (?, ?)", (url, last_id)
            )

    def record_delivery(self, delivery: Delivery) -> bool:
        """Remember a webhook delivery that starts nothing; False if its id or body was seen."""
        with self.db.tx() as db:
            return remember_delivery(db, delivery)
