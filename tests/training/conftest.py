"""Helpers for training tests: tiny scripts written into tmp_path, run with this Python."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlcicd import procinfo
from mlcicd.training import LocalTrainingBackend, TrainingJobSpec
from tests.helpers import wait_for

# A script that records what SageMaker script mode promises it: environment, argv, cwd and
# the files of every channel. It saves that as its "model".
DUMP_SCRIPT = """
import json, os, sys
channels = {}
for name in json.loads(os.environ["SM_CHANNELS"]):
    root = os.environ["SM_CHANNEL_" + name.upper()]
    channels[name] = sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )
seen = {"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "channels": channels}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
"""

SAVE_MODEL = """
import os
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("weights")
"""


def write_source(root: Path, script: str, name: str = "train.py") -> Path:
    """A source_dir holding ``script`` as ``name``."""
    source = root / "src"
    source.mkdir(parents=True, exist_ok=True)
    (source / name).write_text(textwrap.dedent(script))
    return source


def make_spec(source_dir: Path, name: str = "job-1", **kwargs: Any) -> TrainingJobSpec:
    kwargs.setdefault("python", Path(sys.executable))
    return TrainingJobSpec(name=name, source_dir=source_dir, entry_point="train.py", **kwargs)


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for init counts as gone). Waited
    for with a bound that only guards against hanging: a loaded machine may end it late."""
    wait_for(f"process {pid} to be gone", lambda: procinfo.start_time(pid) is None, timeout=60)
    return True


@pytest.fixture
def backend(tmp_path: Path) -> LocalTrainingBackend:
    return LocalTrainingBackend(tmp_path / "jobs", stop_grace_seconds=0.5)
