from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd import git
from mlcicd.errors import ProjectError
from tests.conftest import commit_all
from tests.conftest import git as run_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "proj" / "src").mkdir(parents=True)
    (root / "proj" / "src" / "train.py").write_text("print('v1')\n")
    (root / "other.txt").write_text("outside the project\n")
    run_git(root, "init", "-q", "--initial-branch=main")
    commit_all(root, "first\n\nbody")
    return root


def test_resolve_commit_records_author_message_and_tree(repo: Path) -> None:
    commit = git.resolve_commit(repo, "proj", "main", "main")
    assert commit.author == "Ada Tester <ada@example.com>"
    assert commit.message == "first\n\nbody"
    assert commit.tree == git.tree_id(repo, commit.sha, "proj")
    # The project's tree id changes only when the project's files change.
    (repo / "other.txt").write_text("changed\n")
    commit_all(repo, "outside change")
    assert git.resolve_commit(repo, "proj", "main", "main").tree == commit.tree


def test_export_has_only_committed_content(repo: Path, tmp_path: Path) -> None:
    (repo / "proj" / "src" / "train.py").write_text("print('uncommitted')\n")
    (repo / "proj" / "untracked.py").write_text("x = 1\n")
    assert sorted(git.dirty_paths(repo, "proj")) == ["proj/src/train.py", "proj/untracked.py"]
    commit = git.resolve_commit(repo, "proj", "HEAD", "main")
    dest = tmp_path / "export"
    git.export_tree(repo, commit.sha, "proj", dest)
    assert (dest / "src" / "train.py").read_text() == "print('v1')\n"
    assert not (dest / "untracked.py").exists()
    assert not (dest / "other.txt").exists()


def test_exclude_keeps_state_out_of_status(repo: Path) -> None:
    (repo / "proj" / ".mlcicd").mkdir()
    (repo / "proj" / ".mlcicd" / "state.db").write_text("x")
    assert git.dirty_paths(repo, "proj") == ["proj/.mlcicd/state.db"]
    git.exclude_path(repo, "/proj/.mlcicd/")
    git.exclude_path(repo, "/proj/.mlcicd/")  # idempotent
    assert git.dirty_paths(repo, "proj") == []
    assert (repo / ".git" / "info" / "exclude").read_text().count("/proj/.mlcicd/") == 1


def test_not_a_repository_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not in a git repository") as info:
        git.repo_root(tmp_path)
    assert "git init" in info.value.headline


def test_unknown_ref(repo: Path) -> None:
    with pytest.raises(ProjectError, match="'nope' is not a commit"):
        git.resolve_commit(repo, "proj", "nope", "main")


@pytest.mark.parametrize("ref", ["--output=written-by-git", "--all"])
def test_a_ref_that_looks_like_an_option_is_not_obeyed(
    repo: Path, tmp_path: Path, ref: str
) -> None:
    """Refs come from pushes and the API: git must read them as names, never as options."""
    made = repo / "written-by-git"
    with pytest.raises(ProjectError, match="is not a commit"):
        git.resolve_commit(repo, "proj", ref, "main")
    assert git.tree_id(repo, ref, "proj") is None
    with pytest.raises(ProjectError, match="archive"):
        git.export_tree(repo, ref, "proj", tmp_path / "export")
    assert not made.exists() and not (repo / "written-by-git:proj").exists()
    assert not (tmp_path / "export").exists()


@pytest.mark.integration
def test_a_remote_that_never_answers_is_given_up_on(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote that accepts the connection and then says nothing: the webhook checks the
    branch head under the queueing lock, so ls-remote must end — with an error that says why."""
    import socket

    from mlcicd.daemon.triggers import branch_head

    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/model.git"
        monkeypatch.setenv(git.NETWORK_TIMEOUT_ENV, "1")
        with pytest.raises(ProjectError, match=r"did not finish in 1 s") as info:
            git.git(repo, "ls-remote", "--", url, timeout=git.network_timeout())
        assert git.NETWORK_TIMEOUT_ENV in (info.value.hint or "")
        assert branch_head(url, "main", repo) is None


def test_a_bad_network_timeout_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(git.NETWORK_TIMEOUT_ENV, "soon")
    with pytest.raises(ProjectError, match="MLCICD_GIT_TIMEOUT='soon' is not a number"):
        git.network_timeout()
    monkeypatch.delenv(git.NETWORK_TIMEOUT_ENV)
    assert git.network_timeout() == git.NETWORK_TIMEOUT
