"""kill -9 of the service mid-training: after a restart every run is in a definite state,
the interrupted one can be retried, and queued runs are neither lost nor run twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from mlcicd.service.info import running_service
from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, wait_for
from tests.service.conftest import ServiceProcess, fast_project, finished, run_status

pytestmark = pytest.mark.integration

HOLD = """
import os as _os, time as _time
while _os.path.exists({hold!r}):  # the test holds training here
    _time.sleep(0.05)
"""


def stage_running(service: ServiceProcess, run_id: int, stage: str) -> bool:
    stages = service.get(f"/api/runs/{run_id}")["stages"]
    return any(s["stage"] == stage and s["status"] == "Running" for s in stages)


def test_kill_9_mid_training_then_restart(tmp_path: Path, services: list[ServiceProcess]) -> None:
    project = fast_project(tmp_path / "iris")
    hold = tmp_path / "hold"
    hold.write_text("")
    train = project / "src" / "train.py"
    text = train.read_text()
    marker = "\nimport argparse\n"
    train.write_text(text.replace(marker, marker + HOLD.format(hold=str(hold)), 1))
    first = commit_all(project, "training that waits for the test")

    service = ServiceProcess(project, tmp_path / "service.log").start()
    services.append(service)
    queued = mlcicd(project, "hooks", "install", str(project))  # finds the service's port itself
    assert queued.exit_code == 0 and queued.output.endswith(f"→ {service.url}\n"), queued.output
    # The post-commit hook queues the next commit; a run of HEAD needs a push of its own:
    (project / "README.md").write_text("v2\n")
    second = commit_all(project, "second")  # post-commit → a run of `second`
    wait_for("a run to be queued", lambda: service.get("/api/runs"))
    run_id = service.get("/api/runs")[0]["id"]
    wait_for("training to start", lambda: stage_running(service, run_id, "train"))
    (project / "README.md").write_text("v3\n")
    third = commit_all(project, "third")  # queued behind the running one
    wait_for("the third commit to queue", lambda: len(service.get("/api/runs")) == 2)

    killed = service.process.pid if service.process is not None else None
    service.kill(signal.SIGKILL)
    # Its service.json stays behind, naming a dead process: the CLI ignores it...
    stale = json.loads((project / ".mlcicd" / "service.json").read_text())
    assert stale["pid"] == killed and running_service(project / ".mlcicd") is None

    # ...and so does the restart (which meets it). Restart: nothing is left Running; the
    # interrupted run failed with the reason.
    service.start()
    assert (
        wait_for("the interrupted run to be failed", lambda: finished(project, run_id)) == "Failed"
    )
    shown = as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))
    assert shown["run"]["failed_stage"] == "train"
    assert "interrupted: the mlcicd service stopped" in shown["run"]["failure_reason"]
    jobs = {s["stage"]: s["status"] for s in shown["stages"]}
    assert jobs["train"] == "Failed" and jobs["deploy"] == "Skipped"

    # The queued run was not lost: it runs now (released from the hold).
    hold.unlink()
    runs = service.get("/api/runs")
    third_run = next(r for r in runs if r["commit_sha"] == third)
    assert wait_for("the queued run", lambda: finished(project, third_run["id"])) == "Succeeded", (
        tmp_path / "service.log"
    ).read_text()
    # And the interrupted one can be retried.
    retried = mlcicd(project, "runs", "retry", str(run_id))
    assert retried.exit_code == 0, retried.output
    retry_id = max(r["id"] for r in service.get("/api/runs"))
    assert wait_for("the retry", lambda: finished(project, retry_id)) == "Succeeded"
    assert service.get(f"/api/runs/{retry_id}")["run"]["commit_sha"] == second
    assert run_status(project, run_id) == "Failed"
    assert first != second
