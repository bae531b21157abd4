"""One stage at a time: a real project (a committed iris copy, its state database and local
store), a run in that database, and the outputs the earlier stages would have handed on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcicd.pipeline import RunContext, RunOptions, SilentReporter
from mlcicd.project import Project
from mlcicd.templates import find_template
from tests.conftest import git, make_repo, stop_endpoints
from tests.helpers import IrisModel

STAGES = ["source", "build", "train", "gate", "register", "staging", "deploy"]


@pytest.fixture
def iris_repo(tmp_path: Path) -> Iterator[Path]:
    """A committed copy of examples/iris; its endpoints are stopped after the test."""
    root = make_repo(tmp_path / "iris")
    yield root
    stop_endpoints(root)


@pytest.fixture
def pipeline_repo(tmp_path: Path) -> Path:
    """A committed copy of the pipeline template: prepare → train → evaluate → gate."""
    template = find_template("pipeline")
    assert template is not None
    return make_repo(tmp_path / "pipeline", template)


class Stages:
    """A RunContext per stage run, on one project, collecting what the stages log."""

    def __init__(self, root: Path) -> None:
        self.project = Project(root)
        self.lines: list[str] = []

    def context(self, outputs: dict[str, dict[str, Any]], *, force: bool = False) -> RunContext:
        project = self.project
        run = project.state.create_run(
            pipeline=project.config.pipeline, project_dir=str(project.root), stages=STAGES
        )
        return RunContext(
            project=project,
            config=project.config,
            run=run,
            options=RunOptions(force=force),
            reporter=SilentReporter(),
            outputs={k: dict(v) for k, v in outputs.items()},
            log=self.lines.append,
        )

    def source(self) -> dict[str, Any]:
        """What the source stage hands on for HEAD of the repository."""
        root = self.project.root
        commit = git(root, "rev-parse", "HEAD").strip()
        return {
            "source_dir": str(root),
            "commit": commit,
            "branch": "main",
            "author": "Ada Tester",
            "message": "iris classifier",
            "tree": git(root, "rev-parse", "HEAD^{tree}").strip(),
            "dirty": False,
        }

    @staticmethod
    def build() -> dict[str, Any]:
        """A build whose environment is this interpreter's (it has the example's imports)."""
        return {"digest": "b" * 64, "python": sys.executable, "environment": sys.prefix}


def trained(project: Project, model: IrisModel, job: str, accuracy: float = 0.9) -> dict[str, Any]:
    """The train stage's outputs for ``model``, stored as the train stage stores a model."""
    ref = project.store.put_file(
        model.archive, project.config.store.models_bucket, f"iris/{job}/output/model.tar.gz"
    )
    return {
        "job": job,
        "metrics": {"accuracy": accuracy},
        "model_uri": ref.uri,
        "model_sha256": ref.sha256,
        "data_digest": "d" * 64,
        "hyperparameters": {},
    }


def registered(project: Project, model: IrisModel) -> dict[str, Any]:
    """The register stage's outputs for ``model``, stored and registered as it does."""
    ref = project.store.put_file(
        model.archive, project.config.store.models_bucket, "iris/job-1/output/model.tar.gz"
    )
    package = project.state.register_model_package(
        group_name=project.config.pipeline,
        status="Approved",
        model_uri=ref.uri,
        model_sha256=ref.sha256,
        metrics={"accuracy": 0.97},
        training_job="job-1",
        build_digest="b" * 64,
        commit_sha="c" * 40,
        run_id=None,
        lineage={},
    )
    return {
        "group": package.group_name,
        "version": package.version,
        "model_sha256": package.model_sha256,
        "model_uri": package.model_uri,
    }
