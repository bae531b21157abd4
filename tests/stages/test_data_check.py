"""DATA_CHECK: the pipeline template's new data against the baseline of its Approved model —
a text column where numbers were, or a shifted feature, stops the run before training."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import DataCheckError
from mlcicd.stages.data_check import DataCheckStage
from mlcicd.stages.process import ProcessStage
from mlcicd.stages.register import RegisterStage
from mlcicd.stages.train import TrainStage
from tests.conftest import commit_all
from tests.helpers import set_yaml
from tests.stages.conftest import Stages

pytestmark = pytest.mark.integration  # real processing and training jobs

RAW = Path("data") / "raw" / "iris.csv"


def _prepared(stages: Stages) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {"source": stages.source(), "build": stages.build()}
    outputs["process"] = ProcessStage().run(stages.context(outputs)).outputs
    return outputs


def _approved_model(repo: Path) -> None:
    """Train the template's model and register it (with its baseline, from prepare.train)."""
    stages = Stages(repo)
    outputs = _prepared(stages)
    outputs["train"] = TrainStage().run(stages.context(outputs)).outputs
    registered = RegisterStage().run(stages.context(outputs)).outputs
    assert "baseline" in registered, stages.lines


def _rewrite(repo: Path, column: str, change: Any) -> None:
    rows = list(csv.DictReader((repo / RAW).read_text().splitlines()))
    for row in rows:
        row[column] = change(row[column])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (repo / RAW).write_text(out.getvalue())
    commit_all(repo, f"new data: {column} changed")


def test_a_text_column_where_numbers_were_stops_the_run_naming_it(pipeline_repo: Path) -> None:
    _approved_model(pipeline_repo)
    _rewrite(pipeline_repo, "sepal_width", lambda v: f"w{v}")
    stages = Stages(pipeline_repo)
    with pytest.raises(DataCheckError) as caught:
        DataCheckStage().run(stages.context(_prepared(stages)))
    assert "sepal_width: data_type_check" in caught.value.headline
    assert "iris-pipeline/1's baseline" in caught.value.headline
    assert caught.value.outputs["status"] == "CompletedWithViolations"


def test_a_shifted_feature_is_named_and_warn_lets_the_run_go_on(pipeline_repo: Path) -> None:
    _approved_model(pipeline_repo)
    _rewrite(pipeline_repo, "petal_length", lambda v: str(float(v) * 3 + 2))
    stages = Stages(pipeline_repo)
    with pytest.raises(DataCheckError, match="petal_length: baseline_drift_check"):
        DataCheckStage().run(stages.context(_prepared(stages)))

    set_yaml(pipeline_repo, "data_check: fail", "data_check: warn")
    warned = Stages(pipeline_repo)
    result = DataCheckStage().run(warned.context(_prepared(warned)))
    assert result.status == "Succeeded" and "violations (warn)" in result.message
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in result.outputs["violations"]}
    assert checks == {("petal_length", "baseline_drift_check")}
    assert warned.project.store.exists(result.outputs["violations_uri"])


def test_the_same_data_passes_and_no_model_yet_is_skipped(pipeline_repo: Path) -> None:
    stages = Stages(pipeline_repo)
    skipped = DataCheckStage().run(stages.context(_prepared(stages)))
    assert skipped.outputs["status"] == "Skipped"
    assert skipped.message == "skipped: no model has been approved yet"
    _approved_model(pipeline_repo)
    again = Stages(pipeline_repo)
    passed = DataCheckStage().run(again.context(_prepared(again)))
    assert passed.outputs["status"] == "Passed" and passed.outputs["violations"] == []


def test_training_data_the_check_cannot_read_fails_or_warns(pipeline_repo: Path) -> None:
    _approved_model(pipeline_repo)
    set_yaml(pipeline_repo, "label: species", "label: kind")  # no such column in the data
    stages = Stages(pipeline_repo)
    with pytest.raises(DataCheckError, match=r"cannot be checked: monitor\.label 'kind'"):
        DataCheckStage().run(stages.context(_prepared(stages)))
    set_yaml(pipeline_repo, "data_check: fail", "data_check: warn")
    warned = Stages(pipeline_repo)
    result = DataCheckStage().run(warned.context(_prepared(warned)))
    assert result.status == "Succeeded" and result.outputs["status"] == "Unreadable"
    assert result.message.startswith("not checked (warn): the training channel")
