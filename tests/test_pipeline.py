"""A run's logs as `mlcicd logs` prints them: each stage's in order, the training job's after
its stage. (Running the stages themselves is tested through `mlcicd run` in tests/cli.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.errors import NotFoundError
from mlcicd.pipeline import run_logs
from mlcicd.state import State, TrainingJobRecord


def _job(name: str, run_id: int, log_path: Path) -> TrainingJobRecord:
    return TrainingJobRecord(
        name=name,
        run_id=run_id,
        cache_key=name,
        status="Completed",
        secondary_status=None,
        failure_reason=None,
        build_digest=None,
        data_digest=None,
        hyperparameters={},
        metrics={},
        model_uri=None,
        model_sha256=None,
        log_path=str(log_path),
        started_at=None,
        ended_at=None,
    )


def test_stage_logs_in_order_with_the_training_jobs_after_train(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    run = state.create_run(pipeline="p", project_dir="/p", stages=["source", "build", "train"])
    for stage in ("source", "train"):  # build never started: no log to show
        (tmp_path / f"{stage}.log").write_bytes(f"{stage} line\n".encode())
        state.start_stage(run.id, stage, log_path=str(tmp_path / f"{stage}.log"))
        state.finish_stage(run.id, stage, "Succeeded")
    (tmp_path / "job.log").write_bytes(b"epoch 1 \xff\n")
    state.record_training_job(_job("p-job", run.id, tmp_path / "job.log"))
    state.record_training_job(_job("p-gone", run.id, tmp_path / "never-written.log"))

    logs = run_logs(state, run.id)
    assert [log.title for log in logs] == [
        "source (Succeeded)",
        "train (Succeeded)",
        "training job p-job (Completed)",
    ]
    assert [log.read() for log in logs] == ["source line\n", "train line\n", "epoch 1 \ufffd\n"]
    assert [log.title for log in run_logs(state, run.id, "train")][1:] == [
        "training job p-job (Completed)"
    ]
    (tmp_path / "source.log").unlink()
    assert run_logs(state, run.id, "source")[0].read() is None


def test_an_unknown_stage_or_run_is_not_found(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    run = state.create_run(pipeline="p", project_dir="/p", stages=["source", "build"])
    with pytest.raises(NotFoundError, match="no stage 'train'") as raised:
        run_logs(state, run.id, "train")
    assert raised.value.hint == "stages: source, build"
    with pytest.raises(NotFoundError):
        run_logs(state, run.id + 1)
