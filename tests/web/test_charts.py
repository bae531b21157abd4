"""The dashboard's SVG charts: one shape per value, labels escaped, thresholds and marks drawn,
a failed stage labelled, and the pages that draw them from what the API answers."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import pytest

from mlcicd.web import charts, data
from mlcicd.web.pages import endpoint_page, model_page, overview, run_page

XSS = "<script>alert(1)</script>"
SVG = "{http://www.w3.org/2000/svg}"


def shapes(markup: str, css: str) -> list[ElementTree.Element]:
    """The elements of the chart(s) in ``markup`` whose class list has ``css``; parsing it as
    XML also proves the SVG well-formed (an unescaped label would break it)."""
    found = []
    for svg in re.findall(r"<svg.*?</svg>", markup, flags=re.S):
        root = ElementTree.fromstring(svg)
        found += [e for e in root.iter() if css in (e.get("class") or "").split()]
    return found


def test_a_line_chart_has_a_point_per_value_a_threshold_and_marks() -> None:
    chart = charts.line_chart(
        f"accuracy {XSS}",
        [
            charts.Series(XSS, [(100.0, 0.9), (200.0, None), (300.0, 0.7)], bad={2}),
            charts.Series("b", [(100.0, 0.5), (300.0, 0.6)]),
        ],
        threshold=0.8,
        marks=[charts.Mark(150.0, f"deploy {XSS}", "deploy"), charts.Mark(999.0, "outside")],
    )
    assert len(shapes(chart, "pt")) == 4  # the None breaks the line, it is no point
    assert len(shapes(chart, "bad")) == 1
    assert len(shapes(chart, "limit")) == 1
    assert len(shapes(chart, "mark")) == 1  # a mark outside the axis is not drawn
    assert XSS not in chart and "&lt;script&gt;" in chart
    assert 'role="img"' in chart and 'aria-label="accuracy &lt;script&gt;' in chart


def test_bars_side_by_side_and_an_empty_chart_says_so() -> None:
    chart = charts.bar_chart(
        "metrics", ["accuracy", XSS], [("v2", [0.9, 0.1]), ("v1 (production)", [0.8, None])]
    )
    assert len(shapes(chart, "bar")) == 3
    assert XSS not in chart
    assert "no data" in charts.bar_chart("metrics", [], [])
    assert "<svg" not in charts.line_chart("nothing", [charts.Series("a", [])], empty="none yet")


def test_a_timeline_links_each_stage_and_labels_the_failed_one() -> None:
    chart = charts.timeline(
        "run 3",
        [
            charts.Span("build", 0.0, 2.0, "Succeeded", url="#log-build"),
            charts.Span("train", 2.0, 5.0, "Failed", url="#log-train", note=XSS),
        ],
    )
    spans = shapes(chart, "span")
    assert [s.get("class") for s in spans] == ["span c-Succeeded", "span c-Failed"]
    assert 'href="#log-train"' in chart and "✕ failed" in chart
    assert XSS not in chart


RUN = {"id": 3, "status": "Failed", "pipeline": "iris", "failed_stage": "train"}


def stage(name: str, status: str, start: float, elapsed: float) -> dict[str, Any]:
    return {
        "stage": name,
        "status": status,
        "started_at": start,
        "elapsed": elapsed,
        "log_path": f"/logs/{name}.log",
    }


def test_the_run_page_draws_its_stages_linked_to_their_logs() -> None:
    stages = [stage("build", "Succeeded", 10.0, 1.0), stage("train", "Failed", 11.0, 4.0)]
    html = run_page("iris", ["iris"], {"run": RUN, "stages": stages}, {"train": "boom"})
    assert len(shapes(html, "span")) == 2
    assert 'href="#log-train"' in html and '<details id="log-train" open>' in html


def test_the_overview_draws_run_durations_and_the_gate_metric_per_version() -> None:
    runs = [
        {
            "id": i,
            "status": "Succeeded" if i != 2 else "Failed",
            "elapsed": 3.0,
            "started_at": 100.0 * i,
            "stages": [
                {"stage": "build", "status": "Succeeded", "elapsed": 1.0},
                {"stage": "train", "status": "Succeeded", "elapsed": 2.0},
            ],
        }
        for i in (3, 2, 1)
    ]
    models = [
        {"arn": f"iris/{v}", "metrics": {"accuracy": a}, "status": s, "created_at": 100.0 * v}
        for v, a, s in ((1, 0.9, "Approved"), (2, 0.95, "Rejected"), (3, 0.97, "Approved"))
    ]
    history = {
        "runs": runs,
        "models": models,
        "thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.85}],
    }
    html = overview(
        [
            {
                "pipeline": "iris",
                "root": "/p",
                "runs": [{"id": 3, "status": "Succeeded"}, {"id": 99, "status": "Queued"}],
                "endpoints": [],
                "events": [],
                "history": history,
            }
        ]
    )
    assert len(shapes(html, "bar")) == 6  # two stages in each of three runs
    assert len(shapes(html, "span")) == 2  # run 3's stages in its row (run 99 has none yet)
    assert len(shapes(html, "outcome")) == 3
    assert len(shapes(html, "pt")) == 3 and len(shapes(html, "bad")) == 1
    assert len(shapes(html, "limit")) == 1
    bars = re.findall(r"Run durations.*?</figure>", html, flags=re.S)[0]
    assert bars.index('href="/runs/1"') < bars.index('href="/runs/3"')  # oldest first


def test_the_model_page_sets_a_version_beside_production() -> None:
    package = {
        "arn": "iris/2",
        "group_name": "iris",
        "version": 2,
        "status": "Approved",
        "metrics": {"accuracy": 0.97, "f1": 0.96},
        "run_id": 4,
    }
    production = {**package, "arn": "iris/1", "version": 1, "metrics": {"accuracy": 0.9}}
    lineage = {
        "commit": {"commit": "a" * 40, "message": XSS},
        "endpoint_configs": [{"name": "cfg-2", "endpoint": "iris-ep"}],
    }
    html = model_page(
        "iris",
        ["iris"],
        {
            "model": package,
            "lineage": lineage,
            "production": production,
            "importance": {"petal": 0.5, "sepal": 0.1},
            "production_importance": {"petal": 0.4},
        },
    )
    assert len(shapes(html, "node")) == 5  # commit, build, job, model, one endpoint config
    assert 'href="/endpoints/iris-ep"' in html
    assert len(shapes(html, "bar")) == 3 + 3  # metrics 2+1, importance 2+1
    assert XSS not in html


def test_the_endpoint_page_draws_drift_per_feature_against_the_threshold() -> None:
    def execution(n: int, drift: float) -> dict[str, Any]:
        violations = [{"feature_name": "petal"}] if drift > 0.2 else []
        return {
            "id": n,
            "window_start": 60.0 * n,
            "window_end": 60.0 * (n + 1),
            "status": "Completed",
            "variants": [{"drift": {"petal": drift, "sepal": 0.01}, "violations": violations}],
        }

    data = {
        "endpoint": {"name": "ep", "status": "InService"},
        "configs": [],
        "history": [],
        "monitoring": {
            "drift_threshold": 0.2,
            "executions": [execution(3, 0.3), execution(2, 0.1), execution(1, 0.05)],
        },
    }
    html = endpoint_page("iris", ["iris"], data)
    assert len(shapes(html, "pt")) == 6 and len(shapes(html, "bad")) == 1
    assert len(shapes(html, "limit")) == 1


def test_the_endpoint_page_charts_its_metric_history_with_deployments_marked() -> None:
    since = 60_000.0
    minutes = [
        {
            "minute": since + 60 * i,
            "variant": variant,
            "invocations": 60 * (i + 1),
            "errors_4xx": 1,
            "errors_5xx": 0,
            "model_p50_ms": 2.0,
            "model_p99_ms": 9.0,
            "overhead_p50_ms": 0.3,
            "overhead_p99_ms": 1.0,
            "share": share,
            "shift_percent": 25.0 if i >= 8 else None,
        }
        for i in range(10)
        for variant, share in (("A", 0.75), ("B", 0.25))
    ]
    data = {
        "endpoint": {"name": "ep", "status": "InService"},
        "configs": [],
        "history": [{"at": since + 300, "reason": "deploy", "config_name": XSS}],
        "metric_history": {
            "window": "1h",
            "since": since,
            "until": since + 3600,
            "minutes": minutes,
        },
    }
    html = endpoint_page("iris", ["iris"], data)
    figures = re.findall(r"<figure.*?</figure>", html, flags=re.S)
    per_second = next(f for f in figures if "Invocations per second" in f)
    assert len(shapes(per_second, "pt")) == 20  # two variants, ten minutes
    assert len(shapes(html, "mark")) == 5  # the deployment, on each of the five charts
    share = next(f for f in figures if "Traffic share" in f)
    assert len(shapes(share, "pt")) == 20 + 2  # and the new config's share while it shifted
    assert 'href="/endpoints/ep?window=7d"' in html and "<b>1h</b>" in html
    assert XSS not in html


def test_a_history_window_is_a_duration_within_the_week_kept() -> None:
    assert data.history_window(None) == 3600 and data.history_window("7d") == 7 * 86400
    for bad in ("8d", "10s", "soon"):
        with pytest.raises(ValueError, match="is not a duration from 1m to 7d"):
            data.history_window(bad)
