"""The pipeline's stages, in order. Each is backend-neutral: backends sit behind
``mlcicd.training`` (train) and ``mlcicd.endpoints`` (deploy).

    source.py      SOURCE: the commit resolved and its tree exported (only committed content)
    build.py       BUILD: the isolated environment from requirements.txt, the project's tests
    process.py     PROCESS (steps before training) and EVALUATE (after): ``processing:``'s jobs
    data_check.py  DATA_CHECK (``data_check: warn|fail``): training data against production's
    train.py       TRAIN: a training job under SageMaker's contract; its model.tar.gz stored
    gate.py        GATE: the thresholds (the rule in :mod:`mlcicd.thresholds`), then ...
    challenger.py  ... champion/challenger: is the new model as good as the one serving?
    approve.py     APPROVE (``approve: manual``): a person decides before production
    register.py    REGISTER: a model package in the registry, one version per model sha256
    transform.py   TRANSFORM (``transform:``): the registered model scores a dataset
    staging.py     STAGING (``staging:``): a staging endpoint, the endpoint tests, a load check
    deploy.py      DEPLOY: the endpoint created or updated to serve the registered model
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.config import Config
from mlcicd.pipeline import Stage
from mlcicd.stages.approve import ApproveStage
from mlcicd.stages.build import BuildStage
from mlcicd.stages.data_check import DataCheckStage
from mlcicd.stages.deploy import DeployStage
from mlcicd.stages.gate import GateStage
from mlcicd.stages.process import EvaluateStage, ProcessStage, processing_stages
from mlcicd.stages.register import RegisterStage
from mlcicd.stages.source import SourceStage
from mlcicd.stages.train import TrainStage

if TYPE_CHECKING:
    from mlcicd.stages.staging import StagingStage
    from mlcicd.stages.transform import TransformStage


def default_stages(config: Config | None = None) -> list[Stage]:
    """The pipeline's stages; with ``approve: manual``, an approval before the model is
    registered — or, with ``staging:``, after staging, so the person sees its results; with
    ``transform:``, a batch transform by the new model just before deploy — after staging and
    approval, so a model rejected there has scored nothing."""
    approve: list[Stage] = (
        [ApproveStage()] if config is not None and config.approve.mode == "manual" else []
    )
    before, after = processing_stages(config)
    check: list[Stage] = (
        [DataCheckStage()] if config is not None and config.data_check != "off" else []
    )
    # processing: steps before training, the data check, then the steps after it (evaluate)
    trained: list[Stage] = [*before, *check, TrainStage(), *after, GateStage()]
    # The staging and transform stages (a load client, the transform machinery) are imported
    # only for a pipeline that has them: every `mlcicd run` starts here.
    transform: list[Stage] = []
    if config is not None and config.transform is not None:
        from mlcicd.stages.transform import TransformStage

        transform = [TransformStage()]
    if config is not None and config.staging is not None:
        from mlcicd.stages.staging import StagingStage

        return [
            SourceStage(),
            BuildStage(),
            *trained,
            RegisterStage(),
            StagingStage(),
            *approve,
            *transform,
            DeployStage(),
        ]
    return [
        SourceStage(),
        BuildStage(),
        *trained,
        *approve,
        RegisterStage(),
        *transform,
        DeployStage(),
    ]


__all__ = [
    "ApproveStage",
    "BuildStage",
    "DataCheckStage",
    "DeployStage",
    "EvaluateStage",
    "GateStage",
    "ProcessStage",
    "RegisterStage",
    "SourceStage",
    "StagingStage",
    "TrainStage",
    "TransformStage",
    "default_stages",
]


def __getattr__(name: str) -> object:
    """``StagingStage`` and ``TransformStage``, imported when first asked for."""
    if name == "StagingStage":
        from mlcicd.stages.staging import StagingStage

        return StagingStage
    if name == "TransformStage":
        from mlcicd.stages.transform import TransformStage

        return TransformStage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
