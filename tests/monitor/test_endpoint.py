"""`mlcicd monitor check` on a real local endpoint (supervisor, workers, sockets) capturing to a
directory: requests like the training data pass; the same requests with two features moved
by five standard deviations are violations naming those features, exit 3."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlcicd.endpoints import DataCapture
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.project import Project
from tests.endpoints.conftest import endpoint_config
from tests.helpers import IrisModel, delete_endpoints, mlcicd, wait_for
from tests.monitor.helpers import (
    baseline,
    capture_key,
    iris_rows,
    make_project,
    record_endpoint,
    register,
)
from tests.serving.helpers import NO_HANDLERS, request

pytestmark = pytest.mark.integration

ROWS = iris_rows()


@pytest.fixture
def monitored(tmp_path: Path, iris: IrisModel) -> Iterator[tuple[Project, str, Path]]:
    """A project whose model has a baseline, serving it on endpoint iris with capture on."""
    project = make_project(tmp_path / "project")
    baseline(project, register(project, iris.sha256))
    backend = LocalEndpointBackend(project.state_dir / "endpoints", stop_timeout=20.0)
    capture = tmp_path / "capture"
    config = replace(
        endpoint_config(tmp_path, iris, NO_HANDLERS, endpoint="iris", workers=2),
        data_capture=DataCapture(destination=capture),
    )
    url = backend.deploy(config).url or ""
    record_endpoint(project, "iris", config.name, iris.sha256)
    try:
        yield project, url, capture
    finally:
        delete_endpoints(backend)


def send(url: str, rows: list[list[float]]) -> None:
    """Two rows a request, as CSV and as JSON in turn."""
    for i in range(0, len(rows), 2):
        pair = rows[i : i + 2]
        if i % 4:
            body, kind = "".join(",".join(map(str, r)) + "\n" for r in pair), "text/csv"
        else:
            body, kind = json.dumps(pair), "application/json"
        assert request(url, body=body, headers={"Content-Type": kind}).status == 200


def captured(capture: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in capture.rglob("*.jsonl"))


def test_monitor_check_on_a_capturing_endpoint(monitored: tuple[Project, str, Path]) -> None:
    project, url, capture = monitored
    sample = random.Random(11).sample(ROWS, 80)
    send(url, sample)
    wait_for("40 captured records", lambda: captured(capture) == 40, timeout=30)
    garbage = capture / capture_key("iris", name="59-59-999-test")
    garbage.parent.mkdir(parents=True, exist_ok=True)
    garbage.write_bytes(b'not json\n{"captureData": 1}\n')

    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["records"], report["violation_count"]) == (40, 0)
    assert report["skipped"] == {"not a JSON line": 1, "not a capture record": 1}
    (variant,) = report["variants"]
    assert (variant["variant"], variant["model"], variant["rows"]) == ("AllTraffic", "iris/1", 80)

    shift_at = time.time()
    std = {2: 1.7653, 3: 0.7622}  # petal length and width in the training data
    send(url, [[a, b, c + 5 * std[2], d + 5 * std[3]] for a, b, c, d in sample])
    wait_for(
        "82 captured records", lambda: captured(capture) == 80 + 2, timeout=30
    )  # + the two garbage lines

    since = datetime.fromtimestamp(shift_at, UTC).isoformat()
    result = mlcicd(project, "monitor", "check", "iris", "--since", since)
    assert result.exit_code == 3, result.output
    assert "iris: 40 captured requests (80 rows)" in result.output
    assert "2 violations (drift threshold 0.1, Robust)" in result.output
    assert "petal_length: baseline_drift_check: Baseline drift distance" in result.output
    assert "petal_width: baseline_drift_check: Baseline drift distance" in result.output
    assert "sepal_length: " not in result.output and "sepal_width: " not in result.output
