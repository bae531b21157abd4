"""`mlcicd run` with ``staging:`` end to end (issue 10): the held-out proof — a model that
passes the gate but answers wrong is stopped at staging while production keeps serving — and
a kill -9 in the middle of the stage, whose staging server the next run removes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import NotFoundError
from tests.conftest import commit_all
from tests.helpers import as_json, kill_tree, mlcicd, set_yaml, wait_for

pytestmark = pytest.mark.integration

STAGING = "iris-classifier-endpoint-staging"
SETOSA = [5.1, 3.5, 1.4, 0.2]


def statuses(project: Path, run_id: int) -> dict[str, str]:
    shown = as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))
    return {s["stage"]: s["status"] for s in shown["stages"]}


def production_answer(project: Path) -> list[str]:
    invoked = mlcicd(project, "invoke", "iris-classifier-endpoint", "--body", json.dumps([SETOSA]))
    assert invoked.exit_code == 0, invoked.output
    labels: list[str] = json.loads(invoked.stdout)["labels"]
    return labels


def test_a_model_that_passes_the_gate_but_answers_wrong_is_stopped_at_staging(
    iris_project: Path,
) -> None:
    # A held-out project: its unit tests do not check what the model answers (these would).
    set_yaml(
        iris_project, "test: python -m pytest -q tests --ignore", "test: python -c pass --ignore"
    )
    commit_all(iris_project, "no unit tests")
    first = mlcicd(iris_project, "run")
    assert first.exit_code == 0, first.output
    assert list(statuses(iris_project, 1)) == [
        *("source", "build", "train", "gate", "register", "staging", "deploy")
    ]
    assert production_answer(iris_project) == ["setosa"]

    # A bug in training: the labels are shifted by one. The model is as accurate on its own
    # (shifted) test split, so the gate passes it; only the endpoint tests see the answers.
    train = iris_project / "src" / "train.py"
    good = train.read_text()
    assert "x, y = load_dataset(args.train)\n" in good
    train.write_text(
        good.replace(
            "x, y = load_dataset(args.train)\n",
            "x, y = load_dataset(args.train)\n    y = (y + 1) % 3\n",
        )
    )
    commit_all(iris_project, "shift the labels")
    second = mlcicd(iris_project, "run")
    assert second.exit_code == 1, second.output
    assert "model iris-classifier/2 failed staging in run 2: the endpoint tests failed" in (
        second.output
    )
    shown = statuses(iris_project, 2)
    assert (shown["gate"], shown["staging"]) == ("Succeeded", "Failed")
    assert shown["deploy"] != "Succeeded"
    assert production_answer(iris_project) == ["setosa"]  # still the first model

    models = {m["version"]: m for m in as_json(mlcicd(iris_project, "models", "list", "--json"))}
    assert models[2]["status"] == "Rejected"
    assert models[2]["status_reason"].startswith("failed staging in run 2: the endpoint tests")
    assert models[2]["lineage"]["staging"]["test"]["counts"]["failed"] == 3
    assert "Rejected" in mlcicd(iris_project, "models", "list").output
    report = mlcicd(iris_project, "runs", "show", "2").output
    assert "endpoint tests: 3 failed, 5 passed (exit 1)" in report
    assert "FAILED tests/endpoint/test_endpoint.py::test_known_rows_get_their_species_json" in (
        report
    )

    # Fixed (and a new hyperparameter): it passes staging and goes to production.
    train.write_text(good)
    set_yaml(iris_project, "C: 1.0", "C: 0.9")
    commit_all(iris_project, "fix the labels")
    third = mlcicd(iris_project, "run")
    assert third.exit_code == 0, third.output
    assert statuses(iris_project, 3)["staging"] == "Succeeded"
    described = as_json(
        mlcicd(iris_project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
    )
    assert described["endpoint"]["model_version"] == 3
    assert production_answer(iris_project) == ["setosa"]
    report = mlcicd(iris_project, "runs", "show", "3").output
    assert "endpoint tests: 8 passed (exit 0)" in report and "load check: 200 requests" in report


def test_a_kill_9_during_staging_leaves_a_server_that_the_next_run_removes(
    iris_project: Path, tmp_path: Path
) -> None:
    started = tmp_path / "tests-started"
    blocking = (
        f'python -c "import os, pathlib, time; '
        f"pathlib.Path('{started}').write_text(str(os.getpid())); "
        'time.sleep(600)"'
    )
    set_yaml(iris_project, "test: python -m pytest tests/endpoint -q", f"test: {blocking}")
    commit_all(iris_project, "endpoint tests that hang")
    backend = LocalEndpointBackend(iris_project / ".mlcicd" / "endpoints")
    run = subprocess.Popen(
        [sys.executable, "-m", "mlcicd", "-C", str(iris_project), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    test_pid = 0
    try:
        test_pid = int(
            wait_for(
                "the endpoint tests to start", lambda: started.is_file() and started.read_text()
            )
        )
        server = backend.describe(STAGING)
        assert server.status == "InService" and server.pid is not None
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    finally:
        kill_tree([test_pid])  # the test command runs in a session of its own
        if run.poll() is None:
            run.kill()
    assert _alive(server.pid)  # nothing removed it: the run died mid-stage

    set_yaml(iris_project, f"test: {blocking}", "test: python -m pytest tests/endpoint -q")
    commit_all(iris_project, "endpoint tests that pass")
    again = mlcicd(iris_project, "run")
    assert again.exit_code == 0, again.output
    assert f"removed staging endpoint {STAGING}: the run that deployed it is over" in again.output
    wait_for("the orphaned staging server to exit", lambda: not _alive(server.pid))
    with pytest.raises(NotFoundError):
        backend.describe(STAGING)  # and this run's own staging endpoint was deleted after it
    assert statuses(iris_project, 1)["staging"] == "Failed"  # the dead run, reaped


def _alive(pid: int) -> bool:
    return procinfo.start_time(pid) is not None  # a zombie is gone: it serves nothing


def test_a_manual_approval_comes_after_staging_with_its_results(iris_project: Path) -> None:
    set_yaml(
        iris_project, "test: python -m pytest -q tests --ignore", "test: python -c pass --ignore"
    )
    set_yaml(iris_project, "deploy:\n", "approve: manual\n\ndeploy:\n")
    commit_all(iris_project, "manual approval after staging")
    waiting = mlcicd(iris_project, "run")
    assert waiting.exit_code == 0, waiting.output
    shown = statuses(iris_project, 1)
    assert list(shown) == [
        *("source", "build", "train", "gate", "register", "staging", "approve", "deploy")
    ]
    assert (shown["staging"], shown["approve"]) == ("Succeeded", "WaitingForApproval")
    (package,) = as_json(mlcicd(iris_project, "models", "list", "--json"))
    # Registered but not Approved until the person decides, with what staging found.
    assert package["status"] == "PendingManualApproval"
    assert package["lineage"]["staging"]["test"]["counts"] == {"passed": 8}
    assert mlcicd(iris_project, "endpoints", "list", "--json").stdout.strip() == "[]"

    approved = mlcicd(iris_project, "approve", "1")
    assert approved.exit_code == 0, approved.output
    shown = statuses(iris_project, 1)
    assert (shown["approve"], shown["deploy"]) == ("Succeeded", "Succeeded")
    (package,) = as_json(mlcicd(iris_project, "models", "list", "--json"))
    assert package["status"] == "Approved"
    assert production_answer(iris_project) == ["setosa"]
