"""Registry events POSTed to ``service.notify`` URLs: a receiver on 127.0.0.1 gets the
registered and deployed events; one that fails its first attempts gets them after retries;
one that always fails is given up on after a bounded number of attempts per event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlcicd.daemon.notifier import BACKOFF_ENV, MAX_ATTEMPTS, EventNotifier
from mlcicd.project import Project
from tests.conftest import commit_all
from tests.daemon.conftest import ServiceProcess, fast_project, finished
from tests.helpers import mlcicd, set_yaml, wait_for
from tests.monitor.helpers import CONFIG, make_project

pytestmark = pytest.mark.integration


class Receiver:
    """Collects POSTed JSON bodies; answers 503 to the first ``fail_first`` (or to all, if None)."""

    def __init__(self, fail_first: int | None) -> None:
        self.fail_first = fail_first
        self.attempts: list[dict[str, Any]] = []  # every POST, failed or not
        self.received: list[dict[str, Any]] = []  # the ones answered 2xx
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.attempts.append(body)
                    fail = (
                        receiver.fail_first is None or len(receiver.attempts) <= receiver.fail_first
                    )
                    if not fail:
                        receiver.received.append(body)
                self.send_response(503 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self) -> list[str]:
        with self.lock:
            return [str(e["kind"]) for e in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def notifying_project(tmp_path: Path, receivers: list[Receiver]) -> tuple[Receiver, Project]:
    """A project whose events go to a new receiver that answers every POST."""
    receiver = Receiver(0)
    receivers.append(receiver)
    project = make_project(
        tmp_path / "project", config=CONFIG + f"service: {{notify: [{receiver.url}]}}\n"
    )
    return receiver, project


def test_events_are_posted_retried_and_bounded(
    tmp_path: Path, services: list[ServiceProcess], receivers: list[Receiver]
) -> None:
    steady, flaky, broken = Receiver(0), Receiver(2), Receiver(None)
    receivers += [steady, flaky, broken]
    project = fast_project(tmp_path / "iris")
    urls = "".join(f"    - {r.url}\n" for r in receivers)
    set_yaml(
        project, "branch: main ", f"service:\n  poll_interval: 1\n  notify:\n{urls}branch: main "
    )
    commit_all(project, "notify three receivers")

    # Retries 0.05 s, 0.1 s, … apart: the same attempts as the default 0.5 s, … 8 s, not 15 s of
    # waiting per event given up on.
    service = ServiceProcess(project, tmp_path / "service.log", env={BACKOFF_ENV: "0.05"})
    services.append(service.start())
    runs = wait_for("the poll to queue a run", lambda: service.get("/api/runs"))
    status = wait_for("the run", lambda: finished(project, runs[0]["id"]))
    assert status == "Succeeded", (tmp_path / "service.log").read_text()
    events = service.get("/api/events")
    kinds = [e["kind"] for e in events]
    assert "registered" in kinds and "deployed" in kinds

    wait_for("every event at the steady receiver", lambda: steady.kinds() == kinds)
    assert [e["id"] for e in steady.received] == [e["id"] for e in events]  # in order, once each
    first = steady.received[0]
    assert first["pipeline"] == "iris-classifier" and first["subject"] == events[0]["subject"]

    wait_for(
        "every event at the flaky receiver, after its failures", lambda: flaky.kinds() == kinds
    )
    assert len(flaky.attempts) == len(kinds) + 2

    # The broken one: each event tried MAX_ATTEMPTS times, then given up on; no more.
    log = tmp_path / "service.log"
    wait_for(
        "the notifier to give up on every event",
        lambda: log.read_text().count(f"notify {broken.url}: gave up") == len(kinds),
        timeout=60.0 * len(kinds),
    )
    by_event: dict[int, int] = {}
    for body in broken.attempts:
        by_event[int(body["id"])] = by_event.get(int(body["id"]), 0) + 1
    assert by_event == {e["id"]: MAX_ATTEMPTS for e in events}


def test_the_cursor_survives_a_restart_and_nothing_is_sent_twice(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver, project = notifying_project(tmp_path, receivers)
    root, state = project.root, project.state
    state.add_event("registered", "before", {})
    # The URL first seen now: its cursor starts after the newest event (the past is not replayed).
    assert state.event_cursor(receiver.url) == state.recent_events(1)[0].id

    def notifier() -> tuple[threading.Event, threading.Thread]:
        """A notifier as the service starts one: its own Project, its own thread."""
        stop = threading.Event()
        thread = threading.Thread(target=EventNotifier([root], print, stop).run, daemon=True)
        thread.start()
        return stop, thread

    state.add_event("registered", "a", {})
    state.add_event("deployed", "b", {})
    stop, thread = notifier()
    wait_for("a and b delivered", lambda: len(receiver.received) == 2, timeout=30)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()

    state.add_event("deployed", "c", {})  # while no notifier runs
    stop, thread = notifier()  # the restart: it reads the cursor from the database
    try:
        wait_for("c delivered", lambda: len(receiver.received) >= 3, timeout=30)
    finally:
        stop.set()
        thread.join(30)
    # In order, each once: a restart that lost or ignored the cursor would have sent a and b
    # again before c (or never sent c).
    assert [e["subject"] for e in receiver.received] == ["a", "b", "c"]
    assert len(receiver.attempts) == 3


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_backoff_setting_stops_the_service_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    project = make_project(tmp_path / "project", config=CONFIG)
    monkeypatch.setenv(BACKOFF_ENV, value)
    result = mlcicd(project.root, "up", "--port", "0")
    assert result.exit_code != 0
    assert f"{BACKOFF_ENV}={value!r} is not a positive number of seconds" in result.output
    assert not (project.root / ".mlcicd" / "service.json").exists()


def test_an_idle_notifier_reads_nothing_until_the_database_changes(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver, project = notifying_project(tmp_path, receivers)
    state = project.state
    state.event_cursor(receiver.url)  # delivery starts here
    stop = threading.Event()
    notifier = EventNotifier([project.root], print, stop)
    thread = threading.Thread(target=notifier.run, daemon=True)
    thread.start()
    try:
        state.add_event("registered", "a", {})
        wait_for("a delivered", lambda: len(receiver.received) == 1, timeout=30)
        # Its own cursor write is a change too: let it read that once, then count its queries.
        reads = notifier.reads
        wait_for("a look with nothing new", lambda: notifier.checks > reads + 2, timeout=30)
        queries: list[str] = []
        notifier.projects[0].state.db.connection.set_trace_callback(queries.append)
        checks = notifier.checks
        wait_for("four more looks", lambda: notifier.checks >= checks + 4, timeout=30)
        assert queries == []  # before: two queries per URL every 0.5 s, whatever happened

        state.add_event("deployed", "b", {})  # another connection's commit wakes it
        wait_for("b delivered", lambda: len(receiver.received) == 2, timeout=30)
        assert any("FROM events" in q for q in queries)
    finally:
        stop.set()
        thread.join(30)
    assert [e["subject"] for e in receiver.received] == ["a", "b"]
