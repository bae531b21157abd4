from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.helpers import IrisModel, stop_process, train_iris


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    """A LogisticRegression trained on iris, saved as model.joblib and packed (once)."""
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return tmp_path / "code"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts: append them, and they are stopped (then killed) after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop_process(proc, timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
