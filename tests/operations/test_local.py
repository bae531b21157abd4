"""The operations in this process (:class:`~mlcicd.operations.local.LocalOperations`) on a
real project and state: each operation, and the errors the CLI prints for them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.daemon.auth import os_user
from mlcicd.daemon.info import INFO_FILE
from mlcicd.errors import GateError, NotFoundError, ProjectError, StateError
from mlcicd.operations import RunRequest, open_operations
from mlcicd.operations.local import LocalOperations
from mlcicd.pipeline import RunOptions
from mlcicd.project import Project
from mlcicd.stages import default_stages
from mlcicd.state.approvals import TIMED_OUT_BY
from tests.conftest import commit_all, git, make_repo, stop_endpoints
from tests.daemon.conftest import fast_project
from tests.helpers import StageRecorder, record_endpoint, register_model, set_yaml

ENDPOINT = "iris-classifier-endpoint"
STAGES = ["source", "build", "train", "gate", "approve", "register", "deploy"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(make_repo(tmp_path / "iris"))


def head(project: Project) -> str:
    return git(project.root, "rev-parse", "HEAD").strip()


def waiting(project: Project, *, timeout: float | None = None) -> int:
    """A run of HEAD waiting for the approval of model iris-classifier/1."""
    run = project.state.create_run(
        pipeline="iris-classifier",
        project_dir=str(project.root),
        stages=STAGES,
        commit_sha=head(project),
    )
    project.state.wait_for_approval(run.id)
    project.state.request_approval(run.id, "iris-classifier", 1, timeout=timeout, summary={})
    return run.id


def test_open_operations_stays_here_without_a_live_service(project: Project) -> None:
    assert isinstance(open_operations(project), LocalOperations)
    # The service.json of a service killed with -9: its pid is gone.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (project.state_dir / INFO_FILE).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": int(gone.stdout), "pid_start": 1.0})
    )
    ops = open_operations(project)
    assert isinstance(ops, LocalOperations) and ops.service_url is None
    assert isinstance(open_operations(project, through_service=False), LocalOperations)


def test_request_run_starts_nothing_yet(project: Project) -> None:
    options = RunOptions(force=True, ref="main")
    request = LocalOperations(project).request_run(options)
    assert request == RunRequest(options)  # no run id: it runs in finish_run
    assert project.state.list_runs() == []


def test_decide_records_who_and_why(project: Project) -> None:
    run_id = waiting(project)
    decision = LocalOperations(project).decide(run_id, True, "looks good")
    assert (decision.run_id, decision.model_group, decision.model_version) == (
        run_id,
        "iris-classifier",
        1,
    )
    assert decision.status == "Approved" and decision.decided_by == os_user()
    assert not decision.timed_out
    approval = project.state.get_approval(run_id)
    assert approval is not None and approval.comment == "looks good"


def test_decide_after_the_deadline_rejects(project: Project) -> None:
    run_id = waiting(project, timeout=1e-9)  # expired once asked
    decision = LocalOperations(project).decide(run_id, True, "too late")
    assert decision.timed_out and decision.status == "Rejected"
    assert decision.decided_by == TIMED_OUT_BY


def test_decide_unknown_or_decided_run_fails(project: Project) -> None:
    ops = LocalOperations(project)
    with pytest.raises(NotFoundError, match="run 99 is not waiting for approval"):
        ops.decide(99, True, None)
    run_id = waiting(project)
    ops.decide(run_id, False, None)
    with pytest.raises(StateError, match=f"run {run_id} was already decided"):
        ops.decide(run_id, True, None)


def test_retry_queues_a_finished_runs_commit(project: Project) -> None:
    ops = LocalOperations(project)
    run = project.state.create_run(
        pipeline="iris-classifier",
        project_dir=str(project.root),
        stages=STAGES,
        commit_sha=head(project),
    )
    with pytest.raises(StateError, match=f"run {run.id} is Running"):
        ops.retry(run.id)
    project.state.finish_run(run.id, "Failed", failed_stage="train", failure_reason="boom")
    retried = ops.retry(run.id)
    assert (retried.retry_of, retried.commit, retried.service_url) == (
        run.id,
        head(project),
        None,
    )
    assert not retried.service_running  # nothing will run it until `mlcicd up` starts
    assert project.state.get_run(retried.run_id).status == "Queued"
    with pytest.raises(NotFoundError, match="run 99 does not exist"):
        ops.retry(99)


def test_request_rollback_decides_the_target(project: Project) -> None:
    ops = LocalOperations(project)
    register_model(project.state, head(project), 1)
    register_model(project.state, head(project), 2)
    record_endpoint(project.state, ENDPOINT, 2)
    request = ops.request_rollback(ENDPOINT, 1, "bad answers")
    assert (request.endpoint, request.target, request.current) == (
        ENDPOINT,
        project.state.get_model_package("iris-classifier", 1).arn,
        "iris-classifier/2",
    )
    assert (request.version, request.reason, request.run_id, request.service_url) == (
        1,
        "bad answers",
        None,
        None,
    )
    with pytest.raises(StateError, match=f"endpoint {ENDPOINT} has served no other model"):
        ops.request_rollback(ENDPOINT, None, None)
    with pytest.raises(NotFoundError, match="endpoint nope does not exist"):
        ops.request_rollback("nope", None, None)


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[Project]:
    """The iris project with a build that skips its own tests; its endpoints stopped after."""
    root = fast_project(tmp_path / "iris")
    yield Project(root)
    stop_endpoints(root)


@pytest.mark.integration
def test_run_approve_roll_back_and_fail_in_this_process(fast: Project) -> None:
    ops = LocalOperations(fast)
    recorder = StageRecorder()
    done = ops.finish_run(ops.request_run(RunOptions()), recorder)
    assert done.error is None and done.status == "Succeeded"
    assert recorder.started == [stage.name for stage in default_stages(fast.config)]
    assert done.record["run"].id == done.run_id == 1
    assert [s.stage for s in done.record["stages"]] == recorder.started
    assert done.deploy["endpoint"] == ENDPOINT and done.deploy["url"].startswith("http://")
    assert done.sample is not None and done.sample.error is None
    assert json.loads(done.sample.request) == json.loads(fast.config.deploy.sample or "")
    assert json.loads(done.sample.answer or "")["labels"] == ["setosa", "virginica"]

    (fast.root / "scratch.txt").write_text("not committed\n")
    dirty = ops.finish_run(ops.request_run(RunOptions()), StageRecorder())
    assert isinstance(dirty.error, ProjectError) and dirty.failed_stage == "source"
    assert "uncommitted changes: scratch.txt" in dirty.error.message
    (fast.root / "scratch.txt").unlink()

    # A second model, approved by hand: the run waits, then goes on here.
    set_yaml(fast.root, "C: 1.0", "C: 0.5")
    set_yaml(fast.root, "deploy:\n", "approve: manual\n\ndeploy:\n")
    commit_all(fast.root, "another model, approved by hand")
    fast = Project(fast.root)
    ops = LocalOperations(fast)
    done = ops.finish_run(ops.request_run(RunOptions()), StageRecorder())
    assert done.error is None and done.status == "WaitingForApproval" and not done.deploy
    decision = ops.decide(done.run_id, True, None)
    assert (decision.model_version, decision.status) == (2, "Approved")
    continued = ops.continue_run(done.run_id, StageRecorder())
    assert (continued.status, continued.service_url) == ("Succeeded", None)

    request = ops.request_rollback(ENDPOINT, None, "v2 answers badly")
    assert (request.current, request.version) == ("iris-classifier/2", 1)
    rolled = ops.finish_rollback(request, StageRecorder(), wait=False)
    assert rolled is not None and rolled.url and rolled.run_id == done.run_id + 1
    assert fast.state.get_endpoint(ENDPOINT).model_version == 1  # type: ignore[union-attr]

    # A model the gate refuses: the failed stage and its log are named.
    set_yaml(fast.root, 'accuracy: ">= 0.85"', 'accuracy: ">= 0.999"')
    commit_all(fast.root, "an impossible gate")
    fast = Project(fast.root)
    ops = LocalOperations(fast)
    done = ops.finish_run(ops.request_run(RunOptions()), StageRecorder())
    assert done.status == "Failed" and isinstance(done.error, GateError)
    assert done.failed_stage == "gate"
    assert done.failed_log is not None and done.failed_log.is_file()
    assert not done.deploy and done.sample is None
