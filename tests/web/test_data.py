"""The dashboard's data: a model's feature importance only from the report the register stage
stored (its sha256 recorded), never from one put in the store since."""

from __future__ import annotations

import json
from pathlib import Path

from mlcicd.explain.report import _store
from mlcicd.project import Project
from mlcicd.web import data
from tests.conftest import make_repo
from tests.explain.test_report import REPORT, forget_sha256
from tests.helpers import IrisModel
from tests.stages.conftest import registered


def test_a_models_importance_is_shown_only_from_the_stored_report(
    tmp_path: Path, iris: IrisModel
) -> None:
    project = Project(make_repo(tmp_path / "iris"))
    version = registered(project, iris)["version"]
    uri = _store(project, project.state.get_model_package("iris-classifier", version), REPORT)
    assert data.model(project, "iris-classifier", version)["importance"] == REPORT["importance"]

    path = project.store.local_path(uri)
    assert path is not None
    path.write_text(json.dumps({**REPORT, "importance": {"sepal_length": 9.0}}))
    assert data.model(project, "iris-classifier", version)["importance"] is None

    _store(project, project.state.get_model_package("iris-classifier", version), REPORT)
    forget_sha256(project)  # a package registered before the sha256 was recorded
    assert data.model(project, "iris-classifier", version)["importance"] is None
