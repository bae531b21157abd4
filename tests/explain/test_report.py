"""A stored explanation report is read only if it is the one the register stage wrote: its
sha256 is recorded with the model package, a report replaced in the store since is refused by
`mlcicd explain`, `models describe` and the approve stage's comparison, a too-deep one is a
clear error, and a package registered before the sha256 was recorded has its report not used.

The reports here are stored as the register stage stores them (``_store``), not computed:
the subject is the reading, and SHAP's own step is tested in tests/stages/test_register.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import ArtifactError, ExplainError
from mlcicd.explain.report import _store, load_report
from mlcicd.project import Project
from mlcicd.state import ModelPackage
from tests.conftest import make_repo
from tests.helpers import IrisModel, as_json, mlcicd
from tests.stages.conftest import registered

REPORT: dict[str, Any] = {
    "model": "iris-classifier/1",
    "explainer": "linear",
    "model_type": "Pipeline",
    "output": "margin",
    "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "importance": {
        "sepal_length": 0.1,
        "sepal_width": 0.2,
        "petal_length": 1.0,
        "petal_width": 1.3,
    },
    "rows": 40,
}


@pytest.fixture
def explained(tmp_path: Path, iris: IrisModel) -> tuple[Project, ModelPackage]:
    """A committed iris project with ``iris`` registered as version 1 and its report stored
    as the register stage stores it (the sha256 recorded with the package)."""
    project = Project(make_repo(tmp_path / "iris"))
    version = registered(project, iris)["version"]
    package = project.state.get_model_package("iris-classifier", version)
    _store(project, package, REPORT)
    return project, project.state.get_model_package("iris-classifier", version)


def replace_report(project: Project, package: ModelPackage, data: bytes) -> str:
    """Put ``data`` where the package's report is, as anyone who can write the store could."""
    uri = str(load_report(project, package)["uri"])  # type: ignore[index]
    path = project.store.local_path(uri)
    assert path is not None
    path.write_bytes(data)
    return uri


def forget_sha256(project: Project) -> None:
    """Drop every package's recorded report sha256, as an mlcicd before it kept none."""
    with project.state.db.tx() as db:
        db.execute("UPDATE model_packages SET lineage=json_remove(lineage, '$.explanation')")


def test_the_stored_reports_sha256_is_recorded_with_the_package(
    explained: tuple[Project, ModelPackage],
) -> None:
    project, package = explained
    report = load_report(project, package)
    assert report is not None and report["importance"] == REPORT["importance"]
    path = project.store.local_path(report["uri"])
    assert path is not None
    assert package.lineage["explanation"] == {
        "uri": report["uri"],
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def test_a_report_replaced_in_the_store_is_refused_naming_it(
    explained: tuple[Project, ModelPackage],
) -> None:
    project, package = explained
    planted = {**REPORT, "importance": {**REPORT["importance"], "sepal_length": 9.0}}
    uri = replace_report(project, package, json.dumps(planted).encode())
    with pytest.raises(ArtifactError, match="is not the one the register stage stored") as caught:
        load_report(project, package)
    assert uri in caught.value.message
    assert "explain iris-classifier/1 --rows FILE" in (caught.value.hint or "")

    refused = mlcicd(project, "explain", "1", catch_exceptions=True)
    assert refused.exit_code == 1 and "9.0" not in refused.stdout
    assert f"iris-classifier/1 at {uri} is not the one the register stage" in refused.stderr
    described = mlcicd(project, "models", "describe", "1")
    assert described.exit_code == 0, described.output
    assert "explanation: not shown: the explanation report of model" in described.stdout
    shown = as_json(mlcicd(project, "models", "describe", "1", "--json"))
    assert shown["explanation"] is None
    assert "is not the one the register stage stored" in shown["explanation_refused"]


def test_a_report_nested_too_deep_is_a_clear_error(
    explained: tuple[Project, ModelPackage],
) -> None:
    """Even with its sha256 recorded (whoever wrote it could write the state too), a report
    nested deeper than the parser goes is an ArtifactError, not a RecursionError."""
    project, package = explained
    deep = b"[" * 200_000 + b"]" * 200_000
    replace_report(project, package, deep)
    project.state.record_explanation(
        package.group_name,
        package.model_sha256,
        package.training_job,
        uri=package.lineage["explanation"]["uri"],
        sha256=hashlib.sha256(deep).hexdigest(),
    )
    package = project.state.get_model_package("iris-classifier", 1)
    with pytest.raises(ArtifactError, match=r"iris-classifier/1 at .* not JSON: maximum recursion"):
        load_report(project, package)


def test_a_package_registered_without_the_sha256_has_its_report_not_used(
    explained: tuple[Project, ModelPackage],
) -> None:
    """A package recorded before mlcicd kept the sha256: its report cannot be told from a
    replacement, so it is not used (as the stack's deploy Lambda treats model.json without
    one); the CLI says why and how to explain it anew."""
    project, package = explained
    forget_sha256(project)
    package = project.state.get_model_package("iris-classifier", 1)
    with pytest.raises(ExplainError, match="registered without the sha256 of its explanation"):
        load_report(project, package)
    refused = mlcicd(project, "explain", "1", catch_exceptions=True)
    assert refused.exit_code == 1
    assert "it is not used (explain the model anew, which records it: a run of the commit" in (
        refused.stderr
    )
    described = mlcicd(project, "models", "describe", "1")
    assert "explanation: not shown: model iris-classifier/1 was registered without" in (
        described.stdout
    )


def test_a_report_gone_since_it_was_recorded_says_so(
    explained: tuple[Project, ModelPackage],
) -> None:
    project, package = explained
    path = project.store.local_path(package.lineage["explanation"]["uri"])
    assert path is not None
    path.unlink()
    with pytest.raises(ExplainError, match=r"the explanation report of .* is gone from"):
        load_report(project, package)


def test_a_never_explained_package_has_no_report(tmp_path: Path, iris: IrisModel) -> None:
    project = Project(make_repo(tmp_path / "iris"))
    version = registered(project, iris)["version"]
    assert load_report(project, project.state.get_model_package("iris-classifier", version)) is None
