"""Runs and their stage executions: a run's life, and a run whose process died."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.errors import NotFoundError
from mlcicd.state import State

STAGES = ["source", "build", "train"]


def test_run_lifecycle(state: State) -> None:
    run = state.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    assert run.status == "Running"
    assert [s.status for s in state.stages(run.id)] == ["Pending"] * 3
    state.start_stage(run.id, "source", log_path="/l")
    state.finish_stage(run.id, "source", "Succeeded", outputs={"commit": "abc"})
    state.start_stage(run.id, "build")
    state.finish_stage(run.id, "build", "Failed", message="boom")
    state.finish_run(run.id, "Failed", failed_stage="build", failure_reason="boom")
    run = state.get_run(run.id)
    assert (run.status, run.failed_stage, run.failure_reason) == ("Failed", "build", "boom")
    assert [s.status for s in state.stages(run.id)] == ["Succeeded", "Failed", "Skipped"]
    assert state.last_outputs("source", key="commit", value="abc") == {"commit": "abc"}
    assert state.last_outputs("source", key="commit", value="zzz") is None


def test_a_run_whose_process_died_is_failed_with_the_reason(state: State, tmp_path: Path) -> None:
    # A real process creates a run and is killed before it finishes it.
    code = (
        "import sys, os; from pathlib import Path; from mlcicd.state import State;"
        f"s = State(Path({str(tmp_path / 'state.db')!r}));"
        " r = s.create_run(pipeline='p', project_dir='/', stages=['a']);"
        "s.start_stage(r.id, 'a'); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    run = state.list_runs()[0]
    assert run.status == "Failed"
    assert "exited without finishing the run" in (run.failure_reason or "")
    assert [s.status for s in state.stages(run.id)] == ["Failed"]


def test_unknown_run(state: State) -> None:
    with pytest.raises(NotFoundError, match="run 7 does not exist"):
        state.get_run(7)
