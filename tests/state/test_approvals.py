"""Approvals: one decision, once; past its deadline a model is rejected whatever is asked."""

from __future__ import annotations

import pytest

from mlcicd.errors import StateError
from mlcicd.state import State

# A negative timeout: the deadline passed a second before it was set, without a sleep.
PASSED = -1.0


def _waiting(state: State, *, timeout: float | None, group: str = "iris") -> int:
    """A run waiting for approval of ``group``/1."""
    run, _ = state.enqueue_run(pipeline=group, project_dir="/p", ref="main", trigger={})
    assert run is not None
    state.wait_for_approval(run.id)
    state.request_approval(run.id, group, 1, timeout=timeout, summary={})
    return run.id


def test_a_decision_in_time_is_recorded_as_asked(state: State) -> None:
    run_id = _waiting(state, timeout=3600)
    approval, expired = state.decide_approval_unless_expired(
        run_id, True, by="ada", comment="looks good"
    )
    assert not expired
    assert (approval.status, approval.decided_by, approval.comment) == (
        "Approved",
        "ada",
        "looks good",
    )
    with pytest.raises(StateError, match="already decided"):
        state.decide_approval_unless_expired(run_id, False, by="grace", comment=None)


def test_a_decision_past_the_deadline_is_a_rejection(state: State) -> None:
    run_id = _waiting(state, timeout=PASSED)
    approval, expired = state.decide_approval_unless_expired(run_id, True, by="ada", comment="ok")
    assert expired
    assert (approval.status, approval.decided_by, approval.comment) == (
        "Rejected",
        "mlcicd (timeout)",
        "no decision within approve.timeout",
    )


def test_the_sweep_rejects_only_the_expired_and_names_the_timeout(state: State) -> None:
    in_time = _waiting(state, timeout=3600, group="other")
    expired = _waiting(state, timeout=PASSED)
    rejected = state.reject_expired_approvals(timeout=600)
    assert [a.run_id for a in rejected] == [expired]
    assert (rejected[0].decided_by, rejected[0].comment) == (
        "mlcicd (timeout)",
        "no decision within approve.timeout (600s)",
    )
    assert state.get_approval(in_time).status == "Pending"  # type: ignore[union-attr]
    assert state.reject_expired_approvals(timeout=600) == []
