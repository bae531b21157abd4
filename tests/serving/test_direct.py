"""The direct path answers byte for byte as uvicorn's: the same app behind both protocols,
on real sockets, a table of requests, the responses compared."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvicorn
from uvicorn.server import ServerState

from mlcicd.serving import batching
from mlcicd.serving.app import InferenceApp
from mlcicd.serving.direct import DirectProtocol
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from mlcicd.serving.protocol import GuardedProtocol, guarded_protocol
from tests.helpers import IrisModel
from tests.serving.helpers import CONTEXT_HANDLERS, NO_HANDLERS, write_code

pytestmark = pytest.mark.integration

MAX_BODY = 4096
DATE = (b"date", b"Sat, 05 Dec 2026 00:00:00 GMT")
ROW = b"[[5.1, 3.5, 1.4, 0.2]]"
ROWS = b"[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]"
# output_fn answering with a content type that would split the header block
BAD_TYPE_HANDLERS = """
    def output_fn(prediction, accept):
        return "[]", "application/json\\r\\nx-injected: yes"
"""


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: test", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def get(path: str, method: str = "GET", *headers: str) -> bytes:
    return (
        "\r\n".join([f"{method} {path} HTTP/1.1", "Host: test", *headers]) + "\r\n\r\n"
    ).encode()


JSON = "Content-Type: application/json"
# (request, whether the direct path answers it itself)
TABLE: list[tuple[bytes, bool]] = [
    (post("/invocations", ROW, JSON), True),
    (post("/invocations", ROWS, JSON, "Accept: text/csv"), True),
    (post("/invocations", b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3", "Content-Type: text/csv"), True),
    (post("/invocations", ROW, "Content-Type: application/json; charset=utf-8"), True),
    (post("/invocations", b"[[1, 2", JSON), True),  # 400: not JSON
    (post("/invocations", b"[[1, 2, 3]]", JSON), True),  # 400: the wrong width
    (post("/invocations", ROW, JSON, "Accept: image/png"), True),  # 406
    (post("/invocations", ROW, "Content-Type: image/png"), True),  # 415
    (post("/invocations", b"", JSON), True),  # an empty body
    (post("/invocations", ROW, JSON, "X-Amzn-SageMaker-Target-Variant: AllTraffic"), True),
    (post("/invocations", ROW, JSON, "X-Amzn-SageMaker-Target-Variant: Nope"), True),
    (post("/invocations", ROW, JSON, "X-Amzn-SageMaker-Custom-Attributes: a=1"), True),
    (post("/invocations", ROW, JSON, "Connection: close"), True),
    (post("/endpoints/iris/invocations", ROW, JSON), True),
    (post("/endpoints/iris/invocations", b"[[1, 2", JSON), True),  # 424 ModelError
    (post("/endpoints/other/invocations", ROW, JSON), True),  # 400 ValidationError
    (get("/invocations"), True),  # 405
    (get("/ping"), True),
    (get("/ping", "HEAD"), True),
    (get("/ping", "DELETE"), True),  # 405
    (get("/nowhere"), False),  # 404, through uvicorn
    (post("/invocations?x=1", ROW, JSON), False),  # a query string: uvicorn's path
    (post("/endpoints/ir%69s/invocations", ROW, JSON), False),  # escaped: uvicorn unquotes
    (post("/invocations", ROW, JSON, version="1.0"), False),
    (post("/invocations", ROW, JSON, "Expect: 100-continue"), False),
    (post("/invocations", b"x" * (MAX_BODY + 1), JSON), False),  # 413 before the body
    (
        post(
            "/invocations",
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(ROW), ROW),
            JSON,
            "Transfer-Encoding: chunked",
        ),
        False,
    ),
]


AGAIN = [TABLE[0][0], TABLE[4][0], get("/ping")]  # answered again by draining workers


class Observed(DirectProtocol):
    """The direct protocol, noting which requests it answered itself."""

    seen: ClassVar[list[bytes]] = []
    made: ClassVar[list[DirectProtocol]] = []

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.made.append(self)

    def _direct_cycle(self) -> Any:
        cycle = super()._direct_cycle()
        if cycle is not None:
            self.seen.append(self.url)
        return cycle


Server = Callable[[bytes], Awaitable[bytes]]


def make_app(code_dir: Path, iris: IrisModel, script: str) -> InferenceApp:
    handlers = load_handlers(write_code(code_dir, script))
    variant = LoadedVariant("AllTraffic", handlers, handlers.load_model(iris.model_dir))
    return InferenceApp([variant], endpoint_name="iris", max_payload_bytes=MAX_BODY)


async def serve(app: InferenceApp, protocol: type[GuardedProtocol]) -> tuple[asyncio.Server, int]:
    config = uvicorn.Config(
        app, http=protocol, lifespan="off", access_log=False, log_config=None, proxy_headers=False
    )
    config.load()
    state = ServerState()
    state.default_headers = [DATE]  # uvicorn's server stamps the date; the same for both
    server = await asyncio.get_running_loop().create_server(
        lambda: protocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    return server, server.sockets[0].getsockname()[1]


async def exchange(port: int, data: bytes, responses: int = 1) -> bytes:
    """Send ``data``; read ``responses`` answers (or until the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            out += head
            if head.startswith(b"HTTP/1.1 100"):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                out += head
            length = re.search(rb"content-length: (\d+)", head)
            if length and b"HEAD " not in data.split(b"\r\n", 1)[0]:
                out += await asyncio.wait_for(reader.readexactly(int(length.group(1))), 10)
    except asyncio.IncompleteReadError as exc:  # closed: what came before the close
        out += exc.partial
    finally:
        writer.close()
    return out


def counts(app: InferenceApp) -> tuple[int, ...]:
    """The variant's counts: invocations, errors, answers timed (the timings themselves vary)."""
    m = app.fleet.metrics["AllTraffic"]
    return m.invocations, m.errors_4xx, m.errors_5xx, sum(m.model), sum(m.overhead)


def normalized(response: bytes) -> bytes:
    """Request ids are unique per app: the one part of an answer that may differ."""
    return re.sub(rb"x-amzn-requestid: [^\r]*", b"x-amzn-requestid: ID", response)


def both(
    code_dir: Path, iris: IrisModel, script: str, check: Callable[..., Awaitable[None]]
) -> None:
    """Run ``check(uvicorn_port, direct_port, uvicorn_app, direct_app)`` on two fresh apps."""
    batching._BATCHERS.clear()

    async def run() -> None:
        via_uvicorn = make_app(code_dir / "u", iris, script)
        via_direct = make_app(code_dir / "d", iris, script)
        slow, slow_port = await serve(via_uvicorn, guarded_protocol(10.0, 60.0))
        fast, fast_port = await serve(via_direct, type("P", (Observed,), {"max_body": MAX_BODY}))
        try:
            await check(slow_port, fast_port, via_uvicorn, via_direct)
        finally:
            slow.close()
            fast.close()

    asyncio.run(run())


@pytest.mark.parametrize("script", [NO_HANDLERS, CONTEXT_HANDLERS], ids=["default", "context"])
def test_the_table_answers_byte_for_byte_as_uvicorn(
    code_dir: Path, iris: IrisModel, script: str
) -> None:
    Observed.seen = []

    async def check(slow: int, fast: int, a: InferenceApp, b: InferenceApp) -> None:
        for request, _ in TABLE:
            expected, got = await exchange(slow, request), await exchange(fast, request)
            assert expected.startswith(b"HTTP/1.1 "), request
            assert normalized(got) == normalized(expected), request
        assert counts(a) == counts(b) and counts(a)[0] > len(TABLE) // 2
        a.draining = b.draining = True  # a draining worker closes after each answer
        for request in AGAIN:
            expected, got = await exchange(slow, request), await exchange(fast, request)
            assert b"connection: close" in expected
            assert normalized(got) == normalized(expected)

    both(code_dir, iris, script, check)
    direct = [request for request, direct in TABLE if direct]
    assert sorted(Observed.seen) == sorted(r.split(b" ")[1] for r in [*direct, *AGAIN])


def test_keep_alive_pipelining_and_concurrent_batches_match(
    code_dir: Path, iris: IrisModel
) -> None:
    """One connection answering in turn, requests pipelined behind one in flight (uvicorn's
    queue), and requests from many connections micro-batched together."""
    sequence = [request for request, direct in TABLE if direct and b"close" not in request]

    async def check(slow: int, fast: int, a: InferenceApp, b: InferenceApp) -> None:
        pipelined = b"".join(sequence)
        expected = await exchange(slow, pipelined, len(sequence))
        got = await exchange(fast, pipelined, len(sequence))
        assert expected.count(b"HTTP/1.1 ") == len(sequence)
        assert normalized(got) == normalized(expected)
        rows = [
            post("/invocations", json.dumps([[5.0 + i / 10, 3.0, 1.5, 0.2]]).encode(), JSON)
            for i in range(16)
        ]
        expected_all = await asyncio.gather(*(exchange(slow, r) for r in rows))
        got_all = await asyncio.gather(*(exchange(fast, r) for r in rows))
        assert got_all == expected_all
        assert batching.batcher_for(b.variants[0]).batches > 0  # type: ignore[union-attr]

    both(code_dir, iris, NO_HANDLERS, check)


def test_a_content_type_that_would_split_the_headers_is_refused_alike(
    code_dir: Path, iris: IrisModel
) -> None:
    async def check(slow: int, fast: int, a: InferenceApp, b: InferenceApp) -> None:
        request = post("/invocations", ROW, JSON)
        expected = await exchange(slow, request)
        assert expected.startswith(b"HTTP/1.1 500 ") and b"\r\nx-injected" not in expected
        assert await exchange(fast, request) == expected

    both(code_dir, iris, BAD_TYPE_HANDLERS, check)


def test_an_idle_keep_alive_connection_is_closed_by_the_sweep_without_a_408(
    code_dir: Path, iris: IrisModel
) -> None:
    """uvicorn closes a connection idle past its keep-alive timeout with a timer per request;
    the direct path leaves it to the worker's sweep: closed the same, silently."""
    Observed.made = []

    async def check(slow: int, fast: int, a: InferenceApp, b: InferenceApp) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", fast)
        writer.write(get("/ping"))
        await asyncio.wait_for(reader.readuntil(b"{}"), 10)
        (protocol,) = Observed.made
        now = asyncio.get_running_loop().time()
        assert protocol.idle and protocol.deadline is not None
        assert not protocol.expired(now)  # within the keep-alive timeout: open
        assert not protocol.transport.is_closing()
        assert not protocol.expired(now + protocol.timeout_keep_alive + 1)  # not a slow client
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing written
        writer.close()

    both(code_dir, iris, NO_HANDLERS, check)


def test_a_body_arriving_in_pieces_is_answered_alike(code_dir: Path, iris: IrisModel) -> None:
    rows = json.dumps([[5.0 + i / 100, 3.0, 1.5, 0.2] for i in range(60)]).encode()
    request = post("/invocations", rows, JSON)
    assert len(rows) < MAX_BODY

    async def in_pieces(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for start in range(0, len(request), 97):
            writer.write(request[start : start + 97])
            await writer.drain()
            await asyncio.sleep(0)  # let the server read what came so far
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = re.search(rb"content-length: (\d+)", head)
        assert length is not None
        body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), 10)
        writer.close()
        return head + body

    async def check(slow: int, fast: int, a: InferenceApp, b: InferenceApp) -> None:
        expected = await in_pieces(slow)
        assert expected.startswith(b"HTTP/1.1 200 ")
        assert await in_pieces(fast) == expected

    both(code_dir, iris, NO_HANDLERS, check)
