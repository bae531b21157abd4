"""The service: one process for one or more projects (`mlcicd up`).

Threads: the HTTP server (uvicorn's event loop, and a bounded pool for the requests' work), the
queue loop below, the event notifier, the monitoring schedules (:mod:`mlcicd.daemon.monitoring`).
Each thread opens its own state connections. The loop, every tick and per project:
reject approvals past their timeout; start a queued rollback (an operator's, so first), else
resume runs that have a decision, else claim the oldest queued run (one run per pipeline at a
time); poll when due; supervise endpoints.
Every run executes in its own subprocess (:mod:`mlcicd.daemon.runner`).

The HTTP server calls into the service; the service only starts and stops it, as a
:class:`Server` it is handed (:mod:`mlcicd.daemon.up` makes both), so it never imports it.

At start, whatever a previous service left is made definite before anything new starts:
runs whose process is gone are Failed with the reason, queued runs stay queued and run,
and endpoints whose server is gone are started again on the config they served.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlcicd.daemon import auth, triggers
from mlcicd.daemon.endpoint_watch import EndpointWatch
from mlcicd.daemon.info import remove_info, write_info
from mlcicd.daemon.monitoring import MonitoringScheduler
from mlcicd.daemon.notifier import EventNotifier, notify_backoff
from mlcicd.daemon.runner import PARENT_ENV
from mlcicd.daemon.webhook import WebhookTarget
from mlcicd.errors import MlcicdError
from mlcicd.fsutil import open_private_log
from mlcicd.process import child_environment
from mlcicd.project import Project

TICK = 0.25
SUPERVISE_EVERY = 1.0
STOP_GRACE = 30.0


class Server(Protocol):
    """What serves the service's HTTP API (:class:`mlcicd.daemon.http.ServiceServer`), as
    the service sees it: bound to ``port`` already, started and stopped with the service."""

    port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    run_id: int


@dataclass
class Served:
    project: Project
    secret: bytes | None
    next_poll: float = 0.0
    child: Child | None = None
    pending_push: list[Path] = field(default_factory=list)


class Service:
    def __init__(self, roots: list[Path], port: int, *, out: object = None) -> None:
        self.notify_backoff = notify_backoff()  # a bad setting: fail before opening anything
        self.roots = [Path(r).resolve() for r in roots]
        self.port = port
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.served = [self._serve(root) for root in self.roots]
        self.endpoint_watch = EndpointWatch(self.log)
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.user = auth.os_user()  # ``by`` of a request whose client did not say who it is
        self.tokens: list[bytes] = []
        self.token_hint = ""

    @staticmethod
    def _serve(root: Path) -> Served:
        project = Project(root)
        config = project.config  # invalid mlcicd.yaml: fail now, before serving anything
        secret = os.environ.get(config.service.webhook_secret_env)
        project.keep_state_out_of_git()
        return Served(project=project, secret=secret.encode() if secret else None)

    def log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    # -- what the HTTP threads may ask ---------------------------------------------------

    def webhook_targets(self) -> list[WebhookTarget]:
        return [
            WebhookTarget(
                Project(s.project.root), s.secret, s.project.config.service.webhook_secret_env
            )
            for s in self.served
        ]

    def notify_push(self, repository: Path) -> None:
        """A git hook's notification: handled by the loop (the only thread that queues hook
        runs)."""
        with self._lock:
            for s in self.served:
                s.pending_push.append(repository)

    # -- lifecycle -------------------------------------------------------------------------

    def load_tokens(self) -> None:
        """The tokens the API accepts: $MLCICD_TOKEN, else each served project's token file
        (made now if missing), so the CLI of any of them finds one where it finds service.json."""
        override = os.environ.get(auth.TOKEN_ENV, "").strip()
        if override:
            self.tokens = [override.encode()]
            self.token_hint = (
                f"send the token this service was started with (${auth.TOKEN_ENV}) "
                "as `Authorization: Bearer TOKEN`"
            )
            return
        self.tokens = [auth.ensure_token(s.project.state_dir) for s in self.served]
        files = " or ".join(str(s.project.state_dir / auth.TOKEN_FILE) for s in self.served)
        self.token_hint = (
            f"send `Authorization: Bearer TOKEN` with the token in {files} (the mlcicd CLI does), "
            f"or set ${auth.TOKEN_ENV} for the client"
        )

    def start(self, server: Server) -> None:
        """Recover what a previous service left, then serve: ``server`` (bound, with the
        tokens of :meth:`load_tokens`), service.json, the loop and its threads."""
        self.port = server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self._recover()
        self._server = server
        server.start()
        for s in self.served:
            write_info(s.project.state_dir, self.url)
        notifier = EventNotifier(self.roots, self.log, self.stop_event, self.notify_backoff)
        monitoring = MonitoringScheduler(self.roots, self.log, self.stop_event)
        self._threads = [
            threading.Thread(target=self._loop, name="queue", daemon=True),
            threading.Thread(target=notifier.run, name="notifier", daemon=True),
            threading.Thread(target=monitoring.run, name="monitoring", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        names = ", ".join(f"{s.project.config.pipeline} ({s.project.root})" for s in self.served)
        self.log(f"mlcicd up: serving {names} at {self.url}")

    def _recover(self) -> None:
        for s in self.served:
            state = s.project.state
            state.list_runs(limit=1)  # reaps runs whose process is gone: Failed, with the reason
            for run in state.runs_with_status("Running"):
                self.log(f"run {run.id} is still running in pid {run.pid}; the queue waits for it")
            queued = state.runs_with_status("Queued")
            if queued:
                self.log(
                    f"{s.project.config.pipeline}: {len(queued)} queued run(s) from before: "
                    + ", ".join(
                        f"{r.id} (rollback to {r.trigger.get('to')})"
                        if r.trigger.get("kind") == "rollback"
                        else str(r.id)
                        for r in queued
                    )
                )
            self.endpoint_watch.check(s.project, restoring=True)

    def wait(self) -> None:
        """Until SIGTERM or SIGINT; then stop cleanly."""

        def on_signal(signum: int, frame: object) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not self.stop_event.wait(0.5):
            pass
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.log(
            "stopping: running runs are stopped and recorded as Failed (retry them with `mlcicd "
            "runs retry`)"
        )
        children = [s.child for s in self.served if s.child is not None]
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if hasattr(self, "_server"):
            self._server.stop()
        for s in self.served:
            remove_info(s.project.state_dir)

    # -- the queue loop --------------------------------------------------------------------

    def _loop(self) -> None:
        last_supervised = 0.0
        while not self.stop_event.wait(TICK):
            supervise = time.monotonic() - last_supervised > SUPERVISE_EVERY
            for s in self.served:
                try:
                    self._tick(s, supervise=supervise)
                except MlcicdError as exc:
                    self.log(f"{s.project.config.pipeline}: {exc.headline}")
                except Exception as exc:  # a bug: keep serving, say what happened
                    self.log(
                        f"{s.project.config.pipeline}: internal error: {type(exc).__name__}: {exc}"
                    )
            if supervise:
                last_supervised = time.monotonic()

    def _tick(self, s: Served, *, supervise: bool) -> None:
        project, state = s.project, s.project.state
        config = project.config
        with self._lock:
            pushes, s.pending_push = s.pending_push, []
        for repository in pushes:
            run = triggers.on_push(project, repository)
            if run is not None:
                self.log(
                    f"{config.pipeline}: push to {repository}: run {run.id} queued for "
                    f"{run.commit_sha}"
                )
        if config.service.poll_interval and time.monotonic() >= s.next_poll:
            s.next_poll = time.monotonic() + config.service.poll_interval
            run = triggers.poll(project)
            if run is not None:
                self.log(f"{config.pipeline}: poll found {run.commit_sha}: run {run.id} queued")
        for approval in state.reject_expired_approvals(timeout=config.approve.timeout):
            self.log(f"run {approval.run_id}: approval timed out; rejected")
        if s.child is not None and s.child.process.poll() is not None:
            self.log(
                f"{config.pipeline}: run {s.child.run_id} process exited "
                f"({s.child.process.returncode})"
            )
            code, run_id, s.child = s.child.process.returncode, s.child.run_id, None
            if state.get_run(run_id).status == "Running":  # it died before it could say so
                state.fail_run_in_progress(
                    run_id, f"the run's process exited ({code}) without finishing it"
                )
        if s.child is None and not supervise:
            self._start_next(s)
        if supervise and s.child is None:
            self.endpoint_watch.check(project)
        if supervise:  # during a run too: the history has no gap while a model trains
            self.endpoint_watch.sample(project)

    def _start_next(self, s: Served) -> None:
        state, pipeline = s.project.state, s.project.config.pipeline
        if state.runs_with_status("Running", pipeline):
            return  # one at a time, even if another process runs it
        rollback = state.claim_next_run(pipeline, os.getpid(), rollbacks_only=True)
        if rollback is not None:  # an operator's rollback goes before a resumed run and the queue
            self._spawn(s, rollback.id, resume=False)
            return
        decided = [r for r in state.decided_waiting_runs() if r.pipeline == pipeline]
        if decided:
            self._spawn(s, decided[0].id, resume=True)
            return
        run = state.claim_next_run(pipeline, os.getpid())
        if run is not None:
            self._spawn(s, run.id, resume=False)

    def _spawn(self, s: Served, run_id: int, *, resume: bool) -> None:
        log_path = s.project.path("logs", "service", f"run-{run_id}.log")
        cmd = [sys.executable, "-m", "mlcicd.daemon.runner", str(s.project.root), str(run_id)]
        if resume:
            cmd.append("--resume")
        with open_private_log(log_path, "ab") as log:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=s.project.root,
                env={**child_environment(aws=True), PARENT_ENV: str(os.getpid())},
            )
        s.child = Child(process, run_id)
        trigger = s.project.state.get_run(run_id).trigger
        what = (
            f"rollback run {run_id} to {trigger.get('to')}"
            if trigger.get("kind") == "rollback"
            else f"run {run_id}"
        )
        self.log(
            f"{s.project.config.pipeline}: {what} {'resumed' if resume else 'started'} (pid "
            f"{process.pid})"
        )
