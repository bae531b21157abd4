"""The operations interface: what the CLI asks, whoever does it.

Each operation that starts work is split where the CLI speaks in between: ``decide`` then
``continue_run``, ``request_rollback`` then ``finish_rollback`` — the user reads what was
decided (or queued) before waiting for the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mlcicd.pipeline import Reporter


@dataclass
class Decision:
    """An approval decided: by whom, or rejected because it had timed out."""

    run_id: int
    model_group: str
    model_version: int
    status: str  # Approved / Rejected
    decided_by: str | None
    timed_out: bool


@dataclass
class Continued:
    """Where a decided run went on: ``service_url`` when a service took it over; ``status``
    when this process followed it to its end (None: the service goes on without us)."""

    status: str | None
    service_url: str | None = None


@dataclass
class Retried:
    """A run queued again: its id and commit; ``service_url`` when the service queued it,
    ``service_running`` whether one will run it."""

    run_id: int
    retry_of: int
    commit: str
    service_url: str | None
    service_running: bool


@dataclass
class RollbackRequest:
    """A rollback decided: to ``target`` (group/version, or the package ARN) from ``current``;
    ``run_id`` and ``service_url`` when a service queued it (``superseded`` rollbacks it
    replaced, the runs it waits ``behind``)."""

    endpoint: str
    target: str
    current: str
    version: int | None = None
    reason: str | None = None
    service_url: str | None = None
    run_id: int | None = None
    superseded: list[int] = field(default_factory=list)
    behind: list[int] = field(default_factory=list)


@dataclass
class RollbackDone:
    """A rollback run that ended serving the target: where it serves now."""

    run_id: int
    url: str | None


class Operations(Protocol):
    """One project's pipeline operations. Errors are :class:`~mlcicd.errors.MlcicdError`s the
    CLI prints in one line."""

    service_url: str | None
    """The running `mlcicd up` these go through; None: in this process."""

    def decide(self, run_id: int, approved: bool, comment: str | None) -> Decision:
        """Approve or reject run ``run_id``'s model (an expired approval is rejected)."""
        ...

    def continue_run(self, run_id: int, reporter: Reporter) -> Continued:
        """Go on with run ``run_id`` after its decision, showing its stages to ``reporter``."""
        ...

    def retry(self, run_id: int) -> Retried:
        """Queue run ``run_id``'s commit again."""
        ...

    def request_rollback(
        self, endpoint: str, to_version: int | None, reason: str | None
    ) -> RollbackRequest:
        """Decide what ``endpoint`` rolls back to (the previous model without ``to_version``)."""
        ...

    def finish_rollback(
        self,
        request: RollbackRequest,
        reporter: Reporter,
        *,
        wait: bool,
        on_wait: Callable[[str], None] | None = None,
    ) -> RollbackDone | None:
        """Run the rollback (or, queued in a service and with ``wait``, follow it; ``on_wait``
        hears why it has not started); None when it goes on without this process."""
        ...
