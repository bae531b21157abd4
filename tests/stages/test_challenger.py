"""Champion/challenger on its own: the margins (``judge``), and ``compare`` on a real project —
no champion, the champion itself, missing data, and two real models scored on iris."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from mlcicd.config import ChallengerConfig
from mlcicd.errors import GateError
from mlcicd.project import Project
from mlcicd.stages.challenger import champion, compare, judge
from mlcicd.state import ModelPackage
from tests.helpers import IrisModel
from tests.monitor.helpers import record_endpoint
from tests.stages.conftest import Stages, trained

ENDPOINT = "iris-classifier-endpoint"
HELD_OUT = ChallengerConfig(data="data/iris.csv", label="species")


def test_judge_counts_improvement_whichever_way_the_metric_goes() -> None:
    accuracy = ChallengerConfig(data="d.csv")
    assert judge(accuracy, 0.9, 0.8)[:2] == (True, pytest.approx(0.1))
    assert judge(accuracy, 0.8, 0.9)[0] is False
    assert judge(accuracy, 0.8, 0.8) == (True, 0.0, 0.0)  # no worse is enough by default
    mse = ChallengerConfig(data="d.csv", metric="mse")
    ok, change, relative = judge(mse, 1.0, 2.0)  # lower is better: a halved error
    assert ok and change == 1.0 and relative == 0.5
    assert judge(mse, 2.0, 1.0)[0] is False


def test_judge_applies_both_margins() -> None:
    strict = ChallengerConfig(data="d.csv", min_absolute_change=0.05, min_relative_change=0.1)
    assert judge(strict, 0.84, 0.8)[0] is False  # +0.04: short of the absolute margin
    assert judge(strict, 0.87, 0.8)[0] is False  # +0.07 absolute, +8.75%: short of 10%
    assert judge(strict, 0.9, 0.8)[0] is True
    tolerant = ChallengerConfig(data="d.csv", min_absolute_change=-0.02)
    assert judge(tolerant, 0.79, 0.8)[0] is True  # a negative margin tolerates a small loss
    assert judge(ChallengerConfig(data="d.csv"), 0.5, 0.0)[2] == math.inf  # against zero


def candidate(model: IrisModel, project: Project, job: str) -> dict[str, Any]:
    return trained(model=model, project=project, job=job)


def accuracy(model: IrisModel, labels: np.ndarray) -> float:
    return float((model.model.predict(model.X) == labels).mean())


def serve(project: Project, trained: dict[str, Any]) -> ModelPackage:
    """Register ``trained`` and record the endpoint as serving it: the champion."""
    package = project.state.register_model_package(
        group_name=project.config.pipeline,
        status="Approved",
        model_uri=trained["model_uri"],
        model_sha256=trained["model_sha256"],
        metrics=trained["metrics"],
        training_job=trained["job"],
        build_digest="b" * 64,
        commit_sha="c" * 40,
        run_id=None,
        lineage={},
    )
    record_endpoint(project, ENDPOINT, "cfg-1", package.model_sha256, version=package.version)
    return package


def test_without_a_champion_there_is_nothing_to_compare(iris_repo: Path, iris: IrisModel) -> None:
    stages = Stages(iris_repo)
    trained = candidate(iris, stages.project, "job-1")
    ctx = stages.context({"source": stages.source(), "build": stages.build(), "train": trained})
    assert champion(stages.project, ENDPOINT) is None
    assert compare(ctx, HELD_OUT) == ([], {"champion": None})
    assert stages.lines == [f"challenger: no model serves {ENDPOINT} yet; nothing to compare with"]


def test_the_champion_itself_is_not_scored(iris_repo: Path, iris: IrisModel) -> None:
    stages = Stages(iris_repo)
    trained = candidate(iris, stages.project, "job-1")
    package = serve(stages.project, trained)
    ctx = stages.context({"source": stages.source(), "build": stages.build(), "train": trained})
    assert compare(ctx, HELD_OUT) == ([], {"champion": package.arn, "same_model": True})


def test_held_out_data_missing_from_the_commit_is_named(
    iris_repo: Path, iris: IrisModel, flipped: IrisModel
) -> None:
    stages = Stages(iris_repo)
    serve(stages.project, candidate(flipped, stages.project, "job-0"))
    trained = candidate(iris, stages.project, "job-1")
    ctx = stages.context({"source": stages.source(), "build": stages.build(), "train": trained})
    with pytest.raises(GateError, match=r"gate.challenger.data: data/holdout.csv is not in"):
        compare(ctx, ChallengerConfig(data="data/holdout.csv"))


@pytest.mark.integration  # the evaluation runs in a process of the build environment
def test_two_real_models_are_scored_through_the_inference_script(
    iris_repo: Path, iris: IrisModel, flipped: IrisModel
) -> None:
    stages = Stages(iris_repo)
    worse = serve(stages.project, candidate(flipped, stages.project, "job-0"))
    better = candidate(iris, stages.project, "job-1")
    outputs = {"source": stages.source(), "build": stages.build(), "train": better}
    failures, measured = compare(stages.context(outputs), HELD_OUT)
    assert failures == [] and measured["passed"] is True
    assert measured["champion_model"] == worse.arn and measured["metric"] == "accuracy"
    # The scores are the models' own accuracy on the example's iris rows.
    _, labels = load_iris(return_X_y=True)
    assert measured["challenger"] == pytest.approx(accuracy(iris, labels)) and (
        measured["challenger"] > 0.9
    )
    assert measured["champion"] == pytest.approx(accuracy(flipped, labels))
    assert measured["champion"] < 0.5
    assert measured["change"] == pytest.approx(measured["challenger"] - measured["champion"])
    assert measured["summary"] in stages.lines

    # The other way round: the flipped model challenges the good one, and fails, saying why.
    champion_now = serve(stages.project, better)
    challenger = candidate(flipped, stages.project, "job-2")
    outputs["train"] = challenger
    failures, measured = compare(stages.context(outputs), HELD_OUT)
    assert measured["passed"] is False and measured["champion_model"] == champion_now.arn
    (failure,) = failures
    assert failure.startswith(f"accuracy: challenger {accuracy(flipped, labels):.4f} vs champion")
    assert failure.endswith("needed a change of at least +0")
