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


def _run_train(job_dir: Path, *args: str) -> TrainingRun:
    """Run train.py as SageMaker would: a job directory, the SM_* env, `--name value`."""
    model_dir, output_dir = job_dir / "model", job_dir / "output"
    (output_dir / "data").mkdir(parents=True)
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAINING": str(DATA),
        "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
        "SM_OUTPUT_DIR": str(output_dir),
    }
    proc = subprocess.run(
        [sys.executable, str(SRC / "train.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return TrainingRun(proc.returncode, proc.stdout, proc.stderr, model_dir, output_dir)


@pytest.fixture
def run_train() -> Callable[..., TrainingRun]:
    """`run_train(job_dir, "--C", "0.5")` runs one training job in `job_dir`."""
    return _run_train


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """One successful training job, shared by the tests that need a model."""
    run = _run_train(tmp_path_factory.mktemp("job"), "-C", "1.0", "--max_iter", "200")
    assert run.returncode == 0, run.stderr
    return run
