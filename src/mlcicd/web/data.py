"""What `mlcicd up` shows: one function per resource, read through :mod:`mlcicd.state`.

The JSON API (:mod:`mlcicd.daemon.http`) answers with these, and the dashboard pages
(:mod:`mlcicd.web.pages`) render exactly what the API would answer (``to_jsonable`` of
them), so a page never shows something the API does not say.

Nothing here changes state: a local endpoint's live status is read from its files (what
``describe`` does), never written back; a SageMaker endpoint is shown as last recorded, so a
page never waits on AWS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlcicd.durations import format_duration, parse_duration
from mlcicd.endpoints import open_backend
from mlcicd.endpoints.base import EndpointDescription
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import ConfigError, MlcicdError, NotFoundError
from mlcicd.explain.report import load_report
from mlcicd.jsonable import to_jsonable
from mlcicd.lineage import model_lineage
from mlcicd.project import Project
from mlcicd.stages.challenger import champion
from mlcicd.state import EndpointRecord, ModelPackage, Run, State

METRICS_WINDOW = 300.0  # seconds; `mlcicd endpoints metrics`' default window (5m)
MONITORING_EXECUTIONS = 10  # the newest monitoring executions an endpoint's answer holds
TAIL_BYTES = 64 * 1024  # a log tail never reads more than this from the end of a file
HISTORY_RUNS = 30  # the runs a pipeline's history chart draws
HISTORY_WINDOW = 3600.0  # seconds of an endpoint's metric history its page charts by default
HISTORY_POINTS = 180  # at most this many points per line: longer windows are summed in buckets


def runs(state: State, limit: int = 50) -> list[Run]:
    return state.list_runs(limit=limit)


def run(state: State, run_id: int) -> dict[str, Any]:
    """A run, its stages (outputs included: the gate's metrics and verdict) and its approval."""
    return {
        "run": state.get_run(run_id),
        "stages": state.stages(run_id),
        "approval": state.get_approval(run_id),
    }


def run_logs(state: State, run_id: int, tail: int | None = None) -> dict[str, str]:
    """Each stage's log, or its last ``tail`` lines."""
    state.get_run(run_id)
    return {s.stage: read_log(s.log_path, tail) for s in state.stages(run_id)}


def read_log(path: str | None, tail: int | None) -> str:
    if not path or not Path(path).is_file():
        return ""
    if tail is None:
        return Path(path).read_text(errors="replace")
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - TAIL_BYTES))
        data = fh.read()
    lines = data.decode(errors="replace").splitlines(keepends=True)
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first one is cut
    return "".join(lines[-tail:]) if tail > 0 else ""


def history(project: Project, limit: int = HISTORY_RUNS) -> dict[str, Any]:
    """What the pipeline's history charts draw: the newest ``limit`` runs with each stage's
    status and duration, every model version's metrics and status, and the gate's
    thresholds (none while mlcicd.yaml does not load)."""
    state = project.state
    runs = [
        {
            "id": r.id,
            "status": r.status,
            "elapsed": r.elapsed,
            "started_at": r.started_at,
            "stages": [
                {"stage": s.stage, "status": s.status, "elapsed": s.elapsed}
                for s in state.stages(r.id)
            ],
        }
        for r in state.list_runs(limit=limit)
    ]
    try:
        thresholds = [
            {"metric": t.metric, "op": t.op, "value": t.value}
            for t in project.config.gate.thresholds
        ]
    except ConfigError:
        thresholds = []
    models = [
        {"arn": m.arn, "metrics": m.metrics, "status": m.status, "created_at": m.created_at}
        for m in state.list_model_packages()
    ]
    return {"runs": runs, "thresholds": thresholds, "models": models}


def models(state: State) -> list[Any]:
    return state.list_model_packages()


def model(project: Project, group: str, version: int) -> dict[str, Any]:
    """A model package, where it came from (commit → build → training job → endpoint configs),
    its data-quality baseline (None when it has none), the production model it would replace
    (None when this is it, or nothing is served), and each one's feature importance (None
    when it was not explained)."""
    state = project.state
    package = state.get_model_package(group, version)
    try:
        production = champion(project, project.config.endpoint_name)
    except ConfigError:
        production = None
    if production is not None and production.arn == package.arn:
        production = None
    return {
        "model": package,
        "lineage": model_lineage(state, group, version),
        "baseline": state.get_baseline(group, version),
        "production": production,
        "importance": _importance(project, package),
        "production_importance": _importance(project, production) if production else None,
    }


def _importance(project: Project, package: ModelPackage) -> dict[str, float] | None:
    """The mean |SHAP| per feature of the model's explanation report, if it has one."""
    try:
        report = load_report(project, package)
    except (MlcicdError, OSError, ValueError):
        return None
    importance = (report or {}).get("importance")
    return importance if isinstance(importance, dict) and importance else None


def endpoints(project: Project) -> list[EndpointRecord]:
    """Every endpoint; a local one with its live status (read, not recorded)."""
    return [_refreshed(project, record)[0] for record in project.state.list_endpoints()]


def page_number(text: str | None) -> int:
    """``?page=`` of a long list: a whole number from 1 (default 1)."""
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"page={text!r} is not a page number (a whole number from 1)")
    return int(text)


def history_window(text: str | None) -> float:
    """The seconds of ``?window=`` (``1h``, ``7d``…; default an hour), at most the week
    that is kept."""
    if text is None:
        return HISTORY_WINDOW
    seconds = parse_duration(text)
    if seconds is None or not 60 <= seconds <= 7 * 86400:
        raise ValueError(f"window={text!r} is not a duration from 1m to 7d (e.g. 15m, 1h, 24h, 7d)")
    return seconds


def _bucket(window: float) -> int:
    """The seconds each point of a ``window``'s chart sums: whole minutes, at most
    :data:`HISTORY_POINTS` points."""
    return max(1, -(-int(window) // (60 * HISTORY_POINTS))) * 60


def endpoint(
    project: Project,
    name: str,
    window: float = METRICS_WINDOW,
    history_window: float = HISTORY_WINDOW,
) -> dict[str, Any]:
    """One endpoint: its record, what its backend reports now, the configs it served, its
    variants' metrics over ``window`` seconds (the summary `mlcicd endpoints metrics` prints),
    its per-minute metrics over ``history_window`` seconds (kept by `mlcicd up`), its history
    (deploys, rollbacks, restarts, alarms) and its newest monitoring executions."""
    state = project.state
    record = state.get_endpoint(name)
    if record is None:
        raise NotFoundError(f"endpoint {name} does not exist")
    current, live = _refreshed(project, record)
    now = time.time()
    metrics = None
    if live is not None:
        try:
            metrics = open_backend(record.backend, project).metrics(name, window)
        except NotFoundError:
            metrics = None
    return {
        "endpoint": current,
        "live": live,
        "configs": state.endpoint_configs(name),
        "metrics": metrics,
        "history": state.endpoint_history(name),
        "monitoring": monitoring(project, name, MONITORING_EXECUTIONS),
        "metric_history": {
            "window": format_duration(history_window),
            "until": now,
            "since": now - history_window,
            "bucket": (bucket := _bucket(history_window)),
            "minutes": state.endpoint_metric_history(
                name, since=now - history_window, bucket=bucket
            ),
        },
    }


def monitoring(project: Project, name: str, limit: int = 50) -> dict[str, Any]:
    """The endpoint's monitoring schedule (the project's ``monitor.schedule``, for its own
    endpoint; None, with ``config_error``, while mlcicd.yaml does not load) and its executions,
    newest first."""
    executions = project.state.monitoring_executions(name, limit=limit)
    try:
        config = project.config
    except ConfigError as exc:  # being edited: the page still shows what was recorded
        return {"schedule": None, "config_error": exc.headline, "executions": executions}
    schedule = config.monitor.schedule if name == config.endpoint_name else None
    return {
        "schedule": schedule,
        "drift_threshold": config.monitor.drift_threshold,
        "executions": executions,
    }


def endpoint_history(state: State, name: str) -> list[Any]:
    return state.endpoint_history(name)


def events(state: State, after: int = 0, limit: int = 500) -> list[Any]:
    return state.events(after=after, limit=limit)


def recent_events(state: State, limit: int = 50) -> list[Any]:
    """The newest ``limit`` events, newest first."""
    return list(reversed(state.recent_events(limit)))


def _refreshed(
    project: Project, record: EndpointRecord
) -> tuple[EndpointRecord, EndpointDescription | None]:
    """A local endpoint as it is now (read, not recorded); any other as last recorded."""
    if record.backend != LocalEndpointBackend.TYPE:
        return record, None
    refreshed = refresh(
        project.state, open_backend(record.backend, project), record.name, write=False
    )
    return refreshed if refreshed is not None else (record, None)


def jsonable(value: Any) -> Any:
    """What the API sends for ``value``; the pages render this."""
    return to_jsonable(value)
