"""`mlcicd endpoints rollback` without a service: refused while a run is in progress, with a
message that says what to do (the service queues it; or wait). No model is trained here."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mlcicd.cli import cli
from mlcicd.project import Project
from tests.conftest import git, make_repo
from tests.helpers import record_endpoint, register_model

ENDPOINT = "iris-classifier-endpoint"


def test_rollback_during_a_run_is_refused_and_says_to_use_the_service(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "iris")
    state = Project(root).state
    sha = git(root, "rev-parse", "HEAD").strip()
    register_model(state, sha, 1)
    register_model(state, sha, 2)
    record_endpoint(state, ENDPOINT, 2)
    running = state.create_run(
        pipeline="iris-classifier", project_dir=str(root), stages=["train"]
    )  # this pid: alive

    result = CliRunner().invoke(
        cli, ["-C", str(root), "endpoints", "rollback", ENDPOINT, "--to", "1"]
    )
    assert result.exit_code == 1
    assert f"run {running.id} of iris-classifier is in progress" in result.output
    assert (
        "start `mlcicd up` and roll back again" in result.output
        and f"wait for run {running.id}" in result.output
    )
    assert [r.id for r in state.list_runs()] == [running.id]  # nothing was started

    other = CliRunner().invoke(
        cli, ["-C", str(root), "endpoints", "rollback", "someone-elses", "--to", "1"]
    )
    assert other.exit_code != 0 and "does not exist" in other.output
