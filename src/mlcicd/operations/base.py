"""The operations interface: what the CLI asks, whoever does it.

Each operation that starts work is split where the CLI speaks in between: ``request_run``
then ``finish_run``, ``decide`` then ``continue_run``, ``request_rollback`` then
``finish_rollback`` — the user reads what was decided (or queued) before waiting for the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlcicd.errors import MlcicdError
from mlcicd.pipeline import Reporter, RunOptions


@dataclass
class RunRequest:
    """A run of the pipeline asked for. A service queues it at once: its ``run_id``,
    ``commit`` and ``status``, ``existing`` when that commit's run was already there,
    ``superseded`` the queued runs it replaced. In this process (``run_id`` None) it starts
    with :meth:`Operations.finish_run`."""

    options: RunOptions
    service_url: str | None = None
    run_id: int | None = None
    commit: str = ""
    status: str = ""
    existing: bool = False
    superseded: list[int] = field(default_factory=list)


@dataclass
class Sample:
    """``deploy.sample`` sent to the endpoint a run deployed: its answer, or why none came."""

    request: str  # the sample as one line of JSON
    answer: str | None = None
    error: str | None = None


@dataclass
class RunDone:
    """A run that ended, or waits for a decision. ``record`` is its run and stages (what
    ``--json`` prints); ``error`` why it did not succeed, in ``failed_stage`` (its log
    ``failed_log`` when it is on this machine); ``deploy`` where it serves (the deploy stage's
    ``endpoint`` and ``url``, or ``arn`` and ``runtime_url``), ``sample`` the endpoint's
    answer to ``deploy.sample``."""

    run_id: int
    status: str
    elapsed: float
    record: dict[str, Any]
    error: MlcicdError | None = None
    failed_stage: str | None = None
    failed_log: Path | None = None
    deploy: dict[str, Any] = field(default_factory=dict)
    sample: Sample | None = None


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

    def request_run(self, options: RunOptions) -> RunRequest:
        """Ask for a run of the pipeline (queued at once by a service)."""
        ...

    def finish_run(
        self,
        request: RunRequest,
        reporter: Reporter,
        *,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunDone:
        """Run it here, or follow it in the service (``on_wait`` hears why it has not started),
        showing its stages to ``reporter``, until it ends or waits for approval. Ctrl-C stops
        a run here (recorded as Stopped); the service's goes on."""
        ...

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
