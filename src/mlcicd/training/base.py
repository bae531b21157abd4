"""The training-job contract every backend implements.

A :class:`TrainingJobSpec` says what to run (SageMaker's CreateTrainingJob, reduced to what
script mode needs); a :class:`TrainingBackend` runs it to the end and returns a
:class:`TrainingJobResult` (DescribeTrainingJob, reduced). A job that *runs* and fails is a
result with ``status="Failed"``, not an exception: the caller (the train stage) decides
what a failure means. :class:`~mlcicd.errors.TrainingError` is raised only when a job
cannot be started at all (bad spec, missing entry point, name already used).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal, Protocol

from mlcicd.errors import TrainingError
from mlcicd.shapes import NAME_RE, NAME_RULE, encode_hyperparameters
from mlcicd.training.toolkit import SAGEMAKER_HYPERPARAMETERS

# SageMaker's own patterns (CreateTrainingJob TrainingJobName, Channel ChannelName).
CHANNEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
# Environment variables the runner owns; a spec may not set them.
RESERVED_ENV = ("SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY", "TRAINING_JOB_NAME")

TrainingJobStatus = Literal["Completed", "Failed", "Stopped"]


@dataclass(frozen=True)
class MetricDefinition:
    """A SageMaker MetricDefinition: the first group of ``regex`` in a log line is the value."""

    name: str
    regex: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise TrainingError("a metric definition has an empty name")
        try:
            pattern = re.compile(self.regex)
        except re.error as exc:
            raise TrainingError(
                f"metric {self.name!r}: invalid regex {self.regex!r}: {exc}"
            ) from exc
        if pattern.groups < 1:
            raise TrainingError(
                f"metric {self.name!r}: regex {self.regex!r} has no group",
                hint="put the number in parentheses, e.g. 'accuracy=([0-9.]+)'",
            )
        object.__setattr__(self, "pattern", pattern)


@dataclass(frozen=True)
class Channel:
    """Input data: ``source`` (a directory, or a single file) appears as input/data/<name>/."""

    name: str
    source: Path

    def __post_init__(self) -> None:
        if not CHANNEL_NAME_PATTERN.fullmatch(self.name):
            raise TrainingError(
                f"channel name {self.name!r} is not valid",
                hint="use 1-64 letters, digits, '.', '-' or '_'",
            )


@dataclass(frozen=True)
class CheckpointConfig:
    """Where a job's ``/opt/ml/checkpoints`` is kept between attempts: ``bucket``/``prefix``
    in the artifact store (SageMaker's ``CheckpointConfig.S3Uri``)."""

    bucket: str
    prefix: str


@dataclass(frozen=True)
class TrainingJobSpec:
    """What to run. Validated on construction; filesystem checks happen in the backend."""

    name: str
    source_dir: Path
    entry_point: str
    python: Path
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    channels: Sequence[Channel] = ()
    metric_definitions: Sequence[MetricDefinition] = ()
    max_runtime_seconds: int = 86400
    environment: Mapping[str, str] = field(default_factory=dict)
    instance_type: str = "local"
    checkpoints: CheckpointConfig | None = None  # None: checkpoints/ starts empty, kept nowhere

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise TrainingError(
                f"training job name {self.name!r} is not valid", hint=f"use {NAME_RULE}"
            )
        entry = PurePosixPath(self.entry_point)
        if not self.entry_point or entry.is_absolute() or ".." in entry.parts:
            raise TrainingError(
                f"entry point {self.entry_point!r} must be a path relative to source_dir "
                f"{self.source_dir}"
            )
        if self.max_runtime_seconds < 1:
            raise TrainingError(
                f"max_runtime_seconds must be at least 1, not {self.max_runtime_seconds}"
            )
        names = [channel.name for channel in self.channels]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise TrainingError(f"channel {duplicates[0]!r} is given more than once")
        for key in self.hyperparameters:
            if not isinstance(key, str) or not key:
                raise TrainingError(f"hyperparameter name {key!r} must be a non-empty string")
            if key in SAGEMAKER_HYPERPARAMETERS:
                raise TrainingError(f"hyperparameter {key!r} is reserved: SageMaker sets it itself")
        encode_hyperparameters(self.hyperparameters)  # raises on values JSON cannot carry
        for key, value in self.environment.items():
            if key.startswith("SM_") or key in RESERVED_ENV:
                raise TrainingError(
                    f"environment variable {key} is set by the training runner and cannot be "
                    "overridden"
                )
            if not isinstance(value, str):
                raise TrainingError(
                    f"environment variable {key}: value must be a string, not {value!r}"
                )
        # Own copies: the spec is frozen, so callers mutating their dicts must not change it.
        object.__setattr__(self, "hyperparameters", dict(self.hyperparameters))
        object.__setattr__(self, "environment", dict(self.environment))
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "metric_definitions", tuple(self.metric_definitions))


@dataclass
class TrainingJobResult:
    """How a job ended (DescribeTrainingJob, reduced). Times are Unix seconds."""

    name: str
    status: TrainingJobStatus
    secondary_status: str  # "Completed", "Failed", "MaxRuntimeExceeded", "Interrupted"
    failure_reason: str | None
    metrics: dict[str, float]  # final value per metric (FinalMetricDataList)
    metric_series: list[tuple[str, float, float]]  # (name, value, timestamp), every match
    model_artifact: Path | None  # output/model.tar.gz, only when Completed
    model_sha256: str | None
    exit_code: int | None  # None when the job was interrupted
    started_at: float
    ended_at: float
    log_path: Path
    job_dir: Path

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    def raise_for_status(self) -> None:
        """Raise :class:`TrainingError` with the failure reason unless the job completed."""
        if not self.succeeded:
            reason = (self.failure_reason or "no reason recorded").strip().splitlines()
            raise TrainingError(
                f"training job {self.name} {self.status.lower()} ({self.secondary_status}): "
                f"{reason[0] if reason else ''}",
                hint=f"full log: {self.log_path}",
            )


class TrainingBackend(Protocol):
    """Runs training jobs somewhere: ``local`` (subprocesses) or ``sagemaker``."""

    TYPE: ClassVar[str]

    def run(
        self, spec: TrainingJobSpec, *, on_log: Callable[[str], None] | None = None
    ) -> TrainingJobResult:
        """Run ``spec`` to the end; call ``on_log`` with each log line as it arrives.

        Returns the result whatever the job's outcome; raises ``TrainingError`` only if the
        job could not be started. ``KeyboardInterrupt`` stops the job, records it as
        Stopped/Interrupted, and propagates.
        """
        ...


def parse_metrics(line: str, definitions: Sequence[MetricDefinition]) -> list[tuple[str, float]]:
    """``(name, value)`` for each definition whose regex matches ``line``.

    The value is the regex's first group; a match that is not a finite number is ignored,
    as SageMaker ignores it.
    """
    found: list[tuple[str, float]] = []
    for definition in definitions:
        match = definition.pattern.search(line)
        if match is None or match.group(1) is None:
            continue
        try:
            value = float(match.group(1))
        except ValueError:
            continue
        if math.isfinite(value):
            found.append((definition.name, value))
    return found
