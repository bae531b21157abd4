"""A worker whose event loop stalls answers for what it holds, then is replaced.

Prediction runs on the event loop (:mod:`mlcicd.serving.app`): a handler that never returns
stops its worker from answering anything at all — the request, its other connections,
``/ping``. SageMaker gives a container 60 s per invocation; ``deploy.model_timeout`` (the
same 60 s by default) is that limit here. Three parts, none of them per request:

- **heartbeat**: the worker's loop stamps the time in its slot of the supervisor's board
  every :data:`HEARTBEAT_INTERVAL` (one loop callback). A loop that stops stamping is
  stalled; the balanced acceptor already sends new connections past a peer stalled for
  :data:`~mlcicd.serving.balance.BUSY_AFTER_SECONDS`.
- **the worker's own watchdog**, a thread: once the loop has not stamped for
  ``model_timeout``, it answers the requests that reached the handlers as SageMaker answers
  an invocation that timed out (504 ``ModelTimeout`` on ``/invocations``; 424
  ``ModelError`` with ``OriginalStatusCode`` 0 on the Runtime path), answers 503 to requests
  it holds but had not started (retry: another worker serves them), closes its idle
  connections, counts the timeouts as 5XX errors, logs where the handler is stuck, and exits
  with :data:`EXIT_STALLED`. The supervisor replaces it as it replaces any dead worker.
- **the supervisor**: a worker whose stamp is older than ``model_timeout`` plus a grace
  (:data:`mlcicd.serving.workers.STALL_KILL_GRACE`) is SIGKILLed — a handler stuck in C
  code that holds the GIL never lets the thread above run; its clients then see the
  connection close, without a status.

The thread answers from outside the loop, on the raw sockets, only once the loop has not
run for ``model_timeout``: were the handler to return in that same instant, the two could
both write to one connection — which is then closed as the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection
from typing import Any

import orjson

from mlcicd.serving.balance import ConnectionBoard

log = logging.getLogger("mlcicd.serving.watchdog")

HEARTBEAT_INTERVAL = 0.25
EXIT_STALLED = 4
IN_HANDLERS = "mlcicd.variant_metrics"  # the scope key app.py sets as a request enters its handlers
_RUNTIME_PREFIX = b"POST /endpoints/"
_REASONS = {424: "Failed Dependency", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Heartbeat:
    """The event loop stamps the time, here and (with a board) in its slot on the board."""

    def __init__(self, board: ConnectionBoard | None = None, slot: int | None = None) -> None:
        self.board = board if slot is not None else None
        self.slot = slot
        self.last = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._beat()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        assert self._loop is not None
        self.last = now = time.monotonic()
        if self.board is not None and self.slot is not None:
            self.board.beat(self.slot, now)
        self._handle = self._loop.call_later(HEARTBEAT_INTERVAL, self._beat)


class Watchdog:
    """A thread that answers for the worker once its loop has stalled ``timeout`` seconds.

    It sleeps until the last heartbeat is ``timeout`` old, so while the loop is healthy it
    wakes about once per ``timeout``, and never takes the GIL from a busy loop otherwise.
    """

    def __init__(
        self,
        heartbeat: Heartbeat,
        connections: Collection[Any],
        timeout: float,
        *,
        log_hint: str = "the endpoint log",
        metrics: Any = None,  # the worker's WorkerMetrics: flushed with the timeouts counted
        on_stall: Callable[[str], None] | None = None,
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self.heartbeat = heartbeat
        self.connections = connections
        self.timeout = timeout
        self.log_hint = log_hint
        self.metrics = metrics
        self.on_stall = on_stall
        self.exit = exit
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcicd-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            stalled = time.monotonic() - self.heartbeat.last
            if stalled > self.timeout:
                self._fire(stalled)
                return
            self._stop.wait(self.timeout - stalled + HEARTBEAT_INTERVAL)

    def _fire(self, stalled: float) -> None:
        reason = (
            f"the event loop has not run for {stalled:.0f}s (deploy.model_timeout is "
            f"{self.timeout:g}s): a request's handlers are stuck"
        )
        frame = sys._current_frames().get(self._main or 0)
        where = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
        try:
            counts = self.answer()
            log.error(
                "%s; answered %d timed out and %d not started, closed %d idle connection(s); "
                "restarting. The handler is stuck at:\n%s",
                reason,
                *counts,
                where.rstrip(),
            )
            if self.metrics is not None:
                self.metrics.flush(force=True)
            if self.on_stall is not None:
                self.on_stall(reason)
        except Exception:  # the exit below must happen whatever failed
            log.exception("the watchdog could not answer every connection")
        finally:
            self.exit(EXIT_STALLED)

    def answer(self) -> tuple[int, int, int]:
        """Answer or close every connection: how many timed out, were not started, were idle."""
        timed_out = not_started = idle = 0
        for protocol in _snapshot(self.connections):
            sock = _socket_of(protocol)
            if sock is None:
                continue
            with sock:
                cycle = getattr(protocol, "cycle", None)
                if cycle is not None and not cycle.response_complete:
                    runtime = cycle.scope["path"].startswith("/endpoints/")
                    if cycle.response_started:
                        pass  # half an answer is out: only a close can follow
                    elif IN_HANDLERS in cycle.scope:
                        timed_out += 1
                        cycle.scope[IN_HANDLERS].errors_5xx += 1
                        _send(sock, self.timeout_response(runtime))
                    else:
                        not_started += 1
                        _send(sock, unavailable_response(runtime))
                else:
                    unread = _peek(sock)
                    if unread:
                        not_started += 1
                        _send(sock, unavailable_response(unread.startswith(_RUNTIME_PREFIX)))
                    else:
                        idle += 1
                _close(sock)
        return timed_out, not_started, idle

    def timeout_response(self, runtime: bool) -> bytes:
        """What a request in the handlers gets: SageMaker's answer to an invocation that
        timed out."""
        if not runtime:
            message = (
                f"the model did not answer within {self.timeout:g}s (deploy.model_timeout); "
                f"its worker was restarted — see {self.log_hint}"
            )
            return _response(504, {"error": "ModelTimeout", "message": message})
        original = (
            "Your invocation timed out while waiting for a response from container primary "
            f"(deploy.model_timeout: {self.timeout:g}s); its worker was restarted."
        )
        body = {
            "__type": "ModelError",
            "Message": f'Received server error (0) from primary with message "{original}". '
            f"See {self.log_hint} for more information.",
            "OriginalStatusCode": 0,
            "OriginalMessage": original,
        }
        return _response(424, body, error_type="ModelError")


def unavailable_response(runtime: bool) -> bytes:
    """What a request the stalled worker had not started gets: try again (another worker)."""
    message = (
        "the worker holding this connection stalled on another request and was restarted "
        "before it read this one; send it again"
    )
    if runtime:
        body = {"__type": "ServiceUnavailable", "Message": message}
        return _response(503, body, error_type="ServiceUnavailable")
    return _response(503, {"error": "ServiceUnavailable", "message": message})


def _response(status: int, body: dict[str, Any], *, error_type: str | None = None) -> bytes:
    data = orjson.dumps(body)
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "content-type: application/json",
        f"content-length: {len(data)}",
        "connection: close",
    ]
    if error_type is not None:
        head += [f"x-amzn-errortype: {error_type}", f"x-amzn-requestid: {uuid.uuid4()}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def _snapshot(connections: Collection[Any]) -> list[Any]:
    """The loop is stalled, so the set holds still; should it move after all, look again."""
    for _ in range(10):
        with contextlib.suppress(RuntimeError):  # "set changed size during iteration"
            return list(connections)
    return []


def _socket_of(protocol: Any) -> socket.socket | None:
    """A socket of our own on the connection's file descriptor (a duplicate: ours to close)."""
    transport = getattr(protocol, "transport", None)
    raw = transport.get_extra_info("socket") if transport is not None else None
    if raw is None:
        return None
    try:
        return socket.socket(fileno=os.dup(raw.fileno()))
    except OSError:
        return None


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)  # a client that reads nothing cannot hold the exit up
        sock.sendall(data)


def _peek(sock: socket.socket) -> bytes:
    """Bytes the client sent that the loop never read (a request it did not start)."""
    try:
        return sock.recv(len(_RUNTIME_PREFIX), socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    """Half-close, then read what the client sent: closing a socket with unread input
    sends a reset, which may make the client drop the answer it has not read yet."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        for _ in range(64):  # what is buffered; a client that keeps sending gets a reset
            if not sock.recv(65536, socket.MSG_DONTWAIT):
                break
