from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.helpers import stop_process


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
