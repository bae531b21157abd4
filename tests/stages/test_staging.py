"""STAGING on its own: a registered model on a real staging endpoint, the project's endpoint
tests (examples/iris's tests/endpoint, and one through boto3's sagemaker-runtime) and the load
check against it; what a wrong model, a missed bound and a command that cannot start do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import NotFoundError, StagingError
from mlcicd.pipeline import StageResult
from mlcicd.project import Project
from mlcicd.stages.staging import StagingStage, orphans
from tests.helpers import IrisModel, set_yaml
from tests.stages.conftest import Stages, registered

pytestmark = pytest.mark.integration  # real endpoints: a supervisor and its workers

STAGING = "iris-classifier-endpoint-staging"
RUNTIME_TEST = """
import json, os

import boto3


def test_sagemaker_runtime_reaches_the_staging_endpoint():
    assert "MLCICD_TOKEN" not in os.environ  # the service's secrets stay with the service
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "staging"  # not the caller's credentials
    client = boto3.client("sagemaker-runtime")
    answer = client.invoke_endpoint(
        EndpointName=os.environ["MLCICD_ENDPOINT_NAME"],
        Body=json.dumps([[5.1, 3.5, 1.4, 0.2]]),
        ContentType="application/json",
    )
    assert json.loads(answer["Body"].read())["labels"] == ["setosa"]
"""


def staged(stages: Stages, model: IrisModel, *, register: dict[str, Any] | None = None) -> Any:
    """The staging stage's context for ``model``, as the stages before it hand it on."""
    outputs = {
        "source": stages.source(),
        "build": stages.build(),
        "register": register or registered(stages.project, model),
    }
    return stages.context(outputs)


def run(stages: Stages, model: IrisModel, **kwargs: Any) -> StageResult:
    """Run the stage, its result recorded as the engine records it (what caching reads)."""
    ctx = staged(stages, model, **kwargs)
    state = stages.project.state
    state.start_stage(ctx.run.id, "staging")
    result = StagingStage().run(ctx)
    state.finish_stage(ctx.run.id, "staging", result.status, outputs=result.outputs)
    return result


def gone(root: Path, stages: Stages) -> bool:
    """Is the staging endpoint deleted, server and record?"""
    try:
        LocalEndpointBackend(root / ".mlcicd" / "endpoints").describe(STAGING)
    except NotFoundError:
        return stages.project.state.get_endpoint(STAGING) is None
    return False


def test_a_correct_model_passes_its_endpoint_tests_and_load_check(
    iris_repo: Path, iris: IrisModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCICD_TOKEN", "the-service-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-callers-secret")
    (iris_repo / "tests" / "endpoint" / "test_runtime.py").write_text(RUNTIME_TEST)
    stages = Stages(iris_repo)

    result = run(stages, iris)

    assert result.status == "Succeeded", result.message
    test, load = result.outputs["test"], result.outputs["load"]
    assert test["exit_code"] == 0 and test["counts"] == {"passed": 9}
    assert load["requests"] == 200 and load["errors"] == 0 and load["passed"] is True
    assert load["p50_ms"] <= load["p99_ms"] and load["rps"] > 0
    assert result.outputs["endpoint"] == STAGING
    assert gone(iris_repo, stages)  # staging.keep is false
    package = stages.project.state.get_model_package("iris-classifier", 1)
    assert package.status == "Approved"
    assert package.lineage["staging"]["test"]["counts"] == {"passed": 9}
    assert package.lineage["staging"]["load"]["requests"] == 200
    # Production was never touched.
    assert stages.project.state.get_endpoint("iris-classifier-endpoint") is None


def test_a_model_with_wrong_answers_fails_and_is_rejected(
    iris_repo: Path, flipped: IrisModel
) -> None:
    stages = Stages(iris_repo)
    with pytest.raises(StagingError) as failed:
        run(stages, flipped)
    message = failed.value.headline
    assert "model iris-classifier/1 failed staging in run 1: the endpoint tests failed" in message
    assert "production keeps serving" in message
    outputs = failed.value.outputs
    assert outputs["test"]["exit_code"] == 1
    assert outputs["test"]["counts"]["failed"] == 3  # the known rows, JSON and CSV, one row
    assert any("setosa" in line for line in outputs["test"]["tail"])
    assert "load" not in outputs  # the load check does not run after a failed test
    package = stages.project.state.get_model_package("iris-classifier", 1)
    assert package.status == "Rejected"
    assert package.status_reason is not None
    assert package.status_reason.startswith("failed staging in run 1: the endpoint tests failed")
    assert package.lineage["staging"]["test"]["exit_code"] == 1
    assert gone(iris_repo, stages)


def test_a_missed_load_bound_fails_with_the_figures(iris_repo: Path, iris: IrisModel) -> None:
    set_yaml(iris_repo, "p99_ms: 500", "p99_ms: 0.001")
    set_yaml(iris_repo, "test: python -m pytest tests/endpoint -q", "test: python -c pass")
    stages = Stages(iris_repo)
    with pytest.raises(StagingError, match=r"p99 [0-9.]+ ms > staging.load.p99_ms 0.001 ms"):
        run(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    assert package.status == "Rejected" and "load check missed" in (package.status_reason or "")
    assert package.lineage["staging"]["load"]["passed"] is False
    assert gone(iris_repo, stages)


def test_errors_count_against_max_error_rate(iris_repo: Path, iris: IrisModel) -> None:
    (iris_repo / "bad.json").write_text("[[1, 2, 3]]")  # 3 features: every request is a 400
    set_yaml(iris_repo, "max_error_rate: 0.0", "max_error_rate: 0.5\n    payload: bad.json")
    set_yaml(iris_repo, "test: python -m pytest tests/endpoint -q", "test: python -c pass")
    stages = Stages(iris_repo)
    with pytest.raises(
        StagingError, match=r"error rate 100.00% \(200 of 200\) > .* \(first: HTTP 400\)"
    ):
        run(stages, iris)


def test_a_test_command_that_cannot_start_names_the_key(iris_repo: Path, iris: IrisModel) -> None:
    set_yaml(iris_repo, "test: python -m pytest tests/endpoint -q", "test: no-such-program-7 -q")
    stages = Stages(iris_repo)
    with pytest.raises(
        StagingError, match="cannot run the endpoint tests `no-such-program-7 -q`"
    ) as e:
        run(stages, iris)
    assert "staging.test" in e.value.headline
    assert gone(iris_repo, stages)


def test_an_endpoint_that_never_serves_names_the_key(iris_repo: Path, iris: IrisModel) -> None:
    inference = iris_repo / "src" / "inference.py"
    inference.write_text(
        inference.read_text().replace(
            '"""Load the Pipeline that train.py saved."""',
            '"""Never loads."""\n    import time\n\n    time.sleep(600)',
        )
    )
    set_yaml(iris_repo, "workers: 2", "workers: 1\n  startup_timeout: 1")
    stages = Stages(iris_repo)
    with pytest.raises(StagingError, match=f"the staging endpoint {STAGING} did not serve") as e:
        run(stages, iris)
    assert "deploy.startup_timeout" in e.value.headline
    assert stages.project.state.get_model_package("iris-classifier", 1).status == "Rejected"
    assert gone(iris_repo, stages)


def test_an_unchanged_model_and_tests_are_not_staged_again(
    iris_repo: Path, iris: IrisModel
) -> None:
    set_yaml(iris_repo, "requests: 200", "requests: 20")
    stages = Stages(iris_repo)
    package = registered(stages.project, iris)
    first = run(stages, iris, register=package)
    assert first.status == "Succeeded"

    again = run(stages, iris, register=package)
    assert (
        again.status == "Cached"
        and again.message == f"passed staging in run {first.outputs['run_id']}"
    )
    assert again.outputs["test"] == first.outputs["test"]
    assert any("staging in run 1: not run again" in line for line in stages.lines)

    test = iris_repo / "tests" / "endpoint" / "test_endpoint.py"
    test.write_text(test.read_text() + "\n\ndef test_one_more() -> None:\n    pass\n")
    changed = run(stages, iris, register=package)
    assert changed.status == "Succeeded" and changed.outputs["test"]["counts"] == {"passed": 9}


def test_a_kept_staging_endpoint_is_no_orphan_until_no_one_keeps_it(
    iris_repo: Path, iris: IrisModel
) -> None:
    set_yaml(iris_repo, "  load:", "  keep: true\n  load:")
    set_yaml(iris_repo, "requests: 200", "requests: 20")
    stages = Stages(iris_repo)
    kept = run(stages, iris)
    assert kept.status == "Succeeded" and not gone(iris_repo, stages)
    project = stages.project
    assert orphans(project, project.config) == []  # kept on purpose
    set_yaml(iris_repo, "  keep: true\n", "")
    unkept = Project(iris_repo).config
    assert orphans(project, unkept) == []  # its run is still going
    project.state.finish_run(kept.outputs["run_id"], "Succeeded")
    assert orphans(project, unkept) == [STAGING]  # its run is over, and no one keeps it
    (record, *_) = project.state.endpoint_configs(STAGING)
    assert record.reason == "staging" and record.spec["model"] == iris.sha256
