"""The in-container entry point against a fake /opt/ml tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.shapes import encode_hyperparameters
from mlcicd.training.container import main
from mlcicd.training.toolkit import input_data_config, resource_config
from tests.helpers import wait_for
from tests.training.conftest import DUMP_SCRIPT, SAVE_MODEL, process_gone

pytestmark = pytest.mark.integration


def fake_opt_ml(root: Path, script: str, hyperparameters: dict[str, object] | None = None) -> Path:
    """/opt/ml as SageMaker prepares it for a script-mode job (code already in code/)."""
    base = root / "opt" / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    hps = {
        "epochs": 2,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": "job-c",
        **(hyperparameters or {}),
    }
    (config / "hyperparameters.json").write_text(json.dumps(encode_hyperparameters(hps)))
    (config / "resourceconfig.json").write_text(json.dumps(resource_config("ml.m5.large")))
    (config / "inputdataconfig.json").write_text(json.dumps(input_data_config(["train"])))
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "train" / "rows.csv").write_text("1\n")
    (base / "code").mkdir()
    (base / "code" / "train.py").write_text(script)
    for directory in ("model", "output"):
        (base / directory).mkdir()
    return base


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    return {**env, "TRAINING_JOB_NAME": "job-c", **extra}


def test_runs_the_program_with_the_sagemaker_environment(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    base = fake_opt_ml(tmp_path, DUMP_SCRIPT + "\nprint('hello from the script')\n")
    assert main(["train", "--base-dir", str(base)], environ()) == 0
    assert "hello from the script" in capfd.readouterr().out
    seen = json.loads((base / "model" / "seen.json").read_text())
    env = seen["env"]
    assert seen["argv"] == ["train.py", "--epochs", "2"]
    assert Path(seen["cwd"]).resolve() == (base / "code").resolve()
    assert seen["channels"] == {"train": ["rows.csv"]}
    assert env["SM_MODEL_DIR"] == str(base / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert env["SM_HPS"] == '{"epochs":2}'
    assert env["SM_HP_EPOCHS"] == "2"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert env["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SAGEMAKER_JOB_NAME"] == "job-c"
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "job-c"
    assert (base / "output" / "success").exists()
    assert not (base / "output" / "failure").exists()


def test_an_exception_writes_the_failure_file(tmp_path: Path) -> None:
    base = fake_opt_ml(tmp_path, "raise RuntimeError('out of luck')\n")
    assert main(["--base-dir", str(base)], environ()) == 1
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("AlgorithmError:") and "RuntimeError: out of luck" in failure


def test_the_scripts_own_failure_file_is_kept(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        'open("/".join([os.environ["SM_OUTPUT_DIR"], "failure"]), "w").write("mine")\n'
        "sys.exit(2)\n"
    )
    base = fake_opt_ml(tmp_path, script)
    assert main(["--base-dir", str(base)], environ()) == 2
    assert (base / "output" / "failure").read_text() == "mine"


def test_program_and_directory_from_the_environment(tmp_path: Path) -> None:
    base = fake_opt_ml(tmp_path, "raise SystemExit('the wrong program ran')\n")
    elsewhere = tmp_path / "image-code"
    elsewhere.mkdir()
    (elsewhere / "fit.py").write_text(DUMP_SCRIPT)
    env = environ(SAGEMAKER_PROGRAM="fit.py", SAGEMAKER_SUBMIT_DIRECTORY=str(elsewhere))
    assert main(["--base-dir", str(base)], env) == 0
    seen = json.loads((base / "model" / "seen.json").read_text())
    assert seen["argv"] == ["fit.py", "--epochs", "2"]
    assert seen["env"]["SM_USER_ENTRY_POINT"] == "fit.py"
    assert Path(seen["cwd"]).resolve() == elsewhere.resolve()


def test_no_program_is_a_client_error(tmp_path: Path) -> None:
    base = fake_opt_ml(tmp_path, SAVE_MODEL)
    hps_file = base / "input" / "config" / "hyperparameters.json"
    hps = json.loads(hps_file.read_text())
    del hps["sagemaker_program"]
    hps_file.write_text(json.dumps(hps))
    assert main(["--base-dir", str(base)], environ()) == 1
    assert "SAGEMAKER_PROGRAM" in (base / "output" / "failure").read_text()


def test_an_empty_model_dir_is_a_failure(tmp_path: Path) -> None:
    base = fake_opt_ml(tmp_path, "print('nothing saved')\n")
    assert main(["--base-dir", str(base)], environ()) == 1
    assert "SM_MODEL_DIR" in (base / "output" / "failure").read_text()


def test_python_dash_m_with_sm_base_dir(tmp_path: Path) -> None:
    base = fake_opt_ml(tmp_path, SAVE_MODEL)
    done = subprocess.run(
        [sys.executable, "-m", "mlcicd.training.container", "train"],
        env=environ(SM_BASE_DIR=str(base)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (base / "model" / "model.txt").read_text() == "weights"
    assert (base / "output" / "success").exists()


def test_sigterm_stops_the_script_and_its_children(tmp_path: Path) -> None:
    script = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""
    base = fake_opt_ml(tmp_path, script)
    pids_file = base / "output" / "data" / "pids"
    (base / "output" / "data").mkdir()
    container = subprocess.Popen(
        [sys.executable, "-m", "mlcicd.training.container", "--base-dir", str(base)],
        env=environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            "the script and its child to start",
            lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2,
        )
        container.send_signal(signal.SIGTERM)
        _, stderr = container.communicate(timeout=30)
    finally:
        container.kill()
        container.wait()
    assert container.returncode == 128 + signal.SIGTERM, stderr
    assert all(process_gone(int(pid)) for pid in pids_file.read_text().split())
