"""Registry events POSTed to the URLs in ``service.notify``: in the background, in order,
each retried with backoff and given up after a bounded number of attempts.

Delivery resumes where it stopped (a cursor per URL in the state database); a URL seen for
the first time starts at the newest event, so adding one does not replay the past.

Events are written by other processes (each run is one), so nothing in this one can say
when there is a new one; but every commit changes the database's files. The notifier looks
at them (two ``stat`` calls per project, no query) every :data:`CHANGE_CHECK` seconds and
reads the event log only when they changed or a retry is due, sleeping until the earlier of
the two: an idle service asks its database nothing.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlcicd.daemon.info import post_json
from mlcicd.errors import ProjectError
from mlcicd.project import Project

MAX_ATTEMPTS = 6
MAX_BACKOFF = 30.0
CHANGE_CHECK = 0.5  # seconds between looks at the state files for a commit
# The first retry's delay (seconds), doubled per failed attempt up to MAX_BACKOFF. A setting
# so a test (or an impatient receiver's owner) need not wait the 15 s an event takes to give
# up; read once by the service process, which alone runs the notifier.
BACKOFF = 0.5
BACKOFF_ENV = "MLCICD_NOTIFY_BACKOFF"


def notify_backoff() -> float:
    """The first retry's delay: :data:`BACKOFF_ENV` if set, else :data:`BACKOFF`."""
    value = os.environ.get(BACKOFF_ENV)
    if not value:
        return BACKOFF
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ProjectError(
            f"{BACKOFF_ENV}={value!r} is not a positive number of seconds",
            hint=f"set it to e.g. 0.05, or unset it for {BACKOFF:g}",
        )
    return seconds


class EventNotifier:
    def __init__(
        self,
        roots: list[Path],
        log: Callable[[str], None],
        stop: threading.Event,
        backoff: float = BACKOFF,
    ) -> None:
        self.projects = [Project(root) for root in roots]  # own connections: this is its own thread
        self.log = log
        self.stop = stop
        self.backoff = backoff
        self._failures: dict[str, tuple[int, float]] = {}  # url -> attempts, next try
        self._seen: dict[int, tuple[tuple[int, int, int] | None, ...]] = {}  # project -> files
        self.checks = 0  # looks at the state files
        self.reads = 0  # passes that read the event log

    def run(self) -> None:
        while not self.stop.wait(self._sleep()):
            self.checks += 1
            for index, project in enumerate(self.projects):
                files = _files(project.state.path)
                urls = project.config.service.notify
                if files == self._seen.get(index) and not any(map(self._retry_due, urls)):
                    continue
                # Seen before reading: a commit while we read is a change for the next look.
                self._seen[index] = files
                self.reads += 1
                for url in urls:
                    self._deliver(project, url)

    def _retry_due(self, url: str) -> bool:
        failed = self._failures.get(url)
        return failed is not None and time.monotonic() >= failed[1]

    def _sleep(self) -> float:
        """Until the next look at the state files, or the next retry if it is due sooner."""
        now = time.monotonic()
        retries = (next_try - now for _, next_try in self._failures.values())
        return max(0.0, min([CHANGE_CHECK, *retries]))

    def _deliver(self, project: Project, url: str) -> None:
        attempts, next_try = self._failures.get(url, (0, 0.0))
        if time.monotonic() < next_try:
            return
        state = project.state
        for event in state.events(after=state.event_cursor(url), limit=50):
            body = {
                "id": event.id,
                "at": event.at,
                "kind": event.kind,
                "subject": event.subject,
                "pipeline": project.config.pipeline,
                "data": event.data,
            }
            status = post_json(url, body, headers={"X-Mlcicd-Event": event.kind})
            if 200 <= status < 300:
                attempts = 0
            else:
                attempts += 1
                if attempts < MAX_ATTEMPTS:
                    delay = min(MAX_BACKOFF, self.backoff * 2 ** (attempts - 1))
                    self._failures[url] = (attempts, time.monotonic() + delay)
                    return
                self.log(
                    f"notify {url}: gave up on event {event.id} ({event.kind}) after {attempts} "
                    "attempts"
                )
                attempts = 0
            state.advance_event_cursor(url, event.id)
            self._failures.pop(url, None)
            if self.stop.is_set():
                return


def _files(db: Path) -> tuple[tuple[int, int, int] | None, ...]:
    """What a commit changes of the state database: its file's and its WAL's identity, size
    and modification time (None for a file not there)."""
    found: list[tuple[int, int, int] | None] = []
    for path in (db, db.with_name(f"{db.name}-wal")):
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)
