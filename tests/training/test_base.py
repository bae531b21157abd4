"""The backend-neutral contract: spec validation, metric parsing, result helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mlcicd.training
from mlcicd.errors import TrainingError
from mlcicd.training import (
    Channel,
    MetricDefinition,
    TrainingJobResult,
    TrainingJobSpec,
    parse_metrics,
)


def spec(**overrides: object) -> TrainingJobSpec:
    fields: dict[str, object] = {
        "name": "job-1",
        "source_dir": Path("src"),
        "entry_point": "train.py",
        "python": Path(sys.executable),
    }
    fields.update(overrides)
    return TrainingJobSpec(**fields)  # type: ignore[arg-type]


def test_public_api() -> None:
    assert mlcicd.training.__all__ == sorted(mlcicd.training.__all__)
    for name in mlcicd.training.__all__:
        assert hasattr(mlcicd.training, name), name


@pytest.mark.parametrize("name", ["a", "job-1", "a--b", "A1-b2", "x" * 63])
def test_valid_job_names(name: str) -> None:
    assert spec(name=name).name == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "a_b", "a.b", "x" * 64, "é"])
def test_invalid_job_names(name: str) -> None:
    with pytest.raises(TrainingError, match="training job name"):
        spec(name=name)


@pytest.mark.parametrize("entry_point", ["", "/abs/train.py", "../train.py", "a/../../train.py"])
def test_entry_point_must_stay_in_source_dir(entry_point: str) -> None:
    with pytest.raises(TrainingError, match="entry point"):
        spec(entry_point=entry_point)


def test_max_runtime_must_be_positive() -> None:
    with pytest.raises(TrainingError, match="max_runtime_seconds"):
        spec(max_runtime_seconds=0)


def test_channels_are_validated() -> None:
    with pytest.raises(TrainingError, match="channel name"):
        Channel("bad name", Path("data"))
    with pytest.raises(TrainingError, match="more than once"):
        spec(channels=[Channel("train", Path("a")), Channel("train", Path("b"))])


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(TrainingError, match="reserved"):
        spec(hyperparameters={"sagemaker_program": "x.py"})
    with pytest.raises(TrainingError, match="JSON"):
        spec(hyperparameters={"when": object()})
    with pytest.raises(TrainingError, match="non-empty"):
        spec(hyperparameters={"": 1})


def test_environment_cannot_override_the_runner() -> None:
    for key in ("SM_MODEL_DIR", "SAGEMAKER_PROGRAM", "TRAINING_JOB_NAME"):
        with pytest.raises(TrainingError, match=key):
            spec(environment={key: "x"})
    with pytest.raises(TrainingError, match="string"):
        spec(environment={"N": 1})


def test_spec_keeps_its_own_copies() -> None:
    hps = {"epochs": 1}
    s = spec(hyperparameters=hps)
    hps["epochs"] = 2
    assert s.hyperparameters == {"epochs": 1}


def test_metric_definition_needs_a_group_and_a_valid_regex() -> None:
    with pytest.raises(TrainingError, match="no group"):
        MetricDefinition("acc", r"acc=[0-9.]+")
    with pytest.raises(TrainingError, match="invalid regex"):
        MetricDefinition("acc", r"acc=([0-9.]+")


def test_parse_metrics() -> None:
    definitions = [
        MetricDefinition("loss", r"loss[=:] *(\S+)"),
        MetricDefinition("acc", r"acc=([0-9.]+)"),
    ]
    assert parse_metrics("epoch 3 loss=0.25 acc=0.9", definitions) == [("loss", 0.25), ("acc", 0.9)]
    assert parse_metrics("loss: 1e-3", definitions) == [("loss", 0.001)]
    assert parse_metrics("nothing here", definitions) == []
    assert parse_metrics("loss=oops acc=.", definitions) == []  # not numbers: ignored
    assert parse_metrics("loss=nan", definitions) == []  # not finite: ignored
    optional = [MetricDefinition("x", r"x=(\d+)?;")]
    assert parse_metrics("x=;", optional) == []  # the group did not take part


def test_raise_for_status(tmp_path: Path) -> None:
    result = TrainingJobResult(
        name="job-1",
        status="Failed",
        secondary_status="Failed",
        failure_reason="bad data\nmore",
        metrics={},
        metric_series=[],
        model_artifact=None,
        model_sha256=None,
        exit_code=1,
        started_at=0.0,
        ended_at=1.0,
        log_path=tmp_path / "training.log",
        job_dir=tmp_path,
    )
    assert not result.succeeded
    with pytest.raises(TrainingError, match=r"job-1 failed \(Failed\): bad data \(full log: "):
        result.raise_for_status()
    result.status, result.secondary_status = "Completed", "Completed"
    result.raise_for_status()
