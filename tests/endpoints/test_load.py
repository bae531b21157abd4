"""The load client against a real HTTP server on loopback: counts, errors, keep-alive and
connections the server closes, and a port where nothing listens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from mlcicd.endpoints.acceptance import missed_bounds
from mlcicd.endpoints.load import run_load
from mlcicd.errors import EndpointError
from tests.helpers import free_port

pytestmark = pytest.mark.integration  # a socket


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[set[int]] = set()  # the client ports seen

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.connections.add(self.client_address[1])
        status = 400 if body == b"bad" else 200
        answer = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    Handler.connections.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_request_is_sent_once_over_kept_alive_connections(url: str) -> None:
    result = run_load(f"{url}/invocations", b"[1]", requests=300, concurrency=4)
    assert (result.requests, result.errors, result.first_error) == (300, 0, None)
    assert len(result.latencies_ms) == 300 and result.p50_ms <= result.p99_ms
    assert len(Handler.connections) == 4  # one per worker, kept alive
    figures = result.figures()
    assert figures["requests"] == 300 and figures["error_rate"] == 0.0
    assert missed_bounds(figures, {"p99_ms": None, "max_error_rate": 0.0}) == []


def test_non_2xx_answers_are_errors_with_the_first_one_named(url: str) -> None:
    result = run_load(f"{url}/invocations", b"bad", requests=20, concurrency=2)
    assert (result.requests, result.errors, result.first_error) == (20, 20, "HTTP 400")
    missed = missed_bounds(result.figures(), {"p99_ms": None, "max_error_rate": 0.5})
    assert missed == [
        "error rate 100.00% (20 of 20) > staging.load.max_error_rate 50.00% (first: HTTP 400)"
    ]


def test_a_connection_the_server_closes_is_opened_again(url: str) -> None:
    result = run_load(f"{url}/close", b"[1]", requests=10, concurrency=1)
    assert (result.requests, result.errors) == (10, 0)


def test_nothing_listening_counts_every_request_as_an_error() -> None:
    port = free_port()  # not bind(0)'s: another process could take that one meanwhile
    result = run_load(f"http://127.0.0.1:{port}/invocations", b"[1]", requests=5, concurrency=2)
    assert (result.requests, result.errors) == (5, 5)
    assert result.first_error is not None and "ConnectionRefusedError" in result.first_error


def test_a_duration_bounds_the_load_instead_of_a_count(url: str) -> None:
    result = run_load(f"{url}/invocations", b"[1]", duration=0.2, concurrency=2)
    assert result.requests > 0 and result.errors == 0


def test_only_http_urls_are_loaded() -> None:
    with pytest.raises(EndpointError, match="'https://x' is not an http:// endpoint URL"):
        run_load("https://x", b"", requests=1, concurrency=1)
