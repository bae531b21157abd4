"""The CLI's side of a running service: a run submitted through the API and followed stage by
stage; `approve`, `reject` and `runs retry` going through the API while `mlcicd up` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.daemon import client
from mlcicd.errors import NotFoundError, ProjectError
from mlcicd.operations.http import HttpOperations
from mlcicd.pipeline import RunOptions
from mlcicd.project import Project
from mlcicd.stages import default_stages
from tests.conftest import commit_all
from tests.daemon.conftest import ServiceProcess, fast_project, finished
from tests.helpers import StageRecorder, as_json, mlcicd, set_yaml, wait_for

pytestmark = pytest.mark.integration


def test_run_approve_reject_and_retry_through_the_service(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    root = fast_project(tmp_path / "iris")
    set_yaml(root, "deploy:\n", "approve: manual\n\ndeploy:\n")
    sha = commit_all(root, "manual approval")
    project = Project(root)
    assert client.find_running_service(project) is None

    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)
    url = client.find_running_service(project)
    assert url == service.url

    (root / "scratch.txt").write_text("not committed\n")
    with pytest.raises(ProjectError, match="uncommitted changes"):
        client.submit_run(url, project)
    assert service.get("/api/runs") == []
    (root / "scratch.txt").unlink()

    recorder = StageRecorder()
    ops = HttpOperations(project, url)
    done = ops.finish_run(ops.request_run(RunOptions()), recorder)
    assert done.error is None, (tmp_path / "service.log").read_text()
    assert done.status == "WaitingForApproval"
    run = service.get("/api/runs/1")["run"]
    assert (
        run["status"] == "WaitingForApproval"
        and run["commit_sha"] == sha
        and run["trigger"]["kind"] == "cli"
    )
    stages = [stage.name for stage in default_stages(project.config)]  # staging: before approve
    assert recorder.started == stages[: stages.index("approve") + 1]
    assert ("log", "train") in recorder.events
    assert ("Succeeded", "train") in recorder.events and (
        "WaitingForApproval",
        "approve",
    ) in recorder.events

    with pytest.raises(NotFoundError):
        client.decide(url, project, 99, True, None)

    approved = mlcicd(root, "approve", "1", "-m", "looks good")
    assert approved.exit_code == 0, approved.output
    assert f"the service at {url} continues run 1" in approved.output
    assert "run 1 succeeded" in approved.output
    shown = service.get("/api/runs/1")
    assert shown["run"]["status"] == "Succeeded" and shown["approval"]["comment"] == "looks good"
    assert (
        as_json(mlcicd(root, "endpoints", "describe", "iris-classifier-endpoint", "--json"))[
            "endpoint"
        ]["status"]
        == "InService"
    )

    retried = mlcicd(root, "runs", "retry", "1")
    assert retried.exit_code == 0, retried.output
    assert f"queued in the service at {url}" in retried.output
    assert (
        wait_for("the retry", lambda: finished(root, 2)) == "Succeeded"
    )  # its model was approved before

    set_yaml(root, "C: 1.0", "C: 0.5")
    commit_all(root, "another model")
    submitted = client.submit_run(url, project)
    assert submitted["run"]["id"] == 3 and not submitted["existing"]
    assert client.submit_run(url, project)["existing"]  # the same commit again: the same run
    wait_for(
        "run 3 to wait for approval",
        lambda: service.get("/api/runs/3")["run"]["status"] == "WaitingForApproval",
    )
    rejected = mlcicd(root, "reject", "3", "-m", "no need")
    assert rejected.exit_code == 0, rejected.output
    assert finished(root, 3) == "Failed"  # followed to its end
    assert service.get("/api/runs/3")["approval"]["status"] == "Rejected"
    endpoint = as_json(mlcicd(root, "endpoints", "describe", "iris-classifier-endpoint", "--json"))[
        "endpoint"
    ]
    assert endpoint["model_version"] == 1


def test_mlcicd_run_goes_through_a_running_service(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    root = fast_project(tmp_path / "iris")
    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)
    result = mlcicd(root, "run")
    assert result.exit_code == 0, result.output
    assert f"via {service.url}" in result.output
    runs = service.get("/api/runs")
    assert (
        len(runs) == 1 and runs[0]["trigger"]["kind"] == "cli" and runs[0]["status"] == "Succeeded"
    )
