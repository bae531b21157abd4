"""The supervisor as a real process: generations, SIGHUP updates, replacement, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcicd import procinfo
from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import ServingConfig, VariantSpec
from tests.serving.helpers import (
    MODEL_FN_RAISES,
    NO_HANDLERS,
    IrisModel,
    free_port,
    kill_tree,
    request,
    stop_process,
    train_iris,
    wait_for,
    write_code,
)

pytestmark = pytest.mark.integration
ROW = b"[[6.7, 3.0, 5.2, 2.3]]"
JSON = {"Content-Type": "application/json"}


def write_config(state_dir: Path, iris: IrisModel, script: str = NO_HANDLERS, *, name: str = "cfg-1",
                 port: int = 0, workers: int = 1, startup_timeout: float = 30.0) -> Path:  # fmt: skip
    code = write_code(state_dir.parent / f"code-{name}", script)
    config = ServingConfig(
        name=name, endpoint_name="iris", port=port, workers=workers, startup_timeout=startup_timeout,
        drain_timeout=5.0, variants=(VariantSpec(name="AllTraffic", model_dir=str(iris.model_dir),
                                                 code_dir=str(code), model_sha256=iris.sha256),),
    )  # fmt: skip
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_dir / "config.json", config.to_dict())
    return state_dir


def status(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


Start = Callable[[Path], subprocess.Popen[bytes]]


@pytest.fixture
def start_supervisor() -> Iterator[Start]:
    """Start supervisors in the foreground; stop them and every worker they recorded after."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(state_dir: Path) -> subprocess.Popen[bytes]:
        log = open(state_dir / "endpoint.log", "ab")  # noqa: SIM115 - closed with the test
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlcicd.serving.supervisor", str(state_dir)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            log.close()
        started.append((proc, state_dir))
        return proc

    yield start
    for proc, state_dir in started:
        workers = [w["pid"] for w in status(state_dir).get("workers", [])]
        stop_process(proc, timeout=20)
        kill_tree(pid for pid in workers if procinfo.start_time(pid) is not None)


def in_service(state_dir: Path) -> dict[str, Any]:
    return wait_for(lambda: (s := status(state_dir)).get("status") == "InService" and s)


def predict(url: str) -> list[int]:
    response = request(url, body=ROW, headers=JSON)
    assert response.status == 200, response.body
    return list(response.json())


def test_serves_then_stops_gracefully(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, workers=2)
    proc = start_supervisor(state_dir)
    s = in_service(state_dir)
    assert s["generation"] == 1 and len(s["workers"]) == 2 and s["pid"] == proc.pid
    assert s["config_name"] == "cfg-1" and s["model_sha256"] == iris.sha256
    assert request(s["url"], "GET", "/ping").status == 200
    assert predict(s["url"]) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    final = status(state_dir)
    assert final["status"] == "OutOfService" and final["workers"] == []
    assert all(procinfo.start_time(w["pid"]) is None for w in s["workers"])


def test_sighup_starts_a_new_generation(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris)
    proc = start_supervisor(state_dir)
    before = in_service(state_dir)
    flipped = train_iris(tmp_path / "flipped", flip=True)
    write_config(state_dir, flipped, name="cfg-2")
    proc.send_signal(signal.SIGHUP)
    after = wait_for(
        lambda: (
            (s := status(state_dir)).get("generation") == 2 and s.get("status") == "InService" and s
        )
    )
    assert after["config_name"] == "cfg-2" and after["url"] == before["url"]
    assert predict(after["url"]) == flipped.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    old = before["workers"][0]["pid"]
    wait_for(lambda: procinfo.start_time(old) is None, timeout=20)


def test_failed_update_keeps_the_old_generation(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris)
    proc = start_supervisor(state_dir)
    before = in_service(state_dir)
    write_config(state_dir, iris, MODEL_FN_RAISES, name="cfg-broken")
    proc.send_signal(signal.SIGHUP)
    after = wait_for(lambda: (s := status(state_dir)).get("last_update_failure") and s)
    assert "the weights are corrupt" in after["last_update_failure"]
    assert (
        after["status"] == "InService"
        and after["generation"] == 1
        and after["config_name"] == "cfg-1"
    )
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]]
    assert predict(after["url"]) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_a_dead_worker_is_replaced(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris)
    start_supervisor(state_dir)
    before = in_service(state_dir)
    victim = before["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    after = wait_for(
        lambda: (
            (s := status(state_dir)).get("worker_restarts") == 1
            and [w["state"] for w in s["workers"]] == ["ready"]
            and s
        )
    )
    assert after["workers"][0]["pid"] != victim
    assert predict(after["url"]) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_port_in_use(tmp_path: Path, iris: IrisModel, start_supervisor: Start) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        state_dir = write_config(tmp_path / "ep", iris, port=port)
        proc = start_supervisor(state_dir)
        assert proc.wait(timeout=20) == 1
    s = status(state_dir)
    assert s["status"] == "Failed" and s["failure_kind"] == "port_in_use"
    assert s["failure_reason"] == f"port {port} is already in use"


def test_model_fn_failure_fails_the_start(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, MODEL_FN_RAISES, workers=2)
    proc = start_supervisor(state_dir)
    assert proc.wait(timeout=30) == 1
    s = status(state_dir)
    assert (
        s["status"] == "Failed" and "RuntimeError: the weights are corrupt" in s["failure_reason"]
    )
    assert s["workers"] == []
    assert "the weights are corrupt" in (state_dir / "endpoint.log").read_text()


def test_workers_end_with_their_supervisor(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, workers=2)
    proc = start_supervisor(state_dir)
    pids = [w["pid"] for w in in_service(state_dir)["workers"]]
    proc.kill()
    proc.wait()
    wait_for(lambda: all(procinfo.start_time(pid) is None for pid in pids), timeout=20)


def test_startup_timeout(tmp_path: Path, iris: IrisModel, start_supervisor: Start) -> None:
    slow = "import time\n\ndef model_fn(model_dir):\n    time.sleep(60)\n"
    state_dir = write_config(tmp_path / "ep", iris, slow, startup_timeout=1.0)
    proc = start_supervisor(state_dir)
    assert proc.wait(timeout=30) == 1
    assert "not ready within 1s" in status(state_dir)["failure_reason"]


def test_free_port_is_honoured(tmp_path: Path, iris: IrisModel, start_supervisor: Start) -> None:
    port = free_port()
    state_dir = write_config(tmp_path / "ep", iris, port=port)
    start_supervisor(state_dir)
    assert in_service(state_dir)["url"] == f"http://127.0.0.1:{port}"
