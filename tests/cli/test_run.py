"""`mlcicd run` end to end on a committed copy of the iris project: real git, real
environments, real training subprocesses and a real HTTP endpoint."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd import procinfo
from tests.conftest import commit_all
from tests.helpers import as_foreground_job, as_json, kill_tree, mlcicd, set_yaml, wait_for

pytestmark = pytest.mark.integration

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def stage_status(project: Path, run_id: int) -> dict[str, str]:
    shown = as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))
    return {s["stage"]: s["status"] for s in shown["stages"]}


def skip_project_tests(project: Path) -> None:
    """For a train.py that only sleeps: the project's own tests would run it too."""
    set_yaml(project, "test: python -m pytest -q tests", "test: python -c pass")


def test_run_deploys_a_serving_endpoint_and_rerun_is_cached(iris_project: Path) -> None:
    result = mlcicd(iris_project, "run", str(iris_project))
    assert result.exit_code == 0, result.output
    for stage in ("source", "build", "train", "gate", "register", "staging", "deploy"):
        assert stage in result.output
    assert "accuracy=0.9333" in result.output  # the training log tail
    assert "/invocations" in result.output and "sample" in result.output

    assert stage_status(iris_project, 1) == dict.fromkeys(
        ("source", "build", "train", "gate", "register", "staging", "deploy"), "Succeeded"
    )
    endpoint = as_json(
        mlcicd(iris_project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
    )
    assert endpoint["endpoint"]["status"] == "InService"
    assert endpoint["endpoint"]["model_version"] == 1
    pid = endpoint["endpoint"]["pid"]

    invoked = mlcicd(iris_project, "invoke", "iris-classifier-endpoint", "--body", json.dumps(ROWS))
    assert invoked.exit_code == 0, invoked.output
    assert json.loads(invoked.stdout)["labels"] == ["setosa", "virginica"]

    models = as_json(mlcicd(iris_project, "models", "list", "--json"))
    assert [(m["group_name"], m["version"], m["status"]) for m in models] == [
        ("iris-classifier", 1, "Approved")
    ]
    assert models[0]["metrics"]["accuracy"] >= 0.85
    assert (
        models[0]["lineage"]["commit"]["commit"]
        == as_json(mlcicd(iris_project, "runs", "show", "1", "--json"))["run"]["commit_sha"]
    )
    assert models[0]["training_job"].startswith("iris-classifier-")

    # Unchanged rerun: everything cached, the same endpoint process keeps serving.
    again = mlcicd(iris_project, "run")
    assert again.exit_code == 0, again.output
    statuses = stage_status(iris_project, 2)
    assert statuses == {
        "source": "Succeeded",
        "build": "Cached",
        "train": "Cached",
        "gate": "Succeeded",
        "register": "Cached",
        "staging": "Cached",  # the same model and endpoint tests passed staging in run 1
        "deploy": "Cached",
    }
    assert "cached" in again.output
    endpoint = as_json(
        mlcicd(iris_project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
    )
    assert endpoint["endpoint"]["pid"] == pid
    assert len(as_json(mlcicd(iris_project, "models", "list", "--json"))) == 1

    # --force reruns every stage; the same bytes stay the same model version.
    forced = mlcicd(iris_project, "run", "--force")
    assert forced.exit_code == 0, forced.output
    statuses = stage_status(iris_project, 3)
    assert [statuses[s] for s in ("build", "train", "staging", "deploy")] == ["Succeeded"] * 4
    assert statuses["register"] == "Cached"
    assert len(as_json(mlcicd(iris_project, "models", "list", "--json"))) == 1

    runs = as_json(mlcicd(iris_project, "runs", "list", "--json"))
    assert [r["status"] for r in runs] == ["Succeeded"] * 3
    logs = mlcicd(iris_project, "logs", "1", "--stage", "train")
    assert logs.exit_code == 0 and "accuracy=" in logs.output

    # The gate both ways: a stricter threshold rejects the next model; the endpoint is untouched.
    set_yaml(iris_project, 'accuracy: ">= 0.85"', 'accuracy: ">= 0.99"')
    commit_all(iris_project, "stricter gate")
    failed = mlcicd(iris_project, "run")
    assert failed.exit_code != 0
    assert "accuracy = 0.9333 does not meet accuracy >= 0.99" in failed.output
    statuses = stage_status(iris_project, 4)
    assert statuses["gate"] == "Failed" and statuses["deploy"] == "Skipped"
    models = as_json(mlcicd(iris_project, "models", "list", "--json"))
    assert models[0]["status"] == "Rejected" and "quality gate" in models[0]["status_reason"]
    endpoint = as_json(
        mlcicd(iris_project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
    )
    assert endpoint["endpoint"]["pid"] == pid and endpoint["endpoint"]["model_version"] == 1
    invoked = mlcicd(iris_project, "invoke", "iris-classifier-endpoint", "--body", json.dumps(ROWS))
    assert json.loads(invoked.stdout)["labels"] == ["setosa", "virginica"]

    deleted = mlcicd(iris_project, "endpoints", "delete", "iris-classifier-endpoint")
    assert deleted.exit_code == 0
    # delete waits for the supervisor; past its stop timeout it SIGKILLs it, which lands soon
    wait_for("the endpoint's supervisor to exit", lambda: procinfo.start_time(pid) is None)


def test_dirty_tree_is_refused_and_allow_dirty_runs_the_commit(iris_project: Path) -> None:
    train = iris_project / "src" / "train.py"
    train.write_text("raise SystemExit('this uncommitted script must never run')\n")
    refused = mlcicd(iris_project, "run")
    assert refused.exit_code == 2
    assert (
        "uncommitted changes: src/train.py" in refused.output and "--allow-dirty" in refused.output
    )

    allowed = mlcicd(iris_project, "run", "--allow-dirty")
    assert allowed.exit_code == 0, allowed.output
    run = as_json(mlcicd(iris_project, "runs", "show", "2", "--json"))["run"]
    assert run["dirty"] is True and run["status"] == "Succeeded"


def test_failing_project_tests_fail_the_build_with_their_output(iris_project: Path) -> None:
    (iris_project / "tests" / "test_broken.py").write_text(
        "def test_broken():\n    assert 1 == 2, 'broken on purpose'\n"
    )
    commit_all(iris_project, "a broken test")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert "the project's tests failed" in result.output
    assert "broken on purpose" in result.output  # the log tail shows the test output
    assert stage_status(iris_project, 1)["build"] == "Failed"
    logs = mlcicd(iris_project, "logs", "1", "--stage", "build")
    assert "broken on purpose" in logs.output


def test_a_crashing_training_script_fails_with_its_reason(iris_project: Path) -> None:
    set_yaml(iris_project, "max_iter: 200", "max_iter: 200\n    min_accuracy: 1.01")
    commit_all(iris_project, "impossible in-script gate")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert "training job" in result.output and "failed" in result.output
    assert (
        "below" in result.output or "min_accuracy" in result.output
    )  # the script's output/failure text
    assert stage_status(iris_project, 1)["train"] == "Failed"
    assert as_json(mlcicd(iris_project, "models", "list", "--json")) == []


def test_max_runtime_stops_the_job(iris_project: Path) -> None:
    (iris_project / "src" / "train.py").write_text(
        "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
    )
    set_yaml(iris_project, "max_runtime: 600", "max_runtime: 1")
    skip_project_tests(iris_project)
    commit_all(iris_project, "a job that never ends")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert "MaxRuntimeExceeded" in result.output


def test_model_fn_that_raises_fails_staging_and_keeps_nothing_half_done(
    iris_project: Path,
) -> None:
    inference = iris_project / "src" / "inference.py"
    inference.write_text(
        inference.read_text().replace(
            "def model_fn(model_dir",
            "def model_fn(model_dir, _unused=None):\n"
            "    raise RuntimeError('cannot load the model on purpose')\n\n"
            "def _old_model_fn(model_dir",
        )
    )
    skip_project_tests(iris_project)  # they would catch it first, in the build
    commit_all(iris_project, "a model_fn that raises")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert "cannot load the model on purpose" in result.output
    # The staging endpoint serves it first: production is never touched.
    assert stage_status(iris_project, 1)["staging"] == "Failed"
    assert stage_status(iris_project, 1)["deploy"] == "Skipped"
    # Nothing is left serving, and nothing claims to be.
    endpoints = as_json(mlcicd(iris_project, "endpoints", "list", "--json"))
    assert all(e["status"] != "InService" for e in endpoints)
    assert all(e["pid"] is None or procinfo.start_time(e["pid"]) is None for e in endpoints)


def test_missing_inference_script_is_named(iris_project: Path) -> None:
    (iris_project / "src" / "inference.py").unlink()
    commit_all(iris_project, "no inference")
    result = mlcicd(iris_project, "run")
    assert result.exit_code != 0
    assert "src/inference.py is not in commit" in result.output
    assert "deploy.entry_point" in result.output
    assert stage_status(iris_project, 1)["source"] == "Failed"


def test_invalid_config_is_one_line_before_anything_runs(iris_project: Path) -> None:
    set_yaml(iris_project, "max_runtime: 600", "max_runtime: soon")
    commit_all(iris_project, "bad config")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"error: {iris_project / 'mlcicd.yaml'}: train.max_runtime: expected an integer, "
        "got a string ('soon')"
    )
    assert not (iris_project / ".mlcicd" / "state.db").exists()


def test_port_already_in_use_is_a_clear_failure(iris_project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        set_yaml(iris_project, "workers: 2", f"workers: 2\n  port: {port}")
        commit_all(iris_project, "a taken port")
        result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert f"port {port}" in result.output and "in use" in result.output


def test_unknown_run_and_endpoint_are_not_found(iris_project: Path) -> None:
    assert mlcicd(iris_project, "runs", "show", "42").exit_code == 3
    missing = mlcicd(iris_project, "endpoints", "describe", "nope")
    assert missing.exit_code == 3 and "endpoint nope does not exist" in missing.output


def catches_sigint(pid: int) -> tuple[bool, list[str]]:
    """Whether a process has a handler for SIGINT, and its signal masks, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    wanted = ("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd")
    masks = [line for line in status.splitlines() if line.startswith(wanted)]
    caught = next(int(line.split()[1], 16) for line in masks if line.startswith("SigCgt"))
    return bool(caught & (1 << (signal.SIGINT - 1))), masks


def test_ctrl_c_records_the_run_as_stopped(iris_project: Path) -> None:
    (iris_project / "src" / "train.py").write_text(
        "import time\nprint('training', flush=True)\ntime.sleep(60)\n"
    )
    skip_project_tests(iris_project)
    commit_all(iris_project, "slow training")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcicd", "run", str(iris_project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=as_foreground_job,  # not SIGINT ignored, as under `pytest &`
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.strip() == "│ training":  # the script is running
            break
    else:  # without this, a run that never said so would be "interrupted" once it had ended
        proc.wait()
        pytest.fail(f"the run ended without its script saying 'training':\n{''.join(seen)}")
    caught, masks = catches_sigint(proc.pid)
    if not caught:  # said now, rather than as a run that goes on after its Ctrl-C
        script = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        kill_tree([proc.pid, *map(int, script)])
        proc.communicate(timeout=120)
        pytest.fail(f"the run does not catch SIGINT: {masks}")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)  # a guard against hanging, not a measure
    assert proc.returncode == 130, f"{masks}\n{out}"
    run = as_json(mlcicd(iris_project, "runs", "show", "1", "--json"))
    assert run["run"]["status"] == "Stopped"
    assert {s["stage"]: s["status"] for s in run["stages"]}["train"] == "Stopped"


def test_a_model_that_cannot_be_stored_fails_its_training_job_record(
    iris_project: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "ml-cicd-pipeline-models").write_text("a file where the models bucket should be")
    set_yaml(
        iris_project,
        "pipeline: iris-classifier",
        f"pipeline: iris-classifier\nstore: {{uri: '{store}'}}",
    )
    commit_all(iris_project, "a store that cannot take the model")
    result = mlcicd(iris_project, "run")
    assert result.exit_code == 1
    assert stage_status(iris_project, 1)["train"] == "Failed"
    from mlcicd.project import Project

    jobs = Project(iris_project).state.training_jobs(run_id=1)
    assert [(j.status, j.ended_at is not None) for j in jobs] == [("Failed", True)]
    assert jobs[0].failure_reason and "ml-cicd-pipeline-models" in jobs[0].failure_reason
