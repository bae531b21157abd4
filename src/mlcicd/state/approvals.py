"""Approvals: a run that waits for someone to approve or reject its model, and the decision.

A run waiting for approval records who decided, why and when. An approval has a deadline
when the project sets ``approve.timeout``; once it has passed, the model is rejected
whatever is asked — that rule is :meth:`Approvals.decide_approval_unless_expired` (one
decision) and :meth:`Approvals.reject_expired_approvals` (the service's sweep), here once.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from mlcicd.errors import MlcicdError, NotFoundError, StateError
from mlcicd.state.db import Tables
from mlcicd.state.records import Approval, Run

# Who rejected an approval whose deadline passed.
TIMED_OUT_BY = "mlcicd (timeout)"


class Approvals(Tables):
    """Approvals asked for, decided, timed out."""

    def request_approval(
        self,
        run_id: int,
        group: str,
        version: int,
        *,
        timeout: float | None,
        summary: dict[str, Any],
    ) -> list[int]:
        """Record that ``run_id`` waits; older waiting runs of the group are Superseded (their
        ids)."""
        now = time.time()
        with self.db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO approvals (run_id, model_group, model_version, status,"
                " requested_at, expires_at, summary) VALUES (?, ?, ?, 'Pending', ?, ?, ?)",
                (
                    run_id,
                    group,
                    version,
                    now,
                    now + timeout if timeout else None,
                    json.dumps(summary, default=str),
                ),
            )
            older = [
                int(r["run_id"])
                for r in db.execute(
                    "SELECT a.run_id FROM approvals a JOIN runs r ON r.id = a.run_id"
                    " WHERE a.model_group=? AND a.status='Pending' AND a.run_id != ?"
                    " AND r.status='WaitingForApproval'",
                    (group, run_id),
                ).fetchall()
            ]
            for old in older:
                reason = f"superseded by run {run_id} while waiting for approval"
                db.execute(
                    "UPDATE approvals SET status='Rejected', decided_by='mlcicd', comment=?,"
                    " decided_at=? WHERE run_id=?",
                    (reason, now, old),
                )
                db.execute(
                    "UPDATE runs SET status='Superseded', ended_at=?, failure_reason=? WHERE id=?",
                    (now, reason, old),
                )
                db.execute(
                    "UPDATE stage_executions SET status='Skipped'"
                    " WHERE run_id=? AND status IN ('Pending', 'WaitingForApproval')",
                    (old,),
                )
        return older

    def get_approval(self, run_id: int) -> Approval | None:
        approval: Approval | None = self.db.one(
            Approval, "SELECT * FROM approvals WHERE run_id=?", run_id
        )
        return approval

    def decide_approval(
        self, run_id: int, approved: bool, *, by: str, comment: str | None
    ) -> Approval:
        """Approve or reject a pending approval (once): who and why are recorded."""
        with self.db.tx() as db:
            row = db.execute(
                "SELECT a.status, r.status AS run_status FROM approvals a"
                " JOIN runs r ON r.id = a.run_id WHERE a.run_id=?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"run {run_id} is not waiting for approval",
                    hint="`mlcicd runs list` shows runs in WaitingForApproval",
                )
            if row["status"] != "Pending" or row["run_status"] != "WaitingForApproval":
                raise StateError(
                    f"run {run_id} was already decided ({row['status']}, run {row['run_status']})"
                )
            db.execute(
                "UPDATE approvals SET status=?, decided_by=?, comment=?, decided_at=?"
                " WHERE run_id=?",
                ("Approved" if approved else "Rejected", by, comment, time.time(), run_id),
            )
        approval = self.get_approval(run_id)
        assert approval is not None
        return approval

    def decide_approval_unless_expired(
        self, run_id: int, approved: bool, *, by: str, comment: str | None
    ) -> tuple[Approval, bool]:
        """Decide as asked — unless the approval's deadline has passed: then it is rejected.

        The approval and whether it had timed out (the caller says so, and fails)."""
        if any(a.run_id == run_id for a in self.expired_approvals()):
            return self._reject_timed_out(run_id, timeout=None), True
        return self.decide_approval(run_id, approved, by=by, comment=comment), False

    def reject_expired_approvals(self, *, timeout: float | None) -> list[Approval]:
        """Reject every approval whose deadline has passed; those rejected. One decided in
        the meantime (by a person, or another service) is left as it was decided."""
        rejected = []
        for approval in self.expired_approvals():
            with contextlib.suppress(MlcicdError):
                rejected.append(self._reject_timed_out(approval.run_id, timeout=timeout))
        return rejected

    def _reject_timed_out(self, run_id: int, *, timeout: float | None) -> Approval:
        comment = "no decision within approve.timeout"
        if timeout is not None:
            comment += f" ({timeout:g}s)"
        return self.decide_approval(run_id, False, by=TIMED_OUT_BY, comment=comment)

    def expired_approvals(self, now: float | None = None) -> list[Approval]:
        return self.db.all(
            Approval,
            "SELECT a.* FROM approvals a JOIN runs r ON r.id = a.run_id WHERE a.status='Pending'"
            " AND r.status='WaitingForApproval' AND a.expires_at IS NOT NULL"
            " AND a.expires_at <= ?",
            now or time.time(),
        )

    def decided_waiting_runs(self) -> list[Run]:
        """Runs waiting for approval that now have a decision: ready to resume."""
        return self.db.all(
            Run,
            "SELECT r.* FROM runs r JOIN approvals a ON a.run_id = r.id"
            " WHERE r.status='WaitingForApproval' AND a.status != 'Pending' ORDER BY r.id",
        )
