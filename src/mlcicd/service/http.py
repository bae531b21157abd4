"""The HTTP API of `mlcicd up`, on 127.0.0.1: JSON for what the CLI shows, the GitHub
webhook, and the git hooks' notifications.

    GET  /health                           {"status": "ok", "pid", "projects"}
    GET  /api/runs[?pipeline=P&limit=N]    runs, newest first
    GET  /api/runs/{id}[?pipeline=P]       a run, its stages and its approval
    GET  /api/runs/{id}/logs[?tail=N]      {stage: log text (its last N lines)}
    GET  /api/models                       the model registry
    GET  /api/models/{group}/{version}     a model package and its lineage
    GET  /api/endpoints                    endpoints (a local one with its live status)
    GET  /api/endpoints/{name}             an endpoint: live status, configs, metrics (5 min), history
    GET  /api/endpoints/{name}/history     every config the endpoint served, and why
    GET  /api/endpoints/{name}/monitoring[?limit=N]
                                           its monitoring schedule and executions, newest first
    GET  /api/events[?after=ID]            the registry's event log
    POST /api/runs {"ref", "force", "allow_dirty", "by"}
                                           queue a run (what `mlcicd run` does when the service
                                           is up): 202 {"run", "superseded", "existing"}
    POST /api/runs/{id}/approve|reject {"by", "comment"}
                                           decide a run WaitingForApproval; the service resumes it
    POST /api/runs/{id}/retry              queue a finished run's commit again: 202 {"run"}
    POST /api/endpoints/{name}/rollback {"to", "by", "reason"}
                                           queue a rollback (to version ``to``, default: the
                                           previous model, resolved now): 202 {"run", "superseded",
                                           "target", "from", "behind"}
    POST /api/notify  {"repository": path} a git hook: look at this repository
    POST /webhooks/github                  GitHub's push webhook (signed)
    GET  /, /runs/{id}, /models[/{group}/{version}], /endpoints[/{name}], /events
                                           the dashboard (HTML, :mod:`mlcicd.web`), from the same data

``pipeline`` picks the project when the service serves several (default: the first).
Each request opens its own state connection. HEAD is answered wherever GET is; the
dashboard's pages answer other methods 405.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from mlcicd.cli.output import to_jsonable
from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.project import Project
from mlcicd.service import webhook
from mlcicd.web import data, routes

if TYPE_CHECKING:
    from mlcicd.service.core import Service

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
# A page shows values from commits, logs and models: no script may run, whatever slips through.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}  # fmt: skip


class ServiceServer(ThreadingHTTPServer):
    daemon_threads = True
    service: Service


def make_server(service: Service, port: int) -> ServiceServer:
    server = ServiceServer(("127.0.0.1", port), Handler)
    server.service = service
    return server


class Handler(BaseHTTPRequestHandler):
    server: ServiceServer
    protocol_version = "HTTP/1.1"
    head_only = False  # HEAD: the headers of GET's answer, no body

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not worth a line each in the service log

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(to_jsonable(payload), indent=1).encode()
        self._reply(status, body, "application/json")

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def _page(self, path: str, query: dict[str, list[str]]) -> None:
        served = [(s.project.config.pipeline, s.project.root) for s in self.server.service.served]
        status, page = routes.render(served, path, query)
        self._reply(status, page.encode(), "text/html; charset=utf-8", PAGE_HEADERS)

    def _not_allowed(self) -> None:
        """Another method than GET or HEAD on a page (or on the API, one it does not take).

        The request's body, if any, is not read: the connection closes after the answer."""
        path = urlsplit(self.path).path
        if routes.is_page(path):
            body = b"405 method not allowed: the dashboard is read-only (GET, HEAD)\n"
            allow, content_type = "GET, HEAD", "text/plain; charset=utf-8"
        else:
            body = json.dumps({"error": f"{self.command} is not allowed on {path}"}).encode()
            allow, content_type = "GET, HEAD, POST", "application/json"
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, body, content_type, {"Allow": allow, "Connection": "close"})

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return None
        return self.rfile.read(length) if length else b""

    def _project(self, query: dict[str, list[str]]) -> Project:
        served = self.server.service.served
        wanted = query.get("pipeline", [None])[0]
        for s in served:
            if wanted in (None, s.project.config.pipeline):
                return Project(s.project.root)
        raise NotFoundError(f"this service does not serve pipeline {wanted!r}")

    def _post_api(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        project = self._project(query)
        try:
            if m := re.fullmatch(r"/api/endpoints/([A-Za-z0-9-]+)/rollback", path):
                return _post_rollback(project, m.group(1), body)
            return _post_runs_for(project, path, body)
        finally:
            project.state.close()

    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if routes.is_page(url.path):
            self._page(url.path, query)
            return
        try:
            self._send(HTTPStatus.OK, self._get(url.path.rstrip("/") or "/", query))
        except NotFoundError as exc:
            self._send(HTTPStatus.NOT_FOUND, {"error": exc.headline})
        except (MlcicdError, ValueError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def _get(self, path: str, query: dict[str, list[str]]) -> Any:
        service = self.server.service
        if path == "/health":
            return {"status": "ok", "pid": os.getpid(),
                    "projects": [{"pipeline": s.project.config.pipeline, "root": s.project.root} for s in service.served]}  # fmt: skip
        project = self._project(query)
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
                return data.model(state, unquote(m.group(1)), int(m.group(2)))
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

    def do_HEAD(self) -> None:
        self.head_only = True  # one handler serves every request of a keep-alive connection
        try:
            self.do_GET()
        finally:
            self.head_only = False

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if routes.is_page(url.path):
            self._not_allowed()
            return
        body = self._body()
        if body is None:
            return
        service = self.server.service
        if url.path == "/webhooks/github":
            headers = {k: v for k, v in self.headers.items()}
            targets = service.webhook_targets()
            try:
                status, answer = webhook.handle(targets, headers, body)
            except MlcicdError as exc:
                status, answer = 500, {"error": exc.headline}
            finally:
                for target in targets:
                    target.project.state.close()
            if status in (200, 202) and answer.get("runs"):
                service.log(f"webhook: queued {answer['runs']}")
            self._send(status, answer)
            return
        if url.path.startswith(("/api/runs", "/api/endpoints/")):
            try:
                status, answer = self._post_api(url.path.rstrip("/"), parse_qs(url.query), body)
            except NotFoundError as exc:
                status, answer = HTTPStatus.NOT_FOUND, {"error": exc.headline, "hint": exc.hint}
            except MlcicdError as exc:
                status, answer = HTTPStatus.CONFLICT, {"error": exc.headline, "hint": exc.hint}
            except ValueError as exc:
                status, answer = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
            self._send(status, answer)
            return
        if url.path == "/api/notify":
            try:
                repository = json.loads(body or b"{}").get("repository")
            except (ValueError, AttributeError):
                repository = None
            if not isinstance(repository, str) or not repository:
                self._send(HTTPStatus.BAD_REQUEST, {"error": 'expected {"repository": PATH}'})
                return
            service.notify_push(Path(repository))
            self._send(HTTPStatus.ACCEPTED, {"ok": True})
            return
        self._send(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {url.path}"})


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


def _post_rollback(project: Project, endpoint: str, body: bytes) -> tuple[int, Any]:
    """Queue a rollback of ``endpoint``: it runs as soon as no run of the pipeline is running,
    before the pipeline's queued runs."""
    from mlcicd.rollback import request_rollback

    data = _fields(body)
    to = data.get("to")
    if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
        raise ValueError(f"to: expected a model version (an integer), got {to!r}")
    by = _text(data, "by", "unknown") or "unknown"
    run, superseded = request_rollback(project, endpoint, to, by=by, reason=_text(data, "reason"))
    running = project.state.runs_with_status("Running", project.config.pipeline)
    return HTTPStatus.ACCEPTED, {
        "run": run, "superseded": superseded, "target": run.trigger["to"], "from": run.trigger["from"],
        "behind": [r.id for r in running],
    }  # fmt: skip


def _post_runs_for(project: Project, path: str, body: bytes) -> tuple[int, Any]:
    from mlcicd import git
    from mlcicd.errors import ProjectError
    from mlcicd.service import triggers

    data = _fields(body)
    state, config = project.state, project.config
    by = _text(data, "by", "unknown") or "unknown"
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
            pipeline=config.pipeline, project_dir=str(project.root), ref=commit.sha, commit_sha=commit.sha,
            trigger={"kind": "cli", "by": by, "ref": ref or config.branch, "branch": config.branch,
                     "dirty": bool(dirty), "request": request},
            forced=bool(data.get("force")),
        )  # fmt: skip
        assert run is not None  # no delivery id: a run is always returned
        existing = run.trigger.get("request") != request  # that commit was queued or running already
        return HTTPStatus.ACCEPTED, {"run": run, "superseded": superseded, "existing": existing}
    m = re.fullmatch(r"/api/runs/(\d+)/(approve|reject|retry)", path)
    if m is None:
        raise NotFoundError(f"no such resource: {path}")
    run_id, action = int(m.group(1)), m.group(2)
    if action == "retry":
        return HTTPStatus.ACCEPTED, {"run": triggers.retry(project, run_id)}
    comment = _text(data, "comment")
    if any(a.run_id == run_id for a in state.expired_approvals()):
        approval = state.decide_approval(run_id, False, by="mlcicd (timeout)",
                                         comment="no decision within approve.timeout")  # fmt: skip
        return HTTPStatus.OK, {"approval": approval, "timed_out": True}
    approval = state.decide_approval(run_id, action == "approve", by=by, comment=comment)
    return HTTPStatus.OK, {"approval": approval, "timed_out": False}
