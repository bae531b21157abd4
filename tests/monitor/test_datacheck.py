"""The data check as a SageMaker ProcessingJob (``mlcicd.monitor.datacheck.processing_job``):
the contract the stack's training Lambda relies on, on the Processing layout under
SAGEMAKER_BASE_DIR. (End to end, through the Lambda and moto: tests/aws/test_lambda_datacheck.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlcicd.monitor.datacheck import processing_job
from mlcicd.processing import ProcessingPaths
from tests.conftest import IRIS

ARGS = ["--channel", "training", "--label", "species", "--drift-threshold", "0.1"]


def job(base: Path, data: Path | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the job on ``data`` (copied to input/data); its report."""
    paths = ProcessingPaths(base)
    paths.input("data").mkdir(parents=True, exist_ok=True)
    if data is not None:
        shutil.copy(data, paths.input("data") / data.name)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert processing_job(ARGS) == 0  # the Lambda decides what a finding means
    report: dict[str, Any] = json.loads((paths.output("datacheck") / "report.json").read_text())
    return report


def test_without_a_baseline_it_profiles_the_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = job(tmp_path, IRIS / "data" / "iris.csv", monkeypatch)
    assert report["status"] == "Skipped"
    assert report["rows"] == 150
    out = ProcessingPaths(tmp_path).output("datacheck")
    constraints = json.loads((out / "constraints.json").read_text())
    assert [f["name"] for f in constraints["features"]][:2] == ["sepal_length", "sepal_width"]
    assert "species" not in {f["name"] for f in constraints["features"]}  # the label


def test_text_where_numbers_were_is_a_violation_naming_the_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job(tmp_path / "first", IRIS / "data" / "iris.csv", monkeypatch)
    baseline = ProcessingPaths(tmp_path / "first").output("datacheck")
    second = ProcessingPaths(tmp_path / "second")
    second.input("baseline").mkdir(parents=True)
    for name in ("statistics.json", "constraints.json"):
        shutil.copy(baseline / name, second.input("baseline") / name)
    lines = (IRIS / "data" / "iris.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], *("5.0,3.4,long,0.2,0" for _ in lines[1:])]) + "\n")
    report = job(tmp_path / "second", bad, monkeypatch)
    assert report["status"] == "CompletedWithViolations"
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in report["violations"]}
    assert ("petal_length", "data_type_check") in checks
    assert (second.output("datacheck") / "constraint_violations.json").is_file()


def test_a_channel_without_csv_is_reported_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = job(tmp_path, None, monkeypatch)
    assert report["status"] == "Unreadable"
    assert "holds no .csv file" in report["reason"]


@pytest.mark.parametrize(
    ("statistics", "reason"),
    [
        (b"[" * 1_000_000, "baseline statistics.json is not JSON: maximum recursion depth"),
        (b'"a string"', "baseline statistics.json: expected a JSON object, got str"),
    ],
)
def test_a_baseline_that_is_not_a_json_object_is_reported_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statistics: bytes, reason: str
) -> None:
    """Production's baseline comes from the models bucket: one nested deeper than json's parser
    goes is a report the Lambda reads, not a RecursionError that kills the job."""
    baseline = ProcessingPaths(tmp_path).input("baseline")
    baseline.mkdir(parents=True)
    (baseline / "statistics.json").write_bytes(statistics)
    (baseline / "constraints.json").write_text('{"features": []}')
    report = job(tmp_path, IRIS / "data" / "iris.csv", monkeypatch)
    assert report["status"] == "Unreadable"
    assert reason in report["reason"]
