"""`mlcicd up` restarted after its endpoint's server was killed too: the endpoint comes back
serving the same endpoint config — the same model, and every serving setting it had (here:
data capture) — and answers correct predictions."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.service.conftest import ROWS, ServiceProcess, fast_project, finished

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint"
CAPTURE = """  data_capture:
    enabled: true
    sampling_percentage: 100
"""


def describe(project: Path) -> dict[str, Any]:
    """The endpoint's record, and what its server says it serves (``live``)."""
    shown = as_json(mlcicd(project, "endpoints", "describe", ENDPOINT, "--json"))
    return {**shown["endpoint"], "live": shown["live"]}


def served_config(project: Path) -> dict[str, Any]:
    data = json.loads((project / ".mlcicd" / "endpoints" / ENDPOINT / "config.json").read_text())
    data.pop("port")  # 0 (any) at first; the port it listened on when restored
    return dict(data)


def test_up_restart_restores_the_endpoint_as_it_was(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    project = fast_project(tmp_path / "iris")
    set_yaml(project, "  workers: 2\n", "  workers: 2\n" + CAPTURE)
    set_yaml(project, "branch: main ", "service:\n  poll_interval: 1\nbranch: main ")
    sha = commit_all(project, "capture, and poll the branch")

    service = ServiceProcess(project, tmp_path / "service.log").start()
    services.append(service)
    runs = wait_for("the poll to queue a run", lambda: service.get("/api/runs"))
    assert runs[0]["commit_sha"] == sha and runs[0]["trigger"]["kind"] == "poll"
    status = wait_for("the run", lambda: finished(project, runs[0]["id"]))
    assert status == "Succeeded", (tmp_path / "service.log").read_text()
    before = describe(project)
    assert before["status"] == "InService"
    config_before = served_config(project)
    assert config_before["capture"] is not None

    service.stop()  # the endpoint outlives the service, by design; then it dies too
    os.kill(before["pid"], signal.SIGKILL)
    wait_for(
        "the endpoint to be out of service", lambda: describe(project)["status"] != "InService"
    )

    service.start()
    after = wait_for(
        "the endpoint to come back", lambda: (d := describe(project))["status"] == "InService" and d
    )
    assert after["pid"] != before["pid"]
    assert after["config_name"] == before["config_name"]
    assert after["model_sha256"] == before["model_sha256"]
    assert after["model_version"] == before["model_version"]
    assert after["live"]["config_name"] == before["live"]["config_name"] == before["config_name"]
    assert after["live"]["model_sha256"] == before["live"]["model_sha256"] == before["model_sha256"]
    assert after["port"] == before["port"]  # free again: the same URL
    assert served_config(project) == config_before  # shadow, capture, deployment policy: all kept
    invoked = mlcicd(project, "invoke", ENDPOINT, "--body", json.dumps(ROWS))
    assert invoked.exit_code == 0, invoked.output
    assert json.loads(invoked.stdout)["labels"] == ["setosa", "virginica"]
    history = service.get(f"/api/endpoints/{ENDPOINT}/history")
    assert (
        history[-1]["reason"] == "restart" and "restored at service start" in history[-1]["detail"]
    )
    assert len(service.get("/api/runs")) == 1  # nothing was run again to restore it
