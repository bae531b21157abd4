"""Registry events POSTed to the URLs in ``service.notify``: in the background, in order,
each retried with backoff and given up after a bounded number of attempts.

Delivery resumes where it stopped (a cursor per URL in the state database); a URL seen for
the first time starts at the newest event, so adding one does not replay the past.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlcicd.daemon.info import post_json
from mlcicd.project import Project

MAX_ATTEMPTS = 6
MAX_BACKOFF = 30.0


class EventNotifier:
    def __init__(
        self, roots: list[Path], log: Callable[[str], None], stop: threading.Event
    ) -> None:
        self.projects = [Project(root) for root in roots]  # own connections: this is its own thread
        self.log = log
        self.stop = stop
        self._failures: dict[str, tuple[int, float]] = {}  # url -> attempts, next try

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for project in self.projects:
                for url in project.config.service.notify:
                    self._deliver(project, url)

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
                    delay = min(MAX_BACKOFF, 0.5 * 2 ** (attempts - 1))
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
