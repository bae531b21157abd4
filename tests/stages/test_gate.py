"""GATE on its own: thresholds from mlcicd.yaml on the training job's metrics; a model that
misses one is registered as Rejected and the stage fails naming metric, value and threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlcicd.config import parse_config
from mlcicd.errors import GateError
from mlcicd.stages.gate import GateStage, evaluate, evaluate_thresholds
from tests.helpers import set_yaml
from tests.stages.conftest import Stages


def thresholds(gate: str) -> Any:
    return parse_config(f"pipeline: p\ngate: {gate}\n").gate.thresholds


def test_every_threshold_is_checked_and_each_failure_is_one_sentence() -> None:
    checks = thresholds("{accuracy: '>= 0.9', f1: '> 0.8', loss: '< 0.3'}")
    assert evaluate_thresholds(checks, {"accuracy": 0.95, "f1": 0.81, "loss": 0.1}) == []
    assert evaluate_thresholds(checks, {"accuracy": 0.5, "f1": 0.8, "loss": 0.1}) == [
        "accuracy = 0.5 does not meet accuracy >= 0.9",
        "f1 = 0.8 does not meet f1 > 0.8",
    ]
    (missing,) = evaluate_thresholds(checks, {"accuracy": 0.95, "f1": 0.9})
    assert missing.startswith("loss was not reported by the training job (needed loss < 0.3")
    assert "train.metric_definitions" in missing


def test_no_thresholds_pass_anything() -> None:
    assert evaluate(parse_config("pipeline: p\n"), {}) == []


def trained(sha: str, accuracy: float) -> dict[str, Any]:
    """What the train stage hands on (the gate reads it; register records it)."""
    return {
        "job": "iris-job-1",
        "metrics": {"accuracy": accuracy, "f1": accuracy},
        "model_uri": f"file:///models/{sha}/model.tar.gz",
        "model_sha256": sha,
        "data_digest": "d" * 64,
        "hyperparameters": {"C": 1.0},
    }


def test_a_model_that_passes_goes_on_unregistered(tmp_path: Path) -> None:
    from tests.conftest import make_repo

    stages = Stages(make_repo(tmp_path / "iris"))
    outputs = {"source": stages.source(), "build": stages.build(), "train": trained("a" * 64, 0.9)}
    result = GateStage().run(stages.context(outputs))
    assert (result.status, result.message) == ("Succeeded", "passed: accuracy >= 0.85")
    assert result.outputs == {"passed": True, "metrics": {"accuracy": 0.9, "f1": 0.9}}
    assert stages.lines == ["check accuracy >= 0.85: 0.9"]
    assert stages.project.state.find_model_package("iris-classifier", "a" * 64) is None


def test_a_model_that_fails_is_registered_rejected(tmp_path: Path) -> None:
    from tests.conftest import make_repo

    root = make_repo(tmp_path / "iris")
    set_yaml(root, 'accuracy: ">= 0.85"', 'accuracy: ">= 0.85"\n  f1: ">= 0.5"')
    stages = Stages(root)
    outputs = {"source": stages.source(), "build": stages.build(), "train": trained("c" * 64, 0.6)}
    ctx = stages.context(outputs)
    with pytest.raises(GateError) as failed:
        GateStage().run(ctx)
    assert failed.value.message == (
        "quality gate failed: accuracy = 0.6 does not meet accuracy >= 0.85"
    )
    package = stages.project.state.find_model_package("iris-classifier", "c" * 64)
    assert package is not None and package.status == "Rejected"
    assert package.status_reason == "quality gate: accuracy = 0.6 does not meet accuracy >= 0.85"
    assert package.run_id == ctx.run.id and package.commit_sha == outputs["source"]["commit"]
    assert failed.value.hint == (
        f"model {package.arn} was rejected; the endpoint keeps serving its current model"
    )
    assert stages.lines[-1] == f"model package {package.arn} registered as Rejected"

    # The same model rejected again: the registry keeps the one version.
    with pytest.raises(GateError):
        GateStage().run(stages.context(outputs))
    again = stages.project.state.find_model_package("iris-classifier", "c" * 64)
    assert again is not None and again.version == package.version
