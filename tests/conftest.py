"""Shared fixtures: a committed copy of the iris project, a trained iris model (once per
session), and a per-session environment cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import IrisModel, delete_endpoints, train_iris

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Built environments go to one cache per test session (never the user's own)."""
    old = os.environ.get("MLCICD_CACHE")
    os.environ["MLCICD_CACHE"] = str(tmp_path_factory.mktemp("mlcicd-cache"))
    os.environ.pop("MLCICD_HOME", None)
    yield
    if old is None:
        os.environ.pop("MLCICD_CACHE", None)
    else:
        os.environ["MLCICD_CACHE"] = old


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def make_repo(path: Path, source: Path = IRIS) -> Path:
    shutil.copytree(
        source, path, ignore=shutil.ignore_patterns(".mlcicd", "__pycache__", ".pytest_cache")
    )
    git(path, "init", "-q", "--initial-branch=main")
    commit_all(path, "iris classifier")
    return path


def stop_endpoints(project_dir: Path) -> None:
    """Stop every endpoint a test started in ``project_dir`` (they outlive the CLI by design)."""
    from mlcicd.endpoints.local import LocalEndpointBackend

    delete_endpoints(LocalEndpointBackend(project_dir / ".mlcicd" / "endpoints"))


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    """A LogisticRegression trained on iris, saved as model.joblib and packed (once)."""
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    """A model whose labels are reversed: an update to it visibly changes predictions."""
    return train_iris(tmp_path_factory.mktemp("flipped"), flip=True)


@pytest.fixture
def iris_project(tmp_path: Path) -> Iterator[Path]:
    """A git repository holding a committed copy of examples/iris; endpoints stopped after.

    It sits below a directory whose pytest settings would break the project's tests if they
    leaked in — as when the demo runs inside a checkout of mlcicd itself.
    """
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--no-such-option"\n'
    )
    project = make_repo(tmp_path / "iris")
    yield project
    stop_endpoints(project)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n 2 --dist loadgroup`), the tests sharing a costly session fixture
    stay on one worker so it is built once: the container tests (one podman image). The AWS
    tests only share one moto server per worker, which starts in about a second (and the store
    and transform tests start one on either worker anyway): they are kept together per module
    (for its module-scoped fixtures) and spread over the workers, rather than all on one, where
    they were the longest stretch of the run."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts
        if parts[0] == "containers":
            item.add_marker(pytest.mark.xdist_group("containers"))
        elif parts[0] == "aws":
            item.add_marker(pytest.mark.xdist_group("/".join(parts)))
