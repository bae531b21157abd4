"""`mlcicd endpoints set-weights / metrics / describe` on a pipeline-deployed A/B endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_run import ROWS
from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.serving.helpers import request

pytestmark = pytest.mark.integration
NAME = "iris-classifier-endpoint"
JSON = {"Content-Type": "application/json"}


def test_ab_variants_weights_metrics_and_capture(iris_project: Path) -> None:
    set_yaml(
        iris_project,
        "  workers: 2\n",
        """  workers: 2
  variants:
    - {name: A, model: latest, weight: 1}
    - {name: B, model: latest, weight: 1}
  data_capture: {enabled: true, sampling_percentage: 100}
  header_timeout: 5
  model_timeout: 30
""",
    )
    commit_all(iris_project, "A/B")
    result = mlcicd(iris_project, "run", str(iris_project))
    assert result.exit_code == 0, result.output
    served = json.loads(next(iris_project.rglob(f"endpoints/{NAME}/config.json")).read_text())
    assert served["model_timeout"] == 30  # mlcicd.yaml reaches the workers
    described = as_json(mlcicd(iris_project, "endpoints", "describe", NAME, "--json"))
    url = described["endpoint"]["url"]
    assert [(v["name"], v["weight"]) for v in described["live"]["variants"]] == [("A", 1), ("B", 1)]

    result = mlcicd(iris_project, "endpoints", "set-weights", NAME, "B=0")
    assert result.exit_code == 0, result.output
    assert "A" in result.output and "100% of the traffic" in result.output
    wait_for(
        "both variants answering",
        lambda: all(
            request(url, body=json.dumps(ROWS), headers=JSON).headers[
                "x-amzn-invoked-production-variant"
            ]
            == "A"
            for _ in range(20)
        ),
        timeout=30,
    )
    text = mlcicd(iris_project, "endpoints", "describe", NAME).output
    assert "A=1, B=0" in text
    # the template's own predict_fn calls the Pipeline's methods: answered by compiled code
    methods = "predict, predict_proba, predict_log_proba, decision_function"
    assert f"compiled            A: {methods}; B: {methods}" in text

    summary = wait_for(
        "the invocations counted",
        lambda: (
            (s := as_json(mlcicd(iris_project, "endpoints", "metrics", NAME, "--json")))["variants"]
            .get("A", {})
            .get("Invocations", 0)
            >= 20
            and s
        ),
        timeout=30,
    )
    assert summary["window_seconds"] == 300 and summary["variants"]["A"]["ModelLatencyp99_ms"] > 0
    table = mlcicd(iris_project, "endpoints", "metrics", NAME, "--window", "1h")
    assert table.exit_code == 0 and "P99 MS" in table.output and "A " in table.output

    captured = wait_for(
        "captured records",
        lambda: list(iris_project.rglob("data-capture/iris-classifier-endpoint/A/*/*/*/*/*.jsonl")),
        timeout=30,
    )
    assert "captureData" in captured[0].read_text()

    bad = mlcicd(iris_project, "endpoints", "set-weights", NAME, "C=1")
    assert bad.exit_code != 0 and "has no variant C" in bad.output
    bad = mlcicd(iris_project, "endpoints", "set-weights", NAME, "A")
    assert bad.exit_code != 0 and "VARIANT=WEIGHT" in bad.output
