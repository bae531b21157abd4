"""`mlcicd init`: a new project from the iris template, and `mlcicd run` on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlcicd import scaffold, templates
from mlcicd.cli import cli
from mlcicd.config import load_config
from mlcicd.errors import ProjectError
from tests.conftest import IRIS, git, stop_endpoints

TEMPLATE_FILES = sorted(
    p.relative_to(IRIS).as_posix()
    for p in IRIS.rglob("*")
    if p.is_file()
    and not {".mlcicd", "__pycache__", ".pytest_cache"} & set(p.relative_to(IRIS).parts)
)


def init(*args: str) -> Result:
    return CliRunner().invoke(cli, ["init", *args], catch_exceptions=False)


def tracked(repo: Path) -> list[str]:
    return sorted(git(repo, "ls-files").split())


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_help() -> None:
    result = init("--help")
    assert result.exit_code == 0
    assert "init [OPTIONS] [DIR]" in result.output
    assert "--name PIPELINE" in result.output and "--force" in result.output
    assert "init" in CliRunner().invoke(cli, ["--help"]).output


def test_init_makes_a_committed_project_named_after_its_directory(tmp_path: Path) -> None:
    result = init("my-model")
    assert result.exit_code == 0, result.output
    project = tmp_path / "my-model"
    assert (
        sorted(
            p.relative_to(project).as_posix()
            for p in project.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(project).parts
        )
        == TEMPLATE_FILES
    )
    config = load_config(project)
    assert (config.pipeline, config.endpoint_name, config.branch) == (
        "my-model",
        "my-model-endpoint",
        "main",
    )
    text = (project / "mlcicd.yaml").read_text()
    assert (
        "pipeline: my-model                 # also the model package group" in text
    )  # comment kept in place
    assert "iris-classifier-endpoint" not in (project / "README.md").read_text()
    assert (project / "docker" / "train").stat().st_mode & 0o111  # still executable

    assert tracked(project) == TEMPLATE_FILES
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert (
        "created my-model from the iris template: pipeline my-model, endpoint my-model-endpoint"
        in result.output
    )
    assert "  created  src/train.py" in result.output
    assert "git: a new repository on branch main, first commit" in result.output
    assert result.output.rstrip().endswith("next: mlcicd run my-model")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_init_in_the_empty_current_directory_keeps_that_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "churn"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = here.stat().st_ino
    result = init()
    assert result.exit_code == 0, result.output
    assert here.stat().st_ino == inode  # filled in place: a shell standing in it sees the files
    assert load_config(here).pipeline == "churn"
    assert tracked(here) == TEMPLATE_FILES
    assert result.output.rstrip().endswith("next: mlcicd run")


def test_name_option_and_missing_parents(tmp_path: Path) -> None:
    result = init("models/churn", "--name", "churn-v2")
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "models" / "churn")
    assert (config.pipeline, config.endpoint_name) == ("churn-v2", "churn-v2-endpoint")
    assert "next: mlcicd run models/churn" in result.output


def test_a_name_yaml_would_read_as_a_number_stays_a_string(tmp_path: Path) -> None:
    assert init("x", "--name", "2024").exit_code == 0
    assert load_config(tmp_path / "x").pipeline == "2024"


@pytest.mark.parametrize(
    ("args", "shown", "suggested"),
    [
        (["My_Model"], "'My_Model' (the directory's name)", "--name my-model"),
        (["ok", "--name", "bad name!"], "'bad name!' (--name)", "--name bad-name"),
        (["ok", "--name", "-lead"], "'-lead' (--name)", "--name lead"),
        (["ok", "--name", "a" * 42], f"'{'a' * 42}' (--name)", f"--name {'a' * 41}"),
    ],
)
def test_invalid_names_are_refused_with_the_fix(
    tmp_path: Path, args: list[str], shown: str, suggested: str
) -> None:
    result = init(*args)
    assert result.exit_code == 2
    assert result.output.startswith(
        f"error: {shown} is not a valid pipeline name: use letters, digits and hyphens"
    )
    assert f"(pass {suggested})" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_longest_name_fits_its_endpoint(tmp_path: Path) -> None:
    assert init("x", "--name", "a" * 41).exit_code == 0
    assert load_config(tmp_path / "x").endpoint_name == "a" * 41 + "-endpoint"


def test_a_non_empty_directory_is_refused_without_force(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "notes.txt").write_text("mine")
    result = init("proj")
    assert result.exit_code == 2
    assert "is not empty (notes.txt)" in result.output and "--force" in result.output
    assert [p.name for p in (tmp_path / "proj").iterdir()] == ["notes.txt"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proj").write_text("a file")
    result = init("proj", "--force")
    assert result.exit_code == 2
    assert "proj exists and is not a directory (choose another DIR)" in result.output
    assert (tmp_path / "proj").read_text() == "a file"


def test_force_adds_what_is_missing_and_keeps_every_existing_file(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text("print('my own training')\n")
    (project / "notes.txt").write_text("not a project file\n")
    result = init("proj", "--force")
    assert result.exit_code == 0, result.output
    assert (project / "src" / "train.py").read_text() == "print('my own training')\n"
    assert (
        "  kept     src/train.py  (already there; the template's was not written)" in result.output
    )
    assert (
        "  created  src/inference.py" in result.output
        and "  created  src/train.py" not in result.output
    )
    assert load_config(project).pipeline == "proj"
    # The first commit holds the project's files (the kept train.py too), not the stranger.
    assert tracked(project) == TEMPLATE_FILES
    assert git(project, "show", "HEAD:src/train.py") == "print('my own training')\n"
    assert "not committed (they were there before): notes.txt" in result.output

    # Again: everything is there, nothing is written, the repository is left alone.
    head = git(project, "rev-parse", "HEAD")
    again = init("proj", "--force", "--name", "other")
    assert again.exit_code == 0, again.output
    assert "created " not in again.output.replace("created proj", "")
    assert again.output.count("  kept     ") == len(TEMPLATE_FILES)
    assert "mlcicd.yaml was already there and is kept as it is" in again.output
    assert load_config(project).pipeline == "proj"
    assert git(project, "rev-parse", "HEAD") == head


def test_inside_a_repository_there_is_no_nested_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "symbolic-ref", "HEAD", "refs/heads/trunk")
    result = init("models/iris2")
    assert result.exit_code == 0, result.output
    project = tmp_path / "models" / "iris2"
    assert not (project / ".git").exists()
    assert load_config(project).branch == "trunk"  # the branch the repository is on
    assert git(tmp_path, "status", "--porcelain", "--untracked-files=all").count(
        "?? models/iris2/"
    ) == len(TEMPLATE_FILES)
    assert (
        f"git: inside the repository {tmp_path.resolve()} (branch trunk); nothing committed"
        in result.output
    )
    assert (
        "next: git add models/iris2 && git commit -m 'Add iris2' && mlcicd run models/iris2"
        in result.output
    )


def test_without_a_git_identity_the_commit_uses_a_local_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ):
        monkeypatch.delenv(var, raising=False)
    assert init("proj").exit_code == 0
    project = tmp_path / "proj"
    assert git(project, "config", "--local", "user.name").strip() == "mlcicd init"
    assert git(project, "config", "--local", "user.email").strip() == "mlcicd@localhost"


def test_with_a_git_identity_none_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Ada\n\temail = ada@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    assert init("proj").exit_code == 0
    assert "user." not in (tmp_path / "proj" / ".git" / "config").read_text()
    assert git(tmp_path / "proj", "log", "-1", "--format=%an").strip() == "Ada"


def _failing_commit(*args: object) -> None:
    raise ProjectError("git commit failed (on purpose)")


def test_a_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaffold, "_first_commit", _failing_commit)
    result = init("a/b/proj")
    assert result.exit_code == 2 and "on purpose" in result.output
    assert (
        list(tmp_path.iterdir()) == []
    )  # not the project, its staging, nor the parents made for it


def test_a_failure_with_force_restores_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text("mine\n")
    monkeypatch.setattr(scaffold, "_first_commit", _failing_commit)
    result = init("proj", "--force")
    assert result.exit_code == 2 and "on purpose" in result.output
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "proj",
        "proj/src",
        "proj/src/train.py",
    ]
    assert (project / "src" / "train.py").read_text() == "mine\n"


def test_junk_in_the_template_is_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "examples" / "iris"
    (tmp_path / "examples").mkdir()
    shutil.copytree(IRIS, source, ignore=templates.ignore)
    for junk in (
        ".mlcicd/state.db",
        "src/__pycache__/train.cpython-311.pyc",
        "env/pyvenv.cfg",
        ".venv/bin/python",
    ):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("junk")
    monkeypatch.setattr(templates, "PACKAGED", tmp_path / "nowhere")
    monkeypatch.setattr(templates, "SOURCE", tmp_path / "examples")
    assert init("proj").exit_code == 0
    assert tracked(tmp_path / "proj") == TEMPLATE_FILES
    assert not [
        p
        for p in ("proj/.mlcicd", "proj/src/__pycache__", "proj/env", "proj/.venv")
        if (tmp_path / p).exists()
    ]


@pytest.mark.integration
def test_init_then_run_serves_the_new_model(tmp_path: Path) -> None:
    """The two commands of the README, as a user types them."""
    project = tmp_path / "my-model"
    made = subprocess.run(
        [sys.executable, "-m", "mlcicd", "init", "my-model"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    try:
        ran = subprocess.run(
            [sys.executable, "-m", "mlcicd", "run", "my-model"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "endpoint my-model-endpoint:" in ran.stdout and "sample" in ran.stdout
        invoked = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlcicd",
                "-C",
                str(project),
                "invoke",
                "my-model-endpoint",
                "--body",
                "[[5.1, 3.5, 1.4, 0.2]]",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert invoked.returncode == 0, invoked.stderr
        assert json.loads(invoked.stdout)["labels"] == ["setosa"]
        models = subprocess.run(
            [sys.executable, "-m", "mlcicd", "-C", str(project), "models", "list", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert [(m["group_name"], m["version"]) for m in json.loads(models.stdout)] == [
            ("my-model", 1)
        ]
    finally:
        stop_endpoints(project)
