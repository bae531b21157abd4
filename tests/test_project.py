"""A project's config, as its working tree, a commit, or a run with a config of its own say."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.config import with_backend
from mlcicd.errors import ProjectError
from mlcicd.project import Project
from tests.conftest import commit_all, git, make_repo
from tests.helpers import set_yaml


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(make_repo(tmp_path / "iris"))


def test_with_config_stands_for_mlcicd_yaml_and_shares_the_state(project: Project) -> None:
    state = project.state
    on_local = with_backend(project.config, "local")
    run = project.with_config(on_local)
    assert run.config is on_local and run.root == project.root
    assert run.state is state  # the same connection, not a second one
    assert Project(project.root).config == project.config  # mlcicd.yaml itself is unchanged


def test_at_commit_reads_that_commits_mlcicd_yaml(project: Project) -> None:
    first = git(project.root, "rev-parse", "HEAD").strip()
    set_yaml(project.root, "C: 1.0", "C: 0.5")
    commit_all(project.root, "C: 0.5")
    state = project.state
    pinned = project.at_commit(first)
    assert pinned.config.train.hyperparameters["C"] == 1.0
    assert project.config.train.hyperparameters["C"] == 0.5
    assert pinned.state is state
    # A config given for a run is not carried to a commit: that commit's file is the config.
    assert project.with_config(project.config).at_commit(first).config == pinned.config

    (project.root / "mlcicd.yaml").unlink()
    orphan = commit_all(project.root, "no pipeline here")
    with pytest.raises(ProjectError, match=f"mlcicd.yaml is not in commit {orphan[:12]}"):
        project.at_commit(orphan)
