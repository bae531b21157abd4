"""The rollback alarms of an update that shifts traffic, on the counts real worker metrics
files hold: ``min_invocations`` — fewer invocations since the step began decide nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcicd.serving import metrics
from mlcicd.serving.config import DeploymentSpec, ServingConfig, VariantSpec
from mlcicd.serving.supervisor import Supervisor


def new_config(**alarms: Any) -> ServingConfig:
    return ServingConfig(
        name="cfg-2",
        variants=(VariantSpec(name="AllTraffic", model_dir="model", code_dir="code"),),
        deployment=DeploymentSpec(strategy="canary", wait_seconds=60, **alarms),
    )


class Counted:
    """A worker's metrics, written where the supervisor reads them."""

    def __init__(self, state_dir: Path, config: ServingConfig) -> None:
        directory = state_dir / metrics.METRICS_DIR
        directory.mkdir(parents=True, exist_ok=True)  # as the worker makes it
        self.worker = metrics.WorkerMetrics("iris", directory, "w1")
        self.series = self.worker.variant(config.name, "AllTraffic")

    def add(self, invocations: int, errors_5xx: int = 0, seconds: float = 0.001) -> None:
        for _ in range(invocations):
            self.series.invocations += 1
            self.series.observe(seconds, 0.0)
        for _ in range(errors_5xx):
            self.series.error(500)
        self.worker.flush(force=True)


def test_fewer_than_min_invocations_decide_nothing(tmp_path: Path) -> None:
    config = new_config(max_5xx_rate=0.1, min_invocations=20)
    rollout = Supervisor(tmp_path).rollout
    counted = Counted(tmp_path, config)
    counted.add(1)  # before the step: not the new config's to answer for
    baseline = metrics.read_all(rollout.metrics_dir)
    counted.add(19, errors_5xx=10)
    assert rollout._alarm(config, baseline) is None  # half failed, but only 19 invocations
    counted.add(1)
    alarm = rollout._alarm(config, baseline)
    assert alarm is not None and alarm["alarm"] == "max_5xx_rate"
    assert (alarm["invocations"], alarm["5xx_errors"], alarm["5xx_rate"]) == (20, 10, 0.5)
    assert alarm["message"] == "5XX rate 50.00% (10 of 20 invocations) > max_5xx_rate 0.1"


def test_the_latency_alarm_waits_for_min_invocations_too(tmp_path: Path) -> None:
    config = new_config(max_p99_latency_ms=50, min_invocations=5)
    rollout = Supervisor(tmp_path).rollout
    counted = Counted(tmp_path, config)
    baseline = metrics.read_all(rollout.metrics_dir)
    counted.add(4, seconds=0.2)
    assert rollout._alarm(config, baseline) is None
    counted.add(1, seconds=0.2)
    alarm = rollout._alarm(config, baseline)
    assert alarm is not None and alarm["alarm"] == "max_p99_latency_ms"
    assert alarm["invocations"] == 5 and alarm["p99_model_latency_ms"] > 50


def test_by_default_one_invocation_is_enough(tmp_path: Path) -> None:
    config = new_config(max_5xx_rate=0.1)
    assert config.deployment.min_invocations == 1
    rollout = Supervisor(tmp_path).rollout
    counted = Counted(tmp_path, config)
    baseline = metrics.read_all(rollout.metrics_dir)
    assert rollout._alarm(config, baseline) is None  # nothing at all: nothing to judge
    counted.add(1, errors_5xx=1)
    alarm = rollout._alarm(config, baseline)
    assert alarm is not None and alarm["5xx_rate"] == 1.0
