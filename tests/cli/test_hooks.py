"""`mlcicd hooks install` without a service running: where the hook points, --print."""

from __future__ import annotations

from pathlib import Path

from mlcicd.hooks import MARKER
from tests.conftest import commit_all, git, make_repo
from tests.helpers import mlcicd, set_yaml


def test_without_a_running_service_the_hook_knocks_on_the_configured_port(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "iris")
    set_yaml(
        project, "pipeline: iris-classifier", "pipeline: iris-classifier\nservice: {port: 9123}"
    )
    commit_all(project, "its own port")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # REPO is the project: its config counts, wherever the command runs from.
    installed = mlcicd(elsewhere, "hooks", "install", str(project))
    assert installed.exit_code == 0, installed.output
    assert installed.output.strip().endswith("→ http://127.0.0.1:9123")
    hook = Path(git(project, "rev-parse", "--git-path", "hooks").strip())
    script = (project / hook / "post-commit").read_text()
    assert "http://127.0.0.1:9123" in script
    # It names the token file (made at the service's first start), read when the hook runs.
    assert str(project.resolve() / ".mlcicd" / "service.token") in script


def test_print_shows_the_hook_and_installs_nothing(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "iris")
    printed = mlcicd(
        project, "hooks", "install", str(project), "--print", "--url", "http://127.0.0.1:1"
    )
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith("#!/bin/sh\n") and MARKER in printed.output
    assert "-m mlcicd.hooks" in printed.output and "http://127.0.0.1:1" in printed.output
    assert not (project / ".git" / "hooks" / "post-commit").exists()


def test_a_url_cannot_put_a_command_in_the_hook(tmp_path: Path) -> None:
    """The hook is a shell script every push runs: what the URL says stays a URL."""
    project = make_repo(tmp_path / "iris")
    made = tmp_path / "made-by-the-hook"
    url = (
        f'http://127.0.0.1:1/$(touch${{IFS}}{made})"`touch${{IFS}}{made}`"'  # no space: a valid URL
    )
    quoted = mlcicd(project, "hooks", "install", str(project), "--url", url)
    assert quoted.exit_code == 0, quoted.output
    broken = mlcicd(
        project,
        "hooks",
        "install",
        str(project),
        "--force",
        "--url",
        f"http://127.0.0.1:1/\ntouch {made}",
    )
    assert broken.exit_code != 0 and "not an http(s) URL" in broken.output
    git(project, "commit", "-q", "--allow-empty", "-m", "the hook runs")
    assert not made.exists()
