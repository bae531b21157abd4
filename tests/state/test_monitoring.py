"""Baselines and monitoring executions in the state database: a baseline recorded and
replaced; executions recorded once per window, their events in the same transaction, the
end of the last window for the schedule to resume from."""

from __future__ import annotations

from mlcicd.state import (
    COMPLETED,
    FAILED,
    SKIPPED,
    WITH_VIOLATIONS,
    ModelBaseline,
    MonitoringExecution,
    State,
)
from tests.state.helpers import register_package


def test_a_models_baseline_is_recorded_and_replaced(state: State) -> None:
    register_package(state, "a")
    assert state.get_baseline("iris", 1) is None
    first = ModelBaseline(
        group_name="iris",
        version=1,
        statistics_uri="file:///s1",
        statistics_sha256="1",
        constraints_uri="file:///c1",
        constraints_sha256="2",
        dataset={"item_count": 150},
    )
    state.record_baseline(first)
    got = state.get_baseline("iris", 1)
    assert (
        got is not None
        and got.dataset == {"item_count": 150}
        and got.arn == "iris/1"
        and got.created_at > 0
    )
    state.record_baseline(
        ModelBaseline(
            group_name="iris",
            version=1,
            statistics_uri="file:///s2",
            statistics_sha256="3",
            constraints_uri="file:///c2",
            constraints_sha256="4",
        )
    )
    assert state.get_baseline("iris", 1).statistics_uri == "file:///s2"  # type: ignore[union-attr]


def execution(
    start: float, end: float, status: str = COMPLETED, **fields: object
) -> MonitoringExecution:
    return MonitoringExecution(
        endpoint_name="iris",
        window_start=start,
        window_end=end,
        status=status,
        started_at=end + 1,
        ended_at=end + 2,
        **fields,
    )  # type: ignore[arg-type]


def test_executions_are_recorded_newest_first_and_the_schedule_resumes_from_the_last_end(
    state: State,
) -> None:
    assert state.last_monitored("iris") is None
    first = state.record_monitoring_execution(execution(0, 60, records=3))
    second = state.record_monitoring_execution(
        execution(60, 120, SKIPPED, reason="nothing captured")
    )
    assert first is not None and second is not None and second.id == first.id + 1
    assert state.last_monitored("iris") == 120 and state.last_monitored("other") is None
    assert [e.id for e in state.monitoring_executions("iris")] == [second.id, first.id]
    assert state.monitoring_executions("other") == []
    assert [e.verdict for e in state.monitoring_executions()] == [
        "skipped: nothing captured",
        "no violations",
    ]


def test_a_window_overlapping_a_recorded_one_is_not_recorded(state: State) -> None:
    assert state.record_monitoring_execution(execution(0, 60)) is not None
    assert state.record_monitoring_execution(execution(30, 90)) is None
    assert state.record_monitoring_execution(execution(0, 60)) is None
    assert state.record_monitoring_execution(execution(60, 90)) is not None  # they meet: no overlap
    assert len(state.monitoring_executions("iris")) == 2


def test_violations_and_failures_are_events_skips_and_passes_are_not(state: State) -> None:
    variants = [
        {
            "variant": "AllTraffic",
            "model": "iris/1",
            "violations_uri": "file:///r/constraint_violations.json",
            "violations": [
                {
                    "feature_name": "petal_length",
                    "constraint_check_type": "baseline_drift_check",
                    "description": "…",
                }
            ],
        }
    ]
    state.record_monitoring_execution(execution(0, 60))
    state.record_monitoring_execution(execution(60, 120, SKIPPED, reason="no baseline"))
    found = state.record_monitoring_execution(
        execution(120, 180, WITH_VIOLATIONS, records=40, violation_count=1, variants=variants)
    )
    state.record_monitoring_execution(
        execution(180, 240, FAILED, reason="the store is unreachable")
    )
    events = state.events()
    assert [(e.kind, e.subject) for e in events] == [
        ("monitoring_violations", "iris"),
        ("monitoring_failed", "iris"),
    ]
    assert found is not None and found.verdict == "1 violation"
    assert events[0].data["execution"] == found.id and events[0].data["violation_count"] == 1
    assert events[0].data["window_start"] == 120 and events[0].data["window_end"] == 180
    assert events[0].data["variants"] == [
        {
            "variant": "AllTraffic",
            "model": "iris/1",
            "violations_uri": "file:///r/constraint_violations.json",
            "violations": ["petal_length: baseline_drift_check"],
        }
    ]
    assert events[1].data["reason"] == "the store is unreachable"
    (stored,) = [e for e in state.monitoring_executions("iris") if e.id == found.id]
    assert stored.variants == variants and stored.records == 40
