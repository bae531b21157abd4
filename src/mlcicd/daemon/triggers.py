"""What starts a run: a push notification from a git hook, a poll, a webhook, a retry.

Nothing a notification says is trusted: a hook only says "look at this repository", and
the service reads the branch head from the repository itself. A commit that already has a
run of the pipeline is not run again by a hook or a poll (``mlcicd runs retry`` does that).
What a run fetches is always a remote configured in the project's repository, by name.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from mlcicd import git
from mlcicd.errors import ProjectError
from mlcicd.project import Project
from mlcicd.state import Run

# Held from reading a branch head to queueing it, so two triggers queue heads in the order
# the remote had them: a slower, older head never supersedes a newer one queued meanwhile.
queueing = threading.Lock()


def remote_url(project: Project, remote: str) -> str | None:
    try:
        return (
            git.git(project.repo, "config", "--get", f"remote.{remote}.url").decode().strip()
            or None
        )
    except ProjectError:
        return None


def _local_path(url: str, base: Path) -> Path | None:
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return (base / url).resolve() if not os.path.isabs(url) else Path(url).resolve()


def _normalise(url: str) -> str:
    """github.com/owner/repo for https, ssh and git URLs alike."""
    url = url.strip().rstrip("/").lower()
    url = re.sub(r"\.git$", "", url)
    url = re.sub(r"^[a-z+]+://", "", url)
    url = re.sub(r"^[^@/]+@", "", url)
    return url.replace(":", "/", 1) if ":" in url and "/" not in url.split(":", 1)[0] else url


def same_repository(url: str, other: str, base: Path) -> bool:
    a, b = _local_path(url, base), _local_path(other, base)
    if a is not None or b is not None:
        return a is not None and b is not None and a == b
    return _normalise(url) == _normalise(other)


def branch_head(location: str, branch: str, base: Path) -> str | None:
    """The commit ``refs/heads/<branch>`` points at in a local repository or at a remote URL."""
    try:
        local = _local_path(location, base)
        if local is not None and local.is_dir():
            out = git.git(
                local, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"
            )
            return out.decode().strip() or None
        out = git.git(
            base,
            "ls-remote",
            "--",
            location,
            f"refs/heads/{branch}",
            timeout=git.network_timeout(),
        )
    except ProjectError:
        return None
    line = out.decode().split("\n", 1)[0]
    return line.split("\t", 1)[0] or None


def enqueue(
    project: Project, sha: str | None, trigger: dict[str, Any], *, only_new: bool
) -> Run | None:
    """Queue a run of ``sha`` (superseding older queued ones); None if there is nothing to do."""
    if not sha:
        return None
    config = project.config
    if only_new and project.state.has_run_for_commit(config.pipeline, sha):
        return None
    run, _superseded = project.state.enqueue_run(
        pipeline=config.pipeline,
        project_dir=str(project.root),
        ref=sha,
        commit_sha=sha,
        trigger={**trigger, "branch": config.branch},
    )
    return run


def on_push(project: Project, repository: Path) -> Run | None:
    """A git hook says ``repository`` changed: the project's own, or the remote it builds from."""
    config = project.config
    repository = repository.resolve()
    if repository == project.repo.resolve():
        with queueing:
            sha = branch_head(str(project.repo), config.branch, project.repo)
            return enqueue(project, sha, {"kind": "hook"}, only_new=True)
    remote = config.service.remote
    url = remote_url(project, remote)
    if url is None or not same_repository(url, str(repository), project.repo):
        return None
    with queueing:
        sha = branch_head(str(repository), config.branch, project.repo)
        return enqueue(project, sha, {"kind": "hook", "fetch": remote}, only_new=True)


def poll(project: Project) -> Run | None:
    """The polling fallback: the configured remote's branch, or the local branch without one."""
    config = project.config
    remote = config.service.remote
    url = remote_url(project, remote)
    with queueing:
        if url is None:
            sha = branch_head(str(project.repo), config.branch, project.repo)
            return enqueue(project, sha, {"kind": "poll"}, only_new=True)
        sha = branch_head(url, config.branch, project.repo)
        return enqueue(project, sha, {"kind": "poll", "fetch": remote}, only_new=True)


def retry(project: Project, run_id: int) -> Run:
    """Queue a finished run's commit again (`mlcicd runs retry`)."""
    from mlcicd.errors import StateError

    old = project.state.get_run(run_id)
    if old.status in ("Queued", "Running", "WaitingForApproval"):
        raise StateError(f"run {run_id} is {old.status}; only a finished run can be retried")
    if (
        old.trigger.get("kind") == "rollback"
    ):  # retrying it would rebuild and redeploy that old commit
        raise StateError(
            f"run {run_id} was a rollback; a rollback is not retried as a pipeline run",
            hint="ask for it again: `mlcicd endpoints rollback "
            f"{old.trigger.get('endpoint') or 'NAME'} "
            f"--to {old.trigger.get('version') or 'VERSION'}`",
        )
    ref = old.commit_sha or old.ref
    if not ref:
        raise StateError(f"run {run_id} never resolved a commit; start a new run instead")
    trigger = {k: v for k, v in old.trigger.items() if k in ("fetch", "branch")}
    run, _ = project.state.enqueue_run(
        pipeline=old.pipeline,
        project_dir=str(project.root),
        ref=ref,
        commit_sha=old.commit_sha,
        trigger={**trigger, "kind": "retry", "of": run_id},
        retry_of=run_id,
    )
    assert run is not None
    return run
