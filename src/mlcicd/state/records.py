"""The records of the state database: one dataclass per row of a table, as callers see it.

SageMaker's nouns where the concept is the same (a ``TrainingJob``, a ``ModelPackage`` in a
group, an ``EndpointConfig``, a ``MonitoringExecution``). JSON columns are dicts or lists
here and 0/1 columns booleans (decoded in :mod:`mlcicd.state.db`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    id: int
    pipeline: str
    project_dir: str
    status: str
    commit_sha: str | None
    branch: str | None
    author: str | None
    message: str | None
    dirty: bool
    forced: bool
    pid: int | None
    pid_start: int | None
    started_at: float
    ended_at: float | None
    failed_stage: str | None
    failure_reason: str | None
    ref: str | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    queued_at: float | None = None
    retry_of: int | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


@dataclass
class StageExecution:
    run_id: int
    stage: str
    position: int
    status: str
    started_at: float | None
    ended_at: float | None
    message: str | None
    log_path: str | None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at


@dataclass
class TrainingJobRecord:
    name: str
    run_id: int | None
    cache_key: str
    status: str
    secondary_status: str | None
    failure_reason: str | None
    build_digest: str | None
    data_digest: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    model_uri: str | None
    model_sha256: str | None
    log_path: str | None
    started_at: float | None
    ended_at: float | None


@dataclass
class ModelPackage:
    group_name: str
    version: int
    status: str
    status_reason: str | None
    model_uri: str
    model_sha256: str
    metrics: dict[str, float]
    training_job: str | None
    build_digest: str | None
    commit_sha: str | None
    run_id: int | None
    lineage: dict[str, Any]
    created_at: float

    @property
    def arn(self) -> str:
        """SageMaker-style identifier: group/version."""
        return f"{self.group_name}/{self.version}"


@dataclass
class EndpointRecord:
    name: str
    backend: str
    status: str
    url: str | None
    port: int | None
    pid: int | None
    config_name: str | None
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    failure_reason: str | None
    created_at: float
    updated_at: float


@dataclass
class EndpointConfigRecord:
    name: str
    endpoint_name: str
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    run_id: int | None
    reason: str | None
    spec: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery: GitHub's id for it, its event, and the digest of its signed body.

    The id (``X-GitHub-Delivery``) is not covered by the signature, so a captured body resent
    under a new id is recognised by the digest."""

    id: str
    event: str
    body_sha256: str


@dataclass
class Approval:
    run_id: int
    model_group: str
    model_version: int
    status: str
    requested_at: float
    expires_at: float | None
    decided_by: str | None
    comment: str | None
    decided_at: float | None
    summary: dict[str, Any]


@dataclass
class Event:
    id: int
    at: float
    kind: str
    subject: str
    data: dict[str, Any]


@dataclass
class EndpointChange:
    id: int
    endpoint_name: str
    config_name: str | None
    model_group: str | None
    model_version: int | None
    model_sha256: str | None
    reason: str
    detail: str | None
    run_id: int | None
    at: float


# The outcomes of a monitoring execution.
COMPLETED = "Completed"
WITH_VIOLATIONS = "CompletedWithViolations"
SKIPPED = "Skipped"
FAILED = "Failed"


@dataclass
class ProcessingJobRecord:
    """One processing job (DescribeProcessingJob, reduced), under its step's cache key."""

    name: str
    run_id: int | None
    step: str
    cache_key: str
    status: str  # InProgress | Completed | Failed | Stopped
    failure_reason: str | None
    exit_message: str | None
    inputs: dict[str, Any]  # {name: digest of what it read}
    outputs: dict[str, Any]  # {name: {"uri", "sha256"}}
    report: dict[str, Any]  # the step's report, {} when it has none
    log_path: str | None
    started_at: float
    ended_at: float | None


@dataclass
class ModelBaseline:
    group_name: str
    version: int
    statistics_uri: str
    statistics_sha256: str
    constraints_uri: str
    constraints_sha256: str
    dataset: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def arn(self) -> str:
        """The model package it belongs to: group/version."""
        return f"{self.group_name}/{self.version}"


@dataclass
class MonitoringExecution:
    """One scheduled check of an endpoint's captured requests (SageMaker's MonitoringExecution)."""

    endpoint_name: str
    window_start: float
    window_end: float
    status: str
    records: int = 0
    violation_count: int = 0
    variants: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    id: int = 0

    @property
    def verdict(self) -> str:
        """What it found, in a few words: ``no violations``, ``3 violations``, ``skipped: why``…"""
        if self.status == COMPLETED:
            return "no violations"
        if self.status == WITH_VIOLATIONS:
            return f"{self.violation_count} violation{'s' if self.violation_count != 1 else ''}"
        return f"{self.status.lower()}: {self.reason}"


@dataclass
class TransformJobRecord:
    """A batch transform job (SageMaker's TransformJob): what ran, on what, how it ended."""

    name: str
    backend: str
    status: str
    failure_reason: str | None
    model_group: str | None
    model_version: int | None
    model_sha256: str
    input_uri: str
    output_uri: str
    settings: dict[str, Any] = field(default_factory=dict)
    objects: int = 0
    rows_in: int = 0
    rows_out: int = 0
    run_id: int | None = None
    pid: int | None = None
    pid_start: int | None = None
    log_path: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None

    @property
    def model(self) -> str:
        return f"{self.model_group}/{self.model_version}" if self.model_group else "?"
