"""Malformed bodies and content types at a real worker: every answer has a status and a message."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import ServingConfig, VariantSpec
from tests.serving.helpers import (
    NO_HANDLERS,
    IrisModel,
    request,
    stop_process,
    wait_for,
    write_code,
)

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
        name="fuzz", endpoint_name="fuzz", workers=1, max_payload_bytes=4096,
        variants=(VariantSpec(name="AllTraffic", model_dir=str(iris.model_dir), code_dir=str(code)),),
    )  # fmt: skip
    atomic_write_json(state_dir / "config.json", config.to_dict())
    with open(state_dir / "endpoint.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcicd.serving.supervisor", str(state_dir)],
            stdout=log,
            stderr=log,
        )
    try:
        status = wait_for(
            lambda: (s := _status(state_dir)).get("status") == "InService" and s, timeout=60
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
