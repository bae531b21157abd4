"""One run in its own process: ``python -m mlcicd.daemon.runner PROJECT_DIR RUN_ID [--resume]``.

A queued rollback (trigger ``rollback``) runs here too, as
:func:`mlcicd.rollback.run_queued_rollback`.

A process per run keeps a crashing run from taking the service down, and makes the
service's death clean: the runner dies with it (``PR_SET_PDEATHSIG``) or is told to stop
(SIGTERM), and either way its run ends Failed with the reason — by the runner itself, or,
after a kill -9 of both, by the next reader of the state (the recorded pid is gone).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from mlcicd import git
from mlcicd.daemon.triggers import remote_url
from mlcicd.errors import MlcicdError, ProjectError
from mlcicd.pipeline import RunOptions, resume_pipeline, run_pipeline
from mlcicd.project import Project
from mlcicd.rollback import run_queued_rollback
from mlcicd.stages import default_stages
from mlcicd.state import Run, State

PR_SET_PDEATHSIG = 1
PARENT_ENV = "MLCICD_SERVICE_PID"


class ServiceStopped(BaseException):
    """SIGTERM: the service is stopping (a BaseException, so no stage mistakes it for its own)."""


class LogReporter:
    """Stage transitions into the service's log (stdout); stage logs have the detail."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def _say(self, text: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} run {self.run_id}: {text}", flush=True)

    def stage_started(self, stage: str) -> None:
        self._say(f"{stage} started")

    def log(self, stage: str, line: str) -> None:
        pass

    def stage_finished(self, stage: str, status: str, elapsed: float, message: str) -> None:
        self._say(f"{stage} {status} in {elapsed:.1f}s {message}")


def prepare_source(project: Project, run: Run) -> Project:
    """Fetch the remote the trigger names, resolve the commit: the project at that commit.

    Only a remote configured in the repository is fetched, by its name: a URL in a trigger
    (queued by an older mlcicd from a webhook's payload) is refused, never handed to git.
    """
    fetch = run.trigger.get("fetch")
    branch = run.trigger.get("branch") or project.config.branch
    if fetch:
        if remote_url(project, str(fetch)) is None:
            raise ProjectError(
                f"run {run.id} asks to fetch {str(fetch)[:200]!r}, which is not a remote of "
                f"{project.repo}",
                hint=f"a run fetches only a configured remote: set service.remote in mlcicd.yaml "
                f"(now {project.config.service.remote!r}) to one of `git remote -v`, then push "
                "again",
            )
        print(f"run {run.id}: git fetch {fetch} refs/heads/{branch}", flush=True)
        git.git(
            project.repo,
            "fetch",
            "--quiet",
            "--",
            str(fetch),
            f"refs/heads/{branch}",
            timeout=git.network_timeout(),
        )
    ref = run.commit_sha or run.ref or branch
    sha = git.resolve_commit(project.repo, project.rel, ref, branch).sha
    return project.at_commit(sha)


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent and os.getppid() != parent:  # the service died before prctl took effect
        raise ServiceStopped


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise ServiceStopped


def main(argv: list[str]) -> int:
    project_dir, run_id, resume = Path(argv[0]), int(argv[1]), "--resume" in argv[2:]
    signal.signal(signal.SIGTERM, _on_sigterm)
    project = Project(project_dir)
    state = project.state
    reporter = LogReporter(run_id)
    try:
        _die_with(int(os.environ.get(PARENT_ENV, "0")))
        run = state.get_run(run_id)
        if run.trigger.get("kind") == "rollback" and not resume:
            summary = run_queued_rollback(project, run, reporter)
        elif resume:
            if run.commit_sha:
                project = project.at_commit(run.commit_sha)
            summary = resume_pipeline(project, default_stages(project.config), run_id, reporter)
        else:
            project = prepare_source(project, run)
            assert project.commit is not None
            options = RunOptions(force=run.forced, allow_dirty=True, ref=project.commit)
            summary = run_pipeline(
                project, default_stages(project.config), options, reporter, run_id=run_id
            )
    except ServiceStopped:
        state.fail_run_in_progress(
            run_id,
            f"interrupted: the mlcicd service stopped during the run ({_again(state, run_id)})",
        )
        return 143
    except (
        MlcicdError
    ) as exc:  # before the pipeline started: fetch, commit, mlcicd.yaml, a rollback's model
        state.fail_run_in_progress(run_id, exc.headline)
        print(f"run {run_id}: failed: {exc.headline}", flush=True)
        return 1
    print(
        f"run {run_id}: {summary.run.status}"
        + (f": {summary.error.headline}" if summary.error else ""),
        flush=True,
    )
    return 0 if summary.succeeded or summary.waiting else 1


def _again(state: State, run_id: int) -> str:
    """How to ask for an interrupted run again."""
    trigger = state.get_run(run_id).trigger
    if trigger.get("kind") == "rollback":
        return (
            f"`mlcicd endpoints rollback {trigger.get('endpoint')} --to {trigger.get('version')}`"
        )
    return f"`mlcicd runs retry {run_id}`"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
