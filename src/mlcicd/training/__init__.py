"""Training jobs: the SageMaker script-mode contract, and the backends that run it.

base.py       TrainingJobSpec → TrainingBackend.run → TrainingJobResult; parse_metrics
toolkit.py    the /opt/ml layout, SM_* environment and arguments, as pure functions
local.py      LocalTrainingBackend: jobs as subprocesses in <jobs_root>/<name>/
checkpoints.py  /opt/ml/checkpoints kept in the artifact store between attempts
container.py  ``python -m mlcicd.training.container``: the same, inside a SageMaker image
podman.py     PodmanTrainingBackend: the host side, running that image's ``train`` with podman
sagemaker.py  SageMakerTrainingBackend: CreateTrainingJob on SageMaker, its logs and metrics

:func:`open_backend` picks the backend by its ``TYPE`` (``train.backend``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlcicd.errors import ConfigError
from mlcicd.shapes import decode_hyperparameters, encode_hyperparameters
from mlcicd.training.base import (
    Channel,
    CheckpointConfig,
    MetricDefinition,
    TrainingBackend,
    TrainingJobResult,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_metrics,
)
from mlcicd.training.local import LocalTrainingBackend
from mlcicd.training.toolkit import (
    TrainingPaths,
    hyperparameter_args,
    training_env_document,
    training_env_vars,
)

if TYPE_CHECKING:  # the container entry (training/container.py) runs without either
    from mlcicd.config import TrainConfig
    from mlcicd.project import Project


def open_backend(
    config: TrainConfig,
    project: Project,
    on_log: Callable[[str], None] | None = None,
    *,
    image: str | None = None,
) -> TrainingBackend:
    """The backend whose ``TYPE`` is ``train.backend``; ``image`` is the build stage's (what a
    ``container`` job runs unless ``train.image`` names one). Each is imported only when chosen.
    """
    if config.backend == "local":
        return LocalTrainingBackend(project.state_dir / "jobs", store=project.store)
    if config.backend == "sagemaker":
        from mlcicd.training.sagemaker import SageMakerTrainingBackend

        backend = SageMakerTrainingBackend.from_config(
            project.config, project.store, project.state_dir / "jobs"
        )
        # Once per run, before any upload, SageMaker call or job record: an image never pushed
        # would otherwise fail the job only minutes in.
        found = backend.check_image()
        if found and on_log is not None:
            on_log(found)
        return backend
    if config.backend == "container":
        from mlcicd.training.podman import PodmanTrainingBackend

        if not (config.image or image):
            raise ConfigError(
                "train.backend: container needs an image, and none was built",
                key="train.image",
                hint="set build.image: true (or train.image: TAG)",
            )
        return PodmanTrainingBackend(
            project.state_dir / "jobs", config.image or str(image), store=project.store
        )
    raise ConfigError(
        f"training backend {config.backend!r} is not available in this version",
        key="train.backend",
        hint="use backend: local",
    )


__all__ = [
    "Channel",
    "CheckpointConfig",
    "LocalTrainingBackend",
    "MetricDefinition",
    "TrainingBackend",
    "TrainingJobResult",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "TrainingPaths",
    "decode_hyperparameters",
    "encode_hyperparameters",
    "hyperparameter_args",
    "open_backend",
    "parse_metrics",
    "training_env_document",
    "training_env_vars",
]
