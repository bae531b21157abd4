"""`mlcicd monitor` after a real `mlcicd run` of the iris project: the register stage leaves a
baseline, the deploy stage's endpoint captures, and the check finds each record's model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.monitor.helpers import iris_rows
from tests.serving.helpers import request

pytestmark = pytest.mark.integration
NAME = "iris-classifier-endpoint"


def test_a_pipeline_run_is_monitored_end_to_end(iris_project: Path) -> None:
    set_yaml(iris_project, "  workers: 2\n", "  workers: 2\n  data_capture: {enabled: true}\n")
    commit_all(iris_project, "capture")
    result = mlcicd(iris_project, "run", str(iris_project))
    assert result.exit_code == 0, result.output
    runs = as_json(mlcicd(iris_project, "runs", "list", "--json"))
    stages = as_json(mlcicd(iris_project, "runs", "show", str(runs[0]["id"]), "--json"))["stages"]
    register = next(s for s in stages if s["stage"] == "register")
    assert register["outputs"]["baseline"]["statistics"].endswith("/statistics.json")

    url = as_json(mlcicd(iris_project, "endpoints", "describe", NAME, "--json"))["endpoint"]["url"]
    rows = iris_rows()[::3]
    for i in range(0, len(rows), 5):
        body = json.dumps(rows[i : i + 5])
        assert request(url, body=body, headers={"Content-Type": "application/json"}).status == 200

    def captured() -> int:
        files = (iris_project / ".mlcicd").rglob(f"data-capture/{NAME}/AllTraffic/*/*/*/*/*.jsonl")
        return sum(len(p.read_bytes().splitlines()) for p in files)

    wait_for("10 captured records", lambda: captured() >= 10, timeout=30)

    result = mlcicd(iris_project, "monitor", "check", NAME, "--since", "10m")
    assert result.exit_code == 0, result.output
    assert "variant AllTraffic, model iris-classifier/1:" in result.output
    assert "no violations (drift threshold 0.1, Robust)" in result.output

    # A baseline that kept the label: every request misses that column, and the check says
    # what to set. mlcicd.yaml of the working tree is what `monitor baseline` reads.
    set_yaml(iris_project, "  label: species ", "  # label: species ")
    assert mlcicd(iris_project, "monitor", "baseline").exit_code == 0
    result = mlcicd(iris_project, "monitor", "check", NAME, "--since", "10m")
    assert result.exit_code == 3, result.output
    assert "species: missing_column_check" in result.output
    assert "hint: if species is the label, set monitor.label in mlcicd.yaml" in result.output
    set_yaml(iris_project, "  # label: species ", "  label: species ")
    assert mlcicd(iris_project, "monitor", "baseline").exit_code == 0
    assert mlcicd(iris_project, "monitor", "check", NAME, "--since", "10m").exit_code == 0
