"""Malformed bodies, headers and slow clients at a real worker: every answer has a status and a
message, nobody starves the worker, and it still predicts correctly after."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import ServingConfig, VariantSpec
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import NO_HANDLERS, request, stop_process, write_code

pytestmark = pytest.mark.integration

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "text/csv",
            "application/x-npy",
            "application/jsonlines",
            "application/json; charset=latin-1",
            "text/plain",
            "",
            "*/*",
            "image/png",
        ]
    ),
    st.from_regex(r"[a-z]{1,8}/[a-z+.-]{1,12}(; ?[a-z]+=[a-z0-9]+)?", fullmatch=True),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False)
        | st.integers()
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=6), max_size=4
    ).map(lambda rows: "\n".join(",".join(map(str, r)) for r in rows).encode()),
)
JSON = {"Content-Type": "application/json"}
ACCEPTS = st.sampled_from(
    [None, "*/*", "application/json", "text/csv", "application/x-npy", "text/html"]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, iris: IrisModel) -> Iterator[str]:
    state_dir = tmp_path_factory.mktemp("fuzz")
    code = write_code(state_dir / "code", NO_HANDLERS)
    config = ServingConfig(
        name="fuzz",
        endpoint_name="fuzz",
        workers=1,
        max_payload_bytes=4096,
        header_timeout=1.0,
        body_timeout=1.0,
        variants=(
            VariantSpec(name="AllTraffic", model_dir=str(iris.model_dir), code_dir=str(code)),
        ),
    )
    atomic_write_json(state_dir / "config.json", config.to_dict())
    with open(state_dir / "endpoint.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcicd.serving.supervisor", str(state_dir)],
            stdout=log,
            stderr=log,
        )
    try:
        status = wait_for(
            "the endpoint InService",
            lambda: (s := _status(state_dir)).get("status") == "InService" and s,
            timeout=60,
        )
        yield status["url"]
    finally:
        stop_process(proc)


def _status(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_every_bad_request_gets_a_clear_answer(
    server: str, body: bytes, content_type: str, accept: str | None
) -> None:
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    response = request(server, body=body, headers=headers)
    if response.status == 200:  # hypothesis found a valid request: it must be answered properly
        return
    assert 400 <= response.status < 600
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"]


def test_still_serving_after_the_fuzz(server: str, iris: IrisModel) -> None:
    response = request(
        server, body=json.dumps(iris.X[:20].tolist()), headers={"Content-Type": "application/json"}
    )
    assert response.status == 200 and response.json() == iris.model.predict(iris.X[:20]).tolist()


def test_oversized_body_is_refused_and_the_connection_survives(
    server: str, iris: IrisModel
) -> None:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/invocations", body=b"[" + b"1," * 100_000 + b"1]", headers=JSON)
        response = conn.getresponse()
        assert response.status == 413
        assert "limit of 4096 bytes" in json.loads(response.read())["message"]
        # The rest of the body was discarded unread: the same connection answers the next one.
        conn.request("POST", "/invocations", body=json.dumps(iris.X[:2].tolist()), headers=JSON)
        response = conn.getresponse()
        assert (
            response.status == 200
            and json.loads(response.read()) == iris.model.predict(iris.X[:2]).tolist()
        )
    finally:
        conn.close()


def test_oversized_chunked_body_is_refused(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        chunks = (b"1," * 1000 for _ in range(50))
        conn.request("POST", "/invocations", body=chunks, headers=JSON, encode_chunked=True)
        response = conn.getresponse()
        assert (
            response.status == 413
            and "limit of 4096 bytes" in json.loads(response.read())["message"]
        )
        conn.request("GET", "/ping")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            b"Content-Type",
            b"Accept",
            b"Content-Length",
            b"X-Amzn-SageMaker-Target-Variant",
            b"X-Amzn-SageMaker-Custom-Attributes",
            b"X-Amzn-SageMaker-Inference-Id",
            b"Transfer-Encoding",
            b"Expect",
            b"Host",
        ]
    ),
    st.binary(min_size=1, max_size=20).filter(
        lambda b: b"\r" not in b and b"\n" not in b and b":" not in b
    ),
)
HEADER_VALUES = st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)


def raw_exchange(url: str, data: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout): what came back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6), body=BODIES)
def test_malformed_headers_get_a_clear_answer(
    server: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    request_bytes = (
        b"POST /endpoints/fuzz/invocations HTTP/1.1\r\nHost: fuzz\r\n"
        + head
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    answer = raw_exchange(server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    status = int(answer[9:12])
    head_end = answer.find(b"\r\n\r\n")
    assert 200 <= status < 600 and head_end > 0
    if status >= 400:
        assert answer[head_end + 4 :].strip(), answer  # a message, not an empty error


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=200))
def test_garbage_instead_of_http(server: str, garbage: bytes) -> None:
    answer = raw_exchange(server, garbage + b"\r\n\r\n")
    # Not HTTP at all: a 400 with a message, or (incomplete, then timed out) a 408. Garbage
    # that happens to read as a request line (b"POST /" is one, HTTP/0.9 style) is answered
    # as that request: a 4xx of its own (404 for "/"). Never a 5xx.
    assert answer == b"" or re.match(rb"HTTP/1\.1 4\d\d ", answer), answer[:100]


def test_slow_clients_do_not_starve_the_worker(server: str, iris: IrisModel) -> None:
    """Slowloris: connections that never finish their headers or body are cut off after the
    header/body timeout (1 s here), and meanwhile the one worker answers everyone else."""
    host, port = server.removeprefix("http://").split(":")
    slow: list[socket.socket] = []
    try:
        for i in range(60):
            sock = socket.create_connection((host, int(port)), timeout=30)
            if i % 3 == 0:
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Ty")
            elif i % 3 == 1:
                sock.sendall(
                    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[[1,"
                )
            slow.append(sock)  # the third kind says nothing at all
        rows = json.dumps(iris.X[:5].tolist())
        for _ in range(20):
            response = request(server, body=rows, headers=JSON)
            assert response.json() == iris.model.predict(iris.X[:5]).tolist()
        for sock in slow:
            received = b""
            while chunk := sock.recv(65536):  # the server closes: recv returns b"", no timeout
                received += chunk
            # Each, whatever it sent (even nothing), gets the documented 408, with its reason.
            assert received.startswith(b"HTTP/1.1 408"), received[:100]
            assert b"was not received in time" in received
    finally:
        for sock in slow:
            sock.close()
    assert request(server, body=rows, headers=JSON).status == 200
