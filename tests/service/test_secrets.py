"""The service's secrets stay in the service: its run process gets AWS credentials (it may
drive SageMaker) but not the API token or the webhook secret, and the training script it
starts gets none of them. Read from the live processes' /proc/PID/environ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import as_json, mlcicd, set_yaml, wait_for
from tests.service.conftest import ServiceProcess, commit_all, fast_project, finished

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/PID/environ"),
]

SECRETS = {
    "MLCICD_TOKEN": "the-api-token",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "the-aws-secret",
}


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_the_run_process_and_the_training_script_do_not_see_the_services_secrets(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    project = fast_project(tmp_path / "iris")
    pid_file, go = tmp_path / "train.pid", tmp_path / "go"
    train = project / "src" / "train.py"
    # The script waits, so the test can read both processes' environments while they run.
    wait = (
        f"import os\nimport pathlib, time\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.05)\n"
    )
    train.write_text(train.read_text().replace("import os\n", wait, 1))
    set_yaml(project, "deploy:\n", "service:\n  poll_interval: 0.5\n\ndeploy:\n")
    commit_all(project, "a training script that waits; polling")
    service = ServiceProcess(project, tmp_path / "service.log", env=SECRETS).start()
    services.append(service)

    training_pid = int(
        wait_for("the training script to start", lambda: pid_file.exists() and pid_file.read_text())
    )
    run = as_json(mlcicd(project, "runs", "show", "1", "--json"))["run"]
    runner, script = environ(run["pid"]), environ(training_pid)
    go.touch()

    assert "MLCICD_SERVICE_PID" in runner  # it is the run process
    assert {k for k in ("MLCICD_TOKEN", "MLCICD_WEBHOOK_SECRET") if k in runner} == set()
    assert runner["AWS_SECRET_ACCESS_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]
    assert "SM_MODEL_DIR" in script  # it is the training script
    assert {k for k in (*SECRETS, "MLCICD_WEBHOOK_SECRET") if k in script} == set()
    assert wait_for("the run to finish", lambda: finished(project, 1)) == "Succeeded", (
        service.log.read_text()
    )
