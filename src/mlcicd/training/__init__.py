"""Training jobs: the SageMaker script-mode contract, and the backends that run it.

base.py       TrainingJobSpec → TrainingBackend.run → TrainingJobResult; parse_metrics
toolkit.py    the /opt/ml layout, SM_* environment and arguments, as pure functions
local.py      LocalTrainingBackend: jobs as subprocesses in <jobs_root>/<name>/
container.py  ``python -m mlcicd.training.container``: the same, inside a SageMaker image
podman.py     PodmanTrainingBackend: the host side, running that image's ``train`` with podman
sagemaker.py  SageMakerTrainingBackend: CreateTrainingJob on SageMaker, its logs and metrics
"""

from mlcicd.training.base import (
    Channel,
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
    decode_hyperparameters,
    encode_hyperparameters,
    hyperparameter_args,
    training_env_document,
    training_env_vars,
)

__all__ = [
    "Channel",
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
    "parse_metrics",
    "training_env_document",
    "training_env_vars",
]
