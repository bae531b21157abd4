"""A short load against an endpoint: N requests (or T seconds) at C connections, measured.

The staging stage's load check and ``bench/serving.py`` (when wrk is missing) both use it, so
the figures a pipeline gates on and the ones a benchmark reports come from one client.

Each connection is an HTTP/1.1 keep-alive stream on asyncio, one request in flight at a time,
so the client costs a few microseconds per request and is not what limits the figures at a
few thousand requests. A request that gets a non-2xx answer, no answer within ``timeout``, or
a broken connection counts as an error (its connection is opened again); its latency counts
too, so a slow failure shows in p99.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlcicd.errors import EndpointError

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class LoadResult:
    """What the load measured: counts, the wall time, and latencies in milliseconds."""

    requests: int  # answered or failed
    errors: int  # non-2xx answers, timeouts, broken connections
    seconds: float  # wall time of the whole load
    latencies_ms: tuple[float, ...]  # sorted
    first_error: str | None = None  # what the first error was, for the message

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float:
        """The nearest-rank ``q`` percentile (0 < q <= 100) of the latencies, in ms."""
        if not self.latencies_ms:
            return math.nan
        rank = max(1, math.ceil(q / 100 * len(self.latencies_ms)))
        return self.latencies_ms[rank - 1]

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    def figures(self) -> dict[str, Any]:
        """The figures as plain data (stage outputs, the model's record, JSON)."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "first_error": self.first_error,
        }


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    content_type: str = "application/json",
    path: str | None = None,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """POST ``body`` to ``url`` (its path, or ``path``) ``requests`` times, or for ``duration``
    seconds, over ``concurrency`` keep-alive connections (``headers``: more of them on each
    request). ``EndpointError`` for a URL that is not ``http://host:port``; everything the
    endpoint does wrong is in the result."""
    if (requests is None) == (duration is None):
        raise ValueError("give either requests or duration")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname is None:
        raise EndpointError(
            f"{url!r} is not an http:// endpoint URL", hint="the load check needs one"
        )
    target = path or parsed.path or "/invocations"
    host, port = parsed.hostname, parsed.port or 80
    request = (
        f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return asyncio.run(
        _load(
            host,
            port,
            request,
            concurrency=concurrency,
            requests=requests,
            duration=duration,
            timeout=timeout,
        )
    )


async def _load(
    host: str,
    port: int,
    request: bytes,
    *,
    concurrency: int,
    requests: int | None,
    duration: float | None,
    timeout: float,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    remaining = requests if requests is not None else -1
    started = time.perf_counter()
    deadline = started + duration if duration is not None else math.inf

    def take() -> bool:
        nonlocal remaining
        if time.perf_counter() >= deadline:
            return False
        if remaining < 0:
            return True
        if remaining == 0:
            return False
        remaining -= 1
        return True

    def failed(why: str) -> None:
        nonlocal errors, first_error
        errors += 1
        if first_error is None:
            first_error = why

    async def connection() -> None:
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while take():
            sent = time.perf_counter()
            try:
                if stream is None:
                    stream = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                code, keep = await asyncio.wait_for(_exchange(*stream, request), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                latencies.append(time.perf_counter() - sent)
                failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                _close(stream)
                stream = None
                continue
            latencies.append(time.perf_counter() - sent)
            if not 200 <= code < 300:
                failed(f"HTTP {code}")
            if not keep:
                _close(stream)
                stream = None
        _close(stream)

    await asyncio.gather(*(connection() for _ in range(max(1, concurrency))))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        latencies_ms=tuple(sorted(x * 1e3 for x in latencies)),
        first_error=first_error,
    )


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request and read its whole answer: (status code, connection kept open)."""
    writer.write(request)
    head = await reader.readuntil(_HEAD_END)
    if len(head) > _MAX_HEAD:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return int(parts[1]), headers.get("connection") != "close"


def _close(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if stream is not None:
        stream[1].close()
