"""The rollback alarms and the traffic shifting ``deploy:`` makes for SageMaker, as plain
data (unit); what moto stores of them is in test_endpoints_sagemaker_config.py."""

from __future__ import annotations

import pytest

from mlcicd.aws.alarms import rollback_alarms
from mlcicd.aws.deployment import traffic_routing
from mlcicd.aws.hosting import deployment_config
from mlcicd.endpoints import DeploymentPolicy


def test_one_variant_reads_its_own_series() -> None:
    (latency,) = rollback_alarms(
        endpoint="e", config_name="e-v2-ab", variants=["AllTraffic"], max_p99_latency_ms=12.5
    )
    assert latency["AlarmName"] == "e-rollback-model-latency-p99"
    assert latency["Threshold"] == 12_500.0
    (expression,) = [m for m in latency["Metrics"] if m["ReturnData"]]
    assert expression["Expression"] == "IF(n0 >= 1, p0, 0)"
    stats = {m["Id"]: m["MetricStat"]["Stat"] for m in latency["Metrics"] if "MetricStat" in m}
    assert stats == {"p0": "p99", "n0": "Sum"}
    assert "Namespace" not in latency and "ExtendedStatistic" not in latency  # metric math only


def test_no_threshold_no_alarm_and_at_most_five_variants() -> None:
    assert rollback_alarms(endpoint="e", config_name="c", variants=["A"]) == []
    with pytest.raises(ValueError, match="1 to 5 production variants"):
        rollback_alarms(
            endpoint="e", config_name="c", variants=[f"V{i}" for i in range(6)], max_5xx_rate=0.1
        )


@pytest.mark.parametrize(
    ("policy", "shifting"),
    [
        (
            DeploymentPolicy(strategy="canary", canary_percent=10, wait_seconds=60),
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 60,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
        ),
        (
            DeploymentPolicy(strategy="linear", linear_step_percent=25, wait_seconds=30),
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 30,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
        ),
        (
            DeploymentPolicy(strategy="all_at_once", wait_seconds=120),
            {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 120},
        ),
    ],
)
def test_strategies_become_blue_green_traffic_shifting(
    policy: DeploymentPolicy, shifting: dict[str, object]
) -> None:
    # The same function turns the deploy Lambda's $MLCICD_TRAFFIC_ROUTING into a DeploymentConfig.
    config = deployment_config([], traffic_routing(policy))
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": shifting,
            "TerminationWaitInSeconds": 0,
        }
    }


def test_min_invocations_guards_every_alarm_over_all_variants() -> None:
    alarms = rollback_alarms(
        endpoint="e",
        config_name="c",
        variants=["A", "B"],
        max_5xx_rate=0.05,
        max_p99_latency_ms=40,
        min_invocations=20,
    )
    expressions = [m["Expression"] for a in alarms for m in a["Metrics"] if m["ReturnData"]]
    assert expressions == [
        "IF(SUM([n0, n1]) >= 20, SUM([e0, e1]) / SUM([n0, n1]), 0)",
        "IF(SUM([n0, n1]) >= 20, MAX([p0, p1]), 0)",
    ]
    assert all("once it has 20 invocations a minute" in a["AlarmDescription"] for a in alarms)
    # Fewer than one is one: a minute without invocations never trips an alarm.
    (zero,) = rollback_alarms(
        endpoint="e", config_name="c", variants=["A"], max_5xx_rate=0.1, min_invocations=0
    )
    (expression,) = [m["Expression"] for m in zero["Metrics"] if m["ReturnData"]]
    assert expression == "IF(n0 >= 1, e0 / n0, 0)"
