"""The pipeline's stages, in order. Each is backend-neutral: backends sit behind
``mlcicd.training`` (train) and ``mlcicd.endpoints`` (deploy)."""

from __future__ import annotations

from mlcicd.config import Config
from mlcicd.pipeline import Stage
from mlcicd.stages.approve import ApproveStage
from mlcicd.stages.build import BuildStage
from mlcicd.stages.deploy import DeployStage
from mlcicd.stages.gate import GateStage
from mlcicd.stages.register import RegisterStage
from mlcicd.stages.source import SourceStage
from mlcicd.stages.train import TrainStage


def default_stages(config: Config | None = None) -> list[Stage]:
    """The pipeline's stages; with ``approve: manual``, an approval before the model is
    registered."""
    approve: list[Stage] = (
        [ApproveStage()] if config is not None and config.approve.mode == "manual" else []
    )
    return [
        SourceStage(),
        BuildStage(),
        TrainStage(),
        GateStage(),
        *approve,
        RegisterStage(),
        DeployStage(),
    ]


__all__ = [
    "ApproveStage",
    "BuildStage",
    "DeployStage",
    "GateStage",
    "RegisterStage",
    "SourceStage",
    "TrainStage",
    "default_stages",
]
