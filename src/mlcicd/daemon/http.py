"""The HTTP side of `mlcicd up` on 127.0.0.1: JSON for what the CLI shows, the GitHub webhook,
the git hooks' notifications, and the dashboard — an ASGI app served by uvicorn in a thread of
the service.

    GET  /health                           {"status": "ok", "pid", "projects"}
    GET  /api/runs[?pipeline=P&limit=N]    runs, newest first
    GET  /api/runs/{id}[?pipeline=P]       a run, its stages and its approval
    GET  /api/runs/{id}/logs[?tail=N]      {stage: log text (its last N lines)}
    GET  /api/models                       the model registry
    GET  /api/models/{group}/{version}     a model package and its lineage
    GET  /api/endpoints                    endpoints (a local one with its live status)
    GET  /api/endpoints/{name}             an endpoint: live status, configs, metrics (5 min),
                                           history
    GET  /api/endpoints/{name}/history     every config the endpoint served, and why
    GET  /api/endpoints/{name}/monitoring[?limit=N]
                                           its monitoring schedule and executions, newest first
    GET  /api/events[?after=ID]            the registry's event log
    POST /api/runs {"ref", "force", "allow_dirty"}
                                           queue a run (what `mlcicd run` does when the service
                                           is up): 202 {"run", "superseded", "existing"}
    POST /api/runs/{id}/approve|reject {"comment"}
                                           decide a run WaitingForApproval; the service resumes it
    POST /api/runs/{id}/retry              queue a finished run's commit again: 202 {"run"}
    POST /api/endpoints/{name}/rollback {"to", "reason"}
                                           queue a rollback (to version ``to``, default: the
                                           previous model, resolved now): 202 {"run", "superseded",
                                           "target", "from", "behind"}
    POST /api/notify  {"repository": path} a git hook: look at this repository
    POST /webhooks/github                  GitHub's push webhook (signed)
    GET  /, /runs/{id}, /models[/{group}/{version}], /endpoints[/{name}], /events
                                           the dashboard (HTML, :mod:`mlcicd.web`), from the same
                                           data

What a request must be, checked in this order before any work is done:

- ``Host`` is the service's own address (``127.0.0.1:PORT`` or ``localhost:PORT``), so a web
  page whose name was rebound to 127.0.0.1 (DNS rebinding) reads nothing; else 400. The webhook
  is exempt: GitHub reaches it through a tunnel or proxy under a foreign name, and its HMAC
  signature (:mod:`mlcicd.daemon.webhook`) is what protects it.
- ``/health`` and ``/api/…`` need the service's token (``Authorization: Bearer``,
  :mod:`mlcicd.daemon.auth`), reads included; else 401 saying where the token file is. The
  dashboard is read-only and needs none; the webhook is authenticated by its signature.
- A POST's body is ``application/json`` (else 415: what an HTML form can send is refused),
  within ``API_BODY`` (the webhook's: ``WEBHOOK_BODY``, GitHub's own cap); a declared
  ``Content-Length`` too large is 413 before the body is read (past ``DRAIN_LIMIT`` the
  connection closes), a chunked body as soon as it grows past the limit.
  A ``Content-Length`` that is negative or not a number is a 400 from uvicorn's parser.
- ``by`` of what a POST records is the ``X-Mlcicd-User`` of the token's holder, never the body's.

uvicorn gives the rest: a slow client never holds a thread (the event loop waits for it); one
that does not send its headers within ``HEADER_TIMEOUT`` (its body within ``BODY_TIMEOUT``) gets
408 and loses its connection; at most ``CONCURRENCY`` connections and requests at once (then
503); the work of a request (the state database, git) runs in a pool of ``THREADS`` threads.
``pipeline`` picks the project when the service serves several (default: the first). HEAD is
answered wherever GET is; the dashboard's pages answer other methods 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import uvicorn

from mlcicd.daemon import api, auth, webhook
from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.jsonable import to_jsonable
from mlcicd.serving.protocol import GuardedProtocol, guarded_config, guarded_protocol
from mlcicd.web import routes

if TYPE_CHECKING:
    from mlcicd.daemon.core import Service

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WEBHOOK = "/webhooks/github"
WEBHOOK_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
API_BODY = 1024 * 1024  # a run, a decision, a rollback: a few hundred bytes
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
CONCURRENCY = 64
THREADS = 8
SWEEP = 0.25  # how often late clients are looked for
# The rest of a refused body is read by uvicorn and dropped (never held), so the client reads its
# 413 rather than a reset mid-upload; past this declared size the connection is closed instead.
# A chunked body that never ends is cut by BODY_TIMEOUT.
DRAIN_LIMIT = 64 * 1024 * 1024
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
# A page shows values from commits, logs and models: no script may run but the dashboard's own
# file (web/live.py), whatever slips through — no inline script, no eval, no other origin.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status, json.dumps(to_jsonable(payload), indent=1).encode(), JSON_TYPE, headers or {}
    )


def _closing(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    """An answer given without reading the request's body: the connection closes after it."""
    return _json(status, payload, {**(headers or {}), "Connection": "close"})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case

    @classmethod
    def of(cls, scope: Scope) -> Request:
        raw = scope.get("raw_path") or scope["path"].encode()  # as sent: routes unquote their parts
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        return cls(
            scope["method"],
            raw.decode("latin-1"),
            parse_qs(scope["query_string"].decode("latin-1")),
            headers,
        )


class ServiceApp:
    """The ASGI app: the checks above, then the work in the thread pool."""

    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if port == 80:
            self.hosts |= {"127.0.0.1", "localhost"}
        self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request.of(scope)
        answer = await self._answer(request, receive)
        headers = [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        extra = {
            "X-Content-Type-Options": "nosniff",
            **answer.headers,
        }  # JSON is never read as a page
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})  # uvicorn drops it for HEAD

    async def _work(self, work: Callable[[], Answer]) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def _answer(self, request: Request, receive: Receive) -> Answer:
        method, path, headers = request.method, request.path, request.headers
        if path == WEBHOOK:
            if method != "POST":
                return _closing(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"error": f"{method} is not allowed on {path}"},
                    {"Allow": "POST"},
                )
            delivery = await _read_body(receive, headers, WEBHOOK_BODY)
            if isinstance(delivery, Answer):
                return delivery
            return await self._work(lambda: self._webhook(headers, delivery))
        page = routes.is_page(path)
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            message = (
                f"Host {host!r} is not this service's address ({' or '.join(sorted(self.hosts))}): "
                "a page reached under another name (DNS rebinding) is refused"
            )
            if page:
                return Answer(
                    HTTPStatus.BAD_REQUEST,
                    f"400 bad request: {message}\n".encode(),
                    TEXT_TYPE,
                    {"Connection": "close"},
                )
            return _closing(HTTPStatus.BAD_REQUEST, {"error": message})
        if page:
            if method not in ("GET", "HEAD"):
                return Answer(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    b"405 method not allowed: the dashboard is read-only (GET, HEAD)\n",
                    TEXT_TYPE,
                    {"Allow": "GET, HEAD", "Connection": "close"},
                )
            return await self._work(lambda: self._page(request))
        if path != "/health" and not path.startswith("/api/"):
            return _closing(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {path}"})
        if method not in ("GET", "HEAD", "POST"):
            return _closing(
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"error": f"{method} is not allowed on {path}"},
                {"Allow": "GET, HEAD, POST"},
            )
        if not auth.accepted(auth.bearer(headers.get("authorization")), self.service.tokens):
            return _closing(
                HTTPStatus.UNAUTHORIZED,
                {
                    "error": f"missing or wrong token for {method} {path}",
                    "hint": self.service.token_hint,
                },
                {"WWW-Authenticate": "Bearer"},
            )
        if method != "POST":
            return await self._work(lambda: self._get(request))
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != JSON_TYPE:
            return _closing(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {
                    "error": f"POST {path} takes a JSON body (Content-Type: {JSON_TYPE}), "
                    f"not {content_type or 'no Content-Type'}"
                },
            )
        try:
            by = auth.user_of(headers.get(auth.USER_HEADER.lower()), self.service.user)
        except ValueError as exc:
            return _closing(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        body = await _read_body(receive, headers, API_BODY)
        if isinstance(body, Answer):
            return body
        return await self._work(lambda: self._post(request, body, by))

    # -- the work, in the pool ---------------------------------------------------------------

    def _page(self, request: Request) -> Answer:
        if (asset := routes.asset(request.path)) is not None:
            return Answer(HTTPStatus.OK, asset[1], asset[0], PAGE_HEADERS)
        served = [(s.project.config.pipeline, s.project.root) for s in self.service.served]
        status, page = routes.render(served, request.path, request.query)
        return Answer(status, page.encode(), "text/html; charset=utf-8", PAGE_HEADERS)

    def _get(self, request: Request) -> Answer:
        try:
            return _json(
                HTTPStatus.OK, api.get(self.service, request.path.rstrip("/") or "/", request.query)
            )
        except NotFoundError as exc:
            return _json(HTTPStatus.NOT_FOUND, {"error": exc.headline})
        except (MlcicdError, ValueError) as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def _post(self, request: Request, body: bytes, by: str) -> Answer:
        try:
            status, answer = api.post(
                self.service, request.path.rstrip("/"), request.query, body, by
            )
        except NotFoundError as exc:
            status, answer = HTTPStatus.NOT_FOUND, {"error": exc.headline, "hint": exc.hint}
        except MlcicdError as exc:
            status, answer = HTTPStatus.CONFLICT, {"error": exc.headline, "hint": exc.hint}
        except ValueError as exc:
            status, answer = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        return _json(status, answer)

    def _webhook(self, headers: dict[str, str], body: bytes) -> Answer:
        service = self.service
        targets = service.webhook_targets()
        try:
            status, answer = webhook.handle(targets, headers, body)
        except MlcicdError as exc:
            status, answer = 500, {"error": exc.headline}
        finally:
            for target in targets:
                target.project.state.close()
        if status in (200, 202) and answer.get("runs"):
            service.log(f"webhook: queued {answer['runs']}")
        return _json(status, answer)


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | Answer:
    """The request's body, at most ``limit`` bytes: a larger declared length is refused before a
    byte of it is read, a larger chunked one as soon as it grows past the limit."""
    declared = int(headers.get("content-length") or 0)  # uvicorn's parser let only digits through
    too_large = (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        {"error": f"the body is larger than {limit} bytes"},
    )
    if declared > limit:
        return (_closing if declared > DRAIN_LIMIT else _json)(*too_large)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _closing(HTTPStatus.BAD_REQUEST, {"error": "the client went away"})
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _json(*too_large)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class _Server(uvicorn.Server):
    """uvicorn's server, plus the sweep that cuts clients too slow to send their request."""

    _sweeper: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._sweeper = asyncio.create_task(self._sweep())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await super().shutdown(sockets=sockets)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP)
            now = loop.time()
            for connection in list(self.server_state.connections):
                if isinstance(connection, GuardedProtocol):
                    connection.expired(now)


class ServiceServer:
    """uvicorn on a socket bound before it starts (so a taken port fails `mlcicd up` at once
    and port 0 is known), run in a thread of the service; ``stop`` ends it."""

    def __init__(
        self,
        service: Service,
        port: int,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(("127.0.0.1", port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.port: int = self.socket.getsockname()[1]
        self.app = ServiceApp(service, self.port)
        protocol = guarded_protocol(header_timeout, body_timeout)
        config = guarded_config(
            self.app,
            protocol,
            loop="asyncio",
            limit_concurrency=concurrency,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
        )
        # A malformed request is answered 400 by uvicorn; it is not worth a line in the service log.
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
        self.server = _Server(config)
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 30.0) -> None:
        """Serve, once uvicorn says it does (or its thread ended: then raise)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise MlcicdError(
                f"the HTTP server did not start on 127.0.0.1:{self.port}",
                hint="see the service's output above",
            )

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self.app.executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            self.socket.close()
