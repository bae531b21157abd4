"""The approval request with ``explain:``: the person deciding sees the new model's importance
beside production's, and the register stage after it finds the report already computed."""

from __future__ import annotations

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
