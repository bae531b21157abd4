"""Processing jobs in the state: recorded under their cache key, found again only Completed."""

from __future__ import annotations

import pytest

from mlcicd.errors import NotFoundError
from mlcicd.state import ProcessingJobRecord, State


def _job(name: str, status: str, ended_at: float | None) -> ProcessingJobRecord:
    return ProcessingJobRecord(
        name=name,
        run_id=1,
        step="prepare",
        cache_key="key",
        status=status,
        failure_reason=None if status == "Completed" else "AlgorithmError: exit code 1",
        exit_message=None,
        inputs={"raw": "abc"},
        outputs={"train": {"uri": "file:///x/train.tar.gz", "sha256": "0" * 64}},
        report={"metrics": {"accuracy": 0.9}},
        log_path=None,
        started_at=1.0,
        ended_at=ended_at,
    )


def test_a_completed_job_is_found_by_its_key_and_a_failed_one_is_not(state: State) -> None:
    state.record_processing_job(_job("p-1", "Failed", 2.0))
    assert state.find_completed_processing_job("key") is None
    state.record_processing_job(_job("p-2", "Completed", 3.0))
    found = state.find_completed_processing_job("key")
    assert found is not None and found.name == "p-2"
    assert found.outputs["train"]["sha256"] == "0" * 64
    assert found.report == {"metrics": {"accuracy": 0.9}}
    assert [j.name for j in state.processing_jobs(run_id=1)] == ["p-1", "p-2"]
    with pytest.raises(NotFoundError):
        state.get_processing_job("p-3")
