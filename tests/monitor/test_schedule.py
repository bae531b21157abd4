"""The scheduled checks of `mlcicd up`, without the service: windows that meet end to end, one
execution per window whatever its outcome, the verdicts and events, `mlcicd monitor history`."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from mlcicd.monitor.schedule import CAPTURE_SETTLE, MAX_INTERVALS, next_window, run_execution
from mlcicd.project import Project
from mlcicd.state import Event
from mlcicd.store import LocalArtifactStore
from tests.helpers import mlcicd
from tests.monitor.helpers import (
    CONFIG,
    capture_key,
    capture_line,
    capturing_project,
    iris_rows,
    shifted,
)

ROWS = iris_rows()
# A minute into an hour three hours ago, in whole seconds (capture records keep milliseconds):
# the windows below stay inside that hour, as each capture file holds the records of its hour.
BASE = float((int(time.time()) // 3600 - 3) * 3600 + 60)
SCHEDULED = CONFIG.replace("drift_threshold: 0.1}", "drift_threshold: 0.1, schedule: 10m}").replace(
    "deploy: {endpoint_name: iris}", "deploy: {endpoint_name: iris, data_capture: {enabled: true}}"
)


def put(store: LocalArtifactStore, rows: list[list[float]], at: float, name: str) -> None:
    """One record a row, a millisecond apart from ``at``, in one file of ``at``'s hour."""
    lines = b"".join(capture_line([row], at=at + i / 1000) for i, row in enumerate(rows))
    store.put_bytes(lines, "iris", capture_key("iris", at=at, name=name).removeprefix("iris/"))


def monitoring_events(project: Project) -> list[Event]:
    return [e for e in project.state.events() if e.kind.startswith("monitoring_")]


def test_windows_meet_end_to_end_each_checked_once_it_has_settled() -> None:
    now, hour = 1_700_000_000.0, 3600.0
    assert next_window(None, hour, now) == (
        now - CAPTURE_SETTLE - hour,
        now - CAPTURE_SETTLE,
    )  # the first: one interval
    assert next_window(None, 10.0, now) == (
        now - 20.0,
        now - 10.0,
    )  # a short interval settles for one interval
    assert next_window(now - hour, hour, now) is None  # ended, not settled yet
    assert next_window(now - hour - CAPTURE_SETTLE, hour, now) == (
        now - hour - CAPTURE_SETTLE,
        now - CAPTURE_SETTLE,
    )
    last = (
        now - 100 * hour
    )  # after a long stop: the backlog in windows of at most MAX_INTERVALS intervals
    assert next_window(last, hour, now) == (last, last + MAX_INTERVALS * hour)
    assert next_window(now - 2.5 * hour, hour, now) == (now - 2.5 * hour, now - 0.5 * hour)


def test_each_record_is_counted_in_exactly_one_window(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    sample = random.Random(3).sample(ROWS, 90)
    put(store, sample[:30], BASE + 10, "00-10-000-w1")
    put(
        store, sample[30:60], BASE + 600, "10-00-000-w1"
    )  # the first exactly at the second window's start
    put(
        store, sample[60:], BASE + 1199.99, "19-59-990-w1"
    )  # ten before the third window's start, twenty in it
    runs = [run_execution(project, "iris", BASE + 600 * i, BASE + 600 * (i + 1)) for i in range(4)]
    assert [(e.status, e.records) for e in runs if e is not None] == [
        ("Completed", 30),
        ("Completed", 40),
        ("Completed", 20),
        ("Skipped", 0),
    ]
    second = runs[1]
    assert (
        second is not None
        and second.variants[0]["model"] == "iris/1"
        and second.variants[0]["records"] == 40
    )
    assert json.loads(
        Path(second.variants[0]["violations_uri"].removeprefix("file://")).read_text()
    ) == {"violations": []}
    assert "captured no readable request" in str(runs[3].reason if runs[3] else "")
    assert monitoring_events(project) == []  # nothing found, nothing to tell
    assert (
        run_execution(project, "iris", BASE + 300, BASE + 900) is None
    )  # overlaps: not checked twice


def test_shifted_traffic_is_violations_and_an_event(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    put(store, shifted(random.Random(4).sample(ROWS, 40)), BASE + 100, "01-40-000-w1")
    execution = run_execution(project, "iris", BASE, BASE + 600)
    assert execution is not None and execution.status == "CompletedWithViolations"
    assert (execution.records, execution.violation_count, execution.verdict) == (
        40,
        2,
        "2 violations",
    )
    (variant,) = execution.variants
    assert {v["feature_name"] for v in variant["violations"]} == {"petal_length", "petal_width"}
    report = json.loads(Path(variant["violations_uri"].removeprefix("file://")).read_text())
    assert report == {"violations": variant["violations"]}
    (event,) = monitoring_events(project)
    assert (event.kind, event.subject, event.data["execution"]) == (
        "monitoring_violations",
        "iris",
        execution.id,
    )
    assert event.data["variants"][0]["violations_uri"] == variant["violations_uri"]


def test_nothing_to_check_is_skipped_and_a_failure_is_failed_with_an_event(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path, with_baseline=False)
    put(store, ROWS[:10], BASE + 5, "00-05-000-w1")
    skipped = run_execution(project, "iris", BASE, BASE + 60)
    assert skipped is not None and skipped.status == "Skipped"
    assert "no data-quality baseline for model iris/1" in str(skipped.reason)
    assert "mlcicd monitor baseline --model 1" in skipped.verdict
    gone = run_execution(project, "gone", BASE, BASE + 60)
    assert (
        gone is not None
        and gone.status == "Skipped"
        and "endpoint gone does not exist" in str(gone.reason)
    )
    assert monitoring_events(project) == []

    # A variant that no endpoint config holds: the check cannot tell which model served it.
    store.put_bytes(
        capture_line([ROWS[0]], variant="Stray", at=BASE + 70),
        "iris",
        capture_key("iris", "Stray", at=BASE + 70).removeprefix("iris/"),
    )
    failed = run_execution(project, "iris", BASE + 60, BASE + 120)
    assert failed is not None and failed.status == "Failed"
    assert "cannot tell which model variant Stray of endpoint iris served" in str(failed.reason)
    (event,) = monitoring_events(project)
    assert (event.kind, event.data["reason"]) == ("monitoring_failed", failed.reason)
    assert project.state.last_monitored("iris") == BASE + 120  # the schedule moves on either way


def test_monitor_history_lists_the_executions(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path, config=SCHEDULED)
    put(store, shifted(ROWS[::3]), BASE + 100, "01-40-000-w1")
    run_execution(project, "iris", BASE - 600, BASE)
    found = run_execution(project, "iris", BASE, BASE + 600)
    assert found is not None
    result = mlcicd(project, "monitor", "history")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "iris: checked every 10m by `mlcicd up` (monitor.schedule)"
    assert lines[1].split() == [
        "ID",
        "WINDOW",
        "START",
        "WINDOW",
        "END",
        "STATUS",
        "RECORDS",
        "VIOLATIONS",
        "MODEL",
        "REPORT",
        "/",
        "WHY",
    ]
    assert "CompletedWithViolations  50       2           iris/1" in lines[2]
    assert lines[2].endswith(found.variants[0]["violations_uri"])
    assert "Skipped" in lines[3] and "captured no readable request" in lines[3]
    listed = json.loads(
        mlcicd(project, "monitor", "history", "iris", "--json", "--limit", "1").stdout
    )
    assert [(e["id"], e["status"], e["verdict"], e["violation_count"]) for e in listed] == [
        (found.id, "CompletedWithViolations", "2 violations", 2),
    ]
    other = mlcicd(project, "monitor", "history", "other")
    assert other.output.splitlines() == [
        "other: no monitor.schedule here: `mlcicd up` does not check it",
        "no monitoring executions yet",
    ]
