"""Shared fixtures: `src/` importable, and one trained model for the whole session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SRC = PROJECT / "src"
TESTS = PROJECT / "tests"
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


class _TrainingJob:
    """train.py run as SageMaker would: a job directory, the SM_* env, `--name value`."""

    def __init__(self, job_dir: Path, *args: str) -> None:
        self.job_dir = job_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(SRC / "train.py"), *args],
            env={**os.environ, **job_environment(job_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.run: TrainingRun | None = None

    def wait(self) -> TrainingRun:
        if self.run is None:
            try:
                stdout, stderr = self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
                raise
            self.run = TrainingRun(
                self.proc.returncode,
                stdout,
                stderr,
                self.job_dir / "model",
                self.job_dir / "output",
            )
        return self.run

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.job_dir, ignore_errors=True)


# The session's training job starts as soon as pytest reaches a test module here (not
# tests/endpoint, which tests a live endpoint), before it imports one: the job imports
# scikit-learn on one core while pytest imports it on the other, so the build stage's tests
# take a second less on two cores. `trained` waits for it.
_session_job: _TrainingJob | None = None


def _start_session_job() -> _TrainingJob:
    global _session_job
    if _session_job is None:
        job_dir = Path(tempfile.mkdtemp(prefix="iris-train-"))
        _session_job = _TrainingJob(job_dir, "-C", "1.0", "--max_iter", "200")
    return _session_job


def pytest_collectstart(collector: pytest.Collector) -> None:
    here = isinstance(collector, pytest.Module) and collector.path.parent == TESTS
    if here and not collector.config.option.collectonly:
        _start_session_job()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _session_job is not None:
        _session_job.discard()


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
def trained() -> TrainingRun:
    """One successful training job, shared by the tests that need a model."""
    run = _start_session_job().wait()
    assert run.returncode == 0, run.stderr
    return run
