"""A worker process on its own: readiness, failure report, graceful stop."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import AutoscalingSpec, ServingConfig, VariantSpec
from mlcicd.serving.sockets import inherited_socket
from mlcicd.serving.watchdog import EXIT_STALLED
from mlcicd.serving.worker import build_app
from tests.helpers import IrisModel
from tests.serving.helpers import MODEL_FN_RAISES, NO_HANDLERS, call_asgi, request, write_code

Processes = list[subprocess.Popen[bytes]]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


def spawn(
    tmp_path: Path,
    iris: IrisModel,
    script: str,
    sock: socket.socket,
    processes: Processes,
    model_timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a worker on ``sock``; its status pipe's read end is returned with it."""
    code = write_code(tmp_path / "code", script)
    spec = tmp_path / "spec.json"
    variant = VariantSpec("AllTraffic", str(iris.model_dir), str(code))
    config = ServingConfig(name="w", variants=(variant,), model_timeout=model_timeout)
    atomic_write_json(spec, config.to_dict())
    read_fd, write_fd = os.pipe()
    cmd = [
        sys.executable,
        "-m",
        "mlcicd.serving.worker",
        "--fd",
        str(sock.fileno()),
        "--spec",
        str(spec),
        "--status-fd",
        str(write_fd),
    ]
    try:
        proc = subprocess.Popen(cmd, pass_fds=(sock.fileno(), write_fd), stderr=subprocess.PIPE)
    finally:
        os.close(write_fd)
    processes.append(proc)
    return proc, read_fd


def read_event(fd: int, timeout: float = 30.0) -> dict:
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, "no event from the worker"
        return json.loads(os.read(fd, 65536).splitlines()[0])
    finally:
        os.close(fd)


@pytest.mark.integration
def test_ready_then_serves_then_drains(
    tmp_path: Path, iris: IrisModel, listener: socket.socket, processes: Processes
) -> None:
    proc, fd = spawn(tmp_path, iris, NO_HANDLERS, listener, processes)
    assert read_event(fd) == {
        "event": "ready",
        "pid": proc.pid,
        "compiled": {"AllTraffic": ["predict"]},  # the default predict_fn, compiled
    }
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    assert request(url, "GET", "/ping").status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.mark.integration
def test_model_fn_failure_is_reported_before_listening(
    tmp_path: Path, iris: IrisModel, listener: socket.socket, processes: Processes
) -> None:
    proc, fd = spawn(tmp_path, iris, MODEL_FN_RAISES, listener, processes)
    event = read_event(fd)
    assert proc.wait(timeout=20) == 3
    assert event["event"] == "failed"
    assert "RuntimeError: the weights are corrupt (inference.py, line 3)" in event["error"]
    assert proc.stderr is not None and b"Traceback" in proc.stderr.read()


def test_the_inherited_socket_says_it_is_tcp(listener: socket.socket) -> None:
    # asyncio sets TCP_NODELAY only on sockets that say they are TCP; uvicorn's own `fd=`
    # option labels every socket AF_UNIX, which would leave Nagle on for every connection.
    inherited = inherited_socket(os.dup(listener.fileno()))
    try:
        assert (inherited.family, inherited.proto) == (socket.AF_INET, socket.IPPROTO_TCP)
    finally:
        inherited.close()


@pytest.mark.integration
def test_a_stalled_worker_answers_for_itself_and_exits(
    tmp_path: Path, iris: IrisModel, listener: socket.socket, processes: Processes
) -> None:
    # No supervisor and no board: the loop's heartbeat is the worker's own.
    hangs = "import time\n\ndef predict_fn(data, model):\n    time.sleep(3600)\n"
    proc, fd = spawn(tmp_path, iris, hangs, listener, processes, model_timeout=1.0)
    events = os.fdopen(fd, "rb")
    try:
        assert json.loads(events.readline())["event"] == "ready"
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        response = request(
            url, body=b"[[1, 2, 3, 4]]", headers={"Content-Type": "application/json"}
        )
        assert response.status == 504 and response.json()["error"] == "ModelTimeout"
        assert response.headers["connection"] == "close"
        stalled = json.loads(events.readline())
        assert stalled["event"] == "stalled" and "deploy.model_timeout is 1s" in stalled["error"]
    finally:
        events.close()
    assert proc.wait(timeout=20) == EXIT_STALLED
    assert proc.stderr is not None and b"in predict_fn" in proc.stderr.read()


def test_execution_parameters_offer_what_the_fleet_takes_once_scaled_out(
    tmp_path: Path, iris: IrisModel
) -> None:
    """A batch transform asks once how many requests to send at once: with autoscaling, as
    many as max_instances workers take, not the one or two serving when it asks."""
    scaling = AutoscalingSpec(min_instances=1, max_instances=6, target_invocations_per_instance=10)
    config = ServingConfig(
        name="cfg",
        variants=(
            VariantSpec(
                name="AllTraffic",
                model_dir=str(iris.model_dir),
                code_dir=str(write_code(tmp_path / "code", NO_HANDLERS)),
            ),
        ),
        workers=1,
        autoscaling=scaling,
    )
    app = build_app(config, state_dir=tmp_path / "state")
    answer = call_asgi(app, "GET", "/execution-parameters").json()
    assert answer["MaxConcurrentTransforms"] == 6 and config.initial_workers == 1
    fixed = build_app(dataclasses.replace(config, workers=3, autoscaling=None))
    assert call_asgi(fixed, "GET", "/execution-parameters").json()["MaxConcurrentTransforms"] == 3
