"""What the API of `mlcicd up` answers (:mod:`mlcicd.daemon.http` serves it): blocking work on
the state database and git, run in the server's thread pool, one state connection per request.

``get`` and ``post`` take a path and its query (and a POST's JSON body and who sends it) and
return the answer or raise: :class:`NotFoundError` → 404, another :class:`MlcicdError` → 409 on a
POST (not possible now) or 400 on a GET, ``ValueError`` → 400.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mlcicd.errors import NotFoundError
from mlcicd.project import Project
from mlcicd.web import data

if TYPE_CHECKING:
    from mlcicd.daemon.core import Service


def project_of(service: Service, query: dict[str, list[str]]) -> Project:
    wanted = query.get("pipeline", [None])[0]
    for s in service.served:
        if wanted in (None, s.project.config.pipeline):
            return Project(s.project.root)
    raise NotFoundError(f"this service does not serve pipeline {wanted!r}")


def get(service: Service, path: str, query: dict[str, list[str]]) -> Any:
    if path == "/health":
        return {
            "status": "ok",
            "pid": os.getpid(),
            "projects": [
                {"pipeline": s.project.config.pipeline, "root": s.project.root}
                for s in service.served
            ],
        }
    project = project_of(service, query)
    state = project.state
    try:
        if path == "/api/runs":
            return data.runs(state, limit=int(query.get("limit", ["50"])[0]))
        if m := re.fullmatch(r"/api/runs/(\d+)", path):
            return data.run(state, int(m.group(1)))
        if m := re.fullmatch(r"/api/runs/(\d+)/logs", path):
            tail = query.get("tail", [None])[0]
            return data.run_logs(state, int(m.group(1)), tail=None if tail is None else int(tail))
        if path == "/api/models":
            return data.models(state)
        if m := re.fullmatch(r"/api/models/([^/]+)/(\d+)", path):
            return data.model(project, unquote(m.group(1)), int(m.group(2)))
        if path == "/api/endpoints":
            return data.endpoints(project)
        if m := re.fullmatch(r"/api/endpoints/([A-Za-z0-9-]+)", path):
            return data.endpoint(project, m.group(1))
        if m := re.fullmatch(r"/api/endpoints/([A-Za-z0-9-]+)/history", path):
            return data.endpoint_history(state, m.group(1))
        if m := re.fullmatch(r"/api/endpoints/([A-Za-z0-9-]+)/monitoring", path):
            return data.monitoring(project, m.group(1), limit=int(query.get("limit", ["50"])[0]))
        if path == "/api/events":
            return data.events(state, after=int(query.get("after", ["0"])[0]), limit=500)
    finally:
        state.close()
    raise NotFoundError(f"no such resource: {path}")


def post(
    service: Service, path: str, query: dict[str, list[str]], body: bytes, by: str
) -> tuple[int, Any]:
    """A POST under /api/; ``by`` is who asks (recorded with runs, approvals and rollbacks)."""
    if path == "/api/notify":
        try:
            repository = json.loads(body or b"{}").get("repository")
        except (ValueError, AttributeError):
            repository = None
        if not isinstance(repository, str) or not repository:
            raise ValueError('expected {"repository": PATH}')
        service.notify_push(Path(repository))
        return HTTPStatus.ACCEPTED, {"ok": True}
    if not path.startswith(("/api/runs", "/api/endpoints/")):
        raise NotFoundError(f"no such resource: {path}")
    project = project_of(service, query)
    try:
        if m := re.fullmatch(r"/api/endpoints/([A-Za-z0-9-]+)/rollback", path):
            return _post_rollback(project, m.group(1), body, by)
        return _post_runs_for(project, path, body, by)
    finally:
        project.state.close()


def _fields(body: bytes) -> dict[str, Any]:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _post_rollback(project: Project, endpoint: str, body: bytes, by: str) -> tuple[int, Any]:
    """Queue a rollback of ``endpoint``: it runs as soon as no run of the pipeline is running,
    before the pipeline's queued runs."""
    from mlcicd.rollback import request_rollback

    data = _fields(body)
    to = data.get("to")
    if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
        raise ValueError(f"to: expected a model version (an integer), got {to!r}")
    run, superseded = request_rollback(project, endpoint, to, by=by, reason=_text(data, "reason"))
    running = project.state.runs_with_status("Running", project.config.pipeline)
    return HTTPStatus.ACCEPTED, {
        "run": run,
        "superseded": superseded,
        "target": run.trigger["to"],
        "from": run.trigger["from"],
        "behind": [r.id for r in running],
    }


def _post_runs_for(project: Project, path: str, body: bytes, by: str) -> tuple[int, Any]:
    from mlcicd import git
    from mlcicd.daemon import triggers
    from mlcicd.errors import ProjectError

    data = _fields(body)
    state, config = project.state, project.config
    if path == "/api/runs":
        ref = _text(data, "ref")
        dirty = git.dirty_paths(project.repo, project.rel)
        if dirty and not data.get("allow_dirty"):
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise ProjectError(
                f"the working tree has uncommitted changes: {shown}",
                hint="commit them, or pass --allow-dirty to run the last commit anyway",
            )
        commit = git.resolve_commit(project.repo, project.rel, ref or config.branch, config.branch)
        request = uuid.uuid4().hex
        run, superseded = state.enqueue_run(
            pipeline=config.pipeline,
            project_dir=str(project.root),
            ref=commit.sha,
            commit_sha=commit.sha,
            trigger={
                "kind": "cli",
                "by": by,
                "ref": ref or config.branch,
                "branch": config.branch,
                "dirty": bool(dirty),
                "request": request,
            },
            forced=bool(data.get("force")),
        )
        assert run is not None  # no delivery id: a run is always returned
        existing = (
            run.trigger.get("request") != request
        )  # that commit was queued or running already
        return HTTPStatus.ACCEPTED, {"run": run, "superseded": superseded, "existing": existing}
    m = re.fullmatch(r"/api/runs/(\d+)/(approve|reject|retry)", path)
    if m is None:
        raise NotFoundError(f"no such resource: {path}")
    run_id, action = int(m.group(1)), m.group(2)
    if action == "retry":
        return HTTPStatus.ACCEPTED, {"run": triggers.retry(project, run_id)}
    comment = _text(data, "comment")
    approval, timed_out = state.decide_approval_unless_expired(
        run_id, action == "approve", by=by, comment=comment
    )
    return HTTPStatus.OK, {"approval": approval, "timed_out": timed_out}
