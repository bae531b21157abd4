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

Four times a second a housekeeping task writes the worker's metrics snapshot (when it
changed), applies the endpoint's control files when they changed (``weights.json`` from
``set-weights``, ``traffic.json`` from the supervisor during a canary or linear update) and
closes connections whose client is too slow: a request's headers must arrive within
``header_timeout`` of its first byte (or of the connection), its body within
``body_timeout`` — a slowloris client gets a 408 and loses its connection, nobody else
waits for it (the event loop never blocks on a client).

The loop also stamps a heartbeat on the supervisor's board; should a handler hold it longer
than ``model_timeout``, a watchdog thread answers the stuck requests and the worker exits
(:data:`~mlcicd.serving.watchdog.EXIT_STALLED`, after a ``{"event": "stalled"}``) to be
replaced — see :mod:`mlcicd.serving.watchdog`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from mlcicd.fsutil import read_json
from mlcicd.serving import direct
from mlcicd.serving.app import InferenceApp
from mlcicd.serving.balance import BalancedAcceptor, ConnectionBoard
from mlcicd.serving.batching import check_batching
from mlcicd.serving.capture import CaptureWriter
from mlcicd.serving.clarify import ExplainerSettings
from mlcicd.serving.config import CaptureSpec, ServingConfig, VariantSpec
from mlcicd.serving.explanations import OnlineExplainer
from mlcicd.serving.handlers import (
    LoadedVariant,
    describe_exception,
    gc_paused_while_loading,
    load_handlers,
)
from mlcicd.serving.layout import TRAFFIC_FILE, WEIGHTS_FILE
from mlcicd.serving.logs import configure_logging
from mlcicd.serving.metrics import FLUSH_INTERVAL, METRICS_DIR, WorkerMetrics
from mlcicd.serving.protocol import GuardedProtocol, guarded_config, guarded_protocol
from mlcicd.serving.shadow import ShadowRunner
from mlcicd.serving.sockets import inherited_socket
from mlcicd.serving.watchdog import Heartbeat, Watchdog

log = logging.getLogger("mlcicd.serving.worker")

EXIT_LOAD_FAILED = 3
# How long a draining worker keeps answering (with `connection: close`) on connections that
# are still open, before uvicorn closes the idle ones.
DRAIN_GRACE = 2.0
HOUSEKEEPING_INTERVAL = 0.25
CAPTURE_DIR = "data-capture"  # the default destination of shadow comparisons


def load_variant(spec: VariantSpec) -> LoadedVariant:
    handlers = load_handlers(Path(spec.code_dir), spec.entry_point)
    model = handlers.load_model(spec.model_dir)
    log.info("variant %s loaded from %s", spec.name, spec.model_dir)
    variant = LoadedVariant(spec.name, handlers, model, spec.weight)
    check_batching(variant)  # a predict_fn that opts in and breaks on a batch: fail now
    if variant.compiled:
        log.info("variant %s: compiled %s", spec.name, ", ".join(variant.compiled))
    return variant


def build_app(
    config: ServingConfig,
    *,
    log_hint: str = "the endpoint log",
    state_dir: Path | None = None,
    worker_id: str = "0",
    blue: ServingConfig | None = None,
    green_percent: float = 100.0,
) -> InferenceApp:
    """Import every variant's handlers and run its ``model_fn``; raise on the first failure.

    With ``blue`` (an update that shifts traffic), the serving config's variants are loaded
    too, and ``green_percent`` of requests go to ``config``'s.
    """
    endpoint = config.endpoint_name or config.name
    metrics_dir = None
    if state_dir is not None:
        metrics_dir = state_dir / METRICS_DIR
        metrics_dir.mkdir(parents=True, exist_ok=True)
    metrics = WorkerMetrics(endpoint, metrics_dir, worker_id)
    loaded = [load_variant(v) for v in config.variants]
    blue_fleet = None
    if blue is not None:
        blue_fleet = (blue.name, [load_variant(v) for v in blue.variants])
    capture = shadow = None
    if config.capture is not None:
        capture = CaptureWriter(
            config.capture, endpoint, worker_id, lambda: metrics.count("CaptureDropped")
        )
        metrics.counters.setdefault("CaptureDropped", 0)
    if config.shadow is not None:
        target = config.capture.destination if config.capture else None
        if target is None:
            target = str((state_dir or Path.cwd()) / CAPTURE_DIR)
        recorder = CaptureWriter(
            CaptureSpec(destination=target),
            endpoint,
            worker_id,
            lambda: metrics.count("CaptureDropped"),
        )
        metrics.counters.setdefault("ShadowDropped", 0)
        shadow = ShadowRunner(
            load_variant(config.shadow),
            metrics.variant(config.name, config.shadow.name),
            recorder,
            lambda: metrics.count("ShadowDropped"),
        )
    explainers = {}
    if config.explainer is not None:  # built now, once per worker: never per request
        settings = ExplainerSettings.from_clarify(config.explainer)
        everyone = [*loaded, *(blue_fleet[1] if blue_fleet else [])]
        explainers = {v: OnlineExplainer(v, settings) for v in everyone}
    return InferenceApp(
        loaded,
        endpoint_name=config.endpoint_name,
        max_payload_bytes=config.max_payload_bytes,
        logger=logging.getLogger("mlcicd.serving.app"),
        log_hint=log_hint,
        config_name=config.name,
        metrics=metrics,
        blue=blue_fleet,
        green_share=green_percent / 100.0,
        capture=capture,
        shadow=shadow,
        explainers=explainers,
        # What a batch transform may send at once (/execution-parameters): as much as the
        # fleet takes once scaled out; the load it sends is what scales it out.
        workers=config.most_workers,
    )


class ControlFiles:
    """The endpoint's control files, applied to the app when their mtime changes."""

    def __init__(self, app: InferenceApp, state_dir: Path | None, generation: int) -> None:
        self.app = app
        self.state_dir = state_dir
        self.generation = generation
        self._seen: dict[str, int] = {}

    def poll(self) -> None:
        if self.state_dir is None:
            return
        for name, apply in ((WEIGHTS_FILE, self._weights), (TRAFFIC_FILE, self._traffic)):
            path = self.state_dir / name
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            if self._seen.get(name) == mtime:
                continue
            self._seen[name] = mtime
            try:
                data = read_json(path)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                apply(data)

    def _weights(self, data: Mapping[str, Any]) -> None:
        weights = data.get("weights")
        if isinstance(weights, dict):
            self.app.set_weights(str(data.get("config_name")), weights)
            log.info("traffic weights: %s", weights)

    def _traffic(self, data: Mapping[str, Any]) -> None:
        share = data.get("green_percent")
        mine = data.get("generation") == self.generation and self.app.blue is not None
        if mine and isinstance(share, int | float):
            self.app.green_share = max(0.0, min(1.0, share / 100.0))
            log.info("traffic: %g%% to %s", share, self.app.fleet.config_name)


class WorkerServer(uvicorn.Server):
    """uvicorn's server, plus: report readiness, drain politely, die with the parent."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: InferenceApp,
        listen: socket.socket,
        *,
        on_ready: Callable[[], None] | None = None,
        on_draining: Callable[[], None] | None = None,
        parent_pid: int | None = None,
        drain_grace: float = DRAIN_GRACE,
        control: ControlFiles | None = None,
        board: ConnectionBoard | None = None,
        slot: int | None = None,
        balance: bool = True,
        model_timeout: float | None = None,
        on_stall: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.app = app
        self.listen = listen
        self.board = board
        self.slot = slot
        self.balance = balance
        self.model_timeout = model_timeout
        self.on_stall = on_stall
        self.heartbeat: Heartbeat | None = None
        self.stall_watchdog: Watchdog | None = None
        self.acceptor: BalancedAcceptor | None = None
        self.control = control
        self._housekeeper: asyncio.Task[None] | None = None
        self.on_ready = on_ready
        self.on_draining = on_draining
        self.parent_pid = parent_pid
        self.drain_grace = drain_grace
        self._watchdog: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own startup with no socket of its own; ours accepts its share (balance.py)
        await super().startup(sockets=[])
        if not self.started or self.should_exit:
            return
        config = self.config
        protocol_class: Any = config.http_protocol_class  # uvicorn builds it the same way
        protocol = functools.partial(
            protocol_class,
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        board = self.board if self.balance else None
        self.acceptor = BalancedAcceptor(self.listen, protocol, board=board, slot=self.slot)
        self.acceptor.start()
        self.heartbeat = Heartbeat(self.board, self.slot)
        self.heartbeat.start()
        if self.model_timeout is not None:
            self.stall_watchdog = Watchdog(
                self.heartbeat,
                self.server_state.connections,
                self.model_timeout,
                log_hint=self.app.log_hint,
                metrics=self.app.metrics,
                on_stall=self.on_stall,
            )
            self.stall_watchdog.start()
        if self.parent_pid:
            self._watchdog = asyncio.create_task(self._watch_parent())
        self._housekeeper = asyncio.create_task(self._housekeeping())
        if self.on_ready is not None and self.app.healthy:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.acceptor is not None:
            self.acceptor.close()  # stop accepting; the other processes keep the socket open
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
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        self.app.metrics.flush(force=True)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        flushed = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                now = loop.time()
                for connection in list(self.server_state.connections):
                    if isinstance(connection, GuardedProtocol) and connection.expired(now):
                        log.info("closed a connection whose client was too slow")
                if self.control is not None:
                    self.control.poll()
                if time.monotonic() - flushed >= FLUSH_INTERVAL:
                    flushed = time.monotonic()
                    self.app.metrics.flush()
            except Exception:  # housekeeping must outlive any one failure
                log.exception("worker housekeeping failed")

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
    header_timeout: float = 10.0,
    body_timeout: float = 60.0,
    control: ControlFiles | None = None,
    board: ConnectionBoard | None = None,
    slot: int | None = None,
    balance: bool = True,
    model_timeout: float | None = None,
    on_stall: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` on the listening ``sock`` until SIGTERM/SIGINT, then drain.

    With ``board`` and ``slot`` (from the supervisor), the worker stamps its heartbeat there
    and, with ``balance``, takes only its share of new connections (see
    :mod:`mlcicd.serving.balance`). With ``model_timeout``, a loop stalled that long is
    answered for and the process exits (:mod:`mlcicd.serving.watchdog`)."""
    protocol: type[GuardedProtocol] = guarded_protocol(header_timeout, body_timeout)
    if direct.enabled():  # the endpoint's own routes answered below uvicorn's cycle
        protocol = direct.direct_protocol(header_timeout, body_timeout, app.max_payload_bytes)
    config = guarded_config(
        app,
        protocol,
        loop="auto",  # uvloop when installed, else asyncio
        timeout_graceful_shutdown=max(1, int(drain_timeout)),
    )
    server = WorkerServer(
        config,
        app,
        sock,
        on_ready=on_ready,
        on_draining=on_draining,
        parent_pid=parent_pid,
        control=control,
        board=board,
        slot=slot,
        balance=balance,
        model_timeout=model_timeout,
        on_stall=on_stall,
    )
    # uvicorn re-raises the signal it caught once it has shut down; make that a no-op so a
    # drained worker exits 0 instead of dying of SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        if server.stall_watchdog is not None:  # the loop is gone: no heartbeat from here on
            server.stall_watchdog.stop()


def board(fd: int | None) -> ConnectionBoard | None:
    """The supervisor's board: for the heartbeat always, for balancing unless switched off."""
    return None if fd is None else ConnectionBoard(fd)


def balancing() -> bool:
    """Whether connections are shared through the board (``MLCICD_BALANCE=0`` turns it off)."""
    return os.environ.get("MLCICD_BALANCE", "1") != "0"


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
    parser.add_argument("--board-fd", type=int, help="the supervisor's connection board")
    parser.add_argument("--slot", type=int, help="this worker's slot on the board")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--log-hint", default="the endpoint log", help="where clients should look")
    args = parser.parse_args(argv)

    configure_logging(f"worker.g{args.generation}")
    die_with_parent(args.parent_pid)
    try:
        spec = read_json(args.spec)
        config = ServingConfig.from_dict(spec, where=str(args.spec))
        blue = spec.get("blue")
        state_dir = Path(spec["state_dir"]) if spec.get("state_dir") else None
        # The model, its libraries and the app stay for the worker's life: loaded without
        # the cyclic GC, then out of its reach, or each full collection walks them all
        # (~25 ms with scikit-learn loaded), stalling every request in flight — that was the
        # p99 at high concurrency.
        with gc_paused_while_loading():
            app = build_app(
                config,
                log_hint=args.log_hint,
                state_dir=state_dir,
                worker_id=f"g{args.generation}-{os.getpid()}",
                blue=ServingConfig.from_dict(blue, where=f"{args.spec}: blue") if blue else None,
                green_percent=float(spec.get("green_percent", 100.0)),
            )
    except Exception as exc:
        message = getattr(exc, "headline", None) or describe_exception(exc)
        log.error("failed to load the model: %s", message, exc_info=True)
        _report(args.status_fd, {"event": "failed", "error": message})
        return EXIT_LOAD_FAILED

    def ready() -> None:
        log.info("ready: serving %s", ", ".join(v.name for v in app.variants))
        # which model methods answer through compiled code, per variant: for `describe`
        compiled = {v.name: list(v.compiled) for v in app.variants}
        _report(
            args.status_fd,
            {"event": "ready", "pid": os.getpid(), "compiled": compiled},
            last=False,
        )

    pipe_open = [True]  # the draining event is the last: the fd is closed (its number reused)

    def draining() -> None:
        log.info("draining: no longer accepting connections")
        pipe_open[0] = False
        _report(args.status_fd, {"event": "draining"})

    def stalled(reason: str) -> None:  # from the watchdog thread, just before the exit
        if pipe_open[0]:
            _report(args.status_fd, {"event": "stalled", "error": reason})

    serve(
        app,
        inherited_socket(args.fd),
        drain_timeout=config.drain_timeout,
        on_ready=ready,
        on_draining=draining,
        parent_pid=args.parent_pid,
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        control=ControlFiles(app, state_dir, args.generation),
        board=board(args.board_fd),
        slot=args.slot,
        balance=balancing(),
        model_timeout=config.model_timeout,
        on_stall=stalled,
    )
    for helper in (app.capture, app.shadow):
        if helper is not None:
            helper.close()
    app.metrics.flush(force=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
