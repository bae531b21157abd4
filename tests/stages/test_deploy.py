"""DEPLOY on its own: a registered model served by a local endpoint, the endpoint's record in
the state database, a redeploy of the same config cached, and a failed start recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcicd.errors import MlcicdError
from mlcicd.stages.deploy import DeployStage
from tests.helpers import IrisModel, set_yaml
from tests.serving.helpers import request
from tests.stages.conftest import Stages, registered

pytestmark = pytest.mark.integration  # a real endpoint: a supervisor and its workers

ENDPOINT = "iris-classifier-endpoint"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def one_worker(root: Path) -> None:
    set_yaml(root, "workers: 2", "workers: 1")


def test_a_model_is_served_recorded_and_a_redeploy_is_cached(
    iris_repo: Path, iris: IrisModel
) -> None:
    one_worker(iris_repo)
    stages = Stages(iris_repo)
    project = stages.project
    outputs = {
        "source": stages.source(),
        "build": stages.build(),
        "register": registered(project, iris),
    }
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
    outputs = {
        "source": stages.source(),
        "build": stages.build(),
        "register": registered(project, iris),
    }
    with pytest.raises(MlcicdError, match="cannot load the model on purpose"):
        DeployStage().run(stages.context(outputs))
    record = project.state.get_endpoint(ENDPOINT)
    assert record is None or record.status != "InService"


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
    outputs = {
        "source": stages.source(),
        "build": stages.build(),
        "register": registered(project, iris),
    }
    deployed = DeployStage().run(stages.context(outputs))
    live = json.loads((project.state_dir / "endpoints" / ENDPOINT / "status.json").read_text())
    assert (
        live["autoscaling"]["max_instances"] == 2 and live["autoscaling"]["current_instances"] == 1
    )
    (config,) = project.state.endpoint_configs(ENDPOINT)
    assert config.name == deployed.outputs["config_name"]
    assert config.spec["autoscaling"]["target_invocations_per_instance"] == 9000  # in its name
