"""Transform job records: InProgress with the process running them, then how they ended; a
job whose process died unfinished reads as Failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.errors import NotFoundError, StateError
from mlcicd.state import State, TransformJobRecord


def _job(name: str, version: int = 1) -> TransformJobRecord:
    return TransformJobRecord(
        name=name,
        backend="local",
        status="InProgress",
        failure_reason=None,
        model_group="iris",
        model_version=version,
        model_sha256="a" * 64,
        input_uri="in",
        output_uri="out",
        settings={"split_type": "Line"},
    )


def test_a_job_is_recorded_in_progress_then_finished(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.create_transform_job(_job("first"))
    assert state.get_transform_job("first").status == "InProgress"
    with pytest.raises(StateError, match="transform job first exists already"):
        state.create_transform_job(_job("first"))

    done = state.finish_transform_job("first", "Completed", objects=2, rows_in=10, rows_out=10)
    assert (done.status, done.rows_in, done.settings, done.pid) == (
        "Completed",
        10,
        {"split_type": "Line"},
        None,
    )
    assert done.ended_at is not None and done.ended_at >= done.started_at
    state.create_transform_job(_job("second", 2))
    assert [j.name for j in state.transform_jobs()] == ["second", "first"]
    assert [j.name for j in state.transform_jobs("iris", 1)] == ["first"]
    with pytest.raises(NotFoundError, match="transform job nope does not exist"):
        state.get_transform_job("nope")


@pytest.mark.integration
def test_a_job_whose_process_died_reads_as_failed(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from mlcicd.state import State;"
        "from tests.state.test_transforms import _job;"
        "State(Path(sys.argv[1])).create_transform_job(_job('orphan'))"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "state.db")], check=True)
    job = State(tmp_path / "state.db").get_transform_job("orphan")
    assert job.status == "Failed"
    assert job.failure_reason is not None and "ended without finishing" in job.failure_reason
