"""Processing jobs: SageMaker's Processing contract, and the backends that run it.

base.py    ProcessingJobSpec → ProcessingBackend.run → ProcessingJobResult; the /opt/ml layout
local.py   LocalProcessingBackend: jobs as subprocesses in <jobs_root>/<name>/
sagemaker.py  SageMakerProcessingBackend: CreateProcessingJob on SageMaker, its log and outputs
artifacts.py  a stored output as a directory again, extracted safely, once

:func:`open_backend` picks the backend by its ``TYPE`` (a step's ``backend``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.errors import ConfigError
from mlcicd.processing.base import (
    OutputArtifact,
    ProcessingBackend,
    ProcessingInput,
    ProcessingJobResult,
    ProcessingJobSpec,
    ProcessingJobStatus,
    ProcessingPaths,
)
from mlcicd.processing.local import LocalProcessingBackend

if TYPE_CHECKING:
    from mlcicd.config import ProcessingStepConfig
    from mlcicd.project import Project


def open_backend(step: ProcessingStepConfig, project: Project) -> ProcessingBackend:
    """The backend whose ``TYPE`` is the step's ``backend``."""
    jobs_root = project.state_dir / "processing-jobs"
    if step.backend == "local":
        return LocalProcessingBackend(jobs_root)
    if step.backend == "sagemaker":
        from mlcicd.processing.sagemaker import SageMakerProcessingBackend

        return SageMakerProcessingBackend.from_config(
            project.config, step, project.store, jobs_root
        )
    raise ConfigError(
        f"processing backend {step.backend!r} is not available in this version",
        key=f"processing.{step.name}.backend",
        hint="use backend: local",
    )


__all__ = [
    "LocalProcessingBackend",
    "OutputArtifact",
    "ProcessingBackend",
    "ProcessingInput",
    "ProcessingJobResult",
    "ProcessingJobSpec",
    "ProcessingJobStatus",
    "ProcessingPaths",
    "open_backend",
]
