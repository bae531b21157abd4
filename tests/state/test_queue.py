"""Queued rollbacks in the run queue: claimed first, replaced only by a newer rollback of the
same endpoint, never superseded by a commit; a failed one is an event."""

from __future__ import annotations

import pytest

from mlcicd.errors import StateError
from mlcicd.state import Run, State


def _rollback(
    state: State, endpoint: str = "iris-endpoint", version: int = 1, by: str = "ada"
) -> tuple[Run, list[int]]:
    return state.enqueue_rollback(
        pipeline="iris",
        project_dir="/p",
        endpoint=endpoint,
        commit_sha="c0ffee",
        trigger={
            "to": f"iris/{version}",
            "version": version,
            "from": "iris/2",
            "by": by,
            "reason": "p99 doubled",
        },
        message=f"rollback of {endpoint} to iris/{version}",
    )


def _commit(state: State, sha: str) -> Run:
    run, _ = state.enqueue_run(
        pipeline="iris", project_dir="/p", ref=sha, commit_sha=sha, trigger={"kind": "hook"}
    )
    assert run is not None
    return run


def test_a_newer_rollback_of_the_endpoint_replaces_the_queued_one(state: State) -> None:
    first, replaced = _rollback(state)
    other, _ = _rollback(state, endpoint="other-endpoint")
    second, replaced = _rollback(state, version=3, by="grace")
    assert replaced == [first.id]
    old = state.get_run(first.id)
    assert old.status == "Superseded"
    assert (
        old.failure_reason
        == f"replaced by rollback run {second.id} (to iris/3, asked by grace) before it started"
    )
    assert state.get_run(other.id).status == "Queued"
    assert second.trigger["kind"] == "rollback" and second.trigger["endpoint"] == "iris-endpoint"
    queued = [e for e in state.events() if e.kind == "rollback_queued"]
    assert queued[-1].subject == "iris-endpoint"
    assert queued[-1].data == {
        "run_id": second.id,
        "to": "iris/3",
        "from": "iris/2",
        "by": "grace",
        "why": "p99 doubled",
        "replaces": [first.id],
    }


def test_a_new_commit_does_not_supersede_a_queued_rollback(state: State) -> None:
    rollback, _ = _rollback(state)
    run = _commit(state, "c0ffee")  # the rollback's own commit: still a run of its own
    assert run.id != rollback.id
    _run, superseded = state.enqueue_run(
        pipeline="iris", project_dir="/p", ref="beef", commit_sha="beef", trigger={"kind": "hook"}
    )
    assert superseded == [run.id]
    assert state.get_run(rollback.id).status == "Queued"


def test_a_rollback_is_claimed_before_older_queued_runs(state: State) -> None:
    running = state.create_run(pipeline="iris", project_dir="/p", stages=["source"])
    queued = _commit(state, "beef")
    rollback, _ = _rollback(state)
    assert state.claim_next_run("iris", 1) is None  # one at a time: run 1 is running
    state.finish_run(running.id, "Succeeded")
    assert state.claim_next_run("iris", 1, rollbacks_only=True) is not None
    state.finish_run(rollback.id, "Succeeded")
    assert state.claim_next_run("iris", 1, rollbacks_only=True) is None
    claimed = state.claim_next_run("iris", 1)
    assert claimed is not None and claimed.id == queued.id


def test_a_rollback_claimed_first_without_the_filter_too(state: State) -> None:
    _commit(state, "beef")
    rollback, _ = _rollback(state)
    claimed = state.claim_next_run("iris", 1)
    assert claimed is not None and claimed.id == rollback.id


def test_a_failed_rollback_is_an_event(state: State) -> None:
    rollback, _ = _rollback(state)
    state.claim_next_run("iris", 1)
    state.fail_run_in_progress(rollback.id, "model iris/1 is Rejected")
    failed = [e for e in state.events() if e.kind == "rollback_failed"]
    assert len(failed) == 1 and failed[0].subject == "iris-endpoint"
    assert failed[0].data["failure"] == "model iris/1 is Rejected" and failed[0].data["by"] == "ada"
    state.fail_run_in_progress(rollback.id, "again")  # not Running any more: nothing new
    assert len([e for e in state.events() if e.kind == "rollback_failed"]) == 1


def test_a_run_started_outside_the_queue_is_refused_while_another_runs(state: State) -> None:
    running = state.create_run(pipeline="iris", project_dir="/p", stages=["source"])
    with pytest.raises(StateError, match=f"run {running.id} of iris is in progress"):
        state.create_started_run(
            pipeline="iris", project_dir="/p", commit_sha="c", trigger={"kind": "rollback"}
        )
    state.finish_run(running.id, "Succeeded")
    started = state.create_started_run(
        pipeline="iris", project_dir="/p", commit_sha="c", trigger={"kind": "rollback"}
    )
    assert started.status == "Running"
