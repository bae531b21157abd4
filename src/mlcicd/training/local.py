"""The local training backend: a SageMaker training job as a subprocess on this machine.

Each job gets ``<jobs_root>/<name>/``, laid out like ``/opt/ml`` (see :class:`TrainingPaths`)
plus ``logs/training.log`` and ``description.json``; every ``SM_*`` path points into it, so
a script that reads the environment (as SageMaker scripts do) runs unchanged.

Deliberate choices, where SageMaker leaves room:

- Channel files are hard-linked into ``input/data/<channel>/`` when on the same filesystem
  (copied otherwise): instant for big data sets, but a script that writes *into* its input
  files in place would change the originals. SageMaker scripts do not; ours must not.
- ``output/data/metrics.json`` (``{name: number}``), if the script writes it, is authoritative
  for the names it contains: its value replaces the last one read from the log. The log
  series (``metric_series``) keeps every regex match. A malformed file fails the job.
- The model is packed only when the job completes; a completed script that wrote nothing to
  ``SM_MODEL_DIR`` fails the job. (SageMaker also uploads the model of a *stopped* job.)
- With ``spec.checkpoints`` (``train.checkpoints`` or ``use_spot``), ``checkpoints/`` — the
  job's ``/opt/ml/checkpoints`` — starts with what the last attempt of the same training left
  in the store, and what this attempt leaves is kept there when the script ends, however it
  ends (:mod:`mlcicd.training.checkpoints`). SageMaker uploads checkpoints while the job runs;
  here they are kept when the script ends, so only the death of this runner itself loses them.
- The script inherits this process's environment minus Python's own variables
  (``PYTHONPATH``, ``VIRTUAL_ENV``, …), any stale ``SM_*`` and the secrets
  (:func:`~mlcicd.process.child_environment`: mlcicd's tokens, AWS credentials — a local
  job's data and model are local files); then ``spec.environment``; then the toolkit's
  variables, which win.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.archive import pack_dir
from mlcicd.errors import ArtifactError, TrainingError
from mlcicd.fsutil import atomic_write_json, copy_code, link_into, open_private_log
from mlcicd.process import ProcessOutcome, run_streaming, script_environment
from mlcicd.shapes import decode_hyperparameters, encode_hyperparameters
from mlcicd.store.base import ArtifactStore
from mlcicd.training import checkpoints
from mlcicd.training.base import (
    TrainingJobResult,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_metrics,
)
from mlcicd.training.toolkit import (
    TrainingPaths,
    algorithm_error_reason,
    failure_reason_from_file,
    hyperparameter_args,
    input_data_config,
    missing_model_reason,
    resource_config,
    script_mode_env,
)


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _read_metrics_file(path: Path) -> dict[str, float]:
    """``{name: number}`` from the script's metrics file; ValueError says what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of {{name: number}}")
    metrics: dict[str, float] = {}
    for name, value in data.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"metric {name!r} in {path} is {value!r}, not a finite number")
        metrics[name] = float(value)
    return metrics


def _resolve_python(python: Path) -> Path:
    if not python.is_absolute() and len(python.parts) == 1:
        found = shutil.which(str(python))
        python = Path(found) if found else python
    python = python.absolute()  # not resolve(): a venv's python must keep its own path
    if not python.is_file() or not os.access(python, os.X_OK):
        raise TrainingError(
            f"python interpreter {python} does not exist or is not executable",
            hint="build the training environment first",
        )
    return python


@dataclass
class _Job:
    """One job's record while it runs; ``describe()`` is its description.json."""

    spec: TrainingJobSpec
    paths: TrainingPaths
    created_at: float
    python: Path
    status: TrainingJobStatus | None = None  # None while in progress
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    final_metrics: dict[str, tuple[float, float]] = field(default_factory=dict)
    metric_series: list[tuple[str, float, float]] = field(default_factory=list)
    model_artifact: Path | None = None
    model_sha256: str | None = None
    training_image: str | None = None  # the image the job ran in (the container backend)
    resumed_from: str | None = None  # the job whose checkpoints this one started with

    @property
    def log_path(self) -> Path:
        return self.paths.base / "logs" / "training.log"

    @property
    def description_path(self) -> Path:
        return self.paths.base / "description.json"

    def transition(self, secondary_status: str, message: str) -> None:
        now = time.time()
        if self.transitions:
            self.transitions[-1]["EndTime"] = _iso(now)
        self.transitions.append(
            {"Status": secondary_status, "StartTime": _iso(now), "StatusMessage": message}
        )
        self.secondary_status = secondary_status
        self.write_description()

    def finish(
        self, status: TrainingJobStatus, secondary_status: str, failure_reason: str | None
    ) -> None:
        self.status = status
        self.failure_reason = failure_reason
        self.ended_at = time.time()
        self.transition(secondary_status, failure_reason or "Training job completed")

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        description: dict[str, Any] = {
            "TrainingJobName": spec.name,
            "TrainingJobStatus": self.status or "InProgress",
            "SecondaryStatus": self.secondary_status,
            "HyperParameters": self.hyperparameters,
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions
                ],
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel.name,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": channel.source.absolute().as_uri(),
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                    "RecordWrapperType": "None",
                }
                for channel in spec.channels
            ],
            "OutputDataConfig": {"S3OutputPath": str(self.paths.output)},
            "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
            "CheckpointConfig": {"LocalPath": str(self.paths.checkpoints)},
            "CheckpointsRestoredFrom": self.resumed_from,
            "Environment": dict(spec.environment),
            "CreationTime": _iso(self.created_at),
            "TrainingStartTime": _iso(self.started_at),
            "TrainingEndTime": _iso(self.ended_at),
            "LastModifiedTime": _iso(time.time()),
            "SecondaryStatusTransitions": self.transitions,
            "FinalMetricDataList": [
                {"MetricName": name, "Value": value, "Timestamp": _iso(at)}
                for name, (value, at) in sorted(self.final_metrics.items())
            ],
            "LocalJob": {
                "JobDir": str(self.paths.base),
                "LogPath": str(self.log_path),
                "Python": str(self.python),
                "Command": self.command,
                "ExitCode": self.exit_code,
                "ModelSha256": self.model_sha256,
            },
        }
        if self.training_image is not None:
            description["AlgorithmSpecification"]["TrainingImage"] = self.training_image
        if self.failure_reason is not None:
            description["FailureReason"] = self.failure_reason
        if self.started_at is not None and self.ended_at is not None:
            description["TrainingTimeInSeconds"] = round(self.ended_at - self.started_at)
        if self.model_artifact is not None:
            description["ModelArtifacts"] = {"S3ModelArtifacts": str(self.model_artifact)}
        return description

    def write_description(self) -> None:
        atomic_write_json(self.description_path, self.describe())

    def result(self) -> TrainingJobResult:
        assert self.status is not None, "result() of a job still in progress"
        return TrainingJobResult(
            name=self.spec.name,
            status=self.status,
            secondary_status=self.secondary_status,
            failure_reason=self.failure_reason,
            metrics={name: value for name, (value, _) in self.final_metrics.items()},
            metric_series=list(self.metric_series),
            model_artifact=self.model_artifact,
            model_sha256=self.model_sha256,
            exit_code=self.exit_code,
            started_at=self.started_at if self.started_at is not None else self.created_at,
            ended_at=self.ended_at if self.ended_at is not None else time.time(),
            log_path=self.log_path,
            job_dir=self.paths.base,
        )


class LocalTrainingBackend:
    """Runs training jobs as local processes, one directory per job under ``jobs_root``."""

    TYPE: ClassVar[str] = "local"

    def __init__(
        self,
        jobs_root: Path,
        *,
        stop_grace_seconds: float = 5.0,
        store: ArtifactStore | None = None,
    ) -> None:
        """``store``: where ``spec.checkpoints`` are kept between attempts."""
        self.jobs_root = Path(jobs_root).absolute()
        self.stop_grace_seconds = stop_grace_seconds
        self.store = store

    def job_dir(self, name: str) -> Path:
        return self.jobs_root / name

    def run(
        self, spec: TrainingJobSpec, *, on_log: Callable[[str], None] | None = None
    ) -> TrainingJobResult:
        python = _resolve_python(spec.python)
        self._check_sources(spec)
        if spec.checkpoints is not None and self.store is None:
            raise TrainingError(
                f"training job {spec.name} keeps checkpoints, and this backend has no store",
                hint="give LocalTrainingBackend the project's store (store=project.store)",
            )
        paths = TrainingPaths(self.job_dir(spec.name))
        self.jobs_root.mkdir(parents=True, exist_ok=True)
        try:
            paths.base.mkdir()
        except FileExistsError:
            raise TrainingError(
                f"training job {spec.name} already exists at {paths.base}",
                hint="job names are unique, as on SageMaker; give this run a new name",
            ) from None
        job = _Job(spec=spec, paths=paths, created_at=time.time(), python=python)
        job.transition("Starting", "Preparing the instances for training")
        try:
            env = self._prepare(job)
            self._restore_checkpoints(job, on_log)
            job.transition("Training", "Training the model")
            try:
                outcome = self._execute(job, env, on_log)
            except BaseException:
                self._keep_checkpoints(job, on_log, completed=False)
                raise
            self._conclude(job, outcome)
            self._keep_checkpoints(job, on_log, completed=job.status == "Completed")
        except KeyboardInterrupt:
            job.finish(
                "Stopped", "Interrupted", "the training job was interrupted (Ctrl-C) and stopped"
            )
            raise
        except OSError as exc:
            job.finish("Failed", "Failed", f"could not run the training job: {exc}")
            raise TrainingError(f"training job {spec.name} could not run: {exc}") from exc
        except BaseException as exc:
            job.finish("Failed", "Failed", f"the training runner failed: {exc!r}")
            raise
        return job.result()

    def _check_sources(self, spec: TrainingJobSpec) -> None:
        """Everything the job reads must exist before anything is created."""
        if not spec.source_dir.is_dir():
            raise TrainingError(f"source_dir {spec.source_dir.absolute()} is not a directory")
        entry = spec.source_dir / spec.entry_point
        if not entry.is_file():
            raise TrainingError(
                f"entry point {spec.entry_point!r} not found: looked for {entry.absolute()}",
                hint="entry_point is a path relative to source_dir",
            )
        for channel in spec.channels:
            if not channel.source.exists():
                raise TrainingError(
                    f"channel {channel.name!r}: source {channel.source.absolute()} does not exist"
                )

    def _prepare(self, job: _Job) -> dict[str, str]:
        """Lay out the job directory; return the script's environment."""
        spec, paths = job.spec, job.paths
        for directory in (
            paths.input_config,
            paths.input_data,
            paths.model,
            paths.output_data,
            paths.output_intermediate,
            paths.checkpoints,
            job.log_path.parent,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        copy_code(spec.source_dir, paths.code, skip=self.jobs_root)
        for channel in spec.channels:
            link_into(channel.source, paths.channel(channel.name))

        job.hyperparameters = encode_hyperparameters(
            {
                **spec.hyperparameters,
                # What the SageMaker Python SDK adds for script mode.
                "sagemaker_program": spec.entry_point,
                "sagemaker_submit_directory": str(paths.code),
                "sagemaker_container_log_level": 20,
                "sagemaker_job_name": spec.name,
            }
        )
        resources = resource_config(spec.instance_type)
        data_config = input_data_config([channel.name for channel in spec.channels])
        atomic_write_json(paths.hyperparameters_file, job.hyperparameters)
        atomic_write_json(paths.resource_config_file, resources)
        atomic_write_json(paths.input_data_config_file, data_config)

        hyperparameters = decode_hyperparameters(job.hyperparameters)
        runner_env = {
            "SAGEMAKER_PROGRAM": spec.entry_point,
            "SAGEMAKER_SUBMIT_DIRECTORY": str(paths.code),
            "TRAINING_JOB_NAME": spec.name,
        }
        env = script_mode_env(
            paths,
            {**script_environment(), **spec.environment, **runner_env},
            code_dir=paths.code,
            hyperparameters=hyperparameters,
            resource_config=resources,
            input_data_config=data_config,
            num_cpus=os.cpu_count() or 1,
        )
        job.command = [str(job.python), spec.entry_point, *hyperparameter_args(hyperparameters)]
        return env

    def _restore_checkpoints(self, job: _Job, on_log: Callable[[str], None] | None) -> None:
        where = job.spec.checkpoints
        if where is None or self.store is None:
            return
        restored = checkpoints.restore(self.store, where, job.paths.checkpoints)
        if restored.files:
            job.resumed_from = restored.job
            self._say(
                job,
                on_log,
                f"checkpoints: {restored.files} file(s) of job {restored.job or '(unnamed)'} "
                "restored into /opt/ml/checkpoints",
            )

    def _keep_checkpoints(
        self, job: _Job, on_log: Callable[[str], None] | None, *, completed: bool
    ) -> None:
        """Keep what the script left in checkpoints/ (a completed job clears the kept set).
        A store that fails here is reported, not raised: the job's outcome stands."""
        where = job.spec.checkpoints
        if where is None or self.store is None:
            return
        try:
            if completed:
                checkpoints.clear(self.store, where, job.spec.name)
                return
            kept = checkpoints.save(self.store, where, job.paths.checkpoints, job.spec.name)
        except (ArtifactError, OSError) as exc:
            self._say(job, on_log, f"checkpoints: could not keep them in the store: {exc}")
            return
        self._say(
            job,
            on_log,
            f"checkpoints: {kept} file(s) kept at {self.store.uri(where.bucket, where.prefix)}",
        )

    @staticmethod
    def _say(job: _Job, on_log: Callable[[str], None] | None, line: str) -> None:
        """A line of the runner's own in the job's log."""
        with open_private_log(job.log_path) as log:
            log.write(line + "\n")
        if on_log is not None:
            on_log(line)

    def _execute(
        self, job: _Job, env: dict[str, str], on_log: Callable[[str], None] | None
    ) -> ProcessOutcome:
        definitions = job.spec.metric_definitions
        with open_private_log(job.log_path) as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                now = time.time()
                for name, value in parse_metrics(line, definitions):
                    job.metric_series.append((name, value, now))
                    job.final_metrics[name] = (value, now)
                if on_log is not None:
                    on_log(line)

            job.started_at = time.time()
            job.write_description()
            try:
                outcome = self._run(job, env, on_line)
            finally:
                job.ended_at = time.time()
        job.exit_code = outcome.exit_code
        return outcome

    def _run(
        self, job: _Job, env: dict[str, str], on_line: Callable[[str], None]
    ) -> ProcessOutcome:
        """Run the job's command to the end, stopped at its max runtime."""
        return run_streaming(
            job.command,
            cwd=job.paths.code,
            env=env,
            on_line=on_line,
            max_runtime_seconds=job.spec.max_runtime_seconds,
            stop_grace_seconds=self.stop_grace_seconds,
        )

    def _conclude(self, job: _Job, outcome: ProcessOutcome) -> None:
        paths = job.paths
        metrics_file = paths.output_data / "metrics.json"
        metrics_error: str | None = None
        if metrics_file.exists():
            try:
                for name, value in _read_metrics_file(metrics_file).items():
                    job.final_metrics[name] = (value, job.ended_at or time.time())
            except ValueError as exc:
                metrics_error = f"ClientError: {exc}"

        if outcome.timed_out:
            limit = job.spec.max_runtime_seconds
            job.finish(
                "Stopped",
                "MaxRuntimeExceeded",
                f"MaxRuntimeExceeded: the training job ran longer than max_runtime_seconds={limit} "
                f"(MaxRuntimeInSeconds) and was stopped",
            )
            return
        if outcome.exit_code != 0:
            reason = None
            if paths.failure_file.is_file():
                reason = failure_reason_from_file(paths.failure_file.read_text(errors="replace"))
            job.finish(
                "Failed",
                "Failed",
                reason or algorithm_error_reason(outcome.exit_code, outcome.tail),
            )
            return
        if metrics_error is not None:
            job.finish("Failed", "Failed", metrics_error)
            return
        missing_model = missing_model_reason(paths.model)
        if missing_model is not None:
            job.finish("Failed", "Failed", missing_model)
            return
        job.transition("Uploading", "Packing the model into model.tar.gz")
        artifact = paths.output / "model.tar.gz"
        try:
            job.model_sha256 = pack_dir(paths.model, artifact)
        except ArtifactError as exc:
            job.finish("Failed", "Failed", f"ClientError: {exc}")
            return
        job.model_artifact = artifact
        paths.success_file.touch()
        job.finish("Completed", "Completed", None)
