"""A rollback asked for while a run is in progress is queued in the service, not refused: it
runs right after that run, before the pipeline's queued runs, to the version decided when it
was asked for; and it survives a kill -9 of the service."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.project import Project
from mlcicd.service import client
from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.service.conftest import ServiceProcess, fast_project, finished
from tests.service.test_recovery import HOLD, stage_running

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint"


def served_version(root: Path) -> int:
    return int(
        as_json(mlcicd(root, "endpoints", "describe", ENDPOINT, "--json"))["endpoint"][
            "model_version"
        ]
    )


def deployed_twice(root: Path) -> None:
    """Models 1 and 2 deployed in turn, without the service."""
    first = mlcicd(root, "run")
    assert first.exit_code == 0, first.output
    set_yaml(root, "C: 1.0", "C: 0.5")
    commit_all(root, "model 2")
    second = mlcicd(root, "run")
    assert second.exit_code == 0, second.output
    assert served_version(root) == 2


def held_training(root: Path, hold: Path) -> str:
    """A commit (model 3) whose training waits while ``hold`` exists."""
    hold.write_text("")
    train = root / "src" / "train.py"
    marker = "\nimport argparse\n"
    train.write_text(train.read_text().replace(marker, marker + HOLD.format(hold=str(hold)), 1))
    set_yaml(root, "C: 0.5", "C: 2.0")
    return commit_all(root, "model 3, trained slowly")


def test_a_rollback_during_a_run_is_queued_and_runs_next(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    root = fast_project(tmp_path / "iris")
    deployed_twice(root)
    hold = tmp_path / "hold"
    held_training(root, hold)
    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)
    project = Project(root)
    slow = client.submit_run(service.url, project)["run"]["id"]
    wait_for("training to start", lambda: stage_running(service, slow, "train"))

    # Asked for during the run: queued, not refused.
    asked = mlcicd(root, "endpoints", "rollback", ENDPOINT, "--to", "1", "--reason", "p99 doubled")
    assert asked.exit_code == 0, asked.output
    first = max(r["id"] for r in service.get("/api/runs"))
    assert (
        f"rollback of {ENDPOINT} from iris-classifier/2 to iris-classifier/1 queued as run {first}"
        in asked.output
    )
    assert f"it runs when run {slow} ends, before any queued run" in asked.output
    assert f"follow it: `mlcicd runs show {first}`" in asked.output

    # A new commit queued after it neither supersedes it nor goes before it.
    (root / "README.md").write_text("a newer commit\n")
    commit_all(root, "newer commit")
    submitted = client.submit_run(service.url, project)
    newer = submitted["run"]["id"]
    assert submitted["superseded"] == []

    # A newer rollback of the endpoint replaces the queued one; without --to it means the model
    # before the one served now (2), i.e. 1 — decided now, whatever deploys in between.
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlcicd",
            "-C",
            str(root),
            "endpoints",
            "rollback",
            ENDPOINT,
            "--reason",
            "still bad",
            "--wait",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        second = wait_for(
            "the second rollback to queue",
            lambda: next((r["id"] for r in service.get("/api/runs") if r["id"] > newer), None),
            60,
        )
        replaced = service.get(f"/api/runs/{first}")["run"]
        assert replaced["status"] == "Superseded"
        assert replaced["failure_reason"].startswith(
            f"replaced by rollback run {second} (to iris-classifier/1"
        )
        queued = service.get(f"/api/runs/{second}")["run"]
        assert queued["status"] == "Queued" and queued["trigger"]["version"] == 1
        assert (
            queued["trigger"]["chosen"] == "previous" and queued["trigger"]["reason"] == "still bad"
        )

        hold.unlink()  # the slow run ends (deploying model 3), then the rollback runs
        output, _ = waiting.communicate(timeout=240)
    finally:
        if waiting.poll() is None:
            waiting.kill()
        hold.unlink(missing_ok=True)
    assert waiting.returncode == 0, output + (tmp_path / "service.log").read_text()
    assert (
        f"run {first} (a rollback of {ENDPOINT} queued earlier, not started) is replaced by "
        f"run {second}" in output
    )
    assert f"{ENDPOINT} serves iris-classifier/1 at http://" in output
    assert finished(root, slow) == "Succeeded"
    assert wait_for("the newer commit's run", lambda: finished(root, newer)) == "Succeeded"

    runs = {r["id"]: r for r in as_json(mlcicd(root, "runs", "list", "--json"))}
    rollback, after = runs[second], runs[newer]
    assert rollback["status"] == "Succeeded" and rollback["trigger"]["by"] == client.user()
    assert (
        rollback["message"]
        == f"rollback of {ENDPOINT} to iris-classifier/1 by {client.user()}: still bad"
    )
    assert (
        runs[slow]["ended_at"] <= rollback["started_at"]
        and rollback["ended_at"] <= after["started_at"]
    )

    history = as_json(mlcicd(root, "endpoints", "history", ENDPOINT, "--json"))
    assert [(h["reason"], h["model_version"]) for h in history][:4] == [
        ("deploy", 1),
        ("deploy", 2),
        ("deploy", 3),
        ("rollback", 1),
    ]
    assert history[3]["detail"] == (
        f"rollback from iris-classifier/3 to iris-classifier/1 (asked for while it served "
        f"iris-classifier/2) by {client.user()}: still bad"
    )
    assert [h["reason"] for h in history[4:]] == ["deploy"]  # the newer commit, after the rollback

    events = as_json(mlcicd(root, "events", "--json"))
    queued_events = [e for e in events if e["kind"] == "rollback_queued"]
    assert [e["data"]["run_id"] for e in queued_events] == [first, second]
    assert (
        queued_events[1]["data"]["replaces"] == [first]
        and queued_events[1]["data"]["why"] == "still bad"
    )
    rolled = next(e for e in events if e["kind"] == "rolled_back")
    assert rolled["data"]["run_id"] == second and rolled["data"]["why"] == "still bad"

    refused = mlcicd(root, "runs", "retry", str(second))
    assert refused.exit_code != 0 and "was a rollback" in refused.output


def test_a_queued_rollback_survives_kill_9_of_the_service(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    root = fast_project(tmp_path / "iris")
    deployed_twice(root)
    hold = tmp_path / "hold"
    held_training(root, hold)
    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)
    try:
        slow = client.submit_run(service.url, Project(root))["run"]["id"]
        wait_for("training to start", lambda: stage_running(service, slow, "train"))
        asked = mlcicd(root, "endpoints", "rollback", ENDPOINT, "-m", "bad model")
        assert asked.exit_code == 0, asked.output
        rollback = max(r["id"] for r in service.get("/api/runs"))
        assert f"to iris-classifier/1 queued as run {rollback}" in asked.output

        service.kill(signal.SIGKILL)
        # The slow run is Failed (interrupted); the rollback runs, training still held.
        service.start()
        assert wait_for("the interrupted run", lambda: finished(root, slow)) == "Failed"
        assert wait_for("the restored rollback", lambda: finished(root, rollback)) == "Succeeded", (
            tmp_path / "service.log"
        ).read_text()
    finally:
        hold.unlink(missing_ok=True)
    assert (
        f"queued run(s) from before: {rollback} (rollback to iris-classifier/1)"
        in (tmp_path / "service.log").read_text()
    )
    assert served_version(root) == 1
    shown = as_json(mlcicd(root, "runs", "show", str(rollback), "--json"))
    assert [s["stage"] for s in shown["stages"]] == ["deploy"] and shown["run"]["trigger"][
        "reason"
    ] == "bad model"
    runs = as_json(mlcicd(root, "runs", "list", "--json"))
    assert [r["status"] for r in runs if r["trigger"].get("kind") == "rollback"] == ["Succeeded"]
