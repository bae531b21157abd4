"""A held-out project (not iris) through `mlcicd run` with both container backends: trained
and served from its own image, it answers as the same project run with the local backends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcicd.cli import cli
from mlcicd.endpoints.podman import PodmanEndpointBackend
from mlcicd.project import Project
from tests.conftest import IRIS, commit_all, git, stop_endpoints
from tests.serving.helpers import request

pytestmark = pytest.mark.integration

HOUSING = Path(__file__).parent / "housing"
ROWS = [[3.5, 40.0, 5.0], [6.0, 10.0, 2.5], [7.5, 80.0, 11.0]]


def housing(path: Path, base_image: str, backend: str) -> Path:
    shutil.copytree(HOUSING, path)
    # The image files every project gets from the template (`mlcicd init`); iris's
    # requirements, so the housing image shares the iris image's pip layer.
    for name in ("Dockerfile", "docker", "requirements.txt"):
        source = IRIS / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, path / name)
    config = path / "mlcicd.yaml"
    text = config.read_text().replace("BASE_IMAGE", base_image)
    config.write_text(text.replace("backend: container", f"backend: {backend}"))
    git(path, "init", "-q", "--initial-branch=main")
    commit_all(path, "housing")
    return path


def run_and_predict(project: Path) -> tuple[list[float], str]:
    result = CliRunner().invoke(cli, ["-C", str(project), "run"])
    assert result.exit_code == 0, result.output
    described = Project(project)
    record = described.state.get_endpoint(described.config.endpoint_name)
    assert record is not None
    shown = CliRunner().invoke(
        cli, ["-C", str(project), "endpoints", "describe", record.name, "--json"]
    )
    url = json.loads(shown.output)["endpoint"]["url"]
    answer = request(url, body=json.dumps(ROWS), headers={"Content-Type": "application/json"})
    assert answer.status == 200, answer.body
    return json.loads(answer.body)["prices"], result.output


def test_the_housing_project_predicts_the_same_from_containers_as_locally(
    base_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    local = housing(tmp_path / "local", base_image, "local")
    boxed = housing(tmp_path / "boxed", base_image, "container")
    try:
        expected, _ = run_and_predict(local)
        got, output = run_and_predict(boxed)
        assert "(container)" in output  # the training job ran in the image
        assert got == pytest.approx(expected, rel=1e-9)
        jobs = list((boxed / ".mlcicd" / "jobs").glob("*/description.json"))
        image = json.loads(jobs[0].read_text())["AlgorithmSpecification"]["TrainingImage"]
        assert image.startswith("localhost/mlcicd/housing:")
    finally:
        stop_endpoints(local)
        backend = PodmanEndpointBackend(boxed / ".mlcicd" / "container-endpoints")
        for described in backend.list():
            backend.delete(described.name)
