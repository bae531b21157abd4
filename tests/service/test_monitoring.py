"""Scheduled monitoring in a real `mlcicd up`: the pipeline deploys an endpoint that captures,
the service checks it every few seconds (``monitor.schedule: 3s``, allowed by the tests-only
floor ``MLCICD_MONITOR_MIN_SCHEDULE``); traffic like the training data passes, shifted traffic
is violations, whose event reaches a webhook receiver; each captured request is counted in
exactly one window, and after a kill -9 the next service resumes where the last window ended."""

from __future__ import annotations

import html
import itertools
import json
import random
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.monitor.helpers import iris_rows, shifted
from tests.service.conftest import ServiceProcess, fast_project, finished
from tests.service.test_notify import Receiver, receivers  # noqa: F401  (fixture)
from tests.serving.helpers import request

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint"
FLOOR = {
    "MLCICD_MONITOR_MIN_SCHEDULE": "1"
}  # the tests-only floor: production's shortest schedule is 5m
JSON = {"Content-Type": "application/json"}


def send(url: str, rows: list[list[float]]) -> None:
    for i in range(0, len(rows), 3):
        assert request(url, body=json.dumps(rows[i : i + 3]), headers=JSON).status == 200


def captured_times(project: Path) -> list[float]:
    """Every captured request's inferenceTime, read from the capture files themselves."""
    times = []
    for path in (project / ".mlcicd").rglob(f"data-capture/{ENDPOINT}/AllTraffic/*/*/*/*/*.jsonl"):
        for line in path.read_bytes().splitlines():
            stamp = json.loads(line)["eventMetadata"]["inferenceTime"]
            times.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return times


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def test_the_service_checks_the_endpoint_on_its_schedule(
    tmp_path: Path,
    services: list[ServiceProcess],
    receivers: list[Receiver],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        *next(iter(FLOOR.items()))
    )  # the in-process CLI below reads the same mlcicd.yaml
    receiver = Receiver(0)
    receivers.append(receiver)
    project = fast_project(tmp_path / "iris")
    set_yaml(project, "  drift_threshold: 0.1 ", "  schedule: 3s\n  drift_threshold: 0.1 ")
    set_yaml(project, "  workers: 2\n", "  workers: 2\n  data_capture: {enabled: true}\n")
    set_yaml(
        project,
        "branch: main ",
        f"service:\n  poll_interval: 1\n  notify:\n    - {receiver.url}\nbranch: main ",
    )
    commit_all(project, "monitor every 3 seconds")
    log = tmp_path / "service.log"
    service = ServiceProcess(project, log, env=FLOOR).start()
    services.append(service)
    runs = wait_for("the poll to queue a run", lambda: service.get("/api/runs"))
    assert wait_for("the run", lambda: finished(project, runs[0]["id"])) == "Succeeded", (
        log.read_text()
    )
    url = service.get(f"/api/endpoints/{ENDPOINT}")["endpoint"]["url"]

    def executions() -> list[dict[str, Any]]:
        return list(service.get(f"/api/endpoints/{ENDPOINT}/monitoring?limit=10000")["executions"])

    def checked_past(moment: float) -> list[dict[str, Any]]:
        return [e for e in executions() if e["window_end"] > moment]

    # Requests like the training data: checked, no violations.
    sample = random.Random(7).sample(iris_rows(), 60)
    send(url, sample)
    calm = time.time()  # every request so far has its inferenceTime before this
    wait_for("a check of a window past those requests", lambda: checked_past(calm), timeout=60)
    passed = [e for e in executions() if e["records"]]
    assert passed and {(e["status"], e["verdict"], e["violation_count"]) for e in passed} == {
        ("Completed", "no violations", 0),
    }, passed
    assert {v["model"] for e in passed for v in e["variants"]} == {"iris-classifier/1"}
    assert not [e for e in executions() if e["status"] == "Failed"], executions()

    # The same requests shifted: violations, recorded and told to the webhook.
    send(url, shifted(sample))
    found = wait_for(
        "violations",
        lambda: [e for e in executions() if e["status"] == "CompletedWithViolations"],
        timeout=60,
    )
    drifted = found[-1]
    assert drifted["window_end"] > calm
    (variant,) = [v for v in drifted["variants"] if v["violations"]]
    assert {v["feature_name"] for v in variant["violations"]} >= {"petal_length", "petal_width"}
    report = json.loads(Path(variant["violations_uri"].removeprefix("file://")).read_text())
    assert report == {"violations": variant["violations"]}
    told = wait_for(
        "the webhook to hear of the drift",
        lambda: [e for e in receiver.received if e["kind"] == "monitoring_violations"],
    )
    assert told[0]["subject"] == ENDPOINT and told[0]["pipeline"] == "iris-classifier"
    heard = next(e for e in told if e["data"]["execution"] == drifted["id"])
    assert heard["data"]["variants"][0]["violations_uri"] == variant["violations_uri"]
    assert "petal_length: baseline_drift_check" in heard["data"]["variants"][0]["violations"]

    # Shown: `mlcicd monitor history`, the endpoint's page (verdicts, report links), the
    # model's baseline.
    listed = as_json(mlcicd(project, "monitor", "history", "--json", "--limit", "500"))
    assert drifted["id"] in [e["id"] for e in listed]
    text = mlcicd(project, "monitor", "history").output
    assert (
        text.startswith(f"{ENDPOINT}: checked every 3s by `mlcicd up`")
        and "CompletedWithViolations" in text
    )
    endpoint_page = page(f"{service.url}/endpoints/{ENDPOINT}")
    assert "<h2>Monitoring</h2>" in endpoint_page and "checked every 3s" in endpoint_page
    assert f'<a href="{html.escape(variant["violations_uri"])}">' in endpoint_page
    assert "CompletedWithViolations" in endpoint_page and "no violations" in endpoint_page
    model_page = page(f"{service.url}/models/iris-classifier/1")
    assert "<h2>Data-quality baseline</h2>" in model_page and "/statistics.json</a>" in model_page
    assert "/constraints.json</a>" in model_page

    # kill -9, then a new service: it resumes where the last recorded window ended.
    service.kill()
    before = as_json(mlcicd(project, "monitor", "history", "--json", "--limit", "500"))
    last_end = max(e["window_end"] for e in before)
    restarted = ServiceProcess(project, log, env=FLOOR).start()
    services.append(restarted)
    service = restarted
    resumed = wait_for(
        "a check after the restart",
        lambda: [e for e in executions() if e["id"] > max(b["id"] for b in before)],
        timeout=60,
    )
    assert resumed[-1]["window_start"] == last_end
    assert f"monitoring {ENDPOINT} every 3s (resuming from" in log.read_text()

    # No gap, no overlap; and every captured request counted once, in the window of its time.
    windows = sorted((e["window_start"], e["window_end"], e["records"]) for e in executions())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows)), windows
    start, end = windows[0][0], windows[-1][1]
    in_windows = [t for t in captured_times(project) if start <= t < end]
    assert sum(w[2] for w in windows) == len(in_windows) >= 40
