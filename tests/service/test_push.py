"""A real `git push` into a bare repository with the hook installed starts a run, and the
endpoint serves the model of the pushed commit."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import commit_all, git
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.service.conftest import ROWS, ServiceProcess, fast_project, finished

pytestmark = pytest.mark.integration


def test_push_to_a_bare_repository_runs_and_deploys(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    seed = fast_project(tmp_path / "seed")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    served = tmp_path / "served"  # the service's checkout, building from origin
    git(tmp_path, "clone", "-q", str(origin), str(served))
    dev = tmp_path / "dev"  # where a developer works and pushes from
    git(tmp_path, "clone", "-q", str(origin), str(dev))

    service = ServiceProcess(served, tmp_path / "service.log").start()
    services.append(service)
    installed = mlcicd(served, "hooks", "install", str(origin), "--url", service.url)
    assert installed.exit_code == 0, installed.output
    assert (origin / "hooks" / "post-receive").is_file()

    set_yaml(dev, "C: 1.0", "C: 0.5")
    sha = commit_all(dev, "a little more regularisation")
    pushed = git(dev, "push", "-q", "origin", "main")
    del pushed

    runs = wait_for("the push to queue a run", lambda: service.get("/api/runs"))
    assert runs[0]["commit_sha"] == sha and runs[0]["trigger"]["kind"] == "hook"
    run_id = runs[0]["id"]
    assert wait_for("the run to finish", lambda: finished(served, run_id)) == "Succeeded", (
        tmp_path / "service.log"
    ).read_text()
    shown = service.get(f"/api/runs/{run_id}")
    assert [s["status"] for s in shown["stages"]] == ["Succeeded"] * 6
    assert shown["run"]["commit_sha"] == sha

    endpoint = as_json(
        mlcicd(served, "endpoints", "describe", "iris-classifier-endpoint", "--json")
    )["endpoint"]
    assert endpoint["status"] == "InService"
    package = as_json(mlcicd(served, "models", "list", "--json"))[0]
    assert package["commit_sha"] == sha and endpoint["model_version"] == package["version"]
    invoked = mlcicd(served, "invoke", "iris-classifier-endpoint", "--body", json.dumps(ROWS))
    assert json.loads(invoked.stdout)["labels"] == ["setosa", "virginica"]

    # The same commit again (a hook firing twice) starts nothing.
    git(dev, "push", "-q", "origin", "main")
    assert len(service.get("/api/runs")) == 1

    # A crashed endpoint server is restarted, serving the same model, and the restart recorded.
    os.kill(endpoint["pid"], signal.SIGKILL)

    def restarted() -> bool:
        history = service.get("/api/endpoints/iris-classifier-endpoint/history")
        return any(h["reason"] == "restart" for h in history)

    wait_for("the endpoint to be restarted", restarted)
    again = as_json(mlcicd(served, "endpoints", "describe", "iris-classifier-endpoint", "--json"))[
        "endpoint"
    ]
    assert again["status"] == "InService" and again["pid"] != endpoint["pid"]
    assert again["model_version"] == endpoint["model_version"]
    invoked = mlcicd(served, "invoke", "iris-classifier-endpoint", "--body", json.dumps(ROWS))
    assert json.loads(invoked.stdout)["labels"] == ["setosa", "virginica"]
    assert "restarted" in [e["kind"] for e in service.get("/api/events")]
