"""The pipeline's stages, in order. Each is backend-neutral: backends sit behind
``mlcicd.training`` (train) and ``mlcicd.endpoints`` (deploy)."""

from __future__ import annotations

from mlcicd.pipeline import Stage
from mlcicd.stages.build import BuildStage
from mlcicd.stages.deploy import DeployStage
from mlcicd.stages.gate import GateStage
from mlcicd.stages.register import RegisterStage
from mlcicd.stages.source import SourceStage
from mlcicd.stages.train import TrainStage


def default_stages() -> list[Stage]:
    return [SourceStage(), BuildStage(), TrainStage(), GateStage(), RegisterStage(), DeployStage()]


__all__ = [
    "BuildStage",
    "DeployStage",
    "GateStage",
    "RegisterStage",
    "SourceStage",
    "TrainStage",
    "default_stages",
]
