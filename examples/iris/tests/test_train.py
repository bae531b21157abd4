from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import train

if TYPE_CHECKING:
    from conftest import TrainingRun

# The MetricDefinitions of mlcicd.yaml.
METRIC_REGEXES = {"accuracy": r"accuracy=([0-9.]+)", "f1": r"f1=([0-9.]+)"}


def metrics_from_log(log: str) -> dict[str, list[float]]:
    return {name: [float(v) for v in re.findall(rx, log)] for name, rx in METRIC_REGEXES.items()}


def test_training_passes_the_gate_and_saves_the_model(trained: TrainingRun) -> None:
    assert (trained.model_dir / "model.joblib").is_file()
    assert not (trained.output_dir / "failure").exists()

    found = metrics_from_log(trained.log)
    assert len(found["accuracy"]) == 1 and len(found["f1"]) == 1  # one value each, no noise
    assert found["accuracy"][0] >= 0.85
    assert 0.0 <= found["f1"][0] <= 1.0

    written = json.loads((trained.output_dir / "data" / "metrics.json").read_text())
    assert written == {"accuracy": found["accuracy"][0], "f1": found["f1"][0]}


def test_metric_lines_have_a_fixed_format(trained: TrainingRun) -> None:
    lines = trained.stdout.splitlines()
    assert re.fullmatch(r"accuracy=\d\.\d{4}", lines[0])
    assert re.fullmatch(r"f1=\d\.\d{4}", lines[1])


def test_accuracy_below_min_accuracy_fails_the_job(run_train: Callable[..., TrainingRun]) -> None:
    run = run_train("--min_accuracy", "1.01")
    assert run.returncode == 1
    reason = (run.output_dir / "failure").read_text()
    assert "below min_accuracy 1.01" in reason
    assert reason.strip() in run.stderr
    assert len(metrics_from_log(run.log)["accuracy"]) == 1  # the reason is not a metric line
    assert not (run.model_dir / "model.joblib").exists()  # a rejected model is not saved


def test_an_unknown_hyperparameter_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: argument parsing needs no subprocess, and this keeps the suite fast.
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(tmp_path))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        train.main(["--learning_rate", "0.1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --learning_rate" in capsys.readouterr().err
    assert "--learning_rate" in (tmp_path / "failure").read_text()
