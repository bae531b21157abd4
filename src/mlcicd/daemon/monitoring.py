"""Monitoring schedules: each served project with ``monitor.schedule`` has its endpoint checked
every interval (:mod:`mlcicd.monitor.schedule`), in this thread of `mlcicd up` — never on a
request's path, never in a run's process.

The schedule starts once the endpoint exists (a project not deployed yet has nothing to
check) and resumes, after a restart, where the last recorded window ended. One execution per
project per tick, so a project catching up does not hold back another's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from mlcicd.errors import MlcicdError
from mlcicd.project import Project

TICK = 1.0


class MonitoringScheduler:
    def __init__(
        self, roots: list[Path], log: Callable[[str], None], stop: threading.Event
    ) -> None:
        self.projects = [Project(root) for root in roots]  # own connections: this is its own thread
        self.log = log
        self.stop = stop
        self._announced: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(TICK):
            for project in self.projects:
                try:
                    self.tick(project)
                except MlcicdError as exc:
                    self.log(f"{project.config.pipeline}: monitoring: {exc.headline}")
                except Exception as exc:  # a bug: keep serving, say what happened
                    self.log(
                        f"{project.config.pipeline}: monitoring: internal error: "
                        f"{type(exc).__name__}: {exc}"
                    )
                if self.stop.is_set():
                    return

    def tick(self, project: Project) -> None:
        """Run the project's next execution if its window has ended."""
        config = project.config
        interval = config.monitor.schedule_seconds
        endpoint = config.endpoint_name
        if interval is None or project.state.get_endpoint(endpoint) is None:
            return
        # Imported here: mlcicd.monitor loads numpy, which a service without a schedule never needs.
        from mlcicd.monitor.schedule import next_window, run_execution

        last = project.state.last_monitored(endpoint)
        if endpoint not in self._announced:
            self._announced.add(endpoint)
            since = (
                f"resuming from {_stamp(last)}"
                if last is not None
                else "first window: the last interval"
            )
            self.log(
                f"{config.pipeline}: monitoring {endpoint} every {config.monitor.schedule} "
                f"({since})"
            )
        window = next_window(last, interval, time.time())
        if window is None:
            return
        execution = run_execution(project, endpoint, *window, log=self.log)
        span = f"{_stamp(window[0])} to {_stamp(window[1])}"
        if execution is None:
            self.log(
                f"{config.pipeline}: monitoring {endpoint} {span}: already recorded by another "
                "service"
            )
            return
        self.log(
            f"{config.pipeline}: monitoring {endpoint} {span}: execution {execution.id}: "
            f"{execution.verdict}"
        )


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


__all__ = ["MonitoringScheduler"]
