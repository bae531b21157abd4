"""Server-rendered SVG charts for the dashboard: lines over time, bars, timelines, a graph.

No script and no external asset (the CSP allows neither, and the machine may be offline): a
chart is an inline ``<svg>`` in a ``<figure>``, scaled to the page's width by CSS, with an
accessible name (``role="img"``, ``aria-label``) and a ``<title>`` on every point, bar and
span, which a browser shows on hover and a screen reader reads. Every label goes through
:func:`mlcicd.web.layout.h`: a model or stage name, a commit message, is text, never markup.

The shapes carry classes a test (and a stylesheet) can find: ``pt`` (a point; ``pt bad``
one marked, e.g. a rejected model), ``bar``, ``span`` (a timeline's stage), ``mark`` (an
event on a time axis: a deployment, a rollback), ``limit`` (a threshold line), ``node``.
Colours come from classes too (``c-Succeeded``, ``s0``…``s7``), defined in
:data:`mlcicd.web.layout.CSS` (the page's one stylesheet).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlcicd.web.layout import Html, h

WIDTH = 640
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 30
ROW = 22  # a timeline's or a bar chart's row, in user units
PALETTE = 8  # series colours s0…s7
DENSE = 90  # a line of more points is drawn without a circle (and hover text) per point


@dataclass
class Series:
    """A line: ``points`` are (x, y); a y of None breaks the line; ``bad`` indexes points that
    are marked (a rejected model, a violation)."""

    name: str
    points: list[tuple[float, float | None]]
    bad: set[int] = field(default_factory=set)
    labels: list[str] | None = None  # each point's hover text (default: name, x, y)


@dataclass
class Mark:
    """Something that happened at ``x`` on a time axis: a vertical line with a hover text."""

    x: float
    label: str
    kind: str = "event"


@dataclass
class Span:
    """One stage on a timeline: from ``start`` for ``seconds``, in a status colour."""

    label: str
    start: float
    seconds: float
    status: str
    url: str | None = None
    note: str = ""


@dataclass
class Segment:
    """One part of a stacked bar (a stage's duration within a run)."""

    name: str
    value: float
    css: str


@dataclass
class Column:
    """One stacked bar (a run): its segments bottom to top, its outcome, where it links."""

    label: str
    segments: list[Segment]
    status: str
    url: str | None = None


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _css(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "_-")


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 2.5, 5, 10):
        if raw <= k * step:
            step *= k
            break
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def number(value: float) -> str:
    """A tick label: short, no float noise."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def clock(ts: float, span: float) -> str:
    """A time-axis label: the time of day within a day's span, else the date and time."""
    moment = dt.datetime.fromtimestamp(ts)
    return moment.strftime("%H:%M" if span <= 86400 else "%m-%d %H:%M")


def _figure(title: str, svg: str, legend: str = "", note: str = "", *, wide: bool = True) -> Html:
    caption = f"<figcaption>{h(title)}</figcaption>"
    extra = f'<div class="legend">{legend}</div>' if legend else ""
    extra += f'<p class="muted">{h(note)}</p>' if note else ""
    css = "fig" if wide else "fig narrow"
    return Html(f'<figure class="{css}">{caption}{svg}{extra}</figure>')


def _svg(title: str, width: float, height: float, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_num(width)} {_num(height)}" role="img" '
        f'aria-label="{h(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{h(title)}</title>{body}</svg>"
    )


def _legend(names: Sequence[str]) -> str:
    return "".join(f'<i class="s{i % PALETTE}"></i>{h(n)}' for i, n in enumerate(names))


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    time_axis: bool = True,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    marks: Sequence[Mark] = (),
    x_range: tuple[float, float] | None = None,
    unit: str = "",
    zero: bool = True,
    empty: str = "no data yet",
) -> Html:
    """Lines of ``series`` over a shared x axis (times, or plain numbers such as versions),
    with a dashed ``threshold`` and vertical ``marks``; each point a circle with its value.
    The y axis starts at zero unless ``zero`` is False (a metric near 0.9: its changes)."""
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not xs:
        return _figure(title, "", note=empty)
    x0, x1 = x_range or (min(xs), max(xs))
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    lo = min(ys + ([threshold] if threshold is not None else []))
    hi = max(ys + ([threshold] if threshold is not None else []))
    if not zero and hi - lo < 1e-9:
        lo, hi = lo - abs(lo) * 0.05 - 1e-3, hi + abs(hi) * 0.05 + 1e-3
    yticks = nice_ticks(min(lo, 0.0) if zero and lo >= 0 else lo, hi)
    y0, y1 = yticks[0], yticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = []
    for tick in yticks:
        gy = py(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(gy)}" y2="{_num(gy)}"/>'
            f'<text x="{LEFT - 4}" y="{_num(gy + 4)}" text-anchor="end">'
            f"{h(number(tick))}{h(unit)}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
        f'y2="{TOP + plot_h}"/>'
    )
    xticks = (
        [x0 + (x1 - x0) * i / 4 for i in range(5)]
        if time_axis
        else sorted(set(xs))[:: max(1, len(set(xs)) // 8)]
    )
    shown: set[str] = set()
    for tick in xticks:
        label = clock(tick, x1 - x0) if time_axis else number(tick)
        if label in shown:  # a span of seconds: one label says it
            continue
        shown.add(label)
        anchor = "start" if tick == x0 else "end" if tick == x1 else "middle"
        parts.append(
            f'<text x="{_num(px(tick))}" y="{HEIGHT - 10}" text-anchor="{anchor}">{h(label)}</text>'
        )
    if threshold is not None:
        ty = _num(py(threshold))
        parts.append(
            f'<line class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty}" '
            f'y2="{ty}"><title>{h(threshold_label)}: {h(threshold)}</title></line>'
        )
    for mark in marks:
        if not x0 <= mark.x <= x1:
            continue
        mx = _num(px(mark.x))
        parts.append(
            f'<line class="mark m-{_css(mark.kind)}" x1="{mx}" x2="{mx}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"><title>{h(mark.label)}</title></line>'
        )
    for i, s in enumerate(series):
        colour = f"s{i % PALETTE}"
        runs: list[list[str]] = [[]]
        for x, y in s.points:
            if y is None:
                runs.append([])
            else:
                runs[-1].append(f"{_num(px(x))},{_num(py(y))}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line {colour}" points="{" ".join(run)}"/>')
        dense = len(s.points) > DENSE
        for k, (x, y) in enumerate(s.points):
            if y is None or (dense and k not in s.bad):  # a dense line: its marked points only
                continue
            text = (
                s.labels[k]
                if s.labels
                else f"{s.name}: {y:g}{unit} at {clock(x, 0) if time_axis else number(x)}"
            )
            bad = " bad" if k in s.bad else ""
            parts.append(
                f'<circle class="pt {colour}{bad}" cx="{_num(px(x))}" cy="{_num(py(y))}" '
                f'r="{4 if bad else 2.6}"><title>{h(text)}</title></circle>'
            )
    legend = _legend([s.name for s in series]) if len(series) > 1 else ""
    return _figure(title, _svg(title, WIDTH, HEIGHT, "".join(parts)), legend)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    unit: str = "",
    empty: str = "no data",
) -> Html:
    """Horizontal bars: one row per label, one bar per series in it (side by side: a model
    version beside production)."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return _figure(title, "", note=empty)
    label_w = min(200, 10 + 7 * max(len(str(label)) for label in labels))
    hi = max(max(values), 0.0)
    lo = min(min(values), 0.0)
    ticks = nice_ticks(lo, hi)
    t0, t1 = ticks[0], ticks[-1]
    plot_w = WIDTH - label_w - RIGHT - 40
    group_h = ROW * max(1, len(series)) + 8
    height = TOP + group_h * len(labels) + BOTTOM

    def px(v: float) -> float:
        return label_w + (v - t0) / ((t1 - t0) or 1) * plot_w

    parts = []
    for tick in ticks:
        gx = _num(px(tick))
        parts.append(
            f'<line class="grid" x1="{gx}" x2="{gx}" y1="{TOP}" y2="{height - BOTTOM}"/>'
            f'<text x="{gx}" y="{height - 10}" text-anchor="middle">{h(number(tick))}</text>'
        )
    for row, label in enumerate(labels):
        top = TOP + row * group_h
        parts.append(
            f'<text x="{label_w - 6}" y="{_num(top + group_h / 2 + 4)}" text-anchor="end">'
            f"{h(label)}</text>"
        )
        for i, (name, vs) in enumerate(series):
            value = vs[row] if row < len(vs) else None
            if value is None:
                continue
            x, zero = px(value), px(0.0)
            left, width = min(x, zero), abs(x - zero)
            y = top + 4 + i * ROW
            parts.append(
                f'<rect class="bar s{i % PALETTE}" x="{_num(left)}" y="{_num(y)}" '
                f'width="{_num(max(width, 0.5))}" height="{ROW - 6}">'
                f"<title>{h(label)} · {h(name)}: {h(f'{value:g}')}{h(unit)}</title></rect>"
                f'<text x="{_num(left + width + 4)}" y="{_num(y + ROW / 2 + 1)}">'
                f"{h(f'{value:.4g}')}</text>"
            )
    legend = _legend([name for name, _ in series]) if len(series) > 1 else ""
    return _figure(title, _svg(title, WIDTH, height, "".join(parts)), legend)


def timeline(title: str, spans: Sequence[Span], *, empty: str = "no stages yet") -> Html:
    """Stages left to right on a time axis, one row each, in their status colour, each a
    link (to its log); a failed one is labelled so, not only coloured."""
    if not spans:
        return _figure(title, "", note=empty)
    t0 = min(s.start for s in spans)
    t1 = max(s.start + s.seconds for s in spans)
    total = max(t1 - t0, 1e-3)
    label_w = min(160, 12 + 7 * max(len(s.label) for s in spans))
    plot_w = WIDTH - label_w - RIGHT - 70
    height = TOP + ROW * len(spans) + BOTTOM
    parts = []
    for tick in nice_ticks(0, total):
        if tick > total * 1.0001:
            break
        gx = _num(label_w + tick / total * plot_w)
        parts.append(
            f'<line class="grid" x1="{gx}" x2="{gx}" y1="{TOP}" y2="{height - BOTTOM}"/>'
            f'<text x="{gx}" y="{height - 10}" text-anchor="middle">{h(_seconds(tick))}</text>'
        )
    for row, s in enumerate(spans):
        y = TOP + row * ROW
        x = label_w + (s.start - t0) / total * plot_w
        width = max(s.seconds / total * plot_w, 2.0)
        failed = s.status in ("Failed", "Rejected")
        text = f"{s.label}: {s.status}, {_seconds(s.seconds)}" + (f" — {s.note}" if s.note else "")
        bar = (
            f'<rect class="span c-{_css(s.status)}" x="{_num(x)}" y="{y + 3}" '
            f'width="{_num(width)}" height="{ROW - 6}"><title>{h(text)}</title></rect>'
        )
        label = (
            f'<text x="{label_w - 6}" y="{y + ROW / 2 + 4}" text-anchor="end">{h(s.label)}</text>'
        )
        after = f"{_seconds(s.seconds)}" + (" ✕ failed" if failed else "")
        tail = f'<text x="{_num(x + width + 4)}" y="{y + ROW / 2 + 4}">{h(after)}</text>'
        body = label + bar + tail
        parts.append(f'<a href="{h(s.url)}">{body}</a>' if s.url else body)
    return _figure(title, _svg(title, WIDTH, height, "".join(parts)))


def strip(title: str, stages: Sequence[tuple[str, str, float | None]]) -> Html:
    """A run's stages in one small bar for a table cell: each stage's share of the run's time
    (at least a sliver, so a cached or skipped one shows), in its status colour."""
    if not stages:
        return Html("")
    width, height = 120.0, 10.0
    times = [max(float(t or 0.0), 0.0) for _, _, t in stages]
    total = sum(times) or 1.0
    parts, x = [], 0.0
    for (name, status, _), t in zip(stages, times, strict=True):
        w = max(t / total * (width - 2 * len(stages)), 2.0)
        parts.append(
            f'<rect class="span c-{_css(status)}" x="{_num(x)}" y="0" width="{_num(w)}" '
            f'height="{height:g}"><title>{h(name)}: {h(status)}, {h(_seconds(t))}</title></rect>'
        )
        x += w + 1
    return Html(
        f'<svg class="strip" viewBox="0 0 {_num(x)} {height:g}" width="{_num(x)}" '
        f'height="{height:g}" role="img" aria-label="{h(title)}: stages" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def stacked_bars(title: str, columns: Sequence[Column], *, empty: str = "no runs yet") -> Html:
    """One bar per column (a run), its segments (stages' durations) stacked; the outcome is
    the colour of a strip under the bar; each bar links to its run."""
    if not columns:
        return _figure(title, "", note=empty)
    totals = [sum(s.value for s in c.segments) for c in columns]
    ticks = nice_ticks(0, max(totals) or 1.0)
    top_value = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(columns)
    bar_w = max(2.0, min(28.0, step * 0.7))
    parts = []
    for tick in ticks:
        gy = _num(TOP + plot_h - tick / top_value * plot_h)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy}" y2="{gy}"/>'
            f'<text x="{LEFT - 4}" y="{gy}" text-anchor="end" dy="4">{h(_seconds(tick))}</text>'
        )
    names: dict[str, str] = {}
    every = max(1, len(columns) // 12)
    for i, column in enumerate(columns):
        x = LEFT + i * step + (step - bar_w) / 2
        base: float = TOP + plot_h
        shapes = []
        for seg in column.segments:
            names.setdefault(seg.name, seg.css)
            height = seg.value / top_value * plot_h
            base -= height
            shapes.append(
                f'<rect class="bar {seg.css}" x="{_num(x)}" y="{_num(base)}" '
                f'width="{_num(bar_w)}" height="{_num(max(height, 0.3))}">'
                f"<title>{h(column.label)} · {h(seg.name)}: {h(_seconds(seg.value))}</title></rect>"
            )
        shapes.append(
            f'<rect class="outcome c-{_css(column.status)}" x="{_num(x)}" y="{TOP + plot_h + 2}" '
            f'width="{_num(bar_w)}" height="5"><title>{h(column.label)}: {h(column.status)}, '
            f"{h(_seconds(totals[i]))}</title></rect>"
        )
        if i % every == 0:
            shapes.append(
                f'<text x="{_num(x + bar_w / 2)}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{h(column.label)}</text>"
            )
        body = "".join(shapes)
        parts.append(f'<a href="{h(column.url)}">{body}</a>' if column.url else body)
    legend = "".join(f'<i class="{css}"></i>{h(name)}' for name, css in names.items())
    return _figure(title, _svg(title, WIDTH, HEIGHT, "".join(parts)), legend)


@dataclass
class Node:
    label: str
    detail: str = ""
    url: str | None = None


def graph(title: str, layers: Sequence[Sequence[Node]]) -> Html:
    """Boxes in rows top to bottom, each row's boxes joined to the next row's (the lineage:
    commit → build → training job → model → endpoint configs). Rows rather than columns:
    names stay readable, on a phone too."""
    layers = [list(layer) for layer in layers if layer]
    if not layers:
        return _figure(title, "", note="nothing recorded")
    width, box_h, gap_x, gap_y = 480.0, 36.0, 10.0, 16.0
    widest = max(len(layer) for layer in layers)
    box_w = min(300.0, (width - 16 - gap_x * (widest - 1)) / widest)
    chars = int(box_w / 6.4)
    height = 16 + len(layers) * (box_h + gap_y) - gap_y
    centres: list[list[float]] = []
    parts = []
    for row, layer in enumerate(layers):
        y = 8 + row * (box_h + gap_y)
        left = (width - len(layer) * box_w - (len(layer) - 1) * gap_x) / 2
        centres.append([])
        for col, node in enumerate(layer):
            x = left + col * (box_w + gap_x)
            centres[-1].append(x + box_w / 2)
            text = node.label if len(node.label) <= chars else node.label[: chars - 1] + "…"
            detail = node.detail if len(node.detail) <= chars else node.detail[: chars - 1] + "…"
            body = (
                f'<g class="node"><rect x="{_num(x)}" y="{_num(y)}" width="{_num(box_w)}" '
                f'height="{box_h:g}" rx="4"><title>{h(node.label)} {h(node.detail)}</title></rect>'
                f'<text x="{_num(x + 6)}" y="{_num(y + 15)}">{h(text)}</text>'
                f'<text x="{_num(x + 6)}" y="{_num(y + 29)}" class="muted">{h(detail)}</text></g>'
            )
            parts.append(f'<a href="{h(node.url)}">{body}</a>' if node.url else body)
    edges = []
    for row in range(len(centres) - 1):
        top = 8 + row * (box_h + gap_y) + box_h
        for x_a in centres[row]:
            for x_b in centres[row + 1]:
                edges.append(
                    f'<path class="edge" d="M{_num(x_a)},{_num(top)} '
                    f"C{_num(x_a)},{_num(top + gap_y / 2)} {_num(x_b)},{_num(top + gap_y / 2)} "
                    f'{_num(x_b)},{_num(top + gap_y)}"/>'
                )
    return _figure(title, _svg(title, width, height, "".join(edges + parts)), wide=False)


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.3g}s"
    if value < 3600:
        return f"{value / 60:.3g}m"
    return f"{value / 3600:.3g}h"


__all__ = [
    "Column",
    "Mark",
    "Node",
    "Segment",
    "Series",
    "Span",
    "bar_chart",
    "graph",
    "line_chart",
    "stacked_bars",
    "strip",
    "timeline",
]
