"""The few git operations mlcicd needs, through the git command line.

An argument that comes from outside — a ref or commit id (a push, the API, the state
database), a URL, a path — never stands where git reads options: revisions follow
``--end-of-options`` and URLs and paths follow ``--``, so a "commit" ``--output=FILE`` or a
"URL" ``--upload-pack=CMD`` is refused by git as a bad name instead of being obeyed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlcicd.errors import ProjectError

# Seconds a git command that talks to a remote (fetch, ls-remote) may take: a remote that
# accepts the connection and then says nothing must not hold the webhook's queueing lock or a
# run forever. MLCICD_GIT_TIMEOUT overrides it.
NETWORK_TIMEOUT = 300.0
NETWORK_TIMEOUT_ENV = "MLCICD_GIT_TIMEOUT"


def network_timeout() -> float:
    """How long a git command talking to a remote may run (:data:`NETWORK_TIMEOUT`)."""
    value = os.environ.get(NETWORK_TIMEOUT_ENV)
    try:
        return float(value) if value else NETWORK_TIMEOUT
    except ValueError:
        raise ProjectError(
            f"{NETWORK_TIMEOUT_ENV}={value!r} is not a number of seconds",
            hint=f"set it to e.g. 120, or unset it for {NETWORK_TIMEOUT:.0f}",
        ) from None


@dataclass(frozen=True)
class Commit:
    sha: str
    branch: str
    author: str
    message: str
    tree: str  # the tree id of the project's directory at this commit: a digest of its content


def git(repo: Path, *args: str, input: bytes | None = None, timeout: float | None = None) -> bytes:
    """Run git in ``repo``; its stdout. ``timeout`` (seconds) bounds a command that talks to a
    remote (pass :func:`network_timeout`); local commands are not bounded."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=repo,
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError as exc:
        raise ProjectError("git is not installed", hint="install git and try again") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProjectError(
            f"git {' '.join(args)} in {repo} did not finish in {timeout:g} s",
            hint=f"is the remote reachable? {NETWORK_TIMEOUT_ENV} sets the limit (seconds)",
        ) from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ProjectError(
            f"git {' '.join(args)} failed in {repo}: {err[-1] if err else proc.returncode}"
        )
    return proc.stdout


def repo_root(path: Path) -> Path:
    try:
        return Path(git(path, "rev-parse", "--show-toplevel").decode().strip())
    except ProjectError as exc:
        raise ProjectError(
            f"{path} is not in a git repository",
            hint="mlcicd runs what is committed: `git init && git add -A && git commit -m init` "
            "first",
        ) from exc


def resolve_commit(repo: Path, project_rel: str, ref: str, branch: str) -> Commit:
    """The commit ``ref`` points at, with the tree id of the project directory in it."""
    try:
        sha = (
            git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
            .decode()
            .strip()
        )
    except ProjectError as exc:
        raise ProjectError(
            f"{ref!r} is not a commit in {repo}",
            hint=f"commit your project, or set `branch:` in mlcicd.yaml (now {branch!r})",
        ) from exc
    fields = git(repo, "show", "-s", "--format=%an <%ae>%x00%B", "--end-of-options", sha).decode(
        errors="replace"
    )
    author, _, message = fields.partition("\x00")
    spec = f"{sha}:{project_rel}" if project_rel not in ("", ".") else f"{sha}^{{tree}}"
    try:
        tree = (
            git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", spec).decode().strip()
        )
    except ProjectError as exc:
        raise ProjectError(
            f"the project directory {project_rel!r} is not in commit {sha[:12]}"
        ) from exc
    return Commit(sha=sha, branch=branch, author=author.strip(), message=message.strip(), tree=tree)


def current_branch(repo: Path) -> str | None:
    try:
        name = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD").decode().strip()
    except ProjectError:
        return None  # detached HEAD
    return name or None


def dirty_paths(repo: Path, project_rel: str) -> list[str]:
    """Modified, staged or untracked files under the project directory (ignored ones excluded)."""
    out = git(
        repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", project_rel or "."
    )
    entries = [e for e in out.decode(errors="replace").split("\x00") if e]
    return [e[3:] for e in entries if len(e) > 3 and e[2] == " "]


def tree_id(repo: Path, commit: str, rel_path: str) -> str | None:
    """The git object id of ``rel_path`` at ``commit`` (a content digest), or None if absent."""
    try:
        return (
            git(
                repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:{rel_path}"
            )
            .decode()
            .strip()
            or None
        )
    except ProjectError:
        return None


def export_tree(repo: Path, commit: str, project_rel: str, dest: Path) -> None:
    """Write the project directory as it is in ``commit`` to ``dest`` (whole, or not at all).

    Only committed content is exported, so nothing uncommitted can leak into a build.
    """
    spec = f"{commit}:{project_rel}" if project_rel not in ("", ".") else commit
    data = git(repo, "archive", "--format=tar", "--end-of-options", spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(staging, filter="data")
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def exclude_path(repo: Path, pattern: str) -> None:
    """Add ``pattern`` to the repository's ``info/exclude`` (never to a tracked .gitignore)."""
    exclude = Path(git(repo, "rev-parse", "--git-path", "info/exclude").decode().strip())
    if not exclude.is_absolute():
        exclude = repo / exclude
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern not in existing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as fh:
            fh.write(("\n" if existing and existing[-1] else "") + pattern + "\n")
