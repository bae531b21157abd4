"""The client of a running `mlcicd up`'s API, which :mod:`mlcicd.operations.http` speaks
through: when the service serves the project, `mlcicd run`, `approve`, `reject`,
`runs retry` and `endpoints rollback` go through its HTTP API, so that
the queue's rules hold (one run per pipeline at a time, newer commits supersede queued ones,
a rollback waits for the run in progress) and the service is the one process that runs pipelines.

The service is found by ``service.json`` in the project's state directory (url, pid and the
pid's start time, written by `mlcicd up`; checked alive with :mod:`mlcicd.procinfo`); every
call carries the token found beside it and the user's name (:mod:`mlcicd.daemon.auth`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from mlcicd.daemon import auth
from mlcicd.daemon.info import running_service
from mlcicd.errors import (
    MlcicdError,
    NotFoundError,
    ProjectError,
    ServiceError,
    StateError,
    TokenRefusedError,
)
from mlcicd.pipeline import Reporter
from mlcicd.project import Project

FINISHED = ("Succeeded", "Failed", "Stopped", "Superseded")
POLL = 0.5


def find_running_service(project: Project) -> str | None:
    """The URL of the live `mlcicd up` serving ``project``, or None."""
    info = running_service(project.state_dir)
    return str(info["url"]) if info and info.get("url") else None


def user() -> str:
    return auth.os_user()


def request(
    url: str,
    method: str = "GET",
    payload: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Any:
    """JSON in, JSON out; an error answer raises with the service's own message."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {}
        message = answer.get("error") if isinstance(answer, dict) else None
        hint = answer.get("hint") if isinstance(answer, dict) else None
        kind: type[MlcicdError] = {401: TokenRefusedError, 404: NotFoundError, 409: StateError}.get(
            exc.code, ServiceError
        )
        if exc.code == 409 and "uncommitted changes" in str(message):
            kind = ProjectError
        raise kind(
            message or f"the service answered {exc.code} to {method} {url}", hint=hint
        ) from None
    except (OSError, ValueError) as exc:
        raise ServiceError(f"the service at {url} did not answer: {exc}") from None


def _api(url: str, project: Project, path: str) -> str:
    return f"{url.rstrip('/')}{path}?pipeline={quote(project.config.pipeline)}"


def call(url: str, project: Project, path: str, method: str = "GET", payload: Any = None) -> Any:
    """``path`` of the service at ``url`` for ``project``, with its token and the user's name."""
    token_file = auth.token_path(project.state_dir)
    try:
        return request(
            _api(url, project, path), method, payload, headers=auth.client_headers(token_file)
        )
    except TokenRefusedError:
        sent = (
            f"${auth.TOKEN_ENV}" if os.environ.get(auth.TOKEN_ENV, "").strip() else str(token_file)
        )
        raise TokenRefusedError(
            f"the service at {url} refused the token (from {sent})",
            hint="run mlcicd as the user that runs `mlcicd up` (the token file is readable by "
            "it only), "
            f"or set ${auth.TOKEN_ENV} to the token the service uses",
        ) from None


def submit_run(
    url: str,
    project: Project,
    *,
    ref: str | None = None,
    force: bool = False,
    allow_dirty: bool = False,
) -> dict[str, Any]:
    """Queue a run of ``ref`` (default: the configured branch): {"run", "superseded",
    "existing"}."""
    payload = {"ref": ref, "force": force, "allow_dirty": allow_dirty}
    answer: dict[str, Any] = call(url, project, "/api/runs", "POST", payload)
    return answer


def decide(
    url: str, project: Project, run_id: int, approved: bool, comment: str | None
) -> dict[str, Any]:
    """Approve or reject run ``run_id``: {"approval", "timed_out"}; the service resumes the run."""
    action = "approve" if approved else "reject"
    answer: dict[str, Any] = call(
        url, project, f"/api/runs/{run_id}/{action}", "POST", {"comment": comment}
    )
    return answer


def retry(url: str, project: Project, run_id: int) -> dict[str, Any]:
    """Queue run ``run_id``'s commit again: {"run"}."""
    answer: dict[str, Any] = call(url, project, f"/api/runs/{run_id}/retry", "POST", {})
    return answer


def request_rollback(
    url: str, project: Project, endpoint: str, to_version: int | None, reason: str | None
) -> dict[str, Any]:
    """Queue a rollback of ``endpoint``: {"run", "superseded", "target", "from", "behind"}."""
    answer: dict[str, Any] = call(
        url,
        project,
        f"/api/endpoints/{quote(endpoint)}/rollback",
        "POST",
        {"to": to_version, "reason": reason},
    )
    return answer


def endpoints(url: str, project: Project) -> list[dict[str, Any]]:
    """The project's endpoints as the service sees them: [{"name", "status", "url", …}]."""
    answer: list[dict[str, Any]] = call(url, project, "/api/endpoints")
    return answer


def get_run(url: str, project: Project, run_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = call(url, project, f"/api/runs/{run_id}")
    return answer


def _settled(shown: dict[str, Any]) -> bool:
    status = shown["run"]["status"]
    if status in FINISHED:
        return True
    approval = shown.get("approval") or {}
    return bool(status == "WaitingForApproval" and approval.get("status") == "Pending")


def follow_run(
    url: str,
    project: Project,
    run_id: int,
    reporter: Reporter,
    *,
    on_wait: Callable[[str], None] | None = None,
    poll: float = POLL,
) -> dict[str, Any]:
    """Show run ``run_id``'s stages and new log lines as they progress, until it finishes or
    waits for a decision; its last ``{"run", "stages", "approval"}``. ``on_wait`` hears why
    nothing moves yet (queued behind another run)."""
    started: set[str] = set()
    done: set[str] = set()
    lines: dict[str, int] = {}
    said_queued = False
    while True:
        shown = get_run(url, project, run_id)
        run = shown["run"]
        if run["status"] == "Queued" and not said_queued and on_wait is not None:
            on_wait(f"run {run_id} is queued; it starts when the pipeline's current run ends")
            said_queued = True
        running = [
            s
            for s in shown["stages"]
            if s["status"] not in ("Pending", "Skipped") and s["stage"] not in done
        ]
        logs: dict[str, str] = call(url, project, f"/api/runs/{run_id}/logs") if running else {}
        for stage in running:
            name = stage["stage"]
            if name not in started:
                reporter.stage_started(name)
                started.add(name)
            text = logs.get(name, "")
            new = text.splitlines()
            if not text.endswith("\n") and stage["status"] == "Running":
                new = new[:-1]  # a line still being written
            for line in new[lines.get(name, 0) :]:
                reporter.log(name, line)
            lines[name] = max(lines.get(name, 0), len(new))
            if stage["status"] not in ("Running", "WaitingForApproval") or (
                stage["status"] == "WaitingForApproval" and _settled(shown)
            ):
                elapsed = (stage.get("ended_at") or time.time()) - (
                    stage.get("started_at") or time.time()
                )
                reporter.stage_finished(name, stage["status"], elapsed, stage.get("message") or "")
                done.add(name)
        if _settled(shown) and all(s["stage"] in done for s in running):
            return shown
        time.sleep(poll)
