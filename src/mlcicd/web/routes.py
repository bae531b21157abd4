"""The dashboard's routes: a path → its data (:mod:`mlcicd.web.data`, what the API answers)
→ a page (:mod:`mlcicd.web.pages`). Served by `mlcicd up` for GET and HEAD.

    /                              per pipeline: newest runs, endpoints, latest events
    /runs/{id}                     a run: stages, the gate's metrics and verdict, approval,
                                   log tails
    /models                        the model registry (?page=2: the older versions)
    /models/{group}/{version}      a model, its metrics, lineage and data-quality baseline
    /endpoints                     endpoints, live status for local ones
    /endpoints/{name}              an endpoint: variants and weights, metrics and their
                                   history (?window=1h), monitoring, config, history
    /events                        the registry's event log

    /static/live.js                the script that swaps in a live page's new content

``?pipeline=NAME`` picks the project when the service serves several (default: the first).
Unknown runs, models and endpoints are 404 pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote

from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.project import Project
from mlcicd.web import data, live, pages

RECENT_RUNS = 15
RECENT_EVENTS = 10
EVENTS = 200

SECTIONS = ("runs", "models", "endpoints", "events", "static")


def asset(path: str) -> tuple[str, bytes] | None:
    """The content type and bytes of a static file of the dashboard (its one script)."""
    return (live.TYPE, live.SCRIPT.encode()) if path == live.PATH else None


def is_page(path: str) -> bool:
    """Whether ``path`` (without its query) is the dashboard's, not the API's."""
    return path in ("", "/") or path.split("/")[1] in SECTIONS


def render(
    served: Sequence[tuple[str, Path]], path: str, query: dict[str, list[str]]
) -> tuple[int, str]:
    """The status and page for ``path``; ``served`` is each served pipeline's (name, root)."""
    names = [name for name, _ in served]
    try:
        with ExitStack() as stack:

            def open_project(root: Path) -> Project:
                project = Project(root)
                stack.callback(lambda: project.state.close())
                return project

            return HTTPStatus.OK, _page(served, names, open_project, path.rstrip("/") or "/", query)
    except NotFoundError as exc:
        return HTTPStatus.NOT_FOUND, pages.error_page(names, "Not found", exc.message, exc.hint)
    except MlcicdError as exc:
        return HTTPStatus.BAD_REQUEST, pages.error_page(names, "Bad request", exc.message, exc.hint)
    except ValueError as exc:
        return HTTPStatus.BAD_REQUEST, pages.error_page(names, "Bad request", str(exc))


def _page(
    served: Sequence[tuple[str, Path]],
    names: list[str],
    open_project: Callable[[Path], Project],
    path: str,
    query: dict[str, list[str]],
) -> str:
    if path == "/":
        overview = []
        for name, root in served:
            project = open_project(root)
            overview.append(
                data.jsonable(
                    {
                        "pipeline": name,
                        "root": root,
                        "runs": data.runs(project.state, RECENT_RUNS),
                        "history": data.history(project),
                        "endpoints": data.endpoints(project),
                        "events": data.recent_events(project.state, RECENT_EVENTS),
                    }
                )
            )
        return pages.overview(overview)
    if path == "/models":
        models = [
            (name, data.jsonable(data.models(open_project(root).state))) for name, root in served
        ]
        return pages.models_page(
            names, models, number=data.page_number(query.get("page", [None])[0])
        )
    if path == "/endpoints":
        endpoints = [
            (name, data.jsonable(data.endpoints(open_project(root)))) for name, root in served
        ]
        return pages.endpoints_page(names, endpoints)
    if path == "/events":
        events = [
            (name, data.jsonable(data.recent_events(open_project(root).state, EVENTS)))
            for name, root in served
        ]
        return pages.events_page(names, events)
    name, root = _pick(served, query)
    if m := re.fullmatch(r"/runs/(\d+)", path):
        state = open_project(root).state
        run_id = int(m.group(1))
        detail = data.jsonable(data.run(state, run_id))
        return pages.run_page(
            name, names, detail, data.run_logs(state, run_id, tail=pages.LOG_LINES)
        )
    if m := re.fullmatch(r"/models/([^/]+)/(\d+)", path):
        found = data.model(open_project(root), unquote(m.group(1)), int(m.group(2)))
        return pages.model_page(name, names, data.jsonable(found))
    if m := re.fullmatch(r"/endpoints/([^/]+)", path):
        window = data.history_window(query.get("window", [None])[0])
        found = data.endpoint(open_project(root), unquote(m.group(1)), history_window=window)
        return pages.endpoint_page(name, names, data.jsonable(found))
    raise NotFoundError(f"no such page: {path}", hint="the dashboard starts at /")


def _pick(served: Sequence[tuple[str, Path]], query: dict[str, list[str]]) -> tuple[str, Path]:
    wanted = query.get("pipeline", [None])[0]
    for name, root in served:
        if wanted in (None, name):
            return name, root
    raise NotFoundError(f"this service does not serve pipeline {wanted!r}")
