"""The workers of one endpoint, every generation of them, as its supervisor keeps them.

A :class:`WorkerPool` starts a generation's workers (each inherits the listening socket and
a slot on the connection board), reads their events (ready, draining, failed, stalled),
and collects the ones that exit: their last metrics are folded into ``retired.json``, and
a worker of the serving generation that died is replaced, with exponential backoff. It
SIGKILLs a worker whose event loop stalled past ``model_timeout`` and did not exit itself
(:mod:`mlcicd.serving.watchdog`), and retires a generation: SIGTERM, its workers drain,
SIGKILL for those that do not in time.

All of it waits in one place, :meth:`WorkerPool.wait`: a select over the workers' status
pipes and the wakeup fd the supervisor's signal handlers write to, so a signal or a dead
worker is seen at once. The pool learns which generation serves from ``serving()`` and
says that what ``status.json`` shows has changed through ``changed()``: it never imports
the supervisor (:mod:`mlcicd.serving.supervisor`), which owns the generations.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path

from mlcicd.serving import metrics
from mlcicd.serving.balance import ConnectionBoard
from mlcicd.serving.generation import Generation, Worker, exit_text, last_line, spawn_worker

RESTART_BACKOFF = (0.5, 30.0)  # first delay, ceiling; doubles per consecutive crash
STABLE_AFTER = 10.0  # a worker ready this long resets the crash count
_DRAIN_GRACE = 2.0  # mirrors worker.DRAIN_GRACE (not imported: it pulls uvicorn)
STALL_KILL_GRACE = 5.0  # past model_timeout, for a stalled worker to answer for itself and exit

# The supervisor's log lines: the workers are a part of its work, in its process.
log = logging.getLogger("mlcicd.serving.supervisor")


class WorkerPool:
    """Every worker of one endpoint by pid, its listening socket and its connection board."""

    def __init__(
        self,
        state_dir: Path,
        *,
        run_dir: Path,
        log_file: Path,
        log_hint: str,
        serving: Callable[[], Generation | None],
        changed: Callable[[], None],
    ) -> None:
        """``run_dir``: the workers' working directory; ``log_file``: the endpoint log they
        write to; ``serving``: the serving generation now; ``changed``: write status.json."""
        self.run_dir = run_dir
        self.log_file = log_file
        self.log_hint = log_hint
        self.metrics_dir = state_dir / metrics.METRICS_DIR
        self.by_pid: dict[int, Worker] = {}
        self.restarts = 0  # replacements started, over the supervisor's life
        self.sock: socket.socket | None = None  # the listening socket every worker inherits
        self.board: ConnectionBoard | None = None  # how many connections each worker holds
        self._serving = serving
        self._changed = changed
        self._selector = selectors.DefaultSelector()
        self._wakeup: int | None = None

    def watch_wakeup(self, fd: int) -> None:
        """Wake :meth:`wait` when ``fd`` (the signals' wakeup fd) becomes readable."""
        self._wakeup = fd
        self._selector.register(fd, selectors.EVENT_READ, None)

    def spawn(self, gen: Generation) -> Worker:
        """Start a worker of ``gen`` on the listening socket, with a slot on the board."""
        assert self.sock is not None
        board = self.board
        slot = board.claim() if board is not None else None
        try:
            worker = spawn_worker(
                gen,
                self.sock.fileno(),
                cwd=self.run_dir,
                log_hint=self.log_hint,
                board_fd=board.fd if board is not None else None,
                slot=slot,
            )
        except BaseException:
            if board is not None:
                board.release(slot)
            raise
        assert worker.status_fd is not None
        self._selector.register(worker.status_fd, selectors.EVENT_READ, worker)
        gen.workers.append(worker)
        self.by_pid[worker.pid] = worker
        log.info("generation %d: worker %d started", gen.number, worker.pid)
        return worker

    def _on_status(self, worker: Worker) -> None:
        events = worker.read_events()
        if events is None:
            self._close_status(worker)
            return
        for event in events:
            if event.get("event") == "ready" and worker.state == "starting":
                worker.state, worker.ready_at, worker.accepting = "ready", time.monotonic(), True
                compiled = event.get("compiled")
                worker.compiled = compiled if isinstance(compiled, dict) else None
                if worker.generation is self._serving():
                    self._changed()  # a replacement joined
            elif event.get("event") == "draining":
                worker.accepting = False
            elif event.get("event") == "failed":
                worker.error = str(event.get("error") or "the worker failed to load the model")
            elif event.get("event") == "stalled":
                worker.error = str(event.get("error") or "its event loop stalled")
            else:
                log.warning("worker %d sent an unexpected event: %r", worker.pid, event)

    def _close_status(self, worker: Worker) -> None:
        if worker.status_fd is not None:
            self._selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None

    def reap(self) -> None:
        """Collect exited workers; schedule replacements for the serving generation's."""
        now = time.monotonic()
        for worker in list(self.by_pid.values()):
            code = worker.proc.poll()
            if code is None:
                if worker.state == "ready" and now - worker.ready_at > STABLE_AFTER:
                    worker.generation.crashes = 0
                continue
            worker.exit_code = code
            del self.by_pid[worker.pid]
            if self.board is not None:
                self.board.release(worker.slot)
            if worker.status_fd is not None:
                self._on_status(worker)  # a last event may still be in the pipe
                self._close_status(worker)
            gen = worker.generation
            metrics.fold_worker(self.metrics_dir, f"g{gen.number}-{worker.pid}")
            if gen is self._serving():
                gen.workers.remove(worker)
            if worker.state == "stopping":
                log.info(
                    "generation %d: worker %d exited (%s)", gen.number, worker.pid, exit_text(code)
                )
                self._changed()  # scaled in, or an old generation drained: one worker fewer
            elif gen is self._serving():
                delay = min(RESTART_BACKOFF[0] * 2**gen.crashes, RESTART_BACKOFF[1])
                gen.crashes += 1
                gen.restarts_due.append(now + delay)
                log.warning(
                    "generation %d: worker %d died (%s)%s; replacing it in %.1fs",
                    gen.number,
                    worker.pid,
                    exit_text(code),
                    f": {worker.error}" if worker.error else "",
                    delay,
                )
                self._changed()
            if gen is not self._serving() and not any(
                w.generation is gen for w in self.by_pid.values()
            ):
                gen.spec_path.unlink(missing_ok=True)

    def _kill_if_stalled(self, worker: Worker, now: float) -> None:
        """SIGKILL a worker whose loop stalled past ``model_timeout`` and did not exit itself
        (no signal reaches a wedged loop; its watchdog thread has had its grace)."""
        assert self.board is not None
        timeout = worker.generation.config.model_timeout
        stalled = self.board.stalled_for(worker.slot, now)
        if stalled <= timeout + STALL_KILL_GRACE:
            return
        worker.state, worker.accepting = "stalled", False
        worker.error = (
            f"its event loop stalled for {stalled:.0f}s (deploy.model_timeout is {timeout:g}s) "
            "and it did not exit; killed"
        )
        log.error(
            "generation %d: worker %d: %s", worker.generation.number, worker.pid, worker.error
        )
        worker.proc.kill()

    def retire(self, gen: Generation, *, wait: bool) -> None:
        """SIGTERM a generation's workers (they drain); with ``wait``, until they are gone."""
        self.stop([w for w in self.by_pid.values() if w.generation is gen], wait=wait)

    def stop(self, victims: list[Worker], *, wait: bool) -> None:
        """SIGTERM ``victims``: each stops accepting, answers what it holds, exits (killed
        past its generation's ``drain_timeout``); none is replaced. With ``wait``, until
        they are gone."""
        for worker in victims:
            if worker.state != "stopping":
                drain = worker.generation.config.drain_timeout
                worker.state = "stopping"
                worker.kill_at = time.monotonic() + drain + _DRAIN_GRACE + 5.0
                worker.proc.terminate()  # a no-op once Popen has seen it exit
        if wait:
            self.wait_for_exit(victims)

    def serving_count(self, gen: Generation) -> int:
        """How many workers ``gen`` has, counting those due to be replaced and not those
        stopping."""
        return sum(w.state != "stopping" for w in gen.workers) + len(gen.restarts_due)

    def resize(self, gen: Generation, count: int) -> None:
        """Start or stop workers of ``gen`` until it has ``count`` (autoscaling).

        A new worker accepts connections only once its model is loaded (its "ready"); a
        removed one drains as a retiring generation's does: the listening socket stays open
        in the others, so no connection waiting or request in flight is lost. The newest go
        first: a worker still starting or due to be replaced serves nobody yet.
        """
        have = self.serving_count(gen)
        while have < count:
            try:
                self.spawn(gen)
            except OSError as exc:
                log.error("generation %d: cannot start another worker: %s", gen.number, exc)
                return
            have += 1
        while have > count and gen.restarts_due:
            gen.restarts_due.pop()
            have -= 1
        if have > count:
            live = [w for w in gen.workers if w.state != "stopping"]
            live.sort(key=lambda w: (w.state == "ready", -w.ready_at))
            self.stop(live[: have - count], wait=False)

    def wait_until_not_accepting(self, workers: list[Worker], timeout: float) -> None:
        """Until ``workers`` say they stopped accepting connections (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while any(w.pid in self.by_pid and w.accepting for w in workers):
            if time.monotonic() > deadline:
                log.warning("old workers still accept connections after %.0fs; going on", timeout)
                return
            self.wait(0.02)
            self.reap()

    def wait_for_exit(self, workers: list[Worker]) -> None:
        """Until ``workers`` have exited; SIGKILL those past their ``kill_at``."""
        while any(w.pid in self.by_pid for w in workers):
            self.wait(0.1)
            self.reap()
            now = time.monotonic()
            for worker in workers:
                if worker.pid in self.by_pid and now >= worker.kill_at:
                    log.warning("worker %d did not stop in time; killing it", worker.pid)
                    worker.proc.kill()
                    worker.kill_at = now + 5.0

    def exit_reason(self, worker: Worker) -> str:
        """Why ``worker`` exited before it was ready: its exit, and the log's last line."""
        reason = f"a worker exited ({exit_text(worker.exit_code)}) before it was ready"
        tail = last_line(self.log_file)
        return f"{reason}: {tail}" if tail else f"{reason}; see {self.log_hint}"

    def wait(self, timeout: float) -> None:
        """Up to ``timeout`` seconds, until a signal arrives or a worker's events do (read
        them)."""
        for key, _ in self._selector.select(max(timeout, 0.0)):
            if key.data is None:
                assert self._wakeup is not None
                try:
                    while os.read(self._wakeup, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._on_status(key.data)

    def tend(self, now: float) -> None:
        """Start the serving generation's replacements that are due; kill the workers that
        did not drain in time, or whose event loop stalled and did not exit."""
        gen = self._serving()
        if gen is not None:
            due = [t for t in gen.restarts_due if t <= now]
            gen.restarts_due = [t for t in gen.restarts_due if t > now]
            for _ in due:
                try:
                    self.spawn(gen)
                    self.restarts += 1
                except OSError as exc:
                    log.error("cannot replace a worker: %s", exc)
                    gen.restarts_due.append(now + RESTART_BACKOFF[1])
        for worker in self.by_pid.values():
            if worker.state == "stopping" and now >= worker.kill_at:
                log.warning("worker %d did not drain in time; killing it", worker.pid)
                worker.proc.kill()
                worker.kill_at = now + 5.0
            elif worker.state == "ready" and self.board is not None:
                self._kill_if_stalled(worker, now)
