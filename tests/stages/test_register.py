"""The register stage's explanation step on a real project: the report stored beside the model
and cached by its digest; a model that cannot be explained is registered all the same, unless
``explain.required``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import ExplainError
from mlcicd.explain.report import _store, load_report
from mlcicd.stages.register import RegisterStage
from tests.conftest import commit_all
from tests.helpers import IrisModel, set_yaml
from tests.stages.conftest import Stages, trained

EXPLAIN = "explain:\n  rows: 40\n"


def register(stages: Stages, model: IrisModel, job: str = "job-1") -> dict[str, Any]:
    outputs = {"source": stages.source(), "build": stages.build()}
    outputs["train"] = trained(stages.project, model, job, accuracy=0.97)
    return RegisterStage().run(stages.context(outputs)).outputs


def explained_repo(root: Path, section: str = EXPLAIN) -> Stages:
    (root / "mlcicd.yaml").write_text((root / "mlcicd.yaml").read_text() + section)
    commit_all(root, "explain the model")
    return Stages(root)


def test_a_registered_model_is_explained_once_beside_it(iris_repo: Path, iris: IrisModel) -> None:
    stages = explained_repo(iris_repo)
    outputs = register(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", outputs["version"])
    report = load_report(stages.project, package)
    assert report is not None and outputs["explanation"] == report["uri"]
    assert report["uri"].endswith(f"iris-classifier/job-1/explain/{iris.sha256[:16]}.json")
    assert (report["explainer"], report["output"], report["rows"]) == ("linear", "margin", 40)
    assert report["local_accuracy"]["max_error"] <= 1e-6
    assert report["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert report["dataset"]["label"] == "species"  # monitor.label: not a feature
    assert set(report["importance_by_output"]) == {"0", "1", "2"}
    assert any(line.startswith("explanation of iris-classifier/1: linear") for line in stages.lines)

    stages.lines.clear()
    again = register(stages, iris)  # the same model bytes: not explained again
    assert again["explanation"] == report["uri"]
    assert "explanation of iris-classifier/1: already computed" in stages.lines


def test_a_model_that_cannot_be_explained_is_registered_and_says_why(
    iris_repo: Path, iris: IrisModel
) -> None:
    stages = explained_repo(iris_repo, EXPLAIN + "  baseline: data/missing.csv\n")
    outputs = register(stages, iris)
    assert outputs["explanation"] is None and outputs["version"] == 1
    package = stages.project.state.get_model_package("iris-classifier", 1)
    report = load_report(stages.project, package)
    assert report is not None and "missing.csv is not a file" in report["error"]
    assert any("no explanation for iris-classifier/1" in line for line in stages.lines)


def test_explain_required_fails_the_stage(iris_repo: Path, iris: IrisModel) -> None:
    stages = explained_repo(iris_repo, EXPLAIN + "  baseline: data/missing.csv\n  required: true\n")
    with pytest.raises(ExplainError, match=r"explain\.required: iris-classifier/1 could not be"):
        register(stages, iris)


def test_a_predict_fn_with_labels_only_is_not_explained(iris_repo: Path, iris: IrisModel) -> None:
    """A model shap cannot read (wrapped) whose predict_fn answers labels only."""
    inference = iris_repo / "src" / "inference.py"
    inference.write_text(
        inference.read_text()
        + "\n\nclass Wrapped:\n    def __init__(self, model):\n        self.model = model\n\n\n"
        "def model_fn(model_dir):  # noqa: F811\n"
        "    return Wrapped(joblib.load(os.path.join(model_dir, 'model.joblib')))\n\n\n"
        "def predict_fn(input_data, model):  # noqa: F811\n"
        "    return {'labels': [SPECIES[int(p)] for p in model.model.predict(input_data)]}\n"
    )
    stages = explained_repo(iris_repo)
    assert register(stages, iris)["explanation"] is None
    report = load_report(
        stages.project, stages.project.state.get_model_package("iris-classifier", 1)
    )
    assert report is not None
    assert "a Wrapped model has no numeric output to explain" in report["error"]


def test_no_explain_section_no_step(iris_repo: Path, iris: IrisModel) -> None:
    set_yaml(iris_repo, "pipeline: iris-classifier", "pipeline: iris-classifier")
    outputs = register(Stages(iris_repo), iris)
    assert "explanation" not in outputs


def test_online_explanations_recompute_a_report_that_keeps_no_baseline(
    iris_repo: Path, iris: IrisModel
) -> None:
    """A report stored before online explanations has no baseline: an endpoint needs one."""
    stages = explained_repo(iris_repo, EXPLAIN + "  online: true\n")
    register(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    report = load_report(stages.project, package)
    assert report is not None and len(report["baseline"]) == 10
    old = {k: v for k, v in report.items() if k not in ("baseline", "uri")}
    _store(stages.project, package, old)  # as an mlcicd before online explanations stored it
    package = stages.project.state.get_model_package("iris-classifier", 1)
    assert "baseline" not in (load_report(stages.project, package) or {})
    register(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    assert len((load_report(stages.project, package) or {})["baseline"]) == 10


def test_a_report_replaced_in_the_store_is_explained_anew_and_its_sha256_recorded(
    iris_repo: Path, iris: IrisModel
) -> None:
    """The register stage does not keep a report it did not write: it says so, explains the
    model again and records the new report's sha256 (a later version of the same model keeps
    it)."""
    stages = explained_repo(iris_repo)
    register(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    uri = package.lineage["explanation"]["uri"]
    path = stages.project.store.local_path(uri)
    assert path is not None
    path.write_text(path.read_text().replace('"linear"', '"tree"'))
    stages.lines.clear()
    register(stages, iris)
    assert any(
        line.startswith(f"the explanation report of model iris-classifier/1 at {uri} is not")
        and line.endswith("explaining the model anew")
        for line in stages.lines
    ), stages.lines
    package = stages.project.state.get_model_package("iris-classifier", 1)
    report = load_report(stages.project, package)
    assert report is not None and report["explainer"] == "linear"
    assert package.lineage["explanation"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    stages.project.state.set_model_package_status("iris-classifier", 1, "Rejected")
    stages.lines.clear()
    assert register(stages, iris)["version"] == 2  # the same model, registered again
    assert "explanation of iris-classifier/2: already computed" in stages.lines
    again = stages.project.state.get_model_package("iris-classifier", 2)
    assert again.lineage["explanation"] == package.lineage["explanation"]
