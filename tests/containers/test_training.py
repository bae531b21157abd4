"""train.backend: container — a SageMaker training job inside the built image."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from mlcicd.errors import TrainingError
from mlcicd.images.podman import PODMAN_ENV
from mlcicd.training import Channel, MetricDefinition, TrainingJobSpec
from mlcicd.training.podman import PodmanTrainingBackend
from tests.conftest import IRIS
from tests.containers.conftest import SECRETS, assert_no_secret_in, containers_named, write

pytestmark = pytest.mark.integration


def spec(source: Path, name: str, **kwargs: object) -> TrainingJobSpec:
    return TrainingJobSpec(
        name=name, source_dir=source, entry_point="train.py", python=Path(sys.executable), **kwargs
    )  # type: ignore[arg-type]


def test_the_iris_job_trains_in_the_image_as_on_sagemaker(
    iris_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    backend = PodmanTrainingBackend(tmp_path / "jobs", iris_image)
    lines: list[str] = []
    result = backend.run(
        spec(
            IRIS / "src",
            "iris-1",
            hyperparameters={"C": 1.0, "max_iter": 200},
            channels=[Channel("training", IRIS / "data")],
            metric_definitions=[MetricDefinition("accuracy", r"accuracy=([0-9.]+)")],
        ),
        on_log=lines.append,
    )
    assert result.status == "Completed", result.failure_reason
    assert result.metrics["accuracy"] > 0.85
    assert result.model_artifact is not None
    with tarfile.open(result.model_artifact) as tar:
        assert "model.joblib" in tar.getnames()
    description = json.loads((result.job_dir / "description.json").read_text())
    assert description["AlgorithmSpecification"]["TrainingImage"].startswith(
        f"{iris_image}@sha256:"
    )
    assert any("podman" in part for part in description["LocalJob"]["Command"][:1])


SEEN = """
import json, os, sys
seen = {"env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "SAGEMAKER_"))},
        "argv": sys.argv[1:], "cwd": os.getcwd(),
        "files": sorted(os.listdir("/opt/ml/input/data/training"))}
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def test_the_job_sees_opt_ml_and_the_sm_environment(iris_image: str, tmp_path: Path) -> None:
    source = write(tmp_path / "src" / "train.py", SEEN).parent
    write(tmp_path / "data" / "rows.csv", "1,2\n")
    result = PodmanTrainingBackend(tmp_path / "jobs", iris_image).run(
        spec(
            source,
            "seen-1",
            hyperparameters={"lr": 0.5},
            channels=[Channel("training", tmp_path / "data")],
        )
    )
    assert result.status == "Completed", result.failure_reason
    seen = json.loads((result.job_dir / "model" / "seen.json").read_text())
    assert seen["env"]["SM_MODEL_DIR"] == "/opt/ml/model"
    assert seen["env"]["SM_CHANNEL_TRAINING"] == "/opt/ml/input/data/training"
    assert seen["env"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/code"
    assert seen["argv"] == ["--lr", "0.5"]
    assert seen["cwd"] == "/opt/ml/code"
    assert seen["files"] == ["rows.csv"]


def test_max_runtime_stops_the_container(
    iris_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    source = write(
        tmp_path / "src" / "train.py",
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n",
    ).parent
    backend = PodmanTrainingBackend(tmp_path / "jobs", iris_image, stop_grace_seconds=1)
    result = backend.run(spec(source, "slow-1", max_runtime_seconds=3))
    assert (result.status, result.secondary_status) == ("Stopped", "MaxRuntimeExceeded")
    assert containers_named(backend.container_name("slow-1")) == []


def test_a_failing_script_fails_the_job_with_its_reason(iris_image: str, tmp_path: Path) -> None:
    source = write(
        tmp_path / "src" / "train.py", "raise SystemExit('the data has no label column')\n"
    ).parent
    result = PodmanTrainingBackend(tmp_path / "jobs", iris_image).run(spec(source, "bad-1"))
    assert result.status == "Failed"
    assert "the data has no label column" in (result.failure_reason or "")


def test_without_podman_the_error_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PODMAN_ENV, "/nonexistent/podman")
    with pytest.raises(TrainingError, match=r"install podman.*or use backend: local"):
        PodmanTrainingBackend(tmp_path / "jobs", "localhost/mlcicd/any:tag")
    assert not (tmp_path / "jobs").exists()


def test_a_missing_image_says_how_to_build_it(tmp_path: Path, base_image: str) -> None:
    with pytest.raises(TrainingError, match=r"does not exist on this machine.*mlcicd image build"):
        PodmanTrainingBackend(tmp_path / "jobs", "localhost/mlcicd/never-built:0")


def test_an_image_without_train_says_what_to_add(
    base_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    source = write(tmp_path / "src" / "train.py", "print('never runs')\n").parent
    result = PodmanTrainingBackend(tmp_path / "jobs", base_image).run(spec(source, "noentry-1"))
    assert result.status == "Failed"
    assert f"image {base_image} has no `train` on its PATH" in (result.failure_reason or "")


ENVIRONMENT = """
import json, os
json.dump(sorted(os.environ), open(os.path.join(os.environ["SM_MODEL_DIR"], "names.json"), "w"))
"""


def test_neither_podman_nor_the_job_gets_a_secret_of_mlcicd(
    iris_image: str, tmp_path: Path, podman_environments: Path
) -> None:
    """A training job runs the repository's code: it gets what train.environment says, and
    no MLCICD_TOKEN nor AWS credentials (its data and model are mounted files)."""
    source = write(tmp_path / "src" / "train.py", ENVIRONMENT).parent
    result = PodmanTrainingBackend(tmp_path / "jobs", iris_image).run(
        spec(source, "environment-1", environment={"GREETING": "configured"})
    )
    assert result.status == "Completed", result.failure_reason
    names = json.loads((result.job_dir / "model" / "names.json").read_text())
    assert "GREETING" in names and "SM_MODEL_DIR" in names
    assert not set(SECRETS) & set(names)
    assert_no_secret_in(podman_environments)


def test_two_checkouts_run_the_same_job_name_at_once(
    iris_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    """Container names are machine-wide: the job name alone clashed across project roots."""
    first = PodmanTrainingBackend(tmp_path / "a" / "jobs", iris_image)
    second = PodmanTrainingBackend(tmp_path / "b" / "jobs", iris_image)
    assert first.container_name("twin-1") != second.container_name("twin-1")
    slow = write(
        tmp_path / "slow" / "train.py",
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n",
    ).parent
    quick = write(
        tmp_path / "quick" / "train.py",
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('m')\n",
    ).parent
    started = threading.Event()
    results = []

    def on_log(line: str) -> None:
        if "started" in line:
            started.set()

    def run_slow() -> None:
        results.append(first.run(spec(slow, "twin-1"), on_log=on_log))

    thread = threading.Thread(target=run_slow)
    thread.start()
    try:
        assert started.wait(120), "the first checkout's job did not start"
        result = second.run(spec(quick, "twin-1"))
        assert result.status == "Completed", result.failure_reason
        assert containers_named(first.container_name("twin-1")) != []  # still running
    finally:
        subprocess.run(
            ["podman", "stop", "--time", "1", first.container_name("twin-1")], capture_output=True
        )
        thread.join(120)
    assert len(results) == 1 and results[0].status in ("Failed", "Stopped")
