"""Every error mlcicd raises on purpose.

    MlcicdError                 root: ``headline`` is what the CLI prints, exit code 1
    ├── ConfigError             mlcicd.yaml is missing, unparsable or invalid (file, key path)
    ├── ProjectError            the project directory is not usable (not a git repo, dirty tree,
    │                           a file the config names is missing)
    ├── StageError              a pipeline stage failed; carries the stage name
    │   ├── BuildError          environment could not be built, or the project's tests failed
    │   ├── TrainingError       the training job failed, was stopped or exceeded max_runtime
    │   ├── ProcessingError     a processing step's job failed, was stopped or gave no report
    │   ├── DataCheckError      new training data violates the production model's baseline
    │   ├── GateError           the model missed a quality threshold (metric, value, threshold)
    │   └── StagingError        the staging endpoint did not serve, the endpoint tests failed or
    │                           a load bound was missed (the figures are in ``outputs``)
    ├── ArtifactError           an artifact is missing, its digest does not match, or an archive
    │                           is unsafe to extract
    ├── EndpointError           an endpoint could not be created, updated, reached or deleted
    │   ├── PortInUseError      the requested port is taken
    │   └── EndpointRollbackError
    │                           an update was rolled back because an alarm tripped (its figures)
    ├── TransformError          a batch transform job cannot start (a bad setting, input or
    │                           output) or failed (a record the model refused: object and line)
    ├── NotFoundError           a run, model package or endpoint of that name does not exist
    ├── ExplainError            a model cannot be explained: its predict_fn gives labels only, a
    │                           feature is not a number, the attributions do not add up
    ├── MonitorError            data-quality monitoring cannot run: no baseline, no training data
    │   │                       to compute one from, an unreadable capture config
    │   └── NothingToCheckError a check has nothing to check: no such endpoint, capture disabled,
    │                           nothing captured in its window, no baseline for the model (a
    │                           scheduled check records "skipped", not a failure)
    ├── StateError              the state database is unusable or a transition is illegal
    ├── ServiceError            the service (`mlcicd up`) answered with an error, or did not answer
    │   └── TokenRefusedError   it answered 401: no token was sent, or not its own
    └── AwsError                an AWS API call failed: AWS's error code and message, the call
        └── StackError          a CloudFormation stack did not reach the state asked for

Each message says what went wrong, where, and what to do. Errors from libraries are
converted at the boundary (``raise ArtifactError(...) from exc``), so a traceback reaching
the user is always a bug.

The one family not here is :class:`mlcicd.serving.codecs.InvocationError` and its subclasses:
they are not failures of mlcicd but HTTP answers (400, 406, 413, 415, 500) an endpoint's worker
gives a client for one invocation, and never reach the CLI.
"""

from __future__ import annotations

from typing import Any


class MlcicdError(Exception):
    """Root of mlcicd's errors."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def headline(self) -> str:
        """One line for the terminal: the message, then what to do, if known."""
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def __str__(self) -> str:
        return self.headline


INTERRUPTED = "interrupted by the user (Ctrl-C)"


def reason_of(exc: BaseException) -> str:
    """What a job's record says of the exception that ended it: Ctrl-C, an mlcicd error's
    headline, or any other's type and message."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return exc.headline if isinstance(exc, MlcicdError) else f"{type(exc).__name__}: {exc}"


class ConfigError(MlcicdError):
    """mlcicd.yaml is missing, unparsable or invalid."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or "mlcicd.yaml"
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.key = key


class ProjectError(MlcicdError):
    """The project directory is not usable as it is."""

    exit_code = 2


class StageError(MlcicdError):
    """A pipeline stage failed. ``outputs`` is what it found before it failed (recorded with
    the failed stage, as a successful one's outputs are)."""

    stage = "pipeline"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        stage: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        if stage is not None:
            self.stage = stage
        self.outputs = outputs or {}


class BuildError(StageError):
    stage = "build"


class TrainingError(StageError):
    stage = "train"


class ProcessingError(StageError):
    stage = "process"


class DataCheckError(StageError):
    stage = "data_check"


class GateError(StageError):
    stage = "gate"


class StagingError(StageError):
    stage = "staging"


class ArtifactError(MlcicdError):
    """An artifact is missing, corrupt, or unsafe."""


class EndpointError(MlcicdError):
    """An endpoint could not be created, updated, reached or deleted."""


class PortInUseError(EndpointError):
    """The port an endpoint asked for is taken."""


class EndpointRollbackError(EndpointError):
    """An update was rolled back because an alarm tripped; ``rollback`` holds its figures."""

    def __init__(self, message: str, *, rollback: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rollback = rollback


class TransformError(MlcicdError):
    """A batch transform job cannot start or failed: names the flag or key, object and line."""


class NotFoundError(MlcicdError):
    """A named run, model package or endpoint does not exist."""

    exit_code = 3


class ExplainError(MlcicdError):
    """A model cannot be explained (docs/explain.md): what is missing, and what to change."""


class MonitorError(MlcicdError):
    """A baseline cannot be computed, or captured data cannot be checked against one.

    Exit code 1, never 3: ``mlcicd monitor check`` exits 3 for violations found."""


class NothingToCheckError(MonitorError):
    """A check found nothing it could check (yet): the endpoint does not exist or does not
    capture its requests, nothing was captured in the window, or the model that served has
    no baseline. A scheduled check is recorded as skipped, not failed."""


class StateError(MlcicdError):
    """The state database is unusable, or a state transition is not allowed."""


class ServiceError(MlcicdError):
    """The service (`mlcicd up`) answered with an error (its message), or did not answer."""


class TokenRefusedError(ServiceError):
    """The service answered 401: no token was sent, or not its own."""


class AwsError(MlcicdError):
    """An AWS API call failed. ``code`` is AWS's error code (``AccessDeniedException``,
    ``NoSuchKey``, ``404``…, or botocore's exception name when no request got an answer),
    ``aws_message`` AWS's own message, ``operation`` the call (``sagemaker:CreateTrainingJob``)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        aws_message: str = "",
        operation: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.aws_message = aws_message
        self.operation = operation


class StackError(AwsError):
    """A CloudFormation stack failed to be created, updated or deleted, or cannot be."""


__all__ = [
    "ArtifactError",
    "AwsError",
    "BuildError",
    "ConfigError",
    "EndpointError",
    "EndpointRollbackError",
    "GateError",
    "MlcicdError",
    "MonitorError",
    "NotFoundError",
    "NothingToCheckError",
    "PortInUseError",
    "ProjectError",
    "ServiceError",
    "StackError",
    "StageError",
    "StagingError",
    "StateError",
    "TokenRefusedError",
    "TrainingError",
]
