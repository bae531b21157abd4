"""Updates under load, deployment strategies with auto-rollback: real processes and sockets.

The load comes from another process (tests/endpoints/loadgen.py), as an application's would.
Nothing here asserts on timing: only on outcomes (no failed request, a recorded rollback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcicd.endpoints import DeploymentPolicy, EndpointConfig
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import EndpointError, EndpointRollbackError
from tests.endpoints.conftest import endpoint_config
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import MODEL_FN_RAISES, NO_HANDLERS, request

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}
ROOT = Path(__file__).resolve().parents[2]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]  # loadgen's body

ALWAYS_RAISES = """
    def predict_fn(data, model):
        raise RuntimeError("this model is broken")
"""
SLOW = """
    import time

    def predict_fn(data, model):
        time.sleep(0.05)
        return model.predict(data)
"""
NEVER_READY = """
    import time

    def model_fn(model_dir):
        time.sleep(600)
"""


class LoadProcess:
    """``loadgen`` in a child process; ``stats()`` reads its latest totals."""

    def __init__(self, url: str, out: Path, threads: int = 4) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.endpoints.loadgen", url, str(out), str(threads)],
            cwd=ROOT,
        )

    def stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.out.read_text()))
        except (OSError, ValueError):
            return {"requests": 0, "failed": 0, "failures": [], "answers": {}, "variants": {}}

    def more(self, n: int = 30) -> dict[str, Any]:
        """Wait until ``n`` more requests were answered; the stats then."""
        start = self.stats()["requests"]
        return dict(
            wait_for(
                "the load generator's requests",
                lambda: (s := self.stats())["requests"] >= start + n and s,
                60,
            )
        )

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(90)
        return self.stats()

    def __enter__(self) -> LoadProcess:
        self.more(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def answer(model: IrisModel) -> str:
    return json.dumps(model.model.predict(ROWS).tolist(), separators=(",", ":"))


def with_policy(config: EndpointConfig, **policy: Any) -> EndpointConfig:
    from dataclasses import replace

    return replace(config, deployment=DeploymentPolicy(**policy))


def test_ten_updates_and_two_broken_ones_under_load_lose_no_request(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, name="cfg-0", workers=2))
    with LoadProcess(first.url or "", tmp_path / "load.json") as load:
        for n in range(1, 11):
            model = flipped if n % 2 else iris
            described = backend.deploy(
                endpoint_config(tmp_path, model, NO_HANDLERS, name=f"cfg-{n}", workers=2)
            )
            assert described.status == "InService" and described.config_name == f"cfg-{n}"
            load.more()
        # A model whose model_fn raises, then one that never becomes healthy: both updates
        # fail with the reason, and cfg-10 never stops serving.
        with pytest.raises(EndpointError, match=r"still serves cfg-10: .*the weights are corrupt"):
            backend.deploy(
                endpoint_config(tmp_path, iris, MODEL_FN_RAISES, name="broken", workers=2)
            )
        load.more()
        with pytest.raises(EndpointError, match=r"still serves cfg-10: .*not ready within 3s"):
            backend.deploy(
                endpoint_config(
                    tmp_path, iris, NEVER_READY, name="hangs", workers=2, startup_timeout=3
                )
            )
        load.more()
        stats = load.stop()
    assert stats["failed"] == 0, stats["failures"]
    assert set(stats["answers"]) == {answer(iris), answer(flipped)}
    described = backend.describe("iris")
    assert described.status == "InService" and described.config_name == "cfg-10"
    assert described.generation == 11 and described.pid == first.pid
    assert "not ready within 3s" in (described.last_update_failure or "")


def test_canary_rolls_back_when_the_5xx_alarm_trips(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    broken = with_policy(
        endpoint_config(tmp_path, flipped, ALWAYS_RAISES, name="cfg-2", workers=2),
        strategy="canary",
        canary_percent=50,
        wait_seconds=5,
        max_5xx_rate=0.05,
    )
    with LoadProcess(first.url or "", tmp_path / "load.json") as load:
        with pytest.raises(EndpointRollbackError, match=r"rolled back.*5XX rate") as info:
            backend.deploy(broken)
        after = load.more(50)["failed"]
        stats = load.stop()
    rollback = info.value.rollback
    assert rollback["alarm"] == "max_5xx_rate" and rollback["threshold"] == 0.05
    assert rollback["5xx_errors"] > 0 and rollback["5xx_rate"] > 0.05
    assert rollback["config_name"] == "cfg-2" and rollback["rolled_back_to"] == "cfg-1"
    described = backend.describe("iris")
    assert described.status == "InService" and described.config_name == "cfg-1"
    assert described.last_rollback == rollback and described.traffic is None
    assert "5XX rate" in (described.last_update_failure or "")
    # The canary's own errors were real answers (500s); once rolled back, none.
    assert stats["failed"] == after
    assert all(f.startswith("500") for f in stats["failures"])
    assert request(first.url or "", body=json.dumps(ROWS), headers=JSON).body.decode() == answer(
        iris
    )


def test_the_p99_latency_alarm(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=1))
    slow = with_policy(
        endpoint_config(tmp_path, iris, SLOW, name="cfg-slow", workers=1),
        strategy="all_at_once",
        wait_seconds=4,
        max_p99_latency_ms=20,
    )
    with LoadProcess(first.url or "", tmp_path / "load.json", threads=2) as load:
        with pytest.raises(EndpointRollbackError, match="p99 ModelLatency") as info:
            backend.deploy(slow)
        stats = load.stop()
    assert stats["failed"] == 0, stats["failures"]
    assert info.value.rollback["alarm"] == "max_p99_latency_ms"
    assert info.value.rollback["p99_model_latency_ms"] > 20
    assert backend.describe("iris").config_name == "cfg-1"


def test_linear_update_moves_traffic_in_steps_without_failing_a_request(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    update = with_policy(
        endpoint_config(tmp_path, flipped, NO_HANDLERS, name="cfg-2", workers=2),
        strategy="linear",
        linear_step_percent=50,
        wait_seconds=1.5,
        max_5xx_rate=0.01,
    )
    with LoadProcess(first.url or "", tmp_path / "load.json") as load:
        described = backend.deploy(update)
        before = load.stats()["answers"].get(answer(iris), 0)
        load.more(100)
        stats = load.stop()
    assert stats["failed"] == 0, stats["failures"]
    assert described.status == "InService" and described.config_name == "cfg-2"
    assert described.last_rollback is None and described.traffic is None
    # Done shifting: every answer now comes from the new model.
    assert stats["answers"].get(answer(iris), 0) == before
    assert stats["answers"][answer(flipped)] > 0
    log = (backend.endpoint_dir("iris") / "logs" / "endpoint.log").read_text()
    assert "cfg-2 gets 50% of the traffic" in log and "cfg-2 gets 100% of the traffic" in log
