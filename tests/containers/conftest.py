"""Container tests: real podman, a real base image and one real iris image for the session.

They run wherever the tests run: a machine without podman FAILS them with the install hint
(`make test` installs it: scripts/containers.sh) unless MLCICD_SKIP_CONTAINERS=1 says to
skip them on purpose. The base image is made once per machine (podman keeps it); the iris
image once per mlcicd source and iris tree (reused by its context label).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.images.podman import INSTALL_HINT, PODMAN_ENV
from tests.conftest import make_repo

pytestmark = pytest.mark.integration


def _podman_or_fail() -> None:
    if os.environ.get("MLCICD_SKIP_CONTAINERS") == "1":
        pytest.skip("MLCICD_SKIP_CONTAINERS=1: container tests skipped on purpose")
    if shutil.which(os.environ.get(PODMAN_ENV) or "podman") is None:
        pytest.fail(f"podman is not installed: {INSTALL_HINT}", pytrace=False)


# The tests' base: Debian trixie (Python 3.13), whatever the host runs. Bookworm's Python
# (3.11.2) lacks tarfile's extraction filters (PEP 706, 3.11.4), which mlcicd's archive
# handling needs; MLCICD_TEST_BASE_SUITE picks another suite.
TEST_SUITE = os.environ.get("MLCICD_TEST_BASE_SUITE") or "trixie"


@pytest.fixture(scope="session")
def base_image() -> str:
    _podman_or_fail()
    from mlcicd.images.base import make_base_image

    return make_base_image(suite=TEST_SUITE).tag


@pytest.fixture(scope="session")
def iris_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image of a committed copy of examples/iris, built on the base image."""
    from mlcicd.images.build import build_project_image
    from mlcicd.project import Project

    repo = make_repo(tmp_path_factory.mktemp("iris-image") / "iris")
    return build_project_image(Project(repo), base=base_image).tag


def containers_named(prefix: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in out.split() if name.startswith(prefix)]


def containers_mounting(directory: Path) -> list[str]:
    """mlcicd's containers (running or not) with a volume from under ``directory``.

    Every container mlcicd makes mounts its job's or endpoint's directory, which a test keeps
    under its own tmp_path: so this finds one test's containers and never those of the tests
    that other pytest workers, or other checkouts on this machine, run at the same time.
    """
    names = containers_named("mlcicd-")
    if not names:
        return []
    inspected = subprocess.run(  # not check=True: a container removed since `ps` is an error
        [
            "podman",
            "container",
            "inspect",
            "--format",
            "{{.Name}}{{range .Mounts}}\t{{.Source}}{{end}}",
            *names,
        ],
        capture_output=True,
        text=True,
    ).stdout
    under = directory.resolve()
    return [
        name
        for name, *sources in (line.split("\t") for line in inspected.splitlines() if line)
        if any(Path(source).is_relative_to(under) for source in sources)
    ]


@pytest.fixture
def no_containers_left(tmp_path: Path) -> Iterator[None]:
    """Every container the test made (mounting from its tmp_path) is gone when it ends; those
    left are removed, and the test fails."""
    yield
    left = containers_mounting(tmp_path)
    for name in left:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True)
    assert not left, f"containers left behind: {sorted(left)}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SECRETS = {"MLCICD_TOKEN": "service-token", "AWS_SECRET_ACCESS_KEY": "aws-secret"}


@pytest.fixture
def podman_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mlcicd's secrets in this process's environment, and podman replaced by a wrapper that
    records the environment of every call (one file each) in the directory returned."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    seen = tmp_path / "podman-environments"
    seen.mkdir()
    real = shutil.which(os.environ.get(PODMAN_ENV) or "podman")
    wrapper = write(
        tmp_path / "bin" / "podman",
        f'#!/bin/sh\nenv > "{seen}/$$.env"\nexec "{real}" "$@"\n',
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv(PODMAN_ENV, str(wrapper))
    return seen


def assert_no_secret_in(seen: Path) -> None:
    calls = sorted(seen.glob("*.env"))
    assert calls, "podman was never called through the wrapper"
    for call in calls:
        for name, value in SECRETS.items():
            assert value not in call.read_text(), f"{name} reached podman ({call.name})"
