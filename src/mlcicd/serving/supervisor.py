"""The long-lived process of one endpoint: it owns the socket and generations of workers.

    python -m mlcicd.serving.supervisor <endpoint_dir> [--detach] [--launch-id ID]

It reads ``<endpoint_dir>/config.json``, binds the listening socket itself, and starts a
*generation*: N workers that inherit the socket and report on a pipe once ``model_fn``
succeeded and they listen. Then it writes ``status.json`` (InService) and waits:

    SIGHUP          re-read config.json; start a new generation on the same socket; once all
                    its workers are ready, SIGTERM the old one (it drains) — no request is
                    lost, since the kernel's accept queue belongs to the socket, not to a
                    worker. If the new generation fails, it is stopped, the old one keeps
                    serving, and ``last_update_failure`` says why.
    SIGTERM/SIGINT  stop the workers gracefully, write status OutOfService, exit 0.
    a worker dies   it is replaced, with exponential backoff; its last metrics are folded
                    into metrics/retired.json, so the endpoint's counters never go back.
    SIGUSR2         a successor of another mlcicd version asks for the listening socket
                    (:mod:`mlcicd.serving.handover`); SIGUSR1 once it serves: stop writing
                    status.json, drain, exit. ``--take-over`` is the successor's side.
    a worker stalls its event loop has not stamped its heartbeat on the board for
                    ``model_timeout``: the worker answers for itself and exits
                    (:mod:`mlcicd.serving.watchdog`); if it has not after a grace (a
                    handler stuck holding the GIL), it is SIGKILLed. Replaced as above.
    load changes    with ``autoscaling`` in config.json, workers are added or drained to keep
                    the invocations per worker per minute near its target
                    (:mod:`mlcicd.serving.autoscale`); ``status.json`` says how many and why.

How an update moves the traffic — all at once, or step by step watching alarms, rolled
back when one trips — is :mod:`mlcicd.serving.rollout`, which the supervisor drives. Its
workers — started, replaced, killed, retired, and the one wait for their events and the
signals — are a :class:`~mlcicd.serving.workers.WorkerPool`.

``status.json`` is written only here, atomically; ``config_digest`` (the sha256 of the
config.json bytes a generation was started from) lets a waiting deployer tell its own
update from any other. ``--detach`` forks once, writes ``supervisor.pid`` and returns, so
the process that started it neither waits for nor reaps it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import EndpointError, PortInUseError
from mlcicd.fsutil import atomic_write_json, atomic_write_text, read_object
from mlcicd.serving import handover, metrics
from mlcicd.serving.autoscale import Autoscaler
from mlcicd.serving.balance import ConnectionBoard
from mlcicd.serving.config import ServingConfig
from mlcicd.serving.generation import Generation
from mlcicd.serving.layout import (
    CONFIG_FILE,
    LOG_FILE,
    PID_FILE,
    RUN_DIR,
    STATUS_FILE,
    TRAFFIC_FILE,
)
from mlcicd.serving.logs import configure_logging
from mlcicd.serving.rollout import Rollout
from mlcicd.serving.sockets import bind_socket
from mlcicd.serving.status import status_document, utcnow
from mlcicd.serving.workers import WorkerPool

EXIT_FAILED = 1
ACCEPT_STOP_TIMEOUT = 10.0  # for a retiring worker to say it no longer accepts connections
HANDOVER_TIMEOUT = 30.0  # for the running supervisor to send its socket (it may be mid-update)
PREDECESSOR_GRACE = 30.0  # past its drain_timeout, for a superseded supervisor to exit

log = logging.getLogger("mlcicd.serving.supervisor")


class Supervisor:
    """One endpoint's socket, workers and status file."""

    def __init__(
        self,
        state_dir: Path,
        *,
        launch_id: str | None = None,
        log_hint: str | None = None,
        sock: socket.socket | None = None,
        take_over: bool = False,
    ) -> None:
        """``sock``: a listening socket to serve instead of binding config.json's address;
        ``take_over``: ask the endpoint's running supervisor for its socket instead, and
        replace it once this one's workers are ready."""
        self.state_dir = state_dir.resolve()
        self.launch_id = launch_id
        self.log_hint = log_hint or str(self.state_dir / LOG_FILE)
        self._inherited = sock is not None
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.current: Generation | None = None
        self.workers = WorkerPool(
            self.state_dir,
            run_dir=self.state_dir / RUN_DIR,
            log_file=self.state_dir / LOG_FILE,
            log_hint=self.log_hint,
            serving=lambda: self.current,
            changed=self.write_status,
        )
        self.workers.sock = sock  # else bound from config.json at start
        self.started_at = utcnow()
        self.start_time = procinfo.start_time(os.getpid())
        self.status = "Creating"
        self.failure_reason: str | None = None
        self.failure_kind: str | None = None
        self.rollout = Rollout(self)  # updates, and what status.json says of them
        self.autoscaler = Autoscaler()  # deploy.autoscaling: how many workers serve, and why
        self._rate_shown: tuple[float | None, float] = (None, 0.0)  # in status.json; next due
        self.metrics_dir = self.state_dir / metrics.METRICS_DIR
        self._series_last: str | None = None
        self._series_due = 0.0
        self._next_generation = 1
        self._stop = False
        self._reload = False
        self._take_over = take_over
        self._successor = take_over  # until the running supervisor has handed over and gone
        self._offer: handover.Offer | None = None
        self._predecessor: tuple[int, int | None] | None = None
        # status.json belongs to the running supervisor until it has exited; and to none once
        # this one has handed its socket over and been superseded.
        self._quiet = take_over
        self._hand_over_asked = False

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        """Start, serve until SIGTERM, stop; the exit code of the process."""
        try:
            return self._run()
        except Exception as exc:  # a bug of ours: leave no worker behind, say what happened
            log.exception("the supervisor crashed")
            for worker in list(self.workers.by_pid.values()):
                worker.proc.kill()
                worker.proc.wait()
            self.workers.by_pid.clear()
            return self._fail(f"the endpoint server crashed: {type(exc).__name__}: {exc}", "crash")

    def _run(self) -> int:
        self._install_signals()
        (self.state_dir / RUN_DIR).mkdir(parents=True, exist_ok=True)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        # A first line before any request of ours: windows reaching further back start here.
        self._series_last = metrics.append_series(
            self.metrics_dir, metrics.read_all(self.metrics_dir), None
        )
        if not self._take_over:  # else the running supervisor's generations go on
            (self.state_dir / TRAFFIC_FILE).unlink(missing_ok=True)  # generation numbers restart
        self.write_status()
        try:
            config, digest = self._read_config()
        except (OSError, ValueError) as exc:
            return self._fail(f"cannot read {self.state_dir / CONFIG_FILE}: {exc}", "config")
        self.host = config.host
        if self._take_over:
            try:
                self.workers.sock = self._receive_socket()
            except (EndpointError, OSError) as exc:
                return self._fail(f"cannot take the endpoint over: {exc}", "handover")
        elif self.workers.sock is None:
            try:
                self.workers.sock = bind_socket(config.host, config.port)
            except PortInUseError as exc:
                return self._fail(exc.message, "port_in_use")
            except OSError as exc:
                return self._fail(f"cannot listen on {config.host}:{config.port}: {exc}", "bind")
        else:  # handed over: its address is the one clients use, whatever config.json says
            self.host = str(self.workers.sock.getsockname()[0])
        self.port = self.workers.sock.getsockname()[1]
        log.info("listening on %s:%d", self.host, self.port)
        self.workers.board = ConnectionBoard.create()

        started = self.start_generation(config, digest)
        if isinstance(started, str):
            if self._stop:
                self._stopped()
                return 0
            return self._fail(started, "startup")
        self.current = started
        if self._take_over:
            self._supersede(config)
        self.status = "InService"
        # The log first: whoever waits on status.json (deploy, a test) may read the log next.
        log.info("InService: %s (generation %d) on port %d", config.name, started.number, self.port)
        self.write_status()

        while not self.stopping():
            self.workers.wait(self._next_timeout())
            if self.stopping():  # the wait ran the signal handlers
                break
            if self._reload:
                self._reload = False
                self._update()
            self._housekeeping()
        self._stopped()
        return 0

    def stopping(self) -> bool:
        """SIGTERM or SIGINT has arrived."""
        return self._stop

    def _fail(self, reason: str, kind: str) -> int:
        log.error("failed: %s", reason)
        self._close_socket()
        self.status, self.failure_reason, self.failure_kind = "Failed", reason, kind
        if self._successor:  # the old one serves on: the deployer learns why from our record
            if self._offer is not None:
                self._offer.failed(reason)
                self._offer.close()
            else:
                handover.failed_before_offer(self.state_dir, self.launch_id, reason)
        self.write_status()
        return EXIT_FAILED

    # -- taking over from a supervisor of another version (mlcicd.serving.handover) ------

    def _receive_socket(self) -> socket.socket:
        """The running supervisor's listening socket; generations are numbered after its."""
        running = read_object(self.state_dir / STATUS_FILE) or {}
        pid, start = running.get("pid"), running.get("pid_start_time")
        if not isinstance(pid, int):
            raise EndpointError(f"{self.state_dir / STATUS_FILE} names no running server")
        generation = running.get("generation")
        if isinstance(generation, int):
            self._next_generation = generation + 1
        self._predecessor = (pid, start)
        self._offer = handover.Offer(self.state_dir, self.launch_id)
        log.info("taking over from the endpoint server (pid %d)", pid)
        return self._offer.receive(pid, start, HANDOVER_TIMEOUT)

    def _supersede(self, config: ServingConfig) -> None:
        """This supervisor's workers are ready: the running one drains and exits; then
        status.json is ours."""
        assert self._predecessor is not None and self._offer is not None
        pid, start = self._predecessor
        procinfo.signal_process(pid, start, handover.SUPERSEDED)
        deadline = time.monotonic() + config.drain_timeout + PREDECESSOR_GRACE
        while procinfo.is_alive(pid, start) and time.monotonic() < deadline and not self._stop:
            self.idle(0.1)
        if procinfo.is_alive(pid, start):
            log.warning("the endpoint server taken over (pid %d) has not exited", pid)
        self._quiet = self._successor = False
        handover.clear(self.state_dir)
        self._offer.close()
        log.info("took over from the endpoint server (pid %d)", pid)

    def _stopped(self) -> None:
        workers = self.workers
        log.info("stopping: draining %d worker(s)", len(workers.by_pid))
        for gen in {w.generation for w in workers.by_pid.values()}:
            workers.retire(gen, wait=False)
        workers.wait_for_exit(list(workers.by_pid.values()))
        self._close_socket()
        self.status, self.failure_reason = (
            "OutOfService",
            "the endpoint server was stopped (SIGTERM)",
        )
        self.current = None
        log.info("stopped")
        self.write_status()

    def _close_socket(self) -> None:
        if self.workers.sock is not None:
            self.workers.sock.close()
            self.workers.sock = None

    # -- generations ----------------------------------------------------------------------

    def _read_config(self) -> tuple[ServingConfig, str]:
        path = self.state_dir / CONFIG_FILE
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        return ServingConfig.from_dict(data, where=str(path)), hashlib.sha256(raw).hexdigest()

    def start_generation(
        self,
        config: ServingConfig,
        digest: str,
        *,
        blue: ServingConfig | None = None,
        green_percent: float = 100.0,
    ) -> Generation | str:
        """Start ``config.workers`` workers (with autoscaling: as many as serve now, within
        its bounds) and wait until all are ready: the generation, or why not.

        With ``blue``, the workers also load that config and give ``config`` only
        ``green_percent`` of the traffic (until ``traffic.json`` says otherwise).
        """
        number = self._next_generation
        self._next_generation += 1
        spec = self.state_dir / RUN_DIR / f"gen-{number}.json"
        data: dict[str, Any] = {**config.to_dict(), "state_dir": str(self.state_dir)}
        if blue is not None:
            data.update(blue=blue.to_dict(), green_percent=green_percent)
        atomic_write_json(spec, data)
        gen = Generation(number, config, digest, spec)
        count = config.initial_workers
        if config.autoscaling is not None and self.current is not None:
            # An update keeps the capacity the load has scaled to, within the new bounds.
            count = config.autoscaling.clamp(self.workers.serving_count(self.current))
        log.info("generation %d: starting %d worker(s) for %s", number, count, config.name)
        for _ in range(count):
            try:
                self.workers.spawn(gen)
            except OSError as exc:
                self.workers.retire(gen, wait=True)
                return f"cannot start a worker with {config.python or sys.executable}: {exc}"
        deadline = time.monotonic() + config.startup_timeout
        reason: str
        while True:
            broken = next((w for w in gen.workers if w.error or w.exit_code is not None), None)
            if broken is not None:
                reason = broken.error or self.workers.exit_reason(broken)
                break
            if all(w.state == "ready" for w in gen.workers):
                log.info("generation %d: all %d worker(s) ready", number, len(gen.workers))
                return gen
            if self._stop:
                reason = "stopped before the workers were ready"
                break
            now = time.monotonic()
            if now >= deadline:
                reason = (
                    f"the workers were not ready within {config.startup_timeout:g}s "
                    "(startup_timeout); "
                    f"model_fn may be slow or stuck — see {self.log_hint}"
                )
                break
            self.workers.wait(min(0.25, deadline - now))
            self.workers.reap()
        log.error("generation %d failed: %s", number, reason)
        self.workers.retire(gen, wait=True)
        return reason

    def _update(self) -> None:
        assert self.current is not None
        try:
            config, digest = self._read_config()
        except (OSError, ValueError) as exc:
            self.rollout.failed(None, f"cannot read {self.state_dir / CONFIG_FILE}: {exc}")
            return
        if digest == self.current.digest:
            log.info("SIGHUP: config unchanged")
            self.write_status()
            return
        if not self._inherited and (config.host != self.host or config.port not in (0, self.port)):
            self.rollout.failed(
                digest,
                f"the endpoint listens on {self.host}:{self.port}; an update cannot move it to "
                f"{config.host}:{config.port} (delete and redeploy to change it)",
            )
            return
        log.info("SIGHUP: updating to %s (%s)", config.name, config.deployment.strategy)
        self.status = "Updating"
        self.write_status()
        self.rollout.update(config, digest)

    def promote(self, gen: Generation) -> Generation:
        """Make ``gen`` the serving generation; the one it replaces (returned) drains."""
        old, self.current = self.current, gen
        assert old is not None
        self.workers.retire(old, wait=False)
        # InService with the new config means new connections reach the new generation only:
        # wait (briefly) until the old workers say they stopped accepting.
        self.workers.wait_until_not_accepting(old.workers, ACCEPT_STOP_TIMEOUT)
        return old

    # -- housekeeping ---------------------------------------------------------------------

    def _housekeeping(self) -> None:
        if self._hand_over_asked:
            self._hand_over_asked = False
            if self.workers.sock is not None:
                handover.hand_over(self.state_dir, self.workers.sock)
        self.workers.reap()
        now = time.monotonic()
        if now >= self._series_due:
            self._series_due = now + metrics.SERIES_INTERVAL
            summed = metrics.read_all(self.metrics_dir)
            self._series_last = metrics.append_series(self.metrics_dir, summed, self._series_last)
        self.workers.tend(now)
        self._autoscale(now)

    def _autoscale(self, now: float) -> None:
        """Resize the serving generation as ``deploy.autoscaling`` says (not during an update:
        the rollout owns the workers then)."""
        gen = self.current
        spec = gen.config.autoscaling if gen is not None else None
        if gen is None or spec is None or self.status != "InService":
            return
        if not self.autoscaler.due(now):
            return
        summed = metrics.read_all(self.metrics_dir)
        invocations = sum(c.get("Invocations", 0) for c in summed["series"].values())
        self.autoscaler.observe(now, invocations, spec.window_seconds)
        current = self.workers.serving_count(gen)
        decision = self.autoscaler.decide(spec, current, now)
        if decision is None or decision.workers == current:
            shown, due = self._rate_shown
            if self.autoscaler.rate != shown and now >= due:  # describe's rate, at most 5 s old
                self.write_status()
            return
        log.info("autoscaling: %d → %d worker(s): %s", current, decision.workers, decision.reason)
        self.workers.resize(gen, decision.workers)
        self.autoscaler.changed(current, decision.workers, decision.reason, now)
        self.write_status()

    # -- signals and waiting --------------------------------------------------------------

    def _install_signals(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self.workers.watch_wakeup(read_fd)
        for sig in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGCHLD,
            handover.HAND_OVER,
            handover.SUPERSEDED,
        ):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        elif signum == handover.HAND_OVER:
            self._hand_over_asked = True
        elif signum == handover.SUPERSEDED:  # the successor serves and writes status.json
            self._quiet = self._stop = True
        # SIGCHLD only wakes the loop (through the wakeup fd) so a dead worker is seen at once

    def idle(self, seconds: float) -> None:
        """Let up to ``seconds`` pass, tending the workers meanwhile."""
        self.workers.wait(seconds)
        self._housekeeping()

    def _next_timeout(self) -> float:
        timeout = 1.0
        if self.current is not None and self.current.restarts_due:
            timeout = min(timeout, min(self.current.restarts_due) - time.monotonic())
        return max(timeout, 0.0)

    # -- status ---------------------------------------------------------------------------

    def write_status(self) -> None:
        if self._quiet:
            return
        gen = self.current
        spec = gen.config.autoscaling if gen is not None else None
        self._rate_shown = (self.autoscaler.rate, time.monotonic() + metrics.SERIES_INTERVAL)
        scaling = (
            self.autoscaler.record(spec, self.workers.serving_count(gen))
            if gen is not None and spec is not None
            else None
        )
        atomic_write_json(
            self.state_dir / STATUS_FILE,
            status_document(self, {**self.rollout.record(), "autoscaling": scaling}),
        )


def detach(state_dir: Path) -> None:
    """Fork; the parent records the child's pid and exits, the child leads a new session."""
    pid = os.fork()
    if pid:
        record = {"pid": pid, "start_time": procinfo.start_time(pid)}
        atomic_write_text(state_dir / PID_FILE, json.dumps(record) + "\n")
        os._exit(0)
    os.setsid()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlcicd.serving.supervisor", description=__doc__
    )
    parser.add_argument("endpoint_dir", type=Path)
    parser.add_argument("--detach", action="store_true", help="fork into the background first")
    parser.add_argument("--launch-id", help="echoed in status.json so the starter knows its launch")
    parser.add_argument(
        "--take-over",
        action="store_true",
        help="replace the endpoint's running server, serving its socket (mlcicd.serving.handover)",
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.endpoint_dir.resolve()
    if args.detach:
        detach(state_dir)
    os.chdir(state_dir)
    configure_logging("supervisor")
    return Supervisor(state_dir, launch_id=args.launch_id, take_over=args.take_over).run()


if __name__ == "__main__":
    sys.exit(main())
