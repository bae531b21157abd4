"""The transform tests' model (iris with SageMaker's default handlers), and the AWS tests' moto
server and environment fixtures for s3://."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlcicd.transform import TransformModel
from tests.aws.conftest import aws_env, moto_server  # noqa: F401  (fixtures)
from tests.helpers import IrisModel


@pytest.fixture
def model(iris: IrisModel, tmp_path: Path) -> TransformModel:
    """The iris model with SageMaker's default handlers (an inference.py that defines none)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("")
    return TransformModel("iris-classifier/1", iris.archive, iris.sha256, code)


def rows(iris: IrisModel, n: int) -> np.ndarray:
    return np.tile(iris.X, (n // len(iris.X) + 1, 1))[:n]
