"""The endpoint's own routes answered from the protocol object, below uvicorn's request cycle.

uvicorn's HTTP protocol spends, per request, more than the endpoint's model does on a small
one: a scope dict with a copy of the app state, the URL parsed again, a request/response
cycle with an ``asyncio.Event``, a task to run the app, ``receive`` waiting on that event,
and every response header checked by a regular expression in ``send``
(docs/benchmarks.md, "the request path, cost by cost"). For the requests an endpoint is
built for — a whole request on a keep-alive HTTP/1.1 connection to ``/invocations``,
``/endpoints/{name}/invocations``, ``/ping`` or ``/metrics`` — :class:`DirectProtocol`
skips all of that: httptools parses as before (uvicorn's own callbacks collect the headers),
and once the body is in, the app's coroutine is driven right there, without a task (it
suspends only on a micro-batch, and is resumed by that future's callback), its response
written in one piece.

The app is the same :class:`~mlcicd.serving.app.InferenceApp`, called with the same scope
keys it reads, so routing, status codes, headers, metrics, capture, variants and shadow
cannot differ: ``tests/serving/test_direct.py`` compares both paths' bytes on a table of
requests. Everything else stays on uvicorn's tested path, decided once the headers are in:
a request pipelined behind one still in flight, HTTP/1.0, ``Expect: 100-continue``, a
chunked body, a declared body over the endpoint's limit (uvicorn's path answers 413 before
reading it), a query string or an escaped path, an upgrade, a client that does not read
its answers (the transport's writes paused: uvicorn's ``send`` waits for it, so must we).
The header and body deadlines, the watchdog and a draining worker see the same ``cycle``
attributes as uvicorn's (``scope``, ``response_started``, ``response_complete``,
``keep_alive``, ``disconnected``). ``MLCICD_DIRECT=0`` serves every request through uvicorn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)

from mlcicd.serving.protocol import GuardedProtocol

log = logging.getLogger("mlcicd.serving.direct")

_ROUTES = frozenset((b"/invocations", b"/ping", b"/metrics"))
_RUNTIME_PREFIX = b"/endpoints/"
_RUNTIME_SUFFIX = b"/invocations"
_DISCONNECT = {"type": "http.disconnect"}
_CLOSE_LINE = b"connection: close\r\n"
_OFF = ("0", "false", "no", "off")
# uvicorn's answer when the app fails before it started one (RequestResponseCycle's)
_INTERNAL_ERROR = (
    STATUS_LINE[500] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nInternal Server Error"
)


def enabled() -> bool:
    """Is the direct path on (``MLCICD_DIRECT`` is not 0/false/no/off)?"""
    return os.environ.get("MLCICD_DIRECT", "1").strip().lower() not in _OFF


class _Event:
    """uvicorn's ``connection_lost`` sets the cycle's event; a direct request waits on none."""

    __slots__ = ()

    def set(self) -> None:
        pass


class DirectCycle:
    """One request answered directly: the attributes uvicorn's cycle shows the rest of the
    server (the watchdog, the deadlines, shutdown, ``connection_lost``)."""

    __slots__ = (
        "body",
        "disconnected",
        "head",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
    )
    message_event = _Event()

    def __init__(self, scope: dict[str, Any], keep_alive: bool) -> None:
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []  # joined once complete (no copy per chunk)
        self.head: bytes | None = None  # the status line and headers, once the app sent them
        self.disconnected = False
        self.response_started = False
        self.response_complete = False


class DirectProtocol(GuardedProtocol):
    """:class:`~mlcicd.serving.protocol.GuardedProtocol` answering the endpoint's own routes
    itself (see the module's docstring); ``max_body`` is the endpoint's payload limit."""

    max_body = 0
    direct: DirectCycle | None = None  # the request being answered directly, if any
    idle = False  # answered, waiting for the next request: the deadline is the keep-alive's

    # -- per request: uvicorn's callbacks, deciding which path once the headers are in ----

    def on_message_begin(self) -> None:
        self.idle = False
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.direct = None
        self.deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self.deadline = self.loop.time() + self.body_timeout
        cycle = self._direct_cycle()
        if cycle is not None:
            self.direct = self.cycle = cycle  # type: ignore[assignment]
            return
        # uvicorn's path: the scope its on_message_begin would have made, with our headers
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)
        self.url, self.expect_100_continue = url, expect
        self.headers = self.scope["headers"] = headers
        HttpToolsProtocol.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        cycle = self.direct
        if cycle is None:
            super().on_body(body)
        else:  # the declared length is within the limit, and httptools holds the client to it
            cycle.body.append(body)

    def on_message_complete(self) -> None:
        cycle = self.direct
        if cycle is None:
            super().on_message_complete()
            return
        self.deadline = None
        self.direct = None
        chunks, cycle.body = cycle.body, []
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._step(self.app(cycle.scope, _Receive(body), self._sender(cycle)), cycle)

    def _direct_cycle(self) -> DirectCycle | None:
        """A cycle for a request the direct path answers exactly as uvicorn's would, or None."""
        url = self.url
        if url not in _ROUTES and not (
            url.startswith(_RUNTIME_PREFIX)
            and url.endswith(_RUNTIME_SUFFIX)
            and b"?" not in url
            and b"%" not in url
        ):
            return None
        current = self.cycle
        if current is not None and not current.response_complete:
            return None  # pipelined behind a request in flight: uvicorn queues it
        parser = self.parser
        if (
            self.expect_100_continue
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or self.flow.write_paused
            or self.limit_concurrency is not None
        ):
            return None
        for name, value in self.headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    return None
            elif name == b"transfer-encoding":
                return None
        path = url.decode("ascii")
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": parser.get_method().decode("ascii"),
            "path": path,
            "raw_path": url,
            "query_string": b"",
            "headers": self.headers,
        }
        return DirectCycle(scope, parser.should_keep_alive())

    # -- the app, driven without a task ----------------------------------------------------

    def _step(self, coro: Coroutine[Any, Any, None], cycle: DirectCycle, _: Any = None) -> None:
        """Run the app's coroutine until it suspends (on a micro-batch's future: resumed by
        that future's callback) or ends; never raises (we are inside httptools' callback)."""
        try:
            waiting = coro.send(None)
        except StopIteration:
            self._ended(cycle)
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # what uvicorn's run_asgi does with a failing app
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self._ended(cycle, failed=True)
            return
        add_done_callback: Callable[..., None] | None = getattr(waiting, "add_done_callback", None)
        if add_done_callback is None:  # a bare yield (asyncio.sleep(0)): next iteration
            self.loop.call_soon(self._step, coro, cycle)
            return
        waiting._asyncio_future_blocking = False  # as a Task does with the future it awaits
        add_done_callback(lambda _: self._step(coro, cycle))

    def _ended(self, cycle: DirectCycle, *, failed: bool = False) -> None:
        if cycle.response_complete or cycle.disconnected:
            return
        if not cycle.response_started:
            if not failed:
                self.logger.error("ASGI callable returned without starting response.")
            cycle.response_started = cycle.response_complete = True
            self.transport.write(_INTERNAL_ERROR)
        self.transport.close()

    def _sender(self, cycle: DirectCycle) -> _Send:
        return _Send(self, cycle)

    def _write(self, cycle: DirectCycle, status: int, headers: Any, body: bytes) -> None:
        """The whole response in one write: what uvicorn's ``send`` writes in two."""
        # one search over every value (a tab is allowed in a value, and separates them)
        if HEADER_VALUE_RE.search(b"\t".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        parts = [STATUS_LINE[status], _default_block(self.server_state.default_headers)]
        close = False
        for name, value in headers:
            if name == b"connection" and b"close" in [
                token.lower().strip() for token in value.split(b",")
            ]:
                close = True
            parts += (name, b": ", value, b"\r\n")
        if close:
            cycle.keep_alive = False
        elif not cycle.keep_alive:
            parts.append(_CLOSE_LINE)
        parts.append(b"\r\n")
        if cycle.scope["method"] != "HEAD":
            parts.append(body)
        cycle.response_complete = True
        self.transport.write(b"".join(parts))
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timeout as a deadline the worker's sweep enforces
        (:meth:`~mlcicd.serving.protocol.GuardedProtocol.expired`: closed, nothing written,
        as uvicorn's timer does) instead of a timer made and cancelled per request."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle = True
            self.deadline = self.loop.time() + self.timeout_keep_alive

    def expired(self, now: float) -> bool:
        if not self.idle:
            return super().expired(now)
        deadline = self.deadline
        if deadline is not None and now >= deadline and not self.transport.is_closing():
            self.deadline = None
            self.transport.close()
        return False  # an idle keep-alive connection closed: no client was late


_DEFAULT_BLOCK: list[Any] = [None, b""]  # uvicorn's default headers (the date), encoded


def _default_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default headers encoded, once per list (uvicorn makes a new one when the
    date changes, once a second)."""
    if _DEFAULT_BLOCK[0] is not headers:
        _DEFAULT_BLOCK[1] = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        _DEFAULT_BLOCK[0] = headers
    block: bytes = _DEFAULT_BLOCK[1]
    return block


class _Receive:
    """The app's ``receive``: the whole body at once, then a disconnect."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body: bytes | None = body

    async def __call__(self) -> dict[str, Any]:
        body, self.body = self.body, None
        if body is None:
            return _DISCONNECT
        return {"type": "http.request", "body": body, "more_body": False}


class _Send:
    """The app's ``send``: the start message held, written with the body."""

    __slots__ = ("cycle", "protocol", "start")

    def __init__(self, protocol: DirectProtocol, cycle: DirectCycle) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self.start: dict[str, Any] | None = None

    async def __call__(self, message: dict[str, Any]) -> None:
        cycle = self.cycle
        if cycle.disconnected:
            return
        kind = message["type"]
        if self.start is None:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            cycle.response_started = True
            self.start = message
            return
        if cycle.response_complete or kind != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent.")
        if message.get("more_body", False):
            raise RuntimeError("the direct path answers in one body message")
        start = self.start
        self.protocol._write(cycle, start["status"], start.get("headers", ()), message["body"])


def direct_protocol(
    header_timeout: float, body_timeout: float, max_body: int
) -> type[DirectProtocol]:
    """The protocol class uvicorn is given, with these deadlines and this payload limit."""
    return type(
        "DirectProtocol",
        (DirectProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout, "max_body": max_body},
    )
