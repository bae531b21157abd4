"""One worker process: load the model, then serve the listening socket it inherited.

    python -m mlcicd.serving.worker --fd N --spec gen-3.json [--status-fd M] [--generation 3]

Order matters: the handlers are imported and ``model_fn`` runs *before* the socket is
touched, so a worker that accepts a connection can answer it. Once uvicorn listens and the
app's ping says healthy, the worker writes ``{"event": "ready"}`` to the status pipe; if
loading fails it writes ``{"event": "failed", "error": ...}`` there and exits 3. When it
has stopped accepting, on SIGTERM, it writes ``{"event": "draining"}``.

SIGTERM drains: stop accepting (the socket stays open in the other processes, so nothing
queued on it is lost), answer requests still arriving on open connections with
``connection: close`` for a short grace, then uvicorn's graceful shutdown. The worker also
ends when its supervisor does (``PR_SET_PDEATHSIG`` on Linux, a parent-pid check elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from mlcicd.fsutil import read_json
from mlcicd.serving.app import InferenceApp
from mlcicd.serving.config import ServingConfig
from mlcicd.serving.handlers import LoadedVariant, describe_exception, load_handlers
from mlcicd.serving.logs import configure_logging

log = logging.getLogger("mlcicd.serving.worker")

EXIT_LOAD_FAILED = 3
# How long a draining worker keeps answering (with `connection: close`) on connections that
# are still open, before uvicorn closes the idle ones.
DRAIN_GRACE = 2.0


def build_app(config: ServingConfig, *, log_hint: str = "the endpoint log") -> InferenceApp:
    """Import every variant's handlers and run its ``model_fn``; raise on the first failure."""
    loaded = []
    for variant in config.variants:
        handlers = load_handlers(Path(variant.code_dir), variant.entry_point)
        model = handlers.load_model(variant.model_dir)
        loaded.append(LoadedVariant(variant.name, handlers, model, variant.weight))
        log.info("variant %s loaded from %s", variant.name, variant.model_dir)
    return InferenceApp(
        loaded,
        endpoint_name=config.endpoint_name,
        max_payload_bytes=config.max_payload_bytes,
        logger=logging.getLogger("mlcicd.serving.app"),
        log_hint=log_hint,
    )


class WorkerServer(uvicorn.Server):
    """uvicorn's server, plus: report readiness, drain politely, die with the parent."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: InferenceApp,
        *,
        on_ready: Callable[[], None] | None = None,
        on_draining: Callable[[], None] | None = None,
        parent_pid: int | None = None,
        drain_grace: float = DRAIN_GRACE,
    ) -> None:
        super().__init__(config)
        self.app = app
        self.on_ready = on_ready
        self.on_draining = on_draining
        self.parent_pid = parent_pid
        self.drain_grace = drain_grace
        self._watchdog: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started or self.should_exit:
            return
        if self.parent_pid:
            self._watchdog = asyncio.create_task(self._watch_parent())
        if self.on_ready is not None and self.app.healthy:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting; the other processes keep the socket open
        self.app.draining = True
        if self.on_draining is not None:
            self.on_draining()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_grace
        while self.server_state.connections and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        if self._watchdog is not None:
            self._watchdog.cancel()
        await super().shutdown(sockets=sockets)

    async def _watch_parent(self) -> None:
        while not self.should_exit:
            if os.getppid() != self.parent_pid:
                log.warning("supervisor %s is gone; shutting down", self.parent_pid)
                self.should_exit = True
                return
            await asyncio.sleep(1.0)


def serve(
    app: InferenceApp,
    sock: socket.socket,
    *,
    drain_timeout: float = 30.0,
    on_ready: Callable[[], None] | None = None,
    on_draining: Callable[[], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve ``app`` on the listening ``sock`` until SIGTERM/SIGINT, then drain."""
    config = uvicorn.Config(
        app,
        loop="auto",  # uvloop when installed, else asyncio
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(drain_timeout)),
    )
    server = WorkerServer(
        config, app, on_ready=on_ready, on_draining=on_draining, parent_pid=parent_pid
    )
    # uvicorn re-raises the signal it caught once it has shut down; make that a no-op so a
    # drained worker exits 0 instead of dying of SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run(sockets=[sock])


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket behind ``fd`` (family and protocol read from the fd itself).

    ``socket.fromfd(fd, AF_UNIX, ...)`` as uvicorn's ``fd=`` option does would mislabel a TCP
    socket, and asyncio would then skip TCP_NODELAY on every accepted connection.
    """
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGTERM us when the supervisor dies (the watchdog covers other OSes)."""
    if not parent_pid or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(0)


def _report(fd: int | None, event: dict[str, Any], *, last: bool = True) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, orjson.dumps(event) + b"\n")
        if last:
            os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcicd.serving.worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--spec", type=Path, required=True, help="serving config (JSON) to load")
    parser.add_argument("--status-fd", type=int, help="pipe for the ready/failed event")
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--log-hint", default="the endpoint log", help="where clients should look")
    args = parser.parse_args(argv)

    configure_logging(f"worker.g{args.generation}")
    die_with_parent(args.parent_pid)
    try:
        config = ServingConfig.from_dict(read_json(args.spec), where=str(args.spec))
        app = build_app(config, log_hint=args.log_hint)
    except Exception as exc:
        message = getattr(exc, "headline", None) or describe_exception(exc)
        log.error("failed to load the model: %s", message, exc_info=True)
        _report(args.status_fd, {"event": "failed", "error": message})
        return EXIT_LOAD_FAILED

    def ready() -> None:
        log.info("ready: serving %s", ", ".join(v.name for v in app.variants))
        _report(args.status_fd, {"event": "ready", "pid": os.getpid()}, last=False)

    def draining() -> None:
        log.info("draining: no longer accepting connections")
        _report(args.status_fd, {"event": "draining"})

    serve(
        app,
        inherited_socket(args.fd),
        drain_timeout=config.drain_timeout,
        on_ready=ready,
        on_draining=draining,
        parent_pid=args.parent_pid,
    )
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
