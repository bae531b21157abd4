"""The dashboard's pages, rendered from what the JSON API answers (``data.jsonable`` of
:mod:`mlcicd.web.data`): plain dicts and lists in, a whole HTML page out.

Every value from a run, a repository, a log, a model or an endpoint goes through
:mod:`mlcicd.web.layout`'s escaping; only markup built here is :class:`Html`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlcicd.endpoints.acceptance import failed_test_tail, staging_facts
from mlcicd.endpoints.base import metric_rows, scaling_lines
from mlcicd.web import charts
from mlcicd.web.layout import (
    Html,
    compact,
    duration,
    facts,
    h,
    href,
    join,
    link,
    metrics_text,
    mono,
    page,
    part,
    pre,
    short,
    status,
    table,
    uri_link,
    when,
)

ACTIVE = ("Queued", "Running", "WaitingForApproval")
REFRESH_ACTIVE = 3  # seconds, while a run is queued, running or waiting for a decision
REFRESH = 10
LOG_LINES = 40


def _q(pipeline: str, pipelines: Sequence[str]) -> str | None:
    """The ``pipeline`` query value of a link: only when the service serves several."""
    return pipeline if len(pipelines) > 1 else None


def run_link(pipeline: str, pipelines: Sequence[str], run_id: Any, text: Any = None) -> Html:
    return link(
        href(f"/runs/{part(run_id)}", pipeline=_q(pipeline, pipelines)), text or f"run {run_id}"
    )


def model_link(pipeline: str, pipelines: Sequence[str], group: Any, version: Any) -> Html:
    if group is None or version is None:
        return h(None)
    url = href(f"/models/{part(group)}/{part(version)}", pipeline=_q(pipeline, pipelines))
    return link(url, f"{group}/{version}")


def endpoint_link(pipeline: str, pipelines: Sequence[str], name: Any) -> Html:
    if not name:
        return h(None)
    return link(href(f"/endpoints/{part(name)}", pipeline=_q(pipeline, pipelines)), name)


def subject(message: Any) -> str:
    return str(message).splitlines()[0] if message else ""


def trigger_text(trigger: Any) -> str | None:
    """Who or what started a run: ``cli by alice``, ``webhook``, ``retry of run 3``…"""
    if not isinstance(trigger, dict) or not trigger.get("kind"):
        return None
    kind = str(trigger["kind"])
    if kind == "retry" and trigger.get("of") is not None:
        return f"retry of run {trigger['of']}"
    if kind == "rollback" and trigger.get("to"):
        return f"rollback to {trigger['to']}" + (
            f" by {trigger['by']}" if trigger.get("by") else ""
        )
    return f"{kind} by {trigger['by']}" if trigger.get("by") else kind


def _runs_table(
    pipeline: str,
    pipelines: Sequence[str],
    runs: list[dict[str, Any]],
    stages: dict[Any, list[dict[str, Any]]] | None = None,
) -> Html:
    """The runs, each with its stages as a strip of status colours when ``stages`` (by run
    id) has them."""
    stages = stages or {}
    rows = [
        (
            run_link(pipeline, pipelines, r["id"]),
            status(r["status"]),
            charts.strip(
                f"run {r['id']}",
                [(s["stage"], s["status"], s.get("elapsed")) for s in stages.get(r["id"], [])],
            ),
            mono(short(r.get("commit_sha"))),
            subject(r.get("message")),
            trigger_text(r.get("trigger")),
            when(r.get("started_at")),
            duration(r.get("elapsed")),
            r.get("failure_reason") and f"{r.get('failed_stage') or ''}: {r['failure_reason']}",
        )
        for r in runs
    ]
    return table(
        [
            "run",
            "status",
            "stages",
            "commit",
            "message",
            "trigger",
            "started",
            "duration",
            "failure",
        ],
        rows,
        empty="no runs yet: push a commit, or `mlcicd run`",
    )


def _endpoints_table(
    pipeline: str, pipelines: Sequence[str], endpoints: list[dict[str, Any]]
) -> Html:
    rows = [
        (
            endpoint_link(pipeline, pipelines, e["name"]),
            status(e["status"]),
            e.get("url"),
            e.get("backend"),
            model_link(pipeline, pipelines, e.get("model_group"), e.get("model_version")),
            e.get("config_name"),
            when(e.get("updated_at")),
        )
        for e in endpoints
    ]
    return table(
        ["endpoint", "status", "url", "backend", "model", "config", "updated"],
        rows,
        empty="no endpoints yet",
    )


def _events_table(pipeline: str, pipelines: Sequence[str], events: list[dict[str, Any]]) -> Html:
    rows = [
        (e["id"], when(e["at"]), e["kind"], e["subject"], mono(compact(e.get("data") or {})))
        for e in events
    ]
    return table(["#", "when", "kind", "subject", "data"], rows, empty="no events yet")


# -- pages ------------------------------------------------------------------------------------


def overview(pipelines: Sequence[dict[str, Any]]) -> str:
    """``/``: per pipeline, its newest runs, its endpoints and its latest events."""
    names = [p["pipeline"] for p in pipelines]
    sections = []
    for p in pipelines:
        name = p["pipeline"]
        sections.append(
            f'<h2>{h(name)} <span class="muted">{h(p["root"])}</span></h2>'
            f"{_runs_table(name, names, p['runs'], _stages_by_run(p))}"
            f"{_history(name, names, p.get('history') or {})}"
            f"<h2>{h(name)}: endpoints</h2>{_endpoints_table(name, names, p['endpoints'])}"
            f"<h2>{h(name)}: latest events</h2>{_events_table(name, names, p['events'])}"
        )
    active = any(r["status"] in ACTIVE for p in pipelines for r in p["runs"])
    return page(
        "Pipelines",
        Html("".join(sections)),
        pipelines=names,
        refresh=REFRESH_ACTIVE if active else REFRESH,
    )


def _stages_by_run(overview: dict[str, Any]) -> dict[Any, list[dict[str, Any]]]:
    return {r["id"]: r["stages"] for r in (overview.get("history") or {}).get("runs") or []}


def _history(pipeline: str, pipelines: Sequence[str], history: dict[str, Any]) -> Html:
    """The pipeline's last runs as stacked stage durations (which stage grew?), and each gate
    metric of every model version over time, against its threshold."""
    runs = list(reversed(history.get("runs") or []))
    if not runs:
        return Html("")
    colours: dict[str, str] = {}
    for r in runs:
        for s in r["stages"]:
            colours.setdefault(s["stage"], f"s{len(colours) % charts.PALETTE}")
    columns = [
        charts.Column(
            label=f"#{r['id']}",
            segments=[
                charts.Segment(s["stage"], float(s["elapsed"]), colours[s["stage"]])
                for s in r["stages"]
                if isinstance(s.get("elapsed"), int | float)
            ],
            status=r["status"],
            url=href(f"/runs/{part(r['id'])}", pipeline=_q(pipeline, pipelines)),
        )
        for r in runs
    ]
    parts = [
        Html(f"<h2>{h(pipeline)}: history</h2>"),
        charts.stacked_bars(f"Run durations by stage (the last {len(runs)})", columns),
    ]
    models = sorted(history.get("models") or [], key=lambda m: m["created_at"])
    for threshold in history.get("thresholds") or []:
        metric = threshold["metric"]
        scored = [
            m for m in models if isinstance((m.get("metrics") or {}).get(metric), int | float)
        ]
        if not scored:
            continue
        series = charts.Series(
            metric,
            [(m["created_at"], float(m["metrics"][metric])) for m in scored],
            bad={i for i, m in enumerate(scored) if m["status"] == "Rejected"},
            labels=[
                f"{m['arn']}: {metric} {m['metrics'][metric]:g} ({m['status']})" for m in scored
            ],
        )
        parts.append(
            charts.line_chart(
                f"Gate metric {metric} of each model version (gate: {metric} "
                f"{threshold['op']} {threshold['value']:g}; rejected versions ringed)",
                [series],
                threshold=float(threshold["value"]),
                threshold_label=f"gate {metric} {threshold['op']}",
                zero=False,
            )
        )
    return join(parts)


def run_page(
    pipeline: str, pipelines: Sequence[str], detail: dict[str, Any], logs: dict[str, str]
) -> str:
    """``/runs/{id}``: the run, its stages, the gate, the approval, each stage's log tail."""
    run, stages, approval = detail["run"], detail["stages"], detail.get("approval")
    by_name = {s["stage"]: s for s in stages}
    model = next(
        (
            (s["outputs"]["group"], s["outputs"]["version"])
            for s in stages
            if isinstance(s.get("outputs"), dict) and {"group", "version"} <= s["outputs"].keys()
        ),
        (approval["model_group"], approval["model_version"]) if approval else (None, None),
    )
    deployed = (by_name.get("deploy") or {}).get("outputs") or {}
    # Stages of one log group write one log (train, gate and register: the training Lambda's).
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in stages:
        groups.setdefault(s.get("log_path") or f"stage:{s['stage']}", []).append(s)
    anchors = {s["stage"]: f"log-{part(g[0]['stage'])}" for g in groups.values() for s in g}
    body = [
        facts(
            [
                ("status", status(run["status"])),
                ("pipeline", run["pipeline"]),
                ("commit", mono(run.get("commit_sha")) if run.get("commit_sha") else None),
                ("branch", run.get("branch")),
                ("author", run.get("author")),
                ("message", pre(run["message"]) if run.get("message") else None),
                ("trigger", trigger_text(run.get("trigger"))),
                ("ref", run.get("ref")),
                ("started", when(run.get("started_at"))),
                ("ended", when(run.get("ended_at"))),
                ("duration", duration(run.get("elapsed"))),
                (
                    "retry of",
                    run_link(pipeline, pipelines, run["retry_of"]) if run.get("retry_of") else None,
                ),
                ("working tree", "dirty" if run.get("dirty") else None),
                ("forced", "yes" if run.get("forced") else None),
                ("failed stage", run.get("failed_stage")),
                ("failure", run.get("failure_reason")),
                ("model", model_link(pipeline, pipelines, *model) if model[0] else None),
                (
                    "endpoint",
                    endpoint_link(pipeline, pipelines, deployed.get("endpoint"))
                    if deployed.get("endpoint")
                    else None,
                ),
            ]
        ),
        Html("<h2>Stages</h2>"),
        charts.timeline(
            f"Run {run['id']}: its stages over time",
            [
                charts.Span(
                    s["stage"],
                    float(s["started_at"]),
                    float(s.get("elapsed") or 0.0),
                    s["status"],
                    url=f"#{anchors[s['stage']]}",
                    note=s.get("message") or "",
                )
                for s in stages
                if isinstance(s.get("started_at"), int | float)
            ],
            empty="no stage has started yet",
        ),
        table(
            ["stage", "status", "started", "duration", "message"],
            [
                (
                    s["stage"],
                    status(s["status"]),
                    when(s.get("started_at")),
                    duration(s.get("elapsed")),
                    s.get("message"),
                )
                for s in stages
            ],
            empty="no stages yet (the run is queued)",
        ),
        _data_check(by_name),
        _gate(by_name),
        _staging(by_name),
        _approval(pipeline, pipelines, approval),
        Html("<h2>Logs</h2>"),
    ]
    for together in groups.values():
        text = logs.get(together[0]["stage"], "")
        opened = (
            " open"
            if any(s["status"] in ("Running", "Failed", "WaitingForApproval") for s in together)
            else ""
        )
        names = join([Html(f"{h(s['stage'])} {status(s['status'])}") for s in together], ", ")
        body.append(
            Html(
                f'<details id="{anchors[together[0]["stage"]]}"{opened}><summary>{names} '
                f'<span class="muted">last {LOG_LINES} lines'
                "</span></summary>"
                f"{pre(text) if text else Html('<p class=muted>no log</p>')}</details>"
            )
        )
    refresh = REFRESH_ACTIVE if run["status"] in ACTIVE else None
    return page(f"Run {run['id']}", join(body), pipelines=pipelines, refresh=refresh)


def _data_check(by_name: dict[str, dict[str, Any]]) -> Html:
    """The training data against production's baseline: each violation, by column."""
    outputs = (by_name.get("data_check") or {}).get("outputs") or {}
    if not outputs:
        return Html("")
    return join(
        [
            Html("<h2>Data check</h2>"),
            facts(
                [
                    ("result", status(outputs.get("status") or "-")),
                    ("mode", outputs.get("mode")),
                    ("against", outputs.get("model")),
                    ("channel", outputs.get("channel")),
                    ("rows", outputs.get("rows")),
                    ("why skipped", outputs.get("reason")),
                ]
            ),
            table(
                ["column", "check", "description"],
                [
                    (v["feature_name"], v["constraint_check_type"], v["description"])
                    for v in outputs.get("violations") or []
                ],
                empty="no violations",
            ),
        ]
    )


def _gate(by_name: dict[str, dict[str, Any]]) -> Html:
    gate = by_name.get("gate")
    if gate is None:
        return Html("")
    outputs = gate.get("outputs") or {}
    metrics = (
        outputs.get("metrics")
        or ((by_name.get("train") or {}).get("outputs") or {}).get("metrics")
        or {}
    )
    verdict = {"Succeeded": "passed", "Cached": "passed", "Failed": "failed"}.get(
        gate["status"], gate["status"]
    )
    challenger = outputs.get("challenger") or {}
    return join(
        [
            Html("<h2>Quality gate</h2>"),
            facts(
                [
                    ("verdict", status(verdict)),
                    ("why", gate.get("message")),
                    (
                        "challenger",
                        challenger.get("summary") if isinstance(challenger, dict) else None,
                    ),
                ]
            ),
            table(["metric", "value"], sorted(metrics.items()), empty="no metrics reported"),
        ]
    )


def _staging(by_name: dict[str, dict[str, Any]]) -> Html:
    """The staging stage's endpoint tests and load figures (and the tests' tail if they
    failed): what a person deciding on the model, or reading why it stopped, needs."""
    staged = by_name.get("staging")
    if staged is None:
        return Html("")
    outputs = staged.get("outputs") or {}
    tail = failed_test_tail(outputs)
    return join(
        [
            Html("<h2>Staging</h2>"),
            facts(
                [("status", status(staged["status"])), ("why", staged.get("message"))]
                + [(what, text) for what, text in staging_facts(outputs)]
            ),
            pre("\n".join(tail)) if tail else Html(""),
        ]
    )


def _approval(pipeline: str, pipelines: Sequence[str], approval: dict[str, Any] | None) -> Html:
    if not approval:
        return Html("")
    production = (approval.get("summary") or {}).get("production") or {}
    pending = approval["status"] == "Pending"
    return join(
        [
            Html("<h2>Approval</h2>"),
            facts(
                [
                    ("status", status(approval["status"])),
                    (
                        "model",
                        model_link(
                            pipeline, pipelines, approval["model_group"], approval["model_version"]
                        ),
                    ),
                    ("requested", when(approval.get("requested_at"))),
                    ("expires", when(approval.get("expires_at")) if pending else None),
                    ("decided by", approval.get("decided_by")),
                    ("why", approval.get("comment")),
                    ("decided", when(approval.get("decided_at"))),
                    ("model metrics", metrics_text((approval.get("summary") or {}).get("metrics"))),
                    (
                        "production",
                        f"{production.get('model')} {metrics_text(production.get('metrics')) or ''}"
                        if production.get("model")
                        else None,
                    ),
                    (
                        "decide",
                        mono(
                            f"mlcicd approve {approval['run_id']} -m WHY  /  mlcicd reject "
                            f"{approval['run_id']} -m WHY"
                        )
                        if pending
                        else None,
                    ),
                ]
            ),
        ]
    )


MODELS_PER_PAGE = 100


def models_page(
    pipelines: Sequence[str],
    per_pipeline: Sequence[tuple[str, list[dict[str, Any]]]],
    *,
    number: int = 1,
) -> str:
    """``/models``: the model packages, newest version first, :data:`MODELS_PER_PAGE` per
    pipeline on a page (a registry of a thousand versions stays a page a phone can load)."""
    sections = []
    for pipeline, all_packages in per_pipeline:
        start = (number - 1) * MODELS_PER_PAGE
        packages = all_packages[start : start + MODELS_PER_PAGE]
        rows = [
            (
                model_link(pipeline, pipelines, p["group_name"], p["version"]),
                status(p["status"]),
                p.get("status_reason"),
                metrics_text(p.get("metrics")),
                mono(short(p.get("commit_sha"))),
                run_link(pipeline, pipelines, p["run_id"]) if p.get("run_id") is not None else None,
                when(p.get("created_at")),
            )
            for p in packages
        ]
        sections.append(
            join(
                [
                    Html(f"<h2>{h(pipeline)}</h2>"),
                    table(
                        ["model", "status", "why", "metrics", "commit", "run", "created"],
                        rows,
                        empty="no models yet" if number == 1 else "no models on this page",
                    ),
                    _pages_nav(
                        pipeline, pipelines, number, start, len(packages), len(all_packages)
                    ),
                ]
            )
        )
    return page("Models", join(sections), pipelines=pipelines, refresh=REFRESH)


def _pages_nav(
    pipeline: str, pipelines: Sequence[str], number: int, start: int, shown: int, total: int
) -> Html:
    """Which versions a page of /models shows, and links to the newer and older ones."""
    if total <= MODELS_PER_PAGE and number == 1:
        return Html("")
    q = _q(pipeline, pipelines)
    parts = [
        h(f"versions {start + 1} to {start + shown} of {total}" if shown else f"{total} versions")
    ]
    if number > 1:
        parts.append(link(href("/models", pipeline=q, page=number - 1), "← newer"))
    if start + shown < total:
        parts.append(link(href("/models", pipeline=q, page=number + 1), "older →"))
    return Html('<p class="muted">' + " · ".join(str(p) for p in parts) + "</p>")


def model_page(pipeline: str, pipelines: Sequence[str], data: dict[str, Any]) -> str:
    """``/models/{group}/{version}``: the package, its metrics and its lineage."""
    package, lineage = data["model"], data["lineage"]
    commit, build, job = (
        lineage.get("commit") or {},
        lineage.get("build") or {},
        lineage.get("training_job") or {},
    )
    configs = lineage.get("endpoint_configs") or []
    q = _q(pipeline, pipelines)
    layers = [
        [
            charts.Node(
                "commit " + (short(commit.get("commit")) or "uncommitted"),
                subject(commit.get("message")),
            )
        ],
        [charts.Node("build", short(build.get("digest"), 19) or "-")],
        [
            charts.Node(
                job.get("name") or "training job",
                f"run {package['run_id']}" if package.get("run_id") is not None else "no run",
                href(f"/runs/{part(package['run_id'])}", pipeline=q)
                if package.get("run_id") is not None
                else None,
            )
        ],
        [charts.Node(f"model {package['arn']}", package["status"])],
        [
            charts.Node(
                c["name"], c["endpoint"], href(f"/endpoints/{part(c['endpoint'])}", pipeline=q)
            )
            for c in configs
        ],
    ]
    production = data.get("production")
    metric_names = sorted(
        {
            k
            for p in (package, production or {})
            for k, v in (p.get("metrics") or {}).items()
            if isinstance(v, int | float)
        }
    )
    compared = [(package["arn"], package.get("metrics") or {})]
    if production:
        compared.append((f"{production['arn']} (production)", production.get("metrics") or {}))
    importance = [
        (arn, values)
        for arn, values in (
            (package["arn"], data.get("importance")),
            (
                production["arn"] + " (production)" if production else "",
                data.get("production_importance"),
            ),
        )
        if values
    ]
    features = sorted(
        {f for _, values in importance for f in values},
        key=lambda f: -max(float(v.get(f) or 0.0) for _, v in importance),
    )
    body = [
        charts.graph(f"Lineage of {package['arn']}", layers),
        facts(
            [
                ("status", status(package["status"])),
                ("why", package.get("status_reason")),
                ("sha256", mono(package.get("model_sha256"))),
                ("uri", mono(package.get("model_uri"))),
                ("created", when(package.get("created_at"))),
                (
                    "production",
                    model_link(pipeline, pipelines, production["group_name"], production["version"])
                    if production
                    else None,
                ),
            ]
        ),
        Html("<h2>Metrics</h2>"),
        charts.bar_chart(
            f"Metrics of {package['arn']}" + (" beside production" if production else ""),
            metric_names,
            [(arn, [m.get(k) for k in metric_names]) for arn, m in compared],
            empty="no metrics",
        ),
        table(
            ["metric", "value"], sorted((package.get("metrics") or {}).items()), empty="no metrics"
        ),
        Html("<h2>Feature importance</h2>"),
        charts.bar_chart(
            "Mean |SHAP| per feature",
            features,
            [(arn, [v.get(f) for f in features]) for arn, v in importance],
            empty="not explained (`mlcicd explain`)",
        ),
        _baseline(package, data.get("baseline")),
        Html("<h2>Commit</h2>"),
        facts(
            [
                ("commit", mono(commit.get("commit"))),
                ("branch", commit.get("branch")),
                ("author", commit.get("author")),
                ("message", pre(commit["message"]) if commit.get("message") else None),
                ("tree", mono(commit.get("tree"))),
                ("working tree", "dirty" if commit.get("dirty") else None),
            ]
        ),
        Html("<h2>Build</h2>"),
        facts([("digest", mono(build.get("digest"))), ("environment", build.get("environment"))]),
        Html("<h2>Training job</h2>"),
        facts(
            [
                ("name", job.get("name")),
                ("status", status(job["status"]) if job.get("status") else None),
                (
                    "hyperparameters",
                    mono(compact(job["hyperparameters"])) if job.get("hyperparameters") else None,
                ),
                ("data digest", mono(job.get("data_digest"))),
                ("metrics", metrics_text(job.get("metrics"))),
                ("started", when(job.get("started_at"))),
                ("ended", when(job.get("ended_at"))),
            ]
        ),
        Html("<h2>Endpoint configs</h2>"),
        table(
            ["config", "endpoint", "run", "created"],
            [
                (
                    c["name"],
                    endpoint_link(pipeline, pipelines, c["endpoint"]),
                    run_link(pipeline, pipelines, c["run_id"])
                    if c.get("run_id") is not None
                    else None,
                    when(c.get("created_at")),
                )
                for c in configs
            ],
            empty="not deployed",
        ),
    ]
    return page(f"Model {package['arn']}", join(body), pipelines=pipelines, refresh=REFRESH)


def _baseline(package: dict[str, Any], baseline: dict[str, Any] | None) -> Html:
    """The model's data-quality baseline: its two files, what they were computed from."""
    title = Html("<h2>Data-quality baseline</h2>")
    if not baseline:
        return join(
            [
                title,
                Html(
                    f'<p class="muted">none (compute it: <code>mlcicd monitor baseline --model '
                    f"{h(package['version'])}</code>)</p>"
                ),
            ]
        )
    dataset = baseline.get("dataset") or {}
    return join(
        [
            title,
            facts(
                [
                    ("statistics.json", uri_link(baseline.get("statistics_uri"))),
                    ("its sha256", mono(baseline.get("statistics_sha256"))),
                    ("constraints.json", uri_link(baseline.get("constraints_uri"))),
                    ("its sha256", mono(baseline.get("constraints_sha256"))),
                    ("channel", dataset.get("channel")),
                    ("label", dataset.get("label")),
                    (
                        "features",
                        ", ".join(map(str, dataset["features"]))
                        if dataset.get("features")
                        else None,
                    ),
                    (
                        "rows",
                        f"{dataset.get('item_count')} of {dataset.get('rows_read')} read"
                        if dataset.get("rows_read")
                        else None,
                    ),
                    (
                        "files",
                        ", ".join(map(str, dataset["files"])) if dataset.get("files") else None,
                    ),
                    ("computed", when(baseline.get("created_at"))),
                ]
            ),
        ]
    )


def endpoints_page(
    pipelines: Sequence[str], per_pipeline: Sequence[tuple[str, list[dict[str, Any]]]]
) -> str:
    """``/endpoints``: every endpoint, live status for local ones."""
    return _per_pipeline("Endpoints", pipelines, per_pipeline, _endpoints_table)


def endpoint_page(pipeline: str, pipelines: Sequence[str], data: dict[str, Any]) -> str:
    """``/endpoints/{name}``: status, URL, config, variants and weights, metrics, history."""
    record, live, metrics = data["endpoint"], data.get("live") or {}, data.get("metrics")
    current = next((c for c in data["configs"] if c["name"] == record.get("config_name")), None)
    variants = live.get("variants") or [
        {"name": v[0], "model_sha256": v[1], "weight": v[2]}
        for v in ((current or {}).get("spec") or {}).get("variants") or []
    ]
    total = sum(float(v.get("weight") or 0) for v in variants) or 1.0
    traffic, rollback = live.get("traffic"), live.get("last_rollback")
    body = [
        facts(
            [
                ("status", status(record["status"])),
                ("backend", record.get("backend")),
                ("url", mono(record.get("url"))),
                ("pid", record.get("pid")),
                (
                    "model",
                    model_link(
                        pipeline, pipelines, record.get("model_group"), record.get("model_version")
                    ),
                ),
                ("config", record.get("config_name")),
                ("generation", live.get("generation")),
                ("failure", record.get("failure_reason")),
                ("last update failure", live.get("last_update_failure")),
                (
                    "traffic shift",
                    f"{traffic.get('percent')}% to {traffic.get('config_name')} "
                    f"({traffic.get('strategy')})"
                    if isinstance(traffic, dict)
                    else None,
                ),
                ("last rollback", compact(rollback) if rollback else None),
                *scaling_lines(live.get("autoscaling")),  # deploy.autoscaling, locally
                ("created", when(record.get("created_at"))),
                ("updated", when(record.get("updated_at"))),
                (
                    "status source",
                    None
                    if live
                    else "as last recorded (a SageMaker endpoint: `mlcicd endpoints describe`)",
                ),
            ]
        ),
        Html("<h2>Variants</h2>"),
        table(
            ["variant", "weight", "share", "model sha256"],
            [
                (
                    v.get("name"),
                    v.get("weight"),
                    f"{float(v.get('weight') or 0) / total:.0%}",
                    mono(short(v.get("model_sha256"))),
                )
                for v in variants
            ]
            or [("AllTraffic", 1, "100%", mono(short(record.get("model_sha256"))))],
        ),
        Html("<h2>Metrics</h2>"),
        _metrics(metrics),
        _metric_history(pipeline, pipelines, record["name"], data),
        _monitoring(pipeline, pipelines, data.get("monitoring") or {}),
        Html("<h2>Endpoint config</h2>"),
        facts(
            [
                (k, mono(v if isinstance(v, str) else compact(v)))
                for k, v in sorted(((current or {}).get("spec") or {}).items())
            ]
        )
        if current
        else h("not recorded"),
        Html("<h2>History</h2>"),
        table(
            ["when", "why", "config", "model", "run", "detail"],
            [
                (
                    when(c["at"]),
                    c["reason"],
                    c.get("config_name"),
                    model_link(pipeline, pipelines, c.get("model_group"), c.get("model_version")),
                    run_link(pipeline, pipelines, c["run_id"])
                    if c.get("run_id") is not None
                    else None,
                    c.get("detail"),
                )
                for c in reversed(data["history"])
            ],
            empty="no changes recorded",
        ),
        Html("<h2>Configs served</h2>"),
        table(
            ["config", "model", "run", "created"],
            [
                (
                    c["name"],
                    model_link(pipeline, pipelines, c.get("model_group"), c.get("model_version")),
                    run_link(pipeline, pipelines, c["run_id"])
                    if c.get("run_id") is not None
                    else None,
                    when(c.get("created_at")),
                )
                for c in data["configs"]
            ],
        ),
    ]
    return page(f"Endpoint {record['name']}", join(body), pipelines=pipelines, refresh=REFRESH)


def _monitoring(pipeline: str, pipelines: Sequence[str], monitoring: dict[str, Any]) -> Html:
    """The endpoint's monitoring schedule and its newest executions, each linking its reports."""
    schedule = monitoring.get("schedule")
    said = (
        f"checked every {schedule} by `mlcicd up` (monitor.schedule)"
        if schedule
        else f"mlcicd.yaml does not load: {monitoring['config_error']}"
        if monitoring.get("config_error")
        else "no monitor.schedule: `mlcicd monitor check` checks it by hand"
    )
    rows = []
    for e in monitoring.get("executions") or []:
        variants = e.get("variants") or []
        models = [
            model_link(pipeline, pipelines, *str(v.get("model")).rsplit("/", 1))
            for v in variants
            if "/" in str(v.get("model"))
        ]
        reports = [uri_link(v.get("violations_uri")) for v in variants if v.get("violations_uri")]
        rows.append(
            (
                e["id"],
                when(e["window_start"]),
                when(e["window_end"]),
                status(e["status"]),
                e.get("verdict"),
                e.get("records"),
                join(models, ", ") if models else None,
                join(reports, Html("<br>")) if reports else e.get("reason"),
            )
        )
    return join(
        [
            Html("<h2>Monitoring</h2>"),
            Html(f'<p class="muted">{h(said)}</p>'),
            _drift_chart(monitoring),
            table(
                [
                    "#",
                    "window start",
                    "window end",
                    "status",
                    "verdict",
                    "records",
                    "model",
                    "report / why",
                ],
                rows,
                empty="no monitoring executions yet",
            ),
        ]
    )


WINDOWS = ("15m", "1h", "6h", "24h", "7d")


def _metric_history(
    pipeline: str, pipelines: Sequence[str], name: str, data: dict[str, Any]
) -> Html:
    """The endpoint's per-minute metrics over the chosen window (links choose another):
    invocations/s, latencies, error rates and traffic share per variant, with its
    deployments, rollbacks and restarts marked on the same time axis."""
    history = data.get("metric_history") or {}
    minutes = history.get("minutes") or []
    since, until = float(history.get("since") or 0), float(history.get("until") or 0)
    q = _q(pipeline, pipelines)
    choose = join(
        [
            Html(f"<b>{h(w)}</b>")
            if w == history.get("window")
            else link(href(f"/endpoints/{part(name)}", pipeline=q, window=w), w)
            for w in WINDOWS
        ],
        " · ",
    )
    head = Html(
        f"<h2>Metric history</h2><p>last {choose} "
        '<span class="muted">(per minute, kept for 7 days by `mlcicd up`)</span></p>'
    )
    if not minutes:
        return join([head, Html('<p class="muted">no requests recorded in this window</p>')])
    bucket = float(history.get("bucket") or 60)
    rows: dict[str, list[dict[str, Any]]] = {}  # per variant, one row per point (summed by SQL)
    for m in minutes:
        rows.setdefault(m["variant"], []).append(m)
    variants = sorted(rows)

    def lines(*what: tuple[str, Callable[[dict[str, Any]], float | None]]) -> list[charts.Series]:
        """Per variant, a line of each (label, value of a row)."""
        return [
            charts.Series(f"{v} {label}".strip(), [(float(r["minute"]), value(r)) for r in rows[v]])
            for v in variants
            for label, value in what
        ]

    def rate(key: str) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: int(r.get(key) or 0) / r["invocations"] * 100 if r["invocations"] else None

    def field(key: str) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: r.get(key)

    marks = [
        charts.Mark(float(c["at"]), f"{c['reason']}: {c.get('config_name') or ''}", c["reason"])
        for c in data.get("history") or []
    ]
    shares = lines(("", lambda r: float(r.get("share") or 0) * 100))
    shifting = {
        float(m["minute"]): float(m["shift_percent"])
        for m in minutes
        if m.get("shift_percent") is not None
    }
    if shifting:
        shares.append(charts.Series("new config (canary/linear)", sorted(shifting.items())))
    shown = [
        ("Invocations per second", lines(("", lambda r: r["invocations"] / bucket)), "/s"),
        (
            "Model latency p50 / p99 (ms)",
            lines(("p50", field("model_p50_ms")), ("p99", field("model_p99_ms"))),
            "",
        ),
        (
            "Overhead latency p50 / p99 (ms)",
            lines(("p50", field("overhead_p50_ms")), ("p99", field("overhead_p99_ms"))),
            "",
        ),
        (
            "4XX / 5XX (% of invocations)",
            lines(("4XX", rate("errors_4xx")), ("5XX", rate("errors_5xx"))),
            "%",
        ),
        ("Traffic share (%)", shares, "%"),
    ]
    return join(
        [head]
        + [
            charts.line_chart(title, series, marks=marks, x_range=(since, until), unit=unit)
            for title, series, unit in shown
        ]
    )


def _drift_chart(monitoring: dict[str, Any]) -> Html:
    """Each feature's drift per monitoring execution, oldest first, against the threshold; a
    check that found the feature in violation is ringed."""
    executions = [
        e
        for e in reversed(monitoring.get("executions") or [])
        if any(v.get("drift") for v in e.get("variants") or [])
    ]
    if not executions:
        return Html("")
    features = sorted({f for e in executions for v in e["variants"] for f in v.get("drift") or {}})
    series = []
    for feature in features:
        points: list[tuple[float, float | None]] = []
        bad = set()
        for i, e in enumerate(executions):
            drifts = [
                float(v["drift"][feature])
                for v in e["variants"]
                if isinstance((v.get("drift") or {}).get(feature), int | float)
            ]
            points.append((float(e["window_end"]), max(drifts) if drifts else None))
            if any(
                x.get("feature_name") == feature
                for v in e["variants"]
                for x in v.get("violations") or []
            ):
                bad.add(i)
        series.append(charts.Series(feature, points, bad=bad))
    threshold = monitoring.get("drift_threshold")
    return charts.line_chart(
        "Drift per feature, each check (violations ringed)",
        series,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        threshold_label="monitor.drift_threshold",
    )


def _metrics(metrics: dict[str, Any] | None) -> Html:
    if not metrics:
        return Html(
            '<p class="muted">no metrics here (a SageMaker endpoint\'s come from CloudWatch: '
            "<code>mlcicd endpoints metrics NAME</code>)</p>"
        )
    window = metrics.get("window_seconds")
    headings, rows = metric_rows(dict(sorted((metrics.get("variants") or {}).items())))
    dropped = {k: v for k, v in (metrics.get("counters") or {}).items() if v}
    return join(
        [
            Html(
                f'<p class="muted">last {h(duration(window) if window else "all time")}'
                f" (as `mlcicd endpoints metrics`)</p>"
            ),
            table(
                headings,
                rows,
                empty="no requests yet",
            ),
            facts([(k, v) for k, v in sorted(dropped.items())]),
        ]
    )


def events_page(
    pipelines: Sequence[str], per_pipeline: Sequence[tuple[str, list[dict[str, Any]]]]
) -> str:
    """``/events``: the registry's event log, newest first."""
    return _per_pipeline("Events", pipelines, per_pipeline, _events_table)


def _per_pipeline(
    title: str,
    pipelines: Sequence[str],
    per_pipeline: Sequence[tuple[str, list[dict[str, Any]]]],
    table: Callable[[str, Sequence[str], list[dict[str, Any]]], Html],
) -> str:
    """A page of one section per pipeline: its name over ``table`` of its records."""
    sections = [
        join([Html(f"<h2>{h(pipeline)}</h2>"), table(pipeline, pipelines, records)])
        for pipeline, records in per_pipeline
    ]
    return page(title, join(sections), pipelines=pipelines, refresh=REFRESH)


def error_page(pipelines: Sequence[str], title: str, message: str, hint: str | None = None) -> str:
    """A 404 (an unknown run, model or endpoint) or a 400, as a page."""
    body = join(
        [
            Html(f"<p>{h(message)}</p>"),
            Html(f'<p class="muted">{h(hint)}</p>') if hint else Html(""),
            Html(f"<p>{link('/', 'back to the pipelines')}</p>"),
        ]
    )
    return page(title, body, pipelines=pipelines)
