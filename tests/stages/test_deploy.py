"""DEPLOY on its own: a registered model served by a local endpoint, the endpoint's record in
the state database, a redeploy of the same config cached, and a failed start recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import MlcicdError
from mlcicd.stages.deploy import DeployStage
from tests.helpers import IrisModel, mlcicd, set_yaml
from tests.serving.helpers import request
from tests.stages.conftest import Stages, registered

pytestmark = pytest.mark.integration  # a real endpoint: a supervisor and its workers

ENDPOINT = "iris-classifier-endpoint"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def one_worker(root: Path) -> None:
    set_yaml(root, "workers: 2", "workers: 1")


def deploy_inputs(
    stages: Stages, iris: IrisModel, *, explained: bool = False
) -> dict[str, dict[str, Any]]:
    """What the deploy stage reads of a run: the commit, its build and ``iris`` registered —
    put in the registry directly, or ``explained`` by a run of the register stage (which
    computes its report, as ``explain.online`` needs)."""
    outputs = {"source": stages.source(), "build": stages.build()}
    if explained:
        from tests.stages.test_register import register

        outputs["register"] = register(stages, iris)
    else:
        outputs["register"] = registered(stages.project, iris)
    return outputs


def test_a_model_is_served_recorded_and_a_redeploy_is_cached(
    iris_repo: Path, iris: IrisModel
) -> None:
    one_worker(iris_repo)
    stages = Stages(iris_repo)
    project = stages.project
    outputs = deploy_inputs(stages, iris)
    first = DeployStage().run(stages.context(outputs))
    assert first.status == "Succeeded" and first.outputs["changed"] is True
    url = first.outputs["url"]
    assert first.outputs["endpoint"] == ENDPOINT and url.startswith("http://127.0.0.1:")
    answer = request(url, body=json.dumps(ROWS), headers={"Content-Type": "application/json"})
    assert answer.status == 200
    assert answer.json()["predictions"] == iris.model.predict(ROWS).tolist()

    record = project.state.get_endpoint(ENDPOINT)
    assert record is not None
    assert (record.status, record.backend, record.url) == ("InService", "local", url)
    assert (record.model_version, record.model_sha256) == (1, iris.sha256)
    assert record.config_name == first.outputs["config_name"]
    (config,) = project.state.endpoint_configs(ENDPOINT)
    assert (config.name, config.reason, config.model_sha256) == (
        record.config_name,
        "deploy",
        iris.sha256,
    )

    again = DeployStage().run(stages.context(outputs))
    assert again.status == "Cached" and again.outputs == {**first.outputs, "changed": False}
    assert again.message == f"{ENDPOINT} already serves model iris-classifier/1"


def test_a_model_that_cannot_load_fails_and_nothing_claims_to_serve(
    iris_repo: Path, iris: IrisModel
) -> None:
    one_worker(iris_repo)
    inference = iris_repo / "src" / "inference.py"
    inference.write_text(
        inference.read_text().replace(
            "def model_fn(model_dir",
            "def model_fn(model_dir, _unused=None):\n"
            "    raise RuntimeError('cannot load the model on purpose')\n\n"
            "def _old_model_fn(model_dir",
        )
    )
    stages = Stages(iris_repo)
    project = stages.project
    outputs = deploy_inputs(stages, iris)
    with pytest.raises(MlcicdError, match="cannot load the model on purpose"):
        DeployStage().run(stages.context(outputs))
    record = project.state.get_endpoint(ENDPOINT)
    assert record is None or record.status != "InService"


def test_explain_online_serves_clarifys_answer_to_the_header_only(
    iris_repo: Path, iris: IrisModel
) -> None:
    """explain.online: the endpoint config carries the ClarifyExplainerConfig built from the
    register-time report; boto3's EnableExplanations gets Clarify's answer, a plain request
    the model's own."""
    from tests.endpoints.test_local import boto3_client
    from tests.stages.test_register import explained_repo

    one_worker(iris_repo)
    stages = explained_repo(iris_repo, "explain:\n  rows: 40\n  online: true\n")
    project = stages.project
    outputs = deploy_inputs(stages, iris, explained=True)
    deployed = DeployStage().run(stages.context(outputs))
    (config,) = project.state.endpoint_configs(ENDPOINT)
    clarify = config.spec["explainer"]
    assert clarify["EnableExplanations"] == "`false`"
    assert clarify["InferenceConfig"]["FeatureHeaders"] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert len(clarify["ShapConfig"]["ShapBaselineConfig"]["ShapBaseline"].splitlines()) == 10

    url = deployed.outputs["url"]
    plain = request(url, body=json.dumps(ROWS), headers={"Content-Type": "application/json"})
    assert plain.json()["predictions"] == iris.model.predict(ROWS).tolist()
    assert "explanations" not in plain.json() and "x-mlcicd-explainer" not in plain.headers
    response = boto3_client(url).invoke_endpoint(
        EndpointName=ENDPOINT,
        Body="\n".join(",".join(map(str, row)) for row in ROWS),
        ContentType="text/csv",
        Accept="text/csv",
        EnableExplanations="`true`",
    )
    answer = json.loads(response["Body"].read())
    assert response["ContentType"] == "application/json"
    assert answer["label_headers"] == ["0", "1", "2"]
    records = answer["explanations"]["kernel_shap"]
    margins = iris.model.decision_function(ROWS)
    sums = [
        [sum(f["attributions"][0]["attribution"][k] for f in record) for k in range(3)]
        for record in records
    ]
    # local accuracy: the margin minus the attributions is the same expected value per record
    for label in range(3):
        assert (
            abs((margins[0][label] - sums[0][label]) - (margins[1][label] - sums[1][label])) < 1e-6
        )

    # `mlcicd invoke --explain`: the same answer for a person, and as Clarify's JSON
    body = json.dumps(ROWS)
    shown = mlcicd(stages.project, "invoke", ENDPOINT, "--body", body, "--explain")
    assert shown.exit_code == 0, shown.output
    assert "attributions (linear explainer, on the margin)" in shown.output
    assert "record 2:" in shown.output and "FEATURE" in shown.output
    first = shown.output.split("record 1:")[1].splitlines()[2]  # the most influential feature
    assert first.split()[0] in ("petal_length", "petal_width")
    raw = mlcicd(stages.project, "invoke", ENDPOINT, "--body", body, "--explain", "--json")
    assert len(json.loads(raw.output)["explanations"]["kernel_shap"]) == 2
    none = mlcicd(stages.project, "invoke", ENDPOINT, "--body", body, "--explain-if", "`false`")
    assert "no record explained" in none.output


def test_explain_online_and_required_without_a_report_fails_the_deploy_saying_why(
    iris_repo: Path, iris: IrisModel
) -> None:
    """Unless explain.required, a model without a report is served without explanations
    (the log says so): a rollback to a version from before explain: still deploys."""
    from tests.stages.test_register import explained_repo

    stages = explained_repo(iris_repo, "explain:\n  online: true\n  required: true\n")
    outputs = deploy_inputs(stages, iris)
    with pytest.raises(MlcicdError, match="was not explained at register"):
        DeployStage().run(stages.context(outputs))
    assert stages.project.state.get_endpoint(ENDPOINT) is None


def test_explain_online_refuses_a_report_replaced_since_register_required_or_not(
    iris_repo: Path, iris: IrisModel
) -> None:
    """The report's sha256 is recorded at register: one replaced in the store since (its
    baseline, its features) fails the deploy naming it, before any endpoint starts — as the
    stack's deploy Lambda refuses one model.json has another sha256 of."""
    from mlcicd.errors import ArtifactError
    from mlcicd.explain.report import _store
    from tests.explain.test_report import REPORT
    from tests.stages.test_register import explained_repo

    stages = explained_repo(iris_repo, "explain:\n  online: true\n")
    outputs = deploy_inputs(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    uri = _store(stages.project, package, REPORT)
    path = stages.project.store.local_path(uri)
    assert path is not None
    path.write_text(json.dumps({**REPORT, "baseline": [[0.0, 0.0, 0.0, 0.0]]}))
    with pytest.raises(ArtifactError, match="is not the one the register stage stored") as caught:
        DeployStage().run(stages.context(outputs))
    assert uri in caught.value.message
    assert stages.project.state.get_endpoint(ENDPOINT) is None


def test_explain_online_serves_a_package_registered_without_the_sha256_unexplained(
    iris_repo: Path, iris: IrisModel
) -> None:
    """A package registered before mlcicd recorded its report's sha256: the report is not
    used — the endpoint is served without explanations, the log says why — and with
    explain.required the deploy fails saying how to explain the model anew."""
    from mlcicd.errors import ExplainError
    from mlcicd.explain.report import _store
    from tests.explain.test_report import REPORT, forget_sha256
    from tests.stages.test_register import explained_repo

    one_worker(iris_repo)
    stages = explained_repo(iris_repo, "explain:\n  online: true\n  required: true\n")
    outputs = deploy_inputs(stages, iris)
    package = stages.project.state.get_model_package("iris-classifier", 1)
    _store(stages.project, package, REPORT)
    forget_sha256(stages.project)
    with pytest.raises(ExplainError, match="registered without the sha256 of its explanation"):
        DeployStage().run(stages.context(outputs))
    assert stages.project.state.get_endpoint(ENDPOINT) is None

    set_yaml(iris_repo, "  required: true\n", "")
    stages = Stages(iris_repo)
    result = DeployStage().run(stages.context(outputs))
    assert result.status == "Succeeded", result.message
    (config,) = stages.project.state.endpoint_configs(ENDPOINT)
    assert "explainer" not in config.spec
    assert any(
        "registered without the sha256 of its explanation report" in line
        and line.endswith("the endpoint serves it without explanations")
        for line in stages.lines
    ), stages.lines


def test_deploy_autoscaling_reaches_the_local_endpoints_workers(
    iris_repo: Path, iris: IrisModel
) -> None:
    set_yaml(
        iris_repo,
        "  workers: 2\n",
        "  workers: 1\n  autoscaling: {max_instances: 2, target_invocations_per_instance: 9000}\n",
    )
    stages = Stages(iris_repo)
    project = stages.project
    outputs = deploy_inputs(stages, iris)
    deployed = DeployStage().run(stages.context(outputs))
    live = json.loads((project.state_dir / "endpoints" / ENDPOINT / "status.json").read_text())
    assert (
        live["autoscaling"]["max_instances"] == 2 and live["autoscaling"]["current_instances"] == 1
    )
    (config,) = project.state.endpoint_configs(ENDPOINT)
    assert config.name == deployed.outputs["config_name"]
    assert config.spec["autoscaling"]["target_invocations_per_instance"] == 9000  # in its name
