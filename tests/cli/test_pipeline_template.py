"""`mlcicd init --template pipeline`, then `mlcicd run` on it end to end: prepare → train →
evaluate → gate on the evaluation report; a cached rerun skips every step; new data with a
text column where numbers were is stopped by the data check before training."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import commit_all, stop_endpoints
from tests.helpers import as_json, mlcicd

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "flowers"
    result = mlcicd(None, "init", str(root), "--template", "pipeline")
    assert result.exit_code == 0, result.output
    assert "from the pipeline template" in result.output
    yield root
    stop_endpoints(root)


def _stages(project: Path, run_id: int) -> dict[str, str]:
    shown = as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))
    return {s["stage"]: s["status"] for s in shown["stages"]}


def test_the_pipeline_template_runs_caches_and_checks_new_data(project: Path) -> None:
    first = mlcicd(project, "run", str(project))
    assert first.exit_code == 0, first.output
    assert "check evaluation.metrics.accuracy >= 0.85" in first.output
    assert _stages(project, 1) == {
        "source": "Succeeded",
        "build": "Succeeded",
        "process": "Succeeded",
        "data_check": "Succeeded",  # skipped: no model was approved before this one
        "train": "Succeeded",
        "evaluate": "Succeeded",
        "gate": "Succeeded",
        "register": "Succeeded",
        "deploy": "Succeeded",
    }
    lineage = as_json(mlcicd(project, "lineage", "1", "--json"))
    assert lineage["processing"]["evaluate"]["report"]["metrics"]["accuracy"]["value"] >= 0.85
    assert set(lineage["processing"]["prepare"]["outputs"]) == {"train", "test"}
    assert "processing    evaluate  job " in mlcicd(project, "lineage", "1").output
    # The baseline again, from the channel the lineage recorded (prepare's train output).
    again = mlcicd(project, "monitor", "baseline", "--model", "1")
    assert again.exit_code == 0, again.output
    assert "120 rows, 4 features from channel training" in again.output

    second = mlcicd(project, "run", str(project))
    assert second.exit_code == 0, second.output
    statuses = _stages(project, 2)
    assert [statuses[s] for s in ("process", "train", "evaluate")] == ["Cached"] * 3
    assert statuses["data_check"] == "Succeeded"  # the same data passes its own baseline

    config = project / "mlcicd.yaml"
    config.write_text(config.read_text().replace("C: 1.0", "C: 0.9"))
    commit_all(project, "another C")
    third = mlcicd(project, "run", str(project))
    assert third.exit_code == 0, third.output
    statuses = _stages(project, 3)  # prepare read the same data with the same script: reused
    assert [statuses[s] for s in ("process", "train", "evaluate")] == [
        "Cached",
        "Succeeded",
        "Succeeded",
    ]

    raw = project / "data" / "raw" / "iris.csv"
    rows = list(csv.DictReader(raw.read_text().splitlines()))
    for row in rows:
        row["petal_width"] = f"about {row['petal_width']}"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    raw.write_text(out.getvalue())
    commit_all(project, "new data")
    fourth = mlcicd(project, "run", str(project))
    assert fourth.exit_code != 0
    assert "petal_width: data_type_check" in fourth.output
    statuses = _stages(project, 4)
    assert statuses["data_check"] == "Failed" and statuses["train"] not in ("Succeeded", "Cached")
    shown = mlcicd(project, "runs", "show", "4")
    assert "failed at data_check" in shown.output
    assert "  petal_width: data_type_check: Data type match requirement is not met" in shown.output
