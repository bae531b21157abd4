"""Where a worker's time goes per request: each cost on the path, in one process, no network.

A request's bytes are fed to the worker's protocol object (as the event loop does when they
arrive) over an in-memory transport, one request at a time on a keep-alive connection, and
the event loop is turned until the response is written. That isolates the server's Python
work from the kernel, the load generator and the other worker sharing the cores (what wrk
measures, bench/serving.py). Three views:

- ``paths``: µs per request end to end, for uvicorn + an empty app (the HTTP floor), uvicorn
  + the endpoint's app, and the endpoint's direct protocol (``serving/direct.py``);
- ``parts``: each piece of the request path timed alone (timeit, best of 5);
- ``--profile``: cProfile of the endpoint's path, tottime summed by where it is spent.

``--handlers examples/iris/src/inference.py`` serves a user's handlers instead of the defaults.

Run:  .venv/bin/python bench/request_path.py [--requests 20000] [--profile] [--handlers PATH]
The driver's own cost (feeding, turning the loop) is measured with a protocol that answers
nothing, and subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import pstats
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import uvicorn
import uvloop
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlcicd.serving import batching, codecs
from mlcicd.serving.direct import direct_protocol
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from mlcicd.serving.metrics import WorkerMetrics
from mlcicd.serving.protocol import guarded_config, guarded_protocol

BODY = b"[[5.1, 3.5, 1.4, 0.2]]"
REQUEST = (
    b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class Transport(asyncio.Transport):
    """What a protocol writes to, kept in memory; counts complete responses by their ends."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def endpoint_app(model_dir: Path, code_dir: Path) -> Any:
    from mlcicd.serving.app import InferenceApp

    handlers = load_handlers(code_dir)
    variant = LoadedVariant("AllTraffic", handlers, handlers.load_model(model_dir))
    return InferenceApp([variant], metrics=WorkerMetrics("bench", None, "0"))


def make_protocol(app: Any, direct: bool) -> tuple[asyncio.Protocol, Transport]:
    protocol_class = (
        direct_protocol(10.0, 60.0, 6 * 1024 * 1024) if direct else guarded_protocol(10.0, 60.0)
    )
    config = guarded_config(app, protocol_class)  # as the worker configures it (worker.serve)
    config.load()
    server_state = uvicorn.server.ServerState()
    protocol = protocol_class(config=config, server_state=server_state, app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def drive(protocol: asyncio.Protocol, transport: Transport, n: int, writes: int) -> float:
    """CPU seconds of this thread for ``n`` requests, each fed once the previous one's
    ``writes`` are out (CPU time: what the other processes on the cores take is not ours)."""
    feed = protocol.data_received
    started = time.thread_time()
    for _ in range(n):
        target = transport.writes + writes
        feed(REQUEST)
        while transport.writes < target:
            await asyncio.sleep(0)
    return time.thread_time() - started


class Silent(asyncio.Protocol):
    """The driver alone: a 'response' is one write, made on the next loop iteration."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.transport.write, b"")


async def drive_many(
    connections: list[tuple[asyncio.Protocol, Transport]], rounds: int, writes: int
) -> float:
    """CPU seconds for ``rounds`` of one request on each connection at once (as many
    clients' requests arrive in one loop iteration), each round waiting for every answer."""
    started = time.thread_time()
    for _ in range(rounds):
        targets = []
        for protocol, transport in connections:
            targets.append((transport, transport.writes + writes))
            protocol.data_received(REQUEST)
        for transport, target in targets:
            while transport.writes < target:
                await asyncio.sleep(0)
    return time.thread_time() - started


def per_request_us(
    factory: Callable[[], tuple[asyncio.Protocol, Transport]], n: int, concurrent: int = 1
) -> float:
    async def run() -> float:
        connections = [factory() for _ in range(concurrent)]
        rounds = n // concurrent
        await drive_many(connections, 200 // concurrent + 1, 1)  # warm: caches, batchers
        best = min([await drive_many(connections, rounds, 1) for _ in range(5)])
        return best / (rounds * concurrent) * 1e6

    return asyncio.run(run())


def paths(model_dir: Path, code_dir: Path, n: int) -> dict[str, float]:
    def silent() -> tuple[asyncio.Protocol, Transport]:
        transport = Transport()
        return Silent(transport), transport

    app = endpoint_app(model_dir, code_dir)
    figures = {}
    for concurrent in (1, 32):
        driver = per_request_us(silent, n, concurrent)
        figures[f"driver, {concurrent} at once (subtracted)"] = driver
        for name, factory in (
            ("uvicorn + empty app (the floor)", lambda: make_protocol(hello, False)),
            ("uvicorn + endpoint app", lambda: make_protocol(app, False)),
            ("direct protocol + endpoint app", lambda: make_protocol(app, True)),
        ):
            us = per_request_us(factory, n, concurrent) - driver
            figures[f"{name}, {concurrent} at once"] = us
    return figures


def best_us(fn: Callable[[], Any], number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.thread_time)) / number * 1e6


def parts(model_dir: Path, code_dir: Path) -> dict[str, float]:
    import httptools

    class Sink:
        def on_url(self, url: bytes) -> None:
            pass

        def on_header(self, name: bytes, value: bytes) -> None:
            pass

        def on_body(self, body: bytes) -> None:
            pass

    sink = Sink()
    parser = httptools.HttpRequestParser(sink)
    app = endpoint_app(model_dir, code_dir)
    variant = app.variants[0]
    data = codecs.decode(BODY.decode(), codecs.JSON)
    prediction = variant.predict(data)
    metrics = app.fleet.metrics[variant.name]
    lean = variant.model
    from mlcicd.compiler import lookup

    predictor = lookup(lean)
    assert predictor is not None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def nothing() -> None:
        pass

    async def tasks(n: int) -> None:
        for _ in range(n):
            await loop.create_task(nothing())

    async def futures(n: int) -> None:
        for _ in range(n):
            future = loop.create_future()
            loop.call_soon(future.set_result, None)
            await future

    def task_hop() -> None:
        loop.run_until_complete(tasks(1000))

    def future_hop() -> None:
        loop.run_until_complete(futures(1000))

    uvicorn_protocol, _ = make_protocol(hello, False)
    scope_cost = functools.partial(_scope_and_cycle, uvicorn_protocol)
    from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE

    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"3"),
        (b"x-amzn-invoked-production-variant", b"AllTraffic"),
    ]

    def encode_headers() -> bytes:
        content = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in headers:
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError
            content.extend([name.lower(), b": ", value, b"\r\n"])
        content.append(b"\r\n")
        return b"".join(content)

    figures = {
        "httptools: parse the request": best_us(lambda: parser.feed_data(REQUEST)),
        "uvicorn: scope dict, URL parse, cycle (Event) per request": best_us(scope_cost),
        "uvicorn: send's header encoding (regex per value)": best_us(encode_headers),
        "asyncio: a task per request (created, run once)": best_us(task_hop, 20) / 1000,
        "asyncio: a future resolved on the next iteration (batching hop)": best_us(future_hop, 20)
        / 1000,
        "JSON decode (codecs.decode → ndarray)": best_us(
            lambda: codecs.decode(BODY.decode(), codecs.JSON)
        ),
        "predict (compiled LogisticRegression, 1 row)": best_us(lambda: predictor.predict(data)),
        "JSON encode (codecs.encode)": best_us(lambda: codecs.encode(prediction, codecs.JSON)),
        "metrics: observe one latency": best_us(lambda: metrics.observe(0.0001, 0.00001)),
    }
    loop.close()
    return figures


def _scope_and_cycle(protocol: Any) -> None:
    protocol.on_message_begin()
    protocol.url = b"/invocations"
    # what on_headers_complete builds, without starting the app
    import httptools
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    parsed = httptools.parse_url(protocol.url)
    protocol.scope["method"] = "POST"
    protocol.scope["path"] = parsed.path.decode("ascii")
    protocol.scope["raw_path"] = parsed.path
    protocol.scope["query_string"] = parsed.query or b""
    RequestResponseCycle(
        scope=protocol.scope,
        transport=protocol.transport,
        flow=protocol.flow,
        logger=protocol.logger,
        access_logger=protocol.access_logger,
        access_log=protocol.access_log,
        default_headers=protocol.server_state.default_headers,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=protocol.on_response_complete,
    )


def profile(model_dir: Path, code_dir: Path, n: int, direct: bool) -> None:
    app = endpoint_app(model_dir, code_dir)
    profiler = cProfile.Profile()

    async def run() -> None:
        connections = [make_protocol(app, direct) for _ in range(32)]
        await drive_many(connections, 10, 1)
        profiler.enable()
        await drive_many(connections, n // 32, 1)
        profiler.disable()

    asyncio.run(run())
    stats = pstats.Stats(profiler)
    by_place: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        place = _place(filename, name)
        by_place[place] = by_place.get(place, 0.0) + tottime
    total = sum(by_place.values())
    print(f"\ncProfile, {'direct' if direct else 'uvicorn'} path, 32 at once, tottime per request:")
    for place, seconds in sorted(by_place.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {seconds / n * 1e6:7.2f}  {100 * seconds / total:4.0f} %  {place}")


def _place(filename: str, name: str) -> str:
    for marker in ("uvicorn", "mlcicd", "asyncio", "numpy", "sklearn"):
        if f"/{marker}/" in filename:
            tail = filename.split(f"/{marker}/", 1)[1]
            return f"{marker}/{tail}:{name}"
    if filename == "~":
        return f"builtin {name}"
    return f"{Path(filename).name}:{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--handlers",
        type=Path,
        help="an inference.py to serve instead of the default handlers (e.g. examples/iris')",
    )
    args = parser.parse_args()
    uvloop.install()  # as the worker runs (uvicorn's loop="auto")
    X, y = load_iris(return_X_y=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, code_dir = Path(tmp) / "model", Path(tmp) / "code"
        model_dir.mkdir()
        code_dir.mkdir()
        joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model_dir / "model.joblib")
        if args.handlers is not None:
            (code_dir / "inference.py").write_text(args.handlers.read_text())
        else:
            (code_dir / "inference.py").write_text("# SageMaker's default handlers\n")
        np.seterr(all="ignore")
        print(f"CPU µs per request, {args.requests} requests, best of 5:")
        for name, us in paths(model_dir, code_dir, args.requests).items():
            print(f"  {us:7.2f}  {name}")
        print("CPU µs per call, timeit best of 5:")
        for name, us in parts(model_dir, code_dir).items():
            print(f"  {us:7.2f}  {name}")
        if args.profile:
            profile(model_dir, code_dir, args.requests, direct=False)
            profile(model_dir, code_dir, args.requests, direct=True)
    batching._BATCHERS.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
