"""The pages' frame and small pieces: escaping, links, tables, times, one inline stylesheet.

Escaping is structural: :class:`Html` marks markup this module or :mod:`mlcicd.web.pages`
built; every other value that reaches :func:`h`, :func:`table`, :func:`facts` or
:func:`link` is escaped. Commit messages, log lines, model and endpoint names come from
users and may hold ``<script>``: they are always plain values, never ``Html``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from mlcicd.web import live

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#223;color:#eee;padding:.5em 1em}header a{color:#eee;margin-right:1.2em}
header b{margin-right:2em}main{padding:0 1em 2em}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;background:#fff;margin:.4em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
pre{background:#111;color:#ddd;padding:.6em;overflow-x:auto;max-height:30em;white-space:pre-wrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{color:#666}dd{margin:0}
code,.mono{font-family:ui-monospace,monospace;font-size:.95em}.muted{color:#777}
.st{padding:0 .4em;border-radius:3px;background:#ddd;white-space:nowrap}
.st-Succeeded,.st-InService,.st-Approved,.st-passed,.st-Completed{background:#c8ecc8}
.st-Cached{background:#d6e6f5}.st-Running,.st-Creating,.st-Updating,.st-Queued{background:#fde9a8}
.st-WaitingForApproval,.st-Pending,.st-PendingManualApproval{background:#f8d3a0}
.st-Failed,.st-Rejected,.st-OutOfService,.st-Stopped,.st-failed,.st-CompletedWithViolations{background:#f5c2c2}
.arrow{color:#999;margin:0 .4em}
figure{margin:.6em 0 1em;max-width:760px}figure.narrow{max-width:520px}
figcaption{font-weight:600;margin-bottom:.2em}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #e3e3e3;font:11px system-ui}
svg.chart text{fill:#444}svg.chart .axis{stroke:#bbb}svg.chart .grid{stroke:#eee}
svg.chart .line{fill:none;stroke-width:1.6}svg.chart .limit{stroke:#c0392b;stroke-dasharray:5 3}
svg.chart .mark{stroke:#7a5;stroke-width:1.2;stroke-dasharray:2 2}
svg.chart .mark.m-rollback,svg.chart .mark.m-restart_failed{stroke:#c0392b}
svg.chart .mark.m-restart{stroke:#e67e22}
svg.chart .pt.bad{fill:#fff;stroke:#c0392b;stroke-width:2.4}
svg.chart .node rect{fill:#f4f6fb;stroke:#99a}svg.chart .edge{stroke:#99a;fill:none}
svg.chart a:hover rect,svg.chart a:focus rect{stroke:#000;stroke-width:1.5}
.s0{stroke:#3465a4;fill:#3465a4;color:#3465a4}
.s1{stroke:#e67e22;fill:#e67e22;color:#e67e22}
.s2{stroke:#2e9e6a;fill:#2e9e6a;color:#2e9e6a}
.s3{stroke:#8e44ad;fill:#8e44ad;color:#8e44ad}
.s4{stroke:#c0392b;fill:#c0392b;color:#c0392b}
.s5{stroke:#16a2b8;fill:#16a2b8;color:#16a2b8}
.s6{stroke:#7f8c3d;fill:#7f8c3d;color:#7f8c3d}
.s7{stroke:#b8860b;fill:#b8860b;color:#b8860b}
rect.c-Succeeded,rect.c-Completed{fill:#7cc47c}rect.c-Cached{fill:#9cc0e6}
rect.c-Running,rect.c-Queued{fill:#f4d35e}rect.c-WaitingForApproval{fill:#f0a35e}
rect.c-Failed,rect.c-CompletedWithViolations,rect.c-Rejected{fill:#e06b6b}
rect.c-Skipped,rect.c-Cancelled,rect.c-Pending{fill:#ccc}svg.strip{vertical-align:middle}
.legend{font-size:.9em;color:#555}.legend i{display:inline-block;width:.8em;height:.8em;
margin:0 .3em 0 .8em;vertical-align:middle;background:currentColor}
@media (max-width:640px){body{font-size:13px}main{padding:0 .5em 1em}header a{margin-right:.6em}
table{display:block;overflow-x:auto}dl{grid-template-columns:1fr}dd{margin-bottom:.3em}}
"""


class Html(str):
    """Markup that is already safe; anything else is escaped where it is put into a page."""


def h(value: Any) -> Html:
    """``value`` as page text: escaped unless it is :class:`Html`; None is a dash."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html('<span class="muted">&ndash;</span>')
    if isinstance(value, float):
        value = f"{value:g}"
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(sep.join(h(p) for p in parts))


def href(path: str, **query: Any) -> str:
    """A URL inside the dashboard; ``path`` parts that are values are quoted by the caller
    (:func:`part`)."""
    given = {k: v for k, v in query.items() if v is not None}
    return path + ("?" + urlencode(given) if given else "")


def part(value: Any) -> str:
    """One path segment from a value (a model group, an endpoint name)."""
    return quote(str(value), safe="")


def link(url: str, text: Any) -> Html:
    return Html(f'<a href="{html.escape(url, quote=True)}">{h(text)}</a>')


def uri_link(uri: Any) -> Html:
    """Where a file is (a report, a baseline): a link when a browser can follow it, else text."""
    if isinstance(uri, str) and uri.startswith(("file://", "http://", "https://")):
        return link(uri, uri)
    return mono(uri) if uri else h(None)


def status(value: Any) -> Html:
    text = "-" if value is None else str(value)
    css = re.sub(r"[^A-Za-z]", "", text)
    return Html(f'<span class="st st-{css}">{h(text)}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none yet") -> Html:
    body = "".join(
        "<tr>" + "".join(f"<td>{h(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    if not body:
        return Html(f'<p class="muted">{h(empty)}</p>')
    head = "".join(f"<th>{h(name)}</th>" for name in headers)
    return Html(f"<table><tr>{head}</tr>{body}</table>")


def facts(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A definition list of the pairs whose value is not None."""
    items = "".join(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>" for k, v in pairs if v is not None)
    return Html(f"<dl>{items}</dl>")


def pre(text: Any) -> Html:
    return Html(f"<pre>{h(text)}</pre>")


def mono(text: Any) -> Html:
    return Html(f'<span class="mono">{h(text)}</span>')


def when(ts: Any) -> str | None:
    if not isinstance(ts, int | float):
        return None
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def short(sha: Any, n: int = 12) -> str | None:
    return str(sha)[:n] if sha else None


def compact(value: Any) -> str:
    """A small JSON value on one line (event data, hyperparameters, a config's settings)."""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def metrics_text(metrics: Any) -> str | None:
    if not isinstance(metrics, dict) or not metrics:
        return None
    return " ".join(
        f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
        for k, v in sorted(metrics.items())
    )


def page(title: str, body: Html, *, pipelines: Sequence[str], refresh: int | None = None) -> str:
    """A whole page: the navigation, ``body``, and new content every ``refresh`` seconds —
    swapped in by :mod:`mlcicd.web.live`'s script, or, without JavaScript, a refresh."""
    meta = (
        f'<noscript><meta http-equiv="refresh" content="{int(refresh)}"></noscript>'
        f'<script src="{live.PATH}" defer></script>'
        if refresh
        else ""
    )
    live_attr = f' data-live="{int(refresh)}"' if refresh else ""
    nav = "".join(
        link(href(path), label)
        for path, label in (
            ("/", "Runs"),
            ("/models", "Models"),
            ("/endpoints", "Endpoints"),
            ("/events", "Events"),
        )
    )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{meta}'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} · mlcicd</title><style>{CSS}</style></head>"
        f"<body><header><b>mlcicd</b>{nav}"
        f'<span class="muted">{h(", ".join(pipelines))}</span></header>'
        f"<main{live_attr}><h1>{h(title)}</h1>{body}</main></body></html>\n"
    )
