"""The approval request with ``explain:``: the person deciding sees the new model's importance
beside production's, and the register stage after it finds the report already computed."""

from __future__ import annotations

import json
from pathlib import Path

from mlcicd.pipeline import WAITING
from mlcicd.stages.approve import ApproveStage
from tests.helpers import IrisModel
from tests.monitor.helpers import record_endpoint
from tests.stages.conftest import trained
from tests.stages.test_register import EXPLAIN, explained_repo, register

ENDPOINT = "iris-classifier-endpoint"


def test_the_request_shows_new_importance_beside_production(
    iris_repo: Path, iris: IrisModel, flipped: IrisModel
) -> None:
    stages = explained_repo(iris_repo, EXPLAIN + "approve: manual\n")
    champion = register(stages, flipped, "job-1")  # explained at register, then served
    record_endpoint(stages.project, ENDPOINT, "cfg-1", champion["model_sha256"], version=1)
    stages.lines.clear()

    outputs = {"source": stages.source(), "build": stages.build()}
    outputs["train"] = trained(stages.project, iris, "job-2")
    result = ApproveStage().run(stages.context(outputs))
    assert result.status == WAITING
    importance = result.outputs["importance"]
    assert (
        set(importance["model"])
        == set(importance["production"])
        == {
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width",
        }
    )
    assert importance["model"] != importance["production"]  # the flipped model differs
    header = stages.lines.index("importance (mean |SHAP|), new vs production:")
    top = max(importance["model"], key=importance["model"].get)
    shown = f"  {top}: {importance['model'][top]:.4g} vs {importance['production'][top]:.4g}"
    assert stages.lines[header + 1] == shown

    stages.lines.clear()
    register(stages, iris, "job-2")  # the register stage after approval: already explained
    assert "explanation of iris-classifier/2: already computed" in stages.lines


def test_productions_report_replaced_in_the_store_is_not_shown_to_the_person_deciding(
    iris_repo: Path, iris: IrisModel, flipped: IrisModel
) -> None:
    """Production's report is compared only if it is the one the register stage stored; one
    replaced since is left out of the request, and the log says why. (The new model's
    explainer is given a missing baseline: it fails at once, SHAP is not the subject.)"""
    from mlcicd.explain.report import _store
    from tests.explain.test_report import REPORT
    from tests.stages.conftest import registered

    stages = explained_repo(iris_repo, EXPLAIN + "  baseline: data/missing.csv\napprove: manual\n")
    champion = registered(stages.project, flipped)
    package = stages.project.state.get_model_package("iris-classifier", champion["version"])
    path = stages.project.store.local_path(_store(stages.project, package, REPORT))
    assert path is not None
    path.write_text(json.dumps({**REPORT, "importance": {"sepal_length": 9.0}}))
    record_endpoint(stages.project, ENDPOINT, "cfg-1", champion["model_sha256"], version=1)

    outputs = {"source": stages.source(), "build": stages.build()}
    outputs["train"] = trained(stages.project, iris, "job-2")
    result = ApproveStage().run(stages.context(outputs))
    assert result.status == WAITING
    assert result.outputs["importance"] == {"model": None, "production": None}
    assert any(
        line.startswith("production's importance is not shown: the explanation report of model")
        and "is not the one the register stage stored" in line
        for line in stages.lines
    ), stages.lines
