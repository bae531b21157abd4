"""The supervisor as a real process: generations, SIGHUP updates, replacement, stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcicd import procinfo
from mlcicd.fsutil import atomic_write_json
from mlcicd.serving import metrics
from mlcicd.serving.config import AutoscalingSpec, ServingConfig, VariantSpec
from tests.helpers import IrisModel, free_port, kill_tree, train_iris, wait_for
from tests.serving.helpers import (
    MODEL_FN_RAISES,
    NO_HANDLERS,
    request,
    stop_process,
    write_code,
)

pytestmark = pytest.mark.integration
ROW = b"[[6.7, 3.0, 5.2, 2.3]]"
JSON = {"Content-Type": "application/json"}


def write_config(
    state_dir: Path,
    iris: IrisModel,
    script: str = NO_HANDLERS,
    *,
    name: str = "cfg-1",
    port: int = 0,
    workers: int = 1,
    startup_timeout: float = 30.0,
    model_timeout: float = 60.0,
    autoscaling: AutoscalingSpec | None = None,
) -> Path:
    code = write_code(state_dir.parent / f"code-{name}", script)
    config = ServingConfig(
        name=name,
        endpoint_name="iris",
        port=port,
        workers=workers,
        startup_timeout=startup_timeout,
        drain_timeout=5.0,
        model_timeout=model_timeout,
        autoscaling=autoscaling,
        variants=(
            VariantSpec(
                name="AllTraffic",
                model_dir=str(iris.model_dir),
                code_dir=str(code),
                model_sha256=iris.sha256,
            ),
        ),
    )
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
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
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
    return wait_for(
        "the endpoint InService",
        lambda: (s := status(state_dir)).get("status") == "InService" and s,
    )


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
        "generation 2 InService",
        lambda: (
            (s := status(state_dir)).get("generation") == 2 and s.get("status") == "InService" and s
        ),
    )
    assert after["config_name"] == "cfg-2" and after["url"] == before["url"]
    assert predict(after["url"]) == flipped.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    old = before["workers"][0]["pid"]
    wait_for("the old worker to exit", lambda: procinfo.start_time(old) is None, timeout=20)
    # status.json forgets the drained generation's worker once it has exited
    wait_for(
        "status.json to list generation 2's workers only",
        lambda: {w["generation"] for w in status(state_dir)["workers"]} == {2},
        timeout=20,
    )


def test_failed_update_keeps_the_old_generation(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris)
    proc = start_supervisor(state_dir)
    before = in_service(state_dir)
    write_config(state_dir, iris, MODEL_FN_RAISES, name="cfg-broken")
    proc.send_signal(signal.SIGHUP)
    after = wait_for(
        "the update failure in the status",
        lambda: (s := status(state_dir)).get("last_update_failure") and s,
    )
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
        "the worker restarted",
        lambda: (
            (s := status(state_dir)).get("worker_restarts") == 1
            and [w["state"] for w in s["workers"]] == ["ready"]
            and s
        ),
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
    wait_for(
        "every process to exit",
        lambda: all(procinfo.start_time(pid) is None for pid in pids),
        timeout=20,
    )


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


# A negative first feature hangs predict_fn (after leaving a mark in the worker's cwd, run/);
# below -5 it hangs in C code that holds the GIL, so no thread of the worker runs either.
HANGS = """
    import os, re, time
    import joblib

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        if data[0][0] < 0:
            open("hanging", "w").close()
            if data[0][0] < -5:
                re.match(r"(a+)+$", "a" * 64 + "b")  # catastrophic backtracking: ages
            time.sleep(3600)
        return model.predict(data)
"""
HANG_ROW = b"[[-1.0, 3.0, 5.2, 2.3]]"
HANG_IN_C_ROW = b"[[-9.0, 3.0, 5.2, 2.3]]"


def replaced(state_dir: Path, victim: int) -> dict[str, Any]:
    """status.json once the stalled ``victim`` is gone and every worker is ready again."""
    return wait_for(
        "the worker restarted",
        lambda: (
            (s := status(state_dir)).get("worker_restarts") == 1
            and victim not in [w["pid"] for w in s["workers"]]
            and {w["state"] for w in s["workers"]} == {"ready"}
            and s
        ),
        timeout=60,
    )


def hang_in_background(url: str, row: bytes, path: str = "/invocations") -> Callable[[], Any]:
    """Send a request that hangs a worker; the returned call waits for its answer (or error)."""
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(request(url, body=row, headers=JSON, path=path, timeout=60))
        except Exception as exc:  # the connection may die with its worker
            outcome.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(90)
        assert outcome, "the hung request got no answer at all"
        return outcome[0]

    return result


def test_a_stalled_worker_answers_504_and_is_replaced_while_the_other_serves(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, HANGS, workers=2, model_timeout=2.0)
    start_supervisor(state_dir)
    before = in_service(state_dir)
    url, expected = before["url"], iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    hung = hang_in_background(url, HANG_ROW)
    wait_for("the worker to hang", lambda: (state_dir / "run" / "hanging").exists())
    # Every other request, each on a new connection, is answered throughout: by the other
    # worker while one is stalled, then by it and the replacement.
    answered, deadline = 0, time.monotonic() + 60
    while not (s := status(state_dir)).get("worker_restarts") or answered < 5:
        assert time.monotonic() < deadline, "the stalled worker was never replaced"
        assert predict(url) == expected
        answered += 1
    response = hung()
    assert response.status == 504, response.body
    assert response.json()["error"] == "ModelTimeout"
    assert "deploy.model_timeout" in response.json()["message"]
    victim = next(
        w["pid"] for w in before["workers"] if w["pid"] not in [x["pid"] for x in s["workers"]]
    )
    after = replaced(state_dir, victim)
    assert len(after["workers"]) == 2 and procinfo.start_time(victim) is None
    assert predict(url) == expected and request(url, "GET", "/ping").status == 200
    log = (state_dir / "endpoint.log").read_text()
    assert "the event loop has not run for" in log and "in predict_fn" in log  # where it hung
    assert "exit code 4" in log
    counted = metrics.read_all(state_dir / "metrics")["series"]["cfg-1|AllTraffic"]
    assert counted["Invocation5XXErrors"] == 1  # flushed by the stalled worker as it exited


def test_with_one_stalled_worker_ping_fails_until_its_replacement_serves(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, HANGS, workers=1, model_timeout=3.0)
    start_supervisor(state_dir)
    before = in_service(state_dir)
    url = before["url"]
    host, port = url.removeprefix("http://").split(":")
    held = http.client.HTTPConnection(host, int(port), timeout=30)  # kept alive by the worker
    held.request("GET", "/ping")
    assert held.getresponse().read() == b"{}"
    hung = hang_in_background(url, HANG_ROW, path="/endpoints/iris/invocations")
    wait_for("the worker to hang", lambda: (state_dir / "run" / "hanging").exists())
    held.request("POST", "/invocations", body=ROW, headers=JSON)  # never read by the worker
    with pytest.raises(TimeoutError):  # nobody answers /ping while the only worker is stalled
        request(url, "GET", "/ping", timeout=1.0)
    unread = held.getresponse()
    assert unread.status == 503 and unread.getheader("connection") == "close"
    assert json.loads(unread.read())["error"] == "ServiceUnavailable"
    held.close()
    response = hung()  # the Runtime path: as SageMaker answers an invocation that timed out
    assert response.status == 424 and response.headers["x-amzn-errortype"] == "ModelError"
    assert response.json()["OriginalStatusCode"] == 0
    assert "timed out" in response.json()["OriginalMessage"]
    after = replaced(state_dir, before["workers"][0]["pid"])
    assert request(url, "GET", "/ping").status == 200
    assert predict(after["url"]) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_a_worker_stalled_holding_the_gil_is_killed_by_the_supervisor(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, HANGS, workers=1, model_timeout=1.0)
    start_supervisor(state_dir)
    before = in_service(state_dir)
    hung = hang_in_background(before["url"], HANG_IN_C_ROW)
    after = replaced(state_dir, before["workers"][0]["pid"])
    assert isinstance(hung(), ConnectionError)  # no thread of the worker could answer
    assert "did not exit; killed" in (state_dir / "endpoint.log").read_text()
    assert predict(after["url"]) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


class Traffic:
    """Clients on keep-alive connections (http.client, one request in flight each), pausing
    ``pause`` seconds between requests; every answer that is not a 200 — or no answer — is a
    failure. Bounded: each client stops at ``stop()`` or after ``limit`` requests."""

    def __init__(self, url: str, clients: int, pause: float, limit: int = 200_000) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

        def client() -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                for _ in range(limit):
                    if self._stop.wait(pause):
                        return
                    try:
                        conn.request("POST", "/invocations", body=ROW, headers=JSON)
                        response = conn.getresponse()
                        response.read()
                        failure = None if response.status == 200 else f"{response.status}"
                    except (OSError, http.client.HTTPException) as exc:
                        failure = f"{type(exc).__name__}: {exc}"
                        conn.close()
                    with self._lock:
                        self.answered += failure is None
                        if failure is not None:
                            self.failures.append(failure)
            finally:
                conn.close()

        self._threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def scaled_to(state_dir: Path, count: int, what: str) -> dict[str, Any]:
    """status.json once the autoscaler serves with ``count`` workers, all ready and no other
    alive."""
    return wait_for(
        f"{count} worker(s) {what}",
        lambda: (
            (s := status(state_dir)).get("autoscaling", {}).get("current_instances") == count
            and [w["state"] for w in s["workers"]] == ["ready"] * count
            and s
        ),
        timeout=120,
    )


def test_workers_scale_out_under_load_and_back_in_without_a_failed_request(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    policy = AutoscalingSpec(
        min_instances=1,
        max_instances=3,
        target_invocations_per_instance=300,  # 5 a second: the heavy load is far above
        scale_out_cooldown=0.0,
        scale_in_cooldown=1.0,
        window_seconds=2.0,
    )
    state_dir = write_config(tmp_path / "ep", iris, workers=1, autoscaling=policy)
    start_supervisor(state_dir)
    first = in_service(state_dir)
    assert len(first["workers"]) == 1 and first["autoscaling"]["current_instances"] == 1
    assert first["autoscaling"]["last_change"] is None
    url = first["url"]
    trickle = Traffic(url, clients=1, pause=0.5)  # 120 a minute: under the target, always on
    try:
        measured = wait_for(
            "the rate measured while nothing changes",
            lambda: (s := status(state_dir)["autoscaling"])["invocations_per_minute"] and s,
            timeout=60,
        )
        assert measured["current_instances"] == 1 and measured["last_change"] is None
        rising = Traffic(url, clients=4, pause=0.0)
        try:
            out = scaled_to(state_dir, 3, "under the load")
        finally:
            rising.stop()
        change = out["autoscaling"]["last_change"]
        assert change["to"] == 3 and "> target 300" in change["reason"], change
        assert rising.answered > 0 and rising.failures == []
        back = scaled_to(state_dir, 1, "once the load fell")
    finally:
        trickle.stop()
    change = back["autoscaling"]["last_change"]
    assert (change["from"], change["to"]) == (2, 1) and "< target 300" in change["reason"]
    assert trickle.answered > 0 and trickle.failures == []
    gone = {w["pid"] for w in out["workers"]} - {w["pid"] for w in back["workers"]}
    assert len(gone) == 2 and all(procinfo.start_time(pid) is None for pid in gone)
    assert "exit code 0" in (state_dir / "endpoint.log").read_text()  # drained, not killed
