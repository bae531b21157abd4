"""Shared fixtures: `src/` importable, and one trained model for the whole session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SRC = PROJECT / "src"
DATA = PROJECT / "data"
sys.path.insert(0, str(SRC))  # the handlers are plain modules, as SageMaker loads them


@dataclass
class TrainingRun:
    returncode: int
    stdout: str
    stderr: str
    model_dir: Path
    output_dir: Path  # SM_OUTPUT_DIR; output/data is SM_OUTPUT_DATA_DIR

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


def job_environment(job_dir: Path) -> dict[str, str]:
    """The SM_* variables of a training job laid out in `job_dir`, as SageMaker sets them."""
    output_dir = job_dir / "output"
    (output_dir / "data").mkdir(parents=True)
    return {
        "SM_MODEL_DIR": str(job_dir / "model"),
        "SM_CHANNEL_TRAINING": str(DATA),
        "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
        "SM_OUTPUT_DIR": str(output_dir),
    }


def _run_train(job_dir: Path, *args: str) -> TrainingRun:
    """Run train.py as SageMaker would: a job directory, the SM_* env, `--name value`."""
    proc = subprocess.run(
        [sys.executable, str(SRC / "train.py"), *args],
        env={**os.environ, **job_environment(job_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return TrainingRun(
        proc.returncode, proc.stdout, proc.stderr, job_dir / "model", job_dir / "output"
    )


@pytest.fixture
def run_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., TrainingRun]:
    """`run_train("--C", "0.5")`: one training job in this test's directory, through
    train.main in this process with the job's SM_* environment — the same script, exit
    status and output as a job, without starting Python and importing scikit-learn again
    (a second each). The `trained` job below runs it as a process, as SageMaker does."""

    def run(*args: str) -> TrainingRun:
        for name, value in job_environment(tmp_path).items():
            monkeypatch.setenv(name, value)
        import train

        code = train.main(list(args))
        out, err = capsys.readouterr()
        return TrainingRun(code, out, err, tmp_path / "model", tmp_path / "output")

    return run


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """One successful training job, shared by the tests that need a model."""
    run = _run_train(tmp_path_factory.mktemp("job"), "-C", "1.0", "--max_iter", "200")
    assert run.returncode == 0, run.stderr
    return run
