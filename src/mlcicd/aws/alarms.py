"""The CloudWatch alarms that roll a SageMaker endpoint update back: ``deploy.alarms``.

Locally, while traffic shifts, the supervisor watches the new config's own counts, summed
over its variants: once it has ``min_invocations`` invocations, a 5XX rate above
``max_5xx_rate`` or a p99 ModelLatency above ``max_p99_latency_ms`` rolls the update back.
On SageMaker the same test is two alarms named in UpdateEndpoint's
AutoRollbackConfiguration, on the metrics SageMaker publishes for the *new* fleet only —
those with the dimension ``EndpointConfigName`` of the config being rolled out (as in
SageMaker's deployment guardrails guide):

- ``<endpoint>-rollback-5xx-rate``: ``IF(n >= min_invocations, e / n, 0) > max_5xx_rate``,
  ``e`` and ``n`` the sums of ``Invocation5XXErrors`` and ``Invocations`` over the
  production variants;
- ``<endpoint>-rollback-model-latency-p99``: ``IF(n >= min_invocations, p, 0) >
  max_p99_latency_ms * 1000``, ``p`` the p99 of ``ModelLatency`` (microseconds), the
  highest of the variants' when there are several.

Each is judged per minute (SageMaker's resolution); a minute without traffic is no breach.
Every deploy puts them again — PutMetricAlarm replaces an alarm of the same name, and its
state starts afresh — pointed at its own config; ``mlcicd run`` and the pipeline's deploy
Lambda put the same two (through :func:`mlcicd.aws.deployment.prepare_deployment`). The
stack's own alarms (``<endpoint>-5xx-errors`` and ``-model-latency-p99``, which only notify)
have other names: neither overwrites the other. Generating the alarms is plain data
(:func:`rollback_alarms`); :func:`put_alarms` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.aws.hosting import tag_list
from mlcicd.aws.names import rollback_errors_alarm, rollback_latency_alarm

NAMESPACE = "AWS/SageMaker"
PERIOD = 60  # seconds: SageMaker's endpoint metrics are per minute
# An alarm's math may read at most 10 metrics; each variant takes two.
MAX_VARIANTS = 5


def rollback_alarms(
    *,
    endpoint: str,
    config_name: str,
    variants: Sequence[str],
    max_5xx_rate: float | None = None,
    max_p99_latency_ms: float | None = None,
    min_invocations: int = 1,
    tags: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """PutMetricAlarm's parameters for each threshold that is set (none: an empty list)."""
    if not variants or len(variants) > MAX_VARIANTS:
        raise ValueError(
            f"rollback alarms watch 1 to {MAX_VARIANTS} production variants, not {len(variants)}"
        )
    invocations = [
        _stat(f"n{i}", "Invocations", "Sum", endpoint, config_name, v)
        for i, v in enumerate(variants)
    ]
    enough = f"{_combine('SUM', 'n', len(variants))} >= {max(1, min_invocations)}"
    alarms = []
    if max_5xx_rate is not None:
        errors = [
            _stat(f"e{i}", "Invocation5XXErrors", "Sum", endpoint, config_name, v)
            for i, v in enumerate(variants)
        ]
        rate = f"{_combine('SUM', 'e', len(variants))} / {_combine('SUM', 'n', len(variants))}"
        alarms.append(
            _alarm(
                rollback_errors_alarm(endpoint),
                f"5XX rate of {endpoint}'s new config {config_name} above {max_5xx_rate:g} "
                f"(once it has {max(1, min_invocations)} invocations a minute): mlcicd rolls the "
                "update back",
                [
                    *errors,
                    *invocations,
                    _expression("rate", f"IF({enough}, {rate}, 0)", "5XX rate"),
                ],
                threshold=float(max_5xx_rate),
                tags=tags,
            )
        )
    if max_p99_latency_ms is not None:
        latencies = [
            _stat(f"p{i}", "ModelLatency", "p99", endpoint, config_name, v)
            for i, v in enumerate(variants)
        ]
        p99 = _combine("MAX", "p", len(variants))
        alarms.append(
            _alarm(
                rollback_latency_alarm(endpoint),
                f"p99 ModelLatency of {endpoint}'s new config {config_name} above "
                f"{max_p99_latency_ms:g} ms "
                f"(once it has {max(1, min_invocations)} invocations a minute): mlcicd rolls the "
                "update back",
                [
                    *latencies,
                    *invocations,
                    _expression("p99", f"IF({enough}, {p99}, 0)", "p99 ModelLatency (µs)"),
                ],
                threshold=float(max_p99_latency_ms) * 1000,  # ModelLatency is in microseconds
                tags=tags,
            )
        )
    return alarms


def put_alarms(cloudwatch: AwsClient, alarms: Sequence[Mapping[str, Any]]) -> list[str]:
    """Create or replace each alarm; return their names (for AutoRollbackConfiguration)."""
    for alarm in alarms:
        cloudwatch.put_metric_alarm(**alarm)
    return [str(alarm["AlarmName"]) for alarm in alarms]


def _combine(function: str, prefix: str, count: int) -> str:
    """One variant's series as it is, several through ``function`` (SUM, MAX) of the array:
    one series, at each minute the sum or highest of those that have data."""
    if count == 1:
        return f"{prefix}0"
    return f"{function}([{', '.join(f'{prefix}{i}' for i in range(count))}])"


def _stat(
    query_id: str, metric: str, stat: str, endpoint: str, config_name: str, variant: str
) -> dict[str, Any]:
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
        {"Name": "EndpointConfigName", "Value": config_name},  # the new fleet only
    ]
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": PERIOD,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _expression(query_id: str, expression: str, label: str) -> dict[str, Any]:
    return {"Id": query_id, "Expression": expression, "Label": label, "ReturnData": True}


def _alarm(
    name: str,
    description: str,
    metrics: list[dict[str, Any]],
    *,
    threshold: float,
    tags: Mapping[str, str] | None,
) -> dict[str, Any]:
    alarm: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": description,
        "Metrics": metrics,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
    }
    if tags:
        alarm["Tags"] = tag_list(tags)
    return alarm


__all__ = ["MAX_VARIANTS", "put_alarms", "rollback_alarms"]
