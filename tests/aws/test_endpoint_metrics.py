"""mlcicd.aws.endpoint_metrics as plain data: the window, the queries, reading their answer.

Against moto's server, through the backend and the CLI: test_endpoints_sagemaker_metrics.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlcicd.aws.endpoint_metrics import (
    MAX_QUERIES,
    batches,
    metric_queries,
    metrics_window,
    summaries,
    variant_names,
)
from mlcicd.serving import metrics

NOW = datetime(2025, 3, 4, 12, 3, 30, tzinfo=UTC)


def test_the_window_is_one_period_of_whole_minutes_up_to_the_next_one() -> None:
    five = metrics_window(300, NOW)
    assert (five.start, five.end, five.period) == (
        datetime(2025, 3, 4, 11, 59, tzinfo=UTC),
        datetime(2025, 3, 4, 12, 4, tzinfo=UTC),
        300,
    )
    assert metrics_window(30, NOW).period == 60  # SageMaker's metrics are per minute
    assert metrics_window(90, NOW).period == 120
    on_the_minute = datetime(2025, 3, 4, 12, 3, tzinfo=UTC)
    assert metrics_window(300, on_the_minute).end == on_the_minute


def test_older_windows_take_the_coarser_periods_cloudwatch_keeps() -> None:
    month = metrics_window(timedelta(days=30).total_seconds(), NOW)
    assert month.period % 300 == 0 and month.start.timestamp() % 300 == 0 and month.end >= NOW
    quarter = metrics_window(timedelta(days=90).total_seconds(), NOW)
    assert quarter.period % 3600 == 0 and quarter.start.timestamp() % 3600 == 0
    assert quarter.end - quarter.start >= timedelta(days=90)


def test_every_variant_and_metric_in_one_call() -> None:
    queries = metric_queries("iris", ["A", "B"], 300)
    assert len(queries) == 18 and len({q["Id"] for q in queries}) == 18
    assert len(batches(queries)) == 1
    stats = {
        (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"])
        for q in queries
        if q["Id"].startswith("v1_")
    }
    assert stats == {
        ("Invocations", "Sum"),
        ("Invocation4XXErrors", "Sum"),
        ("Invocation5XXErrors", "Sum"),
        ("ModelLatency", "p50"),
        ("ModelLatency", "p90"),
        ("ModelLatency", "p99"),
        ("OverheadLatency", "p50"),
        ("OverheadLatency", "p90"),
        ("OverheadLatency", "p99"),
    }
    b = next(q for q in queries if q["Id"] == "v1_modellatency_p99")["MetricStat"]
    assert b == {
        "Metric": {
            "Namespace": "AWS/SageMaker",
            "MetricName": "ModelLatency",
            "Dimensions": [
                {"Name": "EndpointName", "Value": "iris"},
                {"Name": "VariantName", "Value": "B"},
            ],
        },
        "Period": 300,
        "Stat": "p99",
    }


def test_past_500_queries_the_calls_are_split() -> None:
    queries = metric_queries("iris", [f"V{i}" for i in range(60)], 60)
    assert [len(b) for b in batches(queries)] == [MAX_QUERIES, 540 - MAX_QUERIES]
    assert [q for b in batches(queries) for q in b] == queries


def test_summaries_have_the_local_shape_in_milliseconds() -> None:
    values = {
        "v0_invocations_sum": [40.0],
        "v0_invocation4xxerrors_sum": [1.0],
        "v0_invocation5xxerrors_sum": [2.0],
        "v0_modellatency_p50": [1500.0],
        "v0_modellatency_p90": [4000.0],
        "v0_modellatency_p99": [12345.6],
        "v0_overheadlatency_p99": [250.0],
    }
    found = summaries(["B", "A"], {k.replace("v0_", "v1_"): v for k, v in values.items()})
    assert list(found) == ["A", "B"]  # sorted, as locally
    a, b = found["A"], found["B"]
    assert set(a) == set(b) == set(metrics.summary({}))
    assert (a["Invocations"], a["Invocation4XXErrors"], a["Invocation5XXErrors"], a["5XXRate"]) == (
        40,
        1,
        2,
        0.05,
    )
    assert isinstance(a["Invocations"], int)
    assert (a["ModelLatencyp50_ms"], a["ModelLatencyp90_ms"], a["ModelLatencyp99_ms"]) == (
        1.5,
        4.0,
        12.346,
    )
    assert (a["OverheadLatencyp50_ms"], a["OverheadLatencyp99_ms"]) == (None, 0.25)
    # No datapoints: what a local endpoint without requests shows.
    assert b == metrics.summary({})
    assert b["Invocations"] == 0 and b["ModelLatencyp99_ms"] is None


def test_variants_are_production_then_shadow() -> None:
    described = {
        "ProductionVariants": [{"VariantName": "A"}, {"VariantName": "B"}],
        "ShadowProductionVariants": [{"VariantName": "Shadow"}],
    }
    assert variant_names(described) == ["A", "B", "Shadow"]
    assert variant_names({}) == []
