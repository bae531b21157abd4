"""The processing-job contract every backend implements: SageMaker's ProcessingJob.

A :class:`ProcessingJobSpec` says what to run (CreateProcessingJob, reduced to a script: the
ScriptProcessor's ``python3 /opt/ml/processing/input/code/<entry_point> <arguments>``); a
:class:`ProcessingBackend` runs it to the end and returns a :class:`ProcessingJobResult`
(DescribeProcessingJob, reduced). As with training, a job that runs and fails is a result,
not an exception; :class:`~mlcicd.errors.ProcessingError` means it could not start.

The container's view, as SageMaker lays it out (:class:`ProcessingPaths`, under any base):

    /opt/ml/config/processingjobconfig.json    the CreateProcessingJob request
    /opt/ml/config/resourceconfig.json         {"current_host": "algo-1", "hosts": [...]}
    /opt/ml/processing/input/code/             the step's source_dir
    /opt/ml/processing/input/<name>/           each input (ProcessingInput.S3Input.LocalPath)
    /opt/ml/processing/output/<name>/          each output, uploaded when the job completes
    /opt/ml/output/message                     ExitMessage (first 1 KB), e.g. why it failed
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from mlcicd.errors import ProcessingError
from mlcicd.shapes import NAME_RE, NAME_RULE

if TYPE_CHECKING:
    from mlcicd.config import ProcessingStepConfig

# SageMaker's patterns (ProcessingJobName; InputName/OutputName without the dots we keep
# for references) and its ExitMessage/FailureReason limit.
IO_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MESSAGE_LIMIT = 1024
MAX_REPORT_BYTES = 1 << 20  # a report is a few numbers; anything larger is not one
# The data check as a processing job (the stack's pipeline, mlcicd.monitor.datacheck's
# ``processing_job``): the training channel and production's baseline in, one output out
# holding the channel's statistics.json and constraints.json (the new model's baseline),
# constraint_violations.json and the check's report.json.
DATA_CHECK_INPUT = "data"
DATA_CHECK_BASELINE_INPUT = "baseline"
DATA_CHECK_OUTPUT = "datacheck"
DATA_CHECK_REPORT = "report.json"
# The register-time explanation as a processing job (the stack's pipeline,
# mlcicd.explain.job's ``processing_job``): the training channel, the model archive, the
# inference code and (explain.baseline: FILE) the baseline CSV in; the report out.
EXPLAIN_DATA_INPUT = "data"
EXPLAIN_MODEL_INPUT = "model"
EXPLAIN_INFERENCE_INPUT = "inference"
EXPLAIN_BASELINE_INPUT = "baseline"
EXPLAIN_OUTPUT = "explain"
EXPLAIN_REPORT = "report.json"
# What of a step's settings its cache key covers (with its code, inputs and environment).
CACHED_SETTINGS = ("source_dir", "entry_point", "arguments", "environment", "outputs", "report")
CODE_INPUT = "code"  # the ScriptProcessor's input holding the script
DEFAULT_HOST = "algo-1"

ProcessingJobStatus = Literal["Completed", "Failed", "Stopped"]


@dataclass(frozen=True)
class ProcessingPaths:
    """``/opt/ml`` for a processing job, under ``base`` (a job directory locally)."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config"

    @property
    def job_config_file(self) -> Path:
        return self.config / "processingjobconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config / "resourceconfig.json"

    @property
    def code(self) -> Path:
        return self.input(CODE_INPUT)

    def input(self, name: str) -> Path:
        return self.base / "processing" / "input" / name

    def output(self, name: str) -> Path:
        return self.base / "processing" / "output" / name

    @property
    def message_file(self) -> Path:
        return self.base / "output" / "message"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"


@dataclass(frozen=True)
class ProcessingInput:
    """``source`` (a directory, or one file) appears as processing/input/<name>/."""

    name: str
    source: Path


@dataclass(frozen=True)
class ProcessingJobSpec:
    """What to run. Validated on construction; filesystem checks happen in the backend."""

    name: str
    source_dir: Path
    entry_point: str
    python: Path
    inputs: Sequence[ProcessingInput] = ()
    outputs: Sequence[str] = ()
    arguments: Sequence[str] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    max_runtime_seconds: int = 3600
    instance_type: str = "local"

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ProcessingError(
                f"processing job name {self.name!r} is not valid", hint=f"use {NAME_RULE}"
            )
        entry = PurePosixPath(self.entry_point)
        if not self.entry_point or entry.is_absolute() or ".." in entry.parts:
            raise ProcessingError(
                f"entry point {self.entry_point!r} must be a path relative to {self.source_dir}"
            )
        names = [i.name for i in self.inputs]
        for name in [*names, *self.outputs]:
            if not IO_NAME_PATTERN.fullmatch(name):
                raise ProcessingError(f"input or output name {name!r} is not valid")
        if CODE_INPUT in names:
            raise ProcessingError(f"input name {CODE_INPUT!r} is the script's own")
        for group in (names, list(self.outputs)):
            if len(set(group)) != len(group):
                raise ProcessingError(f"a name is given twice among {', '.join(group)}")
        if self.max_runtime_seconds < 1:
            raise ProcessingError(
                f"max runtime must be at least 1 s, not {self.max_runtime_seconds}"
            )
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "arguments", tuple(self.arguments))
        object.__setattr__(self, "environment", dict(self.environment))


@dataclass(frozen=True)
class OutputArtifact:
    """An output as the job left it: its directory, packed as ``archive`` of ``sha256``."""

    name: str
    directory: Path
    archive: Path
    sha256: str


@dataclass
class ProcessingJobResult:
    """How a job ended. Times are Unix seconds."""

    name: str
    status: ProcessingJobStatus
    failure_reason: str | None
    exit_message: str | None
    exit_code: int | None
    outputs: dict[str, OutputArtifact]  # only when Completed
    started_at: float
    ended_at: float
    log_path: Path
    job_dir: Path


class ProcessingBackend(Protocol):
    """Runs processing jobs somewhere: ``local`` (subprocesses)."""

    TYPE: ClassVar[str]

    def run(
        self, spec: ProcessingJobSpec, *, on_log: Callable[[str], None] | None = None
    ) -> ProcessingJobResult:
        """Run ``spec`` to the end, calling ``on_log`` with each log line. Returns the result
        whatever the outcome; raises ``ProcessingError`` only if the job could not start.
        ``KeyboardInterrupt`` stops the job and propagates."""
        ...


def exit_message(text: str) -> str:
    """ExitMessage: the first 1 KB of /opt/ml/output/message, as SageMaker keeps it."""
    return text.strip()[:MESSAGE_LIMIT]


def cache_key(
    step: ProcessingStepConfig, *, code: str, inputs: Mapping[str, str], environment: str
) -> str:
    """A step's cache key: its settings, the digest of its ``code`` (its source_dir), of each
    input and of the ``environment`` it runs in. The one rule for ``mlcicd run`` (digests from
    git and the store) and the pipeline's Lambda (digests of the source artifact and of the
    jobs that produced each output): an unchanged step on unchanged inputs is not run again."""
    settings = {k: getattr(step, k) for k in CACHED_SETTINGS}
    document = {"step": settings, "code": code, "inputs": dict(inputs), "env": environment}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=list).encode()).hexdigest()


def parse_report(data: bytes, where: str) -> dict[str, Any]:
    """A step's report (a PropertyFile) from its bytes: a JSON object of at most
    ``MAX_REPORT_BYTES``. ``where`` names it in the error (``step evaluate: report …``)."""
    if len(data) > MAX_REPORT_BYTES:
        raise ProcessingError(f"{where}: larger than {MAX_REPORT_BYTES} bytes, not a report")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: "[[[[…" — 1 MB of it nests deeper than the parser goes
        raise ProcessingError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ProcessingError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document
