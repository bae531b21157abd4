"""uvicorn's httptools protocol with deadlines for a request's headers and body, and the
uvicorn settings it is served with.

Shared by the endpoint's workers (:mod:`mlcicd.serving.worker`) and the API of `mlcicd up`
(:mod:`mlcicd.daemon.http`). It imports only uvicorn, so the daemon gets it without the
endpoint's handlers, numpy or the model compiler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_BODY = b'{"error":"RequestTimeout","message":"the request was not received in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for a request's headers and body.

    Per request this costs one float per phase; a periodic sweep (:meth:`expired`) enforces
    them, so no timer is created per request.
    """

    header_timeout = 10.0
    body_timeout = 60.0
    deadline: float | None = None
    on_close: Callable[[], None] | None = None  # set by the acceptor that made the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.deadline = self.loop.time() + self.body_timeout

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.deadline = None

    def expired(self, now: float) -> bool:
        """Close the connection if its client is late; whether it was."""
        deadline = self.deadline
        if deadline is None or now < deadline or self.transport.is_closing():
            return False
        self.deadline = None
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            with contextlib.suppress(Exception):
                self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
        return True


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[GuardedProtocol]:
    """The protocol class uvicorn is given, with these deadlines."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


def guarded_config(app: Any, protocol: type[GuardedProtocol], **settings: Any) -> uvicorn.Config:
    """uvicorn's Config as both servers run ``app``: ``protocol`` (HTTP/1.1, no websockets,
    no lifespan), none of uvicorn's own logging (no access log, no log config), the client's
    address as the socket has it (no proxy header believed) and no Server header. ``settings``
    add the server's own (loop, concurrency limit, keep-alive, graceful shutdown)."""
    return uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        **settings,
    )
