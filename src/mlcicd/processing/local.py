"""The local processing backend: a SageMaker processing job as a subprocess on this machine.

Each job gets ``<jobs_root>/<name>/``, laid out like ``/opt/ml`` (:class:`ProcessingPaths`),
plus ``logs/processing.log``, ``description.json`` and ``outputs/<name>.tar.gz``. A script
finds that base in ``SAGEMAKER_BASE_DIR`` — the variable the SageMaker toolkits read for
``/opt/ml`` — so ``Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing"``
is the same directory here and on SageMaker, where the variable is unset. The
``processingjobconfig.json`` names each input's and output's ``LocalPath`` where it is on
this machine.

Deliberate choices, as in :mod:`mlcicd.training.local`:

- inputs are hard-linked into ``processing/input/<name>/`` when on the same filesystem
  (copied otherwise): a script must not write into its inputs in place;
- outputs are packed (``mlcicd.archive.pack_dir``: reproducible, links refused) only when
  the job completes, as SageMaker uploads them at the end (``S3UploadMode: EndOfJob``);
- the script's environment is :func:`~mlcicd.process.child_environment` (no mlcicd tokens,
  no AWS credentials: a local job's inputs and outputs are local files) without Python's own
  variables, then the step's ``environment``, then ``SAGEMAKER_BASE_DIR``, which wins;
- past ``max_runtime_seconds`` the job is stopped (SIGTERM, then SIGKILL) as
  ``MaxRuntimeExceeded``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.archive import pack_dir
from mlcicd.errors import ArtifactError, ProcessingError
from mlcicd.fsutil import atomic_write_json, copy_code, link_into, open_private_log
from mlcicd.process import ProcessOutcome, exit_reason, run_streaming, script_environment
from mlcicd.processing.base import (
    CODE_INPUT,
    DEFAULT_HOST,
    OutputArtifact,
    ProcessingJobResult,
    ProcessingJobSpec,
    ProcessingJobStatus,
    ProcessingPaths,
    exit_message,
)

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def job_config(spec: ProcessingJobSpec, paths: ProcessingPaths) -> dict[str, Any]:
    """processingjobconfig.json: the CreateProcessingJob request, LocalPaths on this machine."""
    code = paths.code / spec.entry_point
    return {
        "ProcessingJobName": spec.name,
        "ProcessingJobArn": f"local:processing-job/{spec.name}",
        "AppSpecification": {
            "ImageUri": "local",
            "ContainerEntrypoint": ["python3", str(code)],
            "ContainerArguments": list(spec.arguments),
        },
        "Environment": dict(spec.environment),
        "ProcessingInputs": [
            {
                "InputName": name,
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": source.absolute().as_uri(),
                    "LocalPath": str(paths.input(name)),
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
            for name, source in [(CODE_INPUT, spec.source_dir)]
            + [(i.name, i.source) for i in spec.inputs]
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": name,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": (paths.base / "outputs" / f"{name}.tar.gz").as_uri(),
                        "LocalPath": str(paths.output(name)),
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for name in spec.outputs
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": spec.instance_type,
                "VolumeSizeInGB": 0,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
    }


class LocalProcessingBackend:
    """Runs processing jobs as local processes, one directory per job under ``jobs_root``."""

    TYPE: ClassVar[str] = "local"

    def __init__(self, jobs_root: Path, *, stop_grace_seconds: float = 5.0) -> None:
        self.jobs_root = Path(jobs_root).absolute()
        self.stop_grace_seconds = stop_grace_seconds

    def run(
        self, spec: ProcessingJobSpec, *, on_log: Callable[[str], None] | None = None
    ) -> ProcessingJobResult:
        self._check_sources(spec)
        paths = ProcessingPaths(self.jobs_root / spec.name)
        self.jobs_root.mkdir(parents=True, exist_ok=True)
        try:
            paths.base.mkdir()
        except FileExistsError:
            raise ProcessingError(
                f"processing job {spec.name} already exists at {paths.base}",
                hint="job names are unique, as on SageMaker; give this run a new name",
            ) from None
        log_path = paths.base / "logs" / "processing.log"
        created = time.time()
        description: dict[str, Any] = {
            **job_config(spec, paths),
            "ProcessingJobStatus": "InProgress",
            "CreationTime": _iso(created),
        }
        atomic_write_json(paths.base / "description.json", description)
        try:
            env, command = self._prepare(spec, paths)
            outcome = self._execute(command, paths, env, log_path, spec, on_log)
            status, reason, message, outputs = self._conclude(spec, paths, outcome)
        except KeyboardInterrupt:
            description.update(
                ProcessingJobStatus="Stopped", FailureReason="interrupted (Ctrl-C) and stopped"
            )
            atomic_write_json(paths.base / "description.json", description)
            raise
        except OSError as exc:
            description.update(ProcessingJobStatus="Failed", FailureReason=str(exc))
            atomic_write_json(paths.base / "description.json", description)
            raise ProcessingError(f"processing job {spec.name} could not run: {exc}") from exc
        ended = time.time()
        description.update(
            ProcessingJobStatus=status,
            ProcessingEndTime=_iso(ended),
            ExitMessage=message,
            ExitCode=outcome.exit_code,
            **({"FailureReason": reason} if reason else {}),
        )
        atomic_write_json(paths.base / "description.json", description)
        return ProcessingJobResult(
            name=spec.name,
            status=status,
            failure_reason=reason,
            exit_message=message,
            exit_code=outcome.exit_code,
            outputs=outputs,
            started_at=created,
            ended_at=ended,
            log_path=log_path,
            job_dir=paths.base,
        )

    @staticmethod
    def _check_sources(spec: ProcessingJobSpec) -> None:
        """Everything the job reads must exist before anything is created."""
        entry = spec.source_dir / spec.entry_point
        if not entry.is_file():
            raise ProcessingError(
                f"entry point {spec.entry_point!r} not found: looked for {entry.absolute()}",
                hint="entry_point is a path relative to source_dir",
            )
        python = spec.python
        if not python.is_file() or not os.access(python, os.X_OK):
            raise ProcessingError(f"python interpreter {python} does not exist")
        for item in spec.inputs:
            if not item.source.exists():
                raise ProcessingError(
                    f"input {item.name!r}: {item.source.absolute()} does not exist",
                    hint="commit the data, or point the step's inputs at it",
                )

    def _prepare(
        self, spec: ProcessingJobSpec, paths: ProcessingPaths
    ) -> tuple[dict[str, str], list[str]]:
        """Lay out the job directory; return the script's environment and command."""
        copy_code(spec.source_dir, paths.code, skip=self.jobs_root)
        for item in spec.inputs:
            link_into(item.source, paths.input(item.name))
        for name in spec.outputs:
            paths.output(name).mkdir(parents=True)
        paths.message_file.parent.mkdir(parents=True)
        atomic_write_json(paths.job_config_file, job_config(spec, paths))
        atomic_write_json(
            paths.resource_config_file, {"current_host": DEFAULT_HOST, "hosts": [DEFAULT_HOST]}
        )
        env = script_environment()
        env.update(spec.environment)
        env[BASE_DIR_ENV] = str(paths.base)
        command = [str(spec.python), str(paths.code / spec.entry_point), *spec.arguments]
        return env, command

    def _execute(
        self,
        command: list[str],
        paths: ProcessingPaths,
        env: dict[str, str],
        log_path: Path,
        spec: ProcessingJobSpec,
        on_log: Callable[[str], None] | None,
    ) -> ProcessOutcome:
        with open_private_log(log_path) as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                if on_log is not None:
                    on_log(line)

            return run_streaming(
                command,
                cwd=paths.code,
                env=env,
                on_line=on_line,
                max_runtime_seconds=spec.max_runtime_seconds,
                stop_grace_seconds=self.stop_grace_seconds,
            )

    @staticmethod
    def _conclude(
        spec: ProcessingJobSpec, paths: ProcessingPaths, outcome: ProcessOutcome
    ) -> tuple[ProcessingJobStatus, str | None, str | None, dict[str, OutputArtifact]]:
        message = None
        for file in (paths.message_file, paths.failure_file):
            if file.is_file():
                message = exit_message(file.read_text(encoding="utf-8", errors="replace"))
                break
        if outcome.timed_out:
            return (
                "Stopped",
                f"MaxRuntimeExceeded: the processing job ran longer than "
                f"{spec.max_runtime_seconds} s (MaxRuntimeInSeconds) and was stopped",
                message,
                {},
            )
        if outcome.exit_code != 0:
            reason = exit_reason("processing script", outcome.exit_code, outcome.tail)
            if message:
                reason = f"AlgorithmError: {message} (exit code {outcome.exit_code})"
            return "Failed", reason, message, {}
        outputs: dict[str, OutputArtifact] = {}
        for name in spec.outputs:
            archive = paths.base / "outputs" / f"{name}.tar.gz"
            try:
                sha256 = pack_dir(paths.output(name), archive)
            except ArtifactError as exc:
                return "Failed", f"ClientError: output {name!r}: {exc}", message, {}
            outputs[name] = OutputArtifact(name, paths.output(name), archive, sha256)
        return "Completed", None, message, outputs
