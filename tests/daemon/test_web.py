"""The dashboard of `mlcicd up`: its pages over real HTTP from a real service that ran a real
pipeline (manual approval), what they show, that what came from a commit or a user is
escaped, 404 pages, read-only methods, and a page that follows a run's status."""

from __future__ import annotations

import html
import http.client
import json
import re
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from mlcicd.web import pages
from mlcicd.web.data import read_log
from mlcicd.web.layout import Html, h, status, table
from tests.conftest import commit_all
from tests.daemon.conftest import ROWS, ServiceProcess, fast_project
from tests.helpers import as_json, mlcicd, set_yaml, wait_for

ENDPOINT = "iris-classifier-endpoint"
XSS = "<script>alert(1)</script>"
JSON = {"Content-Type": "application/json"}


def fetch(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, str]:
    sent = {**(JSON if body is not None else {}), **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def page(service: ServiceProcess, path: str) -> str:
    code, headers, text = fetch(service.url + path)
    assert code == 200, text
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    # No script runs but the dashboard's own file: no inline script, no other origin.
    policy = dict(p.strip().split(" ", 1) for p in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert re.findall(r"<script[^>]*>", text, flags=re.I) in (
        [],
        ['<script src="/static/live.js" defer>'],
    )
    return text


@pytest.mark.integration
def test_dashboard_follows_a_run_to_its_endpoint(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    root = fast_project(tmp_path / "iris")
    set_yaml(root, "deploy:\n", "approve: manual\n\ndeploy:\n")
    sha = commit_all(root, f"manual approval {XSS}\n\nsee <b>this</b> & that")
    service = ServiceProcess(root, tmp_path / "service.log").start()
    services.append(service)

    assert "no runs yet" in page(service, "/")

    # ``by`` is who holds the token and says so (X-Mlcicd-User), never what a body claims.
    code, answer = service.post(
        "/api/runs", json.dumps({"by": "mallory"}).encode(), {**JSON, "X-Mlcicd-User": "ada"}
    )
    assert code == 202, answer
    run_id = answer["run"]["id"]
    shown = wait_for(
        "the run to wait for approval",
        lambda: (
            (s := service.get(f"/api/runs/{run_id}"))["run"]["status"] == "WaitingForApproval" and s
        ),
    )

    # The overview: the run, its status, commit and who started it; escaped.
    overview = page(service, "/")
    assert f'href="/runs/{run_id}"' in overview and "WaitingForApproval" in overview
    assert sha[:12] in overview and "cli by ada" in overview and "mallory" not in overview
    assert html.escape(f"manual approval {XSS}") in overview
    assert 'http-equiv="refresh"' in overview

    # The run page: stages, the gate's metrics and verdict, the approval asked for, log tails.
    text = page(service, f"/runs/{run_id}")
    assert f"Run {run_id}" in text and sha in text
    for stage in ("source", "build", "train", "gate", "approve"):
        assert f"<td>{stage}</td>" in text
    assert "st-WaitingForApproval" in text and "st-passed" in text
    accuracy = shown["stages"][3]["outputs"]["metrics"]["accuracy"]
    assert f"<td>accuracy</td><td>{accuracy:g}</td>" in text
    assert html.escape(XSS) in text and "see &lt;b&gt;this&lt;/b&gt; &amp; that" in text
    assert f"mlcicd approve {run_id}" in text and 'http-equiv="refresh"' in text
    tails = service.get(f"/api/runs/{run_id}/logs?tail=5")
    assert tails["train"] and len(tails["train"].splitlines()) <= 5
    assert html.escape(tails["train"].splitlines()[-1]) in text

    # A page on any site POSTs a form to approve it (the browser sends no token, and cannot send
    # JSON without asking first): refused, and the run still waits. Even with the token, a form's
    # content type is refused.
    approve = f"{service.url}/api/runs/{run_id}/approve"
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    code, _, text = fetch(approve, "POST", b"comment=pwned", form)
    assert code == 401 and "service.token" in text, text
    code, _, text = fetch(approve, "POST", b"", form)
    assert code == 401, text
    code, _, text = fetch(approve, "POST", b"comment=pwned", {**service.auth(), **form})
    assert code == 415 and "application/json" in text, text
    shown = service.get(f"/api/runs/{run_id}")
    assert (
        shown["run"]["status"] == "WaitingForApproval" and shown["approval"]["status"] == "Pending"
    )

    # Approved through the API: the same page now shows the run finished and who decided why.
    code, answer = service.post(
        f"/api/runs/{run_id}/approve",
        json.dumps({"by": "mallory", "comment": "ship <it>"}).encode(),
        {**JSON, "X-Mlcicd-User": "carol"},
    )
    assert code == 200, answer
    wait_for(
        "the run to finish",
        lambda: service.get(f"/api/runs/{run_id}")["run"]["status"] == "Succeeded",
    )
    text = page(service, f"/runs/{run_id}")
    assert "st-Succeeded" in text and "st-Approved" in text and "<td>deploy</td>" in text
    assert "carol" in text and "ship &lt;it&gt;" in text and "mallory" not in text
    assert service.get(f"/api/runs/{run_id}")["approval"]["decided_by"] == "carol"
    assert 'http-equiv="refresh"' not in text  # finished: nothing left to follow
    assert f'href="/endpoints/{ENDPOINT}"' in text

    # Models: the version, its metrics and lineage, commit → run → model → endpoint config.
    package = service.get("/api/models")[0]
    arn = f"{package['group_name']}/{package['version']}"
    assert f'href="/models/{arn}"' in page(service, "/models")
    text = page(service, f"/models/{arn}")
    assert f"Model {arn}" in text and sha in text and f'href="/runs/{run_id}"' in text
    config = service.get(f"/api/models/{arn}")["lineage"]["endpoint_configs"][0]["name"]
    assert config in text and f'href="/endpoints/{ENDPOINT}"' in text
    assert html.escape(XSS) in text and XSS not in text

    # The endpoint: live status, URL, variants, history, and the metrics `endpoints metrics` reads.
    invoked = mlcicd(root, "invoke", ENDPOINT, "--body", json.dumps(ROWS))
    assert invoked.exit_code == 0, invoked.output
    wait_for(
        "the invocation to be counted",
        lambda: (
            service.get(f"/api/endpoints/{ENDPOINT}")["metrics"]["variants"]
            .get("AllTraffic", {})
            .get("Invocations")
        ),
    )
    cli_metrics = as_json(mlcicd(root, "endpoints", "metrics", ENDPOINT, "--json"))
    endpoint = service.get(f"/api/endpoints/{ENDPOINT}")
    assert endpoint["endpoint"]["status"] == "InService"
    assert endpoint["metrics"]["variants"] == cli_metrics["variants"]
    text = page(service, f"/endpoints/{ENDPOINT}")
    assert "st-InService" in text and endpoint["endpoint"]["url"] in text and config in text
    assert "<td>AllTraffic</td>" in text and "<td>deploy</td>" in text
    invocations = cli_metrics["variants"]["AllTraffic"]["Invocations"]
    assert re.search(rf"<td>AllTraffic</td><td>{invocations}</td>", text)
    assert ENDPOINT in page(service, "/endpoints")
    events = page(service, "/events")
    assert "<td>registered</td>" in events and "<td>deployed</td>" in events

    # Unknown things are 404 pages; the API's unknown paths stay JSON.
    for path, says in (
        ("/runs/99", "run 99 does not exist"),
        (f"/models/{package['group_name']}/99", "99"),
        ("/endpoints/no-such-endpoint", "no-such-endpoint"),
        ("/runs/nope", "no such page"),
        (f"/runs/{run_id}?pipeline=other", "other"),
    ):
        code, headers, text = fetch(service.url + path)
        assert code == 404 and headers["Content-Type"] == "text/html; charset=utf-8", (path, code)
        assert says in text and "Not found" in text
    code, headers, text = fetch(service.url + "/api/nope", headers=service.auth())
    assert code == 404 and headers["Content-Type"] == "application/json"

    # Read-only: HEAD answers like GET without a body; other methods are 405 on pages.
    code, headers, text = fetch(service.url + f"/runs/{run_id}", "HEAD")
    assert code == 200 and text == "" and int(headers["Content-Length"]) > 0
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    for method in ("POST", "PUT", "DELETE"):
        code, headers, _ = fetch(service.url + f"/runs/{run_id}", method, b"{}")
        assert code == 405 and headers["Allow"] == "GET, HEAD", method
    code, _, _ = fetch(service.url + "/", "POST", b"{}")
    assert code == 405
    keep_alive = http.client.HTTPConnection(
        *service.url.removeprefix("http://").split(":"), timeout=30
    )
    for method, path in (
        ("HEAD", "/"),
        ("GET", f"/runs/{run_id}"),
        ("HEAD", "/api/runs"),
        ("GET", "/api/runs"),
    ):
        keep_alive.request(method, path, headers=service.auth())
        response = keep_alive.getresponse()
        body = response.read()
        assert response.status == 200 and bool(body) == (method == "GET"), (method, path)
    keep_alive.close()
    assert (
        service.get("/health")["status"] == "ok"
    )  # the connection-closing 405s left the server serving


def test_values_are_escaped_and_markup_is_kept() -> None:
    assert h(XSS) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert h("\"quoted\" & 'single'") == "&quot;quoted&quot; &amp; &#x27;single&#x27;"
    assert h(Html("<b>ours</b>")) == "<b>ours</b>" and "muted" in h(None)
    cells = table(["a", "b"], [(XSS, Html("<i>kept</i>"))])
    assert "<td>&lt;script&gt;" in cells and "<td><i>kept</i></td>" in cells
    assert (
        status('Failed"><script>')
        == '<span class="st st-Failedscript">Failed&quot;&gt;&lt;script&gt;</span>'
    )


def test_the_run_page_shows_the_data_check_by_column() -> None:
    run = {"id": 3, "pipeline": "p", "status": "Failed", "message": None, "trigger": {}}
    check = {
        "status": "CompletedWithViolations",
        "mode": "fail",
        "model": "p/1",
        "channel": "training",
        "rows": 120,
        "violations": [
            {
                "feature_name": "petal_width",
                "constraint_check_type": "data_type_check",
                "description": "only 0.0% of the values are Fractional",
            }
        ],
    }
    stages = [{"stage": "data_check", "status": "Failed", "message": "x", "outputs": check}]
    page = pages.run_page("p", ["p"], {"run": run, "stages": stages}, {})
    assert "<h2>Data check</h2>" in page
    assert "<td>petal_width</td><td>data_type_check</td>" in page and "p/1" in page


def test_a_log_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "stage.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert read_log(str(log), 3) == "line 99997\nline 99998\nline 99999\n"
    assert read_log(str(log), 0) == "" and read_log(None, 3) == ""
    assert read_log(str(tmp_path / "missing.log"), 3) == ""
    assert len(read_log(str(log), None).splitlines()) == 100_000


def test_every_page_escapes_what_it_is_given() -> None:
    """Hostile text in every field a user, a repository, a log or a model can set."""
    bad = '<img src=x onerror="alert(1)">'
    run = {
        "id": 1,
        "pipeline": bad,
        "status": "Failed",
        "commit_sha": bad,
        "branch": bad,
        "author": bad,
        "message": bad,
        "trigger": {"kind": bad, "by": bad},
        "ref": bad,
        "started_at": 0.0,
        "ended_at": 1.0,
        "elapsed": 1.0,
        "failed_stage": bad,
        "failure_reason": bad,
        "retry_of": None,
        "dirty": True,
    }
    stages = [
        {
            "stage": bad,
            "status": bad,
            "started_at": 0.0,
            "elapsed": 1.0,
            "message": bad,
            "log_path": bad,
            "outputs": {"group": bad, "version": bad, "metrics": {bad: 1.0}},
        },
        {"stage": "gate", "status": "Failed", "message": bad, "log_path": None, "outputs": {}},
        {
            "stage": "data_check",
            "status": "Failed",
            "message": bad,
            "log_path": None,
            "outputs": {
                "status": bad,
                "mode": bad,
                "model": bad,
                "channel": bad,
                "reason": bad,
                "violations": [
                    {"feature_name": bad, "constraint_check_type": bad, "description": bad}
                ],
            },
        },
    ]
    approval = {
        "run_id": 1,
        "model_group": bad,
        "model_version": 1,
        "status": "Pending",
        "decided_by": bad,
        "comment": bad,
        "summary": {"metrics": {bad: 1}, "production": {"model": bad, "metrics": {}}},
    }
    model = {
        "group_name": bad,
        "version": 2,
        "arn": bad,
        "status": bad,
        "status_reason": bad,
        "metrics": {bad: 1},
        "commit_sha": bad,
        "run_id": 1,
        "model_uri": bad,
        "model_sha256": bad,
    }
    lineage = {
        "commit": {"commit": bad, "message": bad, "author": bad},
        "build": {"digest": bad},
        "training_job": {"name": bad, "status": bad, "hyperparameters": {bad: bad}},
        "endpoint_configs": [{"name": bad, "endpoint": bad, "run_id": 1}],
    }
    endpoint = {
        "name": bad,
        "status": bad,
        "url": bad,
        "backend": bad,
        "model_group": bad,
        "model_version": 1,
        "config_name": bad,
        "failure_reason": bad,
    }
    live = {
        "variants": [{"name": bad, "weight": 1.0, "model_sha256": bad}],
        "last_update_failure": bad,
        "traffic": {"percent": 10, "config_name": bad, "strategy": bad},
        "last_rollback": {bad: bad},
    }
    metrics = {"window_seconds": 300, "variants": {bad: {"Invocations": 1}}, "counters": {bad: 1}}
    history = [
        {
            "at": 0.0,
            "reason": bad,
            "config_name": bad,
            "model_group": bad,
            "model_version": 1,
            "run_id": 1,
            "detail": bad,
        }
    ]
    configs = [
        {"name": bad, "model_group": bad, "model_version": 1, "run_id": 1, "spec": {bad: bad}}
    ]
    event = {"id": 1, "at": 0.0, "kind": bad, "subject": bad, "data": {bad: bad}}
    baseline = {
        "statistics_uri": f"file:///{bad}",
        "statistics_sha256": bad,
        "constraints_uri": bad,
        "constraints_sha256": bad,
        "dataset": {
            "channel": bad,
            "label": bad,
            "features": [bad],
            "files": [bad],
            "item_count": 1,
            "rows_read": 1,
        },
    }
    monitoring = {
        "schedule": bad,
        "executions": [
            {
                "id": 1,
                "window_start": 0.0,
                "window_end": 1.0,
                "status": bad,
                "verdict": bad,
                "records": 1,
                "reason": bad,
                "variants": [
                    {
                        "model": f"{bad}/1",
                        "violations_uri": f"https://{bad}",
                        "drift": {bad: 0.3},
                        "violations": [{"feature_name": bad}],
                    },
                    {"model": bad, "violations_uri": f"javascript:{bad}"},
                ],
            },
            {
                "id": 2,
                "window_start": 1.0,
                "window_end": 2.0,
                "status": "Skipped",
                "verdict": bad,
                "records": 0,
                "reason": bad,
                "variants": [],
            },
        ],
    }
    rendered = [
        pages.overview(
            [
                {
                    "pipeline": bad,
                    "root": bad,
                    "runs": [run],
                    "endpoints": [endpoint],
                    "events": [event],
                    "history": {
                        "runs": [
                            {
                                "id": 1,
                                "status": bad,
                                "elapsed": 1.0,
                                "stages": [{"stage": bad, "status": bad, "elapsed": 1.0}],
                            }
                        ],
                        "models": [{**model, "created_at": 0.0}],
                        "thresholds": [{"metric": bad, "op": ">=", "value": 0.5}],
                    },
                }
            ]
        ),
        pages.run_page(
            bad,
            [bad, "other"],
            {"run": run, "stages": stages, "approval": approval},
            {bad: f"</pre>{bad}\n"},
        ),
        pages.models_page([bad], [(bad, [model])]),
        pages.model_page(bad, [bad], {"model": model, "lineage": lineage}),
        pages.model_page(bad, [bad], {"model": model, "lineage": lineage, "baseline": baseline}),
        pages.model_page(
            bad,
            [bad],
            {
                "model": model,
                "lineage": lineage,
                "production": {**model, "arn": bad},
                "importance": {bad: 0.5},
                "production_importance": {bad: 0.4},
            },
        ),
        pages.endpoints_page([bad], [(bad, [endpoint])]),
        pages.endpoint_page(
            bad,
            [bad],
            {
                "endpoint": endpoint,
                "live": live,
                "metrics": metrics,
                "history": history,
                "configs": configs,
            },
        ),
        pages.endpoint_page(
            bad,
            [bad],
            {
                "endpoint": endpoint,
                "live": live,
                "metrics": metrics,
                "history": history,
                "configs": configs,
                "monitoring": monitoring,
                "metric_history": {
                    "window": "1h",
                    "since": 0.0,
                    "until": 3600.0,
                    "minutes": [
                        {"minute": 60, "variant": bad, "invocations": 1, "share": 1.0},
                        {"minute": 60, "variant": "B", "invocations": 1, "shift_percent": 5},
                    ],
                },
            },
        ),
        pages.endpoint_page(
            bad,
            [bad],
            {
                "endpoint": endpoint,
                "live": {},
                "metrics": None,
                "history": [],
                "configs": [],
                "monitoring": {"config_error": bad, "executions": []},
            },
        ),
        pages.events_page([bad], [(bad, [event])]),
        pages.error_page([bad], "Not found", bad, bad),
    ]
    for text in rendered:
        assert "<img" not in text
        assert html.escape(bad) in text or "%3Cimg" in text
    # A report's location is a link only when a browser can follow it (file://, http(s)://).
    assert not any('href="javascript:' in text for text in rendered)
    assert sum('href="https://' in text for text in rendered) == 1
    assert any("mlcicd.yaml does not load" in text for text in rendered)
