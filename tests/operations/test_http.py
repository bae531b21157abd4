"""The operations over a real `mlcicd up`'s API (:class:`~mlcicd.operations.http.HttpOperations`):
each operation, its answers, and the errors the CLI prints — the service's own, and the
service gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.daemon.auth import os_user
from mlcicd.errors import NotFoundError, ServiceError, StageError, StateError
from mlcicd.operations import RunRequest, open_operations
from mlcicd.operations.http import HttpOperations
from mlcicd.operations.local import LocalOperations
from mlcicd.pipeline import RunOptions
from mlcicd.project import Project
from mlcicd.stages import default_stages
from tests.conftest import commit_all
from tests.daemon.conftest import ServiceProcess, fast_project
from tests.helpers import StageRecorder, set_yaml

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint"


def test_each_operation_through_the_service(tmp_path: Path, services: list[ServiceProcess]) -> None:
    root = fast_project(tmp_path / "iris")
    set_yaml(root, "deploy:\n", "approve: manual\n\ndeploy:\n")
    sha = commit_all(root, "manual approval")
    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)
    project = Project(root)
    ops = open_operations(project)
    assert isinstance(ops, HttpOperations) and ops.service_url == service.url
    log = (tmp_path / "service.log").read_text

    # The service's refusals arrive as the errors the CLI prints.
    with pytest.raises(NotFoundError, match="run 99 is not waiting for approval"):
        ops.decide(99, True, None)
    with pytest.raises(NotFoundError, match="run 99 does not exist"):
        ops.retry(99)
    with pytest.raises(NotFoundError, match=f"endpoint {ENDPOINT} does not exist"):
        ops.request_rollback(ENDPOINT, None, None)

    request = ops.request_run(RunOptions())
    assert (request.run_id, request.commit, request.service_url) == (1, sha, service.url)
    assert not request.existing and request.superseded == []
    again = ops.request_run(RunOptions())
    assert again.existing and again.run_id == 1  # the same commit: the same run, followed

    recorder = StageRecorder()
    heard: list[str] = []
    done = ops.finish_run(request, recorder, on_wait=heard.append)
    assert done.error is None and done.status == "WaitingForApproval", log()
    assert done.record["run"]["id"] == 1 and not done.deploy
    stages = [stage.name for stage in default_stages(project.config)]
    assert recorder.started == stages[: stages.index("approve") + 1]
    assert ("log", "train") in recorder.events

    decision = ops.decide(1, True, "looks good")
    assert (decision.model_group, decision.model_version, decision.status) == (
        "iris-classifier",
        1,
        "Approved",
    )
    assert decision.decided_by == os_user() and not decision.timed_out
    with pytest.raises(StateError, match="run 1 was already decided"):
        ops.decide(1, False, None)
    continued = ops.continue_run(1, StageRecorder())
    assert (continued.status, continued.service_url) == ("Succeeded", service.url)

    retried = ops.retry(1)
    assert (retried.retry_of, retried.commit, retried.service_url) == (1, sha, service.url)
    assert retried.service_running
    followed = RunRequest(RunOptions(), service_url=service.url, run_id=retried.run_id)
    done = ops.finish_run(followed, StageRecorder())
    assert done.status == "Succeeded", log()  # its model was approved before
    assert done.deploy["endpoint"] == ENDPOINT and done.deploy["url"].startswith("http://")
    assert done.sample is None  # the service's run is not asked for a sample here

    with pytest.raises(StateError, match=f"endpoint {ENDPOINT} has served no other model"):
        ops.request_rollback(ENDPOINT, None, None)

    set_yaml(root, 'accuracy: ">= 0.85"', 'accuracy: ">= 0.999"')
    commit_all(root, "an impossible gate")
    failing = ops.request_run(RunOptions())
    done = ops.finish_run(failing, StageRecorder())
    assert done.status == "Failed" and isinstance(done.error, StageError)
    assert done.failed_stage == "gate" and done.failed_log is None
    assert done.error.headline.startswith(f"run {failing.run_id} failed in gate: ")
    assert done.error.exit_code == 1

    # The service stops: what was opened through it says so; the next command stays here.
    service.stop()
    with pytest.raises(ServiceError, match=r"did not answer: .*Connection refused") as gone:
        ops.decide(1, True, None)
    assert gone.value.headline.startswith(f"the service at {service.url}/api/runs/1/approve")
    assert isinstance(open_operations(project), LocalOperations)
