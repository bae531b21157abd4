"""`approve: manual`: the run waits with the model's metrics beside production's; approve,
reject and the timeout decide, recording who and why."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import commit_all, stop_endpoints
from tests.daemon.conftest import fast_project
from tests.helpers import as_json, mlcicd, set_yaml

pytestmark = pytest.mark.integration


def stages(project: Path, run_id: int) -> dict[str, str]:
    return {
        s["stage"]: s["status"]
        for s in as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))["stages"]
    }


def package(project: Path, version: int) -> dict[str, object]:
    return next(
        p for p in as_json(mlcicd(project, "models", "list", "--json")) if p["version"] == version
    )


def test_approve_reject_and_timeout(tmp_path: Path) -> None:
    project = fast_project(tmp_path / "iris")
    try:
        set_yaml(project, "deploy:\n", "approve: manual\n\ndeploy:\n")
        commit_all(project, "manual approval")

        waiting = mlcicd(project, "run")
        assert waiting.exit_code == 0, waiting.output
        assert "waiting for approval: `mlcicd approve 1`" in waiting.output
        assert (
            as_json(mlcicd(project, "runs", "show", "1", "--json"))["run"]["status"]
            == "WaitingForApproval"
        )
        assert (
            stages(project, 1)["approve"] == "WaitingForApproval"
            and stages(project, 1)["deploy"] == "Pending"
        )
        assert package(project, 1)["status"] == "PendingManualApproval"
        assert mlcicd(project, "endpoints", "list", "--json").stdout.strip() == "[]"

        approved = mlcicd(project, "approve", "1", "--comment", "looks good")
        assert approved.exit_code == 0, approved.output
        assert f"approved by {os.environ.get('USER') or ''}".rstrip() in approved.output
        assert stages(project, 1) == {
            **dict.fromkeys(("source", "build", "train", "gate", "approve", "deploy"), "Succeeded"),
            # the approval stage registered it (PendingManualApproval → Approved)
            "register": "Cached",
        }
        assert package(project, 1)["status"] == "Approved"
        assert "looks good" in str(package(project, 1)["status_reason"])
        endpoint = as_json(
            mlcicd(project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
        )["endpoint"]
        assert endpoint["model_version"] == 1

        # A second model waits showing production's metrics; rejected, the endpoint keeps model 1.
        set_yaml(project, "C: 1.0", "C: 0.5")
        commit_all(project, "C 0.5")
        second = mlcicd(project, "run")
        assert "production iris-classifier/1" in second.output
        assert mlcicd(project, "approve", "1").exit_code != 0  # decided once only
        rejected = mlcicd(project, "reject", "2", "-m", "not convinced")
        assert (
            rejected.exit_code != 0
            and "rejected by" in rejected.output
            and "not convinced" in rejected.output
        )
        shown = as_json(mlcicd(project, "runs", "show", "2", "--json"))
        assert shown["run"]["status"] == "Failed" and shown["run"]["failed_stage"] == "approve"
        assert package(project, 2)["status"] == "Rejected"
        endpoint = as_json(
            mlcicd(project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
        )["endpoint"]
        assert endpoint["model_version"] == 1

        # Unanswered past approve.timeout: rejected.
        set_yaml(project, "approve: manual", "approve: {mode: manual, timeout: 0.5}")
        set_yaml(project, "C: 0.5", "C: 0.25")
        commit_all(project, "timeout")
        assert mlcicd(project, "run").exit_code == 0
        time.sleep(0.6)  # past the timeout (not an assertion on time)
        late = mlcicd(project, "approve", "3")
        assert late.exit_code != 0 and "timed out" in late.output
        assert as_json(mlcicd(project, "runs", "show", "3", "--json"))["run"]["status"] == "Failed"
        assert package(project, 3)["status"] == "Rejected"

        kinds = [e["kind"] for e in as_json(mlcicd(project, "events", "--json"))]
        assert (
            kinds.count("registered") == 3 and "approved" in kinds and kinds.count("rejected") == 2
        )
        assert "deployed" in kinds
    finally:
        stop_endpoints(project)
