"""Endpoint metrics under SageMaker's names, counted in each worker, summed over all of them.

    Invocations, Invocation4XXErrors, Invocation5XXErrors      counters
    ModelLatency, OverheadLatency                              histograms, microseconds

A worker counts in plain Python objects (the hot path is a few additions and one
``bisect``) and writes a snapshot to ``<endpoint>/metrics/w-<id>.json`` twice a second.
Anyone can then sum every worker's file: the worker answering ``GET /metrics`` (using its
own live counts), the supervisor checking a deployment's alarms, the CLI's
``endpoints metrics``. When a worker exits, the supervisor folds its last snapshot into
``retired.json`` so the counters never go back (Prometheus counters must not); the fold
names the folded worker, so a reader that sees both does not count it twice.

Windows (``--window 5m``) come from ``series.jsonl``: the supervisor appends the summed
counters every few seconds (only when they changed); a window is now minus the line at
its start. The histograms have four buckets per octave (16 µs to about 67 s), and a
percentile is interpolated inside the bucket of the sample at its rank, so it is within one
bucket of that sample: a factor 2^(1/4), from -16 % to +19 % (tests/serving/test_metrics.py
holds it to that; on smooth, dense traffic it comes within 5 % of the exact percentile).
Below 16 µs the first bucket starts at 0; past 67 s a percentile reads 67 s.
Stdlib (and :mod:`mlcicd.fsutil`) only: the supervisor and the CLI read these files too.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcicd.fsutil import locked

if TYPE_CHECKING:  # the supervisor reads these files too, and stays light
    from mlcicd.shapes import EndpointMetrics

METRICS_DIR = "metrics"
RETIRED_FILE = "retired.json"
_RETIRED_LOCK = ".retired.lock"  # held by whoever folds into retired.json
SERIES_FILE = "series.jsonl"
FLUSH_INTERVAL = 0.5
SERIES_INTERVAL = 5.0
SERIES_KEEP = 4320  # lines: six hours at one line per 5 s
_RETIRED_REMEMBERED = 256

# Bucket upper bounds in microseconds: 2^(k/4) from 16 µs to about 67 s; the last bucket is +Inf.
BOUNDS_US: tuple[float, ...] = tuple(2 ** (k / 4) for k in range(16, 105))
_PROM_BOUNDS = range(0, len(BOUNDS_US), 4)  # whole octaves in the Prometheus text
COUNTERS = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
LATENCIES = ("ModelLatency", "OverheadLatency")  # histograms here; in CloudWatch, microseconds too
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))  # what a summary shows


class VariantMetrics:
    """The counts of one (endpoint config, variant) in one worker."""

    __slots__ = (
        "errors_4xx",
        "errors_5xx",
        "invocations",
        "model",
        "model_sum",
        "overhead",
        "overhead_sum",
    )

    def __init__(self) -> None:
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.model = [0] * (len(BOUNDS_US) + 1)
        self.overhead = [0] * (len(BOUNDS_US) + 1)
        self.model_sum = 0.0
        self.overhead_sum = 0.0

    def observe(self, model_seconds: float, overhead_seconds: float) -> None:
        """One answered invocation's ModelLatency and OverheadLatency."""
        us = model_seconds * 1e6
        self.model[bisect.bisect_left(BOUNDS_US, us)] += 1
        self.model_sum += us
        us = overhead_seconds * 1e6
        self.overhead[bisect.bisect_left(BOUNDS_US, max(us, 0.0))] += 1
        self.overhead_sum += us

    def error(self, status: int) -> None:
        if status >= 500:
            self.errors_5xx += 1
        else:
            self.errors_4xx += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "Invocations": self.invocations,
            "Invocation4XXErrors": self.errors_4xx,
            "Invocation5XXErrors": self.errors_5xx,
            "ModelLatency": _sparse(self.model),
            "ModelLatencySum": self.model_sum,
            "OverheadLatency": _sparse(self.overhead),
            "OverheadLatencySum": self.overhead_sum,
        }


class WorkerMetrics:
    """Everything one worker counts, keyed ``"<config>|<variant>"``; written to its file."""

    def __init__(self, endpoint: str, directory: Path | None, worker_id: str) -> None:
        self.endpoint = endpoint
        self.directory = directory
        self.worker_id = worker_id
        self.series: dict[str, VariantMetrics] = {}
        self.counters: dict[str, int] = {}  # e.g. CaptureDropped, ShadowDropped
        self._written: int = -1

    def variant(self, config: str, variant: str) -> VariantMetrics:
        key = f"{config}|{variant}"
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = VariantMetrics()
        return found

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def snapshot(self) -> dict[str, Any]:
        return {
            "worker": self.worker_id,
            "endpoint": self.endpoint,
            "time": time.time(),
            "series": {k: v.to_dict() for k, v in self.series.items()},
            "counters": dict(self.counters),
        }

    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / f"w-{self.worker_id}.json"

    def flush(self, *, force: bool = False) -> None:
        """Write the snapshot if anything changed since the last one (never raises)."""
        path = self.path()
        if path is None:
            return
        total = sum(v.invocations + v.errors_4xx for v in self.series.values()) + sum(
            self.counters.values()
        )
        if total == self._written and not force:
            return
        with contextlib.suppress(OSError):
            _write(path, self.snapshot())
            self._written = total


# -- reading and summing -------------------------------------------------------------------


def read_all(directory: Path, *, live: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every worker's counts summed: ``{"series": {key: counts}, "counters": {...}}``.

    ``live`` is the caller's own up-to-date snapshot, used instead of its file.
    """
    # Worker files first, retired.json second: a worker folded in between is then found in
    # retired.json (its file skipped as folded), never in neither.
    own = live.get("worker") if live else None
    found: list[tuple[str, Mapping[str, Any]]] = []
    if directory.is_dir():
        for path in directory.glob("w-*.json"):
            worker = path.name[2:-5]
            data = _load(path) if worker != own else None
            if data is not None:
                found.append((worker, data))
    retired = _load(directory / RETIRED_FILE) or {}
    folded = set(retired.get("folded", []))
    snapshots: list[Mapping[str, Any]] = [retired]
    snapshots += [data for worker, data in found if worker not in folded]
    if live is not None:
        snapshots.append(live)
    return merge(snapshots)


def merge(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    series: dict[str, dict[str, Any]] = {}
    counters: dict[str, int] = {}
    for snap in snapshots:
        for key, counts in (snap.get("series") or {}).items():
            into = series.setdefault(key, _empty())
            for name in (*COUNTERS, "ModelLatencySum", "OverheadLatencySum"):
                into[name] += counts.get(name, 0)
            for name in ("ModelLatency", "OverheadLatency"):
                buckets = into[name]
                for index, n in (counts.get(name) or {}).items():
                    buckets[str(index)] = buckets.get(str(index), 0) + n
        for name, n in (snap.get("counters") or {}).items():
            counters[name] = counters.get(name, 0) + n
    return {"series": series, "counters": counters}


def fold_worker(directory: Path, worker_id: str) -> None:
    """Add an exited worker's last counts to ``retired.json``, then forget its file.

    Under a lock: during a handover (:mod:`mlcicd.serving.handover`) two supervisors fold
    their exiting workers, and of two read-modify-writes at once the later would undo the
    earlier's fold — counts lost with the worker's file, a counter going back."""
    path = directory / f"w-{worker_id}.json"
    with locked(directory / _RETIRED_LOCK):
        data = _load(path)
        if data is None:
            path.unlink(missing_ok=True)
            return
        retired = _load(directory / RETIRED_FILE) or {}
        merged = merge([retired, data])
        folded = [*retired.get("folded", []), worker_id][-_RETIRED_REMEMBERED:]
        _write(directory / RETIRED_FILE, {**merged, "folded": folded})
        path.unlink(missing_ok=True)


def difference(now: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """The counts between two sums (series that are new since ``then`` count from zero)."""
    out: dict[str, dict[str, Any]] = {}
    before = then.get("series") or {}
    for key, counts in (now.get("series") or {}).items():
        base = before.get(key) or _empty()
        diff = _empty()
        for name in (*COUNTERS, "ModelLatencySum", "OverheadLatencySum"):
            diff[name] = counts.get(name, 0) - base.get(name, 0)
        for name in ("ModelLatency", "OverheadLatency"):
            b = base.get(name) or {}
            diff[name] = {
                i: n - b.get(i, 0) for i, n in (counts.get(name) or {}).items() if n - b.get(i, 0)
            }
        out[key] = diff
    return {"series": out, "counters": dict(now.get("counters") or {})}


def by_variant(summed: Mapping[str, Any], config: str | None = None) -> dict[str, dict[str, Any]]:
    """Sum the ``config|variant`` series per variant (of one endpoint config, if given)."""
    out: dict[str, Any] = {}
    for key, counts in (summed.get("series") or {}).items():
        cfg, _, variant = key.partition("|")
        if config is not None and cfg != config:
            continue
        out[variant] = merge(
            [{"series": {"x": out.get(variant, _empty())}}, {"series": {"x": counts}}]
        )["series"]["x"]
    return out


def quantile(buckets: Mapping[str, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in microseconds, interpolated inside its bucket; None if empty."""
    counts = sorted((int(i), n) for i, n in buckets.items() if n > 0)
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, n in counts:
        if seen + n >= rank:
            upper = BOUNDS_US[index] if index < len(BOUNDS_US) else BOUNDS_US[-1]
            lower = BOUNDS_US[index - 1] if 0 < index <= len(BOUNDS_US) else 0.0
            return lower + (upper - lower) * ((rank - seen) / n)
        seen += n
    return BOUNDS_US[-1]  # pragma: no cover - rank <= total always lands above


def summary(counts: Mapping[str, Any]) -> dict[str, Any]:
    """Counts, error rates and p50/p90/p99 (milliseconds) of one summed series."""
    latencies = {
        f"{name}{label}": quantile(counts.get(name) or {}, q)
        for name in LATENCIES
        for label, q in PERCENTILES
    }
    return variant_summary({name: counts.get(name, 0) for name in COUNTERS}, latencies)


def variant_summary(
    counts: Mapping[str, int], latencies_us: Mapping[str, float | None]
) -> dict[str, Any]:
    """One variant's line of ``mlcicd endpoints metrics``, whichever backend counted it: the
    COUNTERS, the 5XX rate, and each of ``latencies_us`` (``"ModelLatencyp99"``…, in
    microseconds; None or missing: no requests) as ``"ModelLatencyp99_ms"``."""
    invocations = counts.get("Invocations", 0)
    out: dict[str, Any] = {name: counts.get(name, 0) for name in COUNTERS}
    out["5XXRate"] = counts.get("Invocation5XXErrors", 0) / invocations if invocations else 0.0
    for name in LATENCIES:
        for label, _ in PERCENTILES:
            value = latencies_us.get(f"{name}{label}")
            out[f"{name}{label}_ms"] = None if value is None else round(value / 1000, 3)
    return out


def endpoint_metrics(endpoint: str, directory: Path, seconds: float | None) -> EndpointMetrics:
    """``endpoint``'s metrics from the files in ``directory``, over the last ``seconds`` or
    since its server started, as every backend reports them: a local endpoint's own
    directory and a serving container's mount hold the same files, read the same way."""
    summed = window(directory, seconds) if seconds else read_all(directory)
    return {
        "endpoint": endpoint,
        "window_seconds": seconds,
        "variants": {v: summary(c) for v, c in sorted(by_variant(summed).items())},
        "counters": summed.get("counters", {}),
        "notes": [],
    }


# -- the series file: windows ----------------------------------------------------------------


def append_series(directory: Path, summed: Mapping[str, Any], last: str | None) -> str | None:
    """Append ``summed`` to series.jsonl unless it equals ``last``; the new ``last``."""
    body = json.dumps(summed, sort_keys=True, separators=(",", ":"))
    if body == last:
        return last
    path = directory / SERIES_FILE
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"t": time.time(), "sum": summed}, separators=(",", ":")) + "\n")
        if path.stat().st_size > 256 * 1024:
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) > 2 * SERIES_KEEP:
                _write_text(path, "\n".join(lines[-SERIES_KEEP:]) + "\n")
    except OSError:
        return last
    return body


def window(directory: Path, seconds: float) -> dict[str, Any]:
    """The counts of the last ``seconds``: the live sum minus the series line at the
    window's start."""
    now = read_all(directory)
    start = time.time() - seconds
    base: Mapping[str, Any] = {}
    first: Mapping[str, Any] | None = None
    with contextlib.suppress(OSError), open(directory / SERIES_FILE, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if first is None:
                first = entry["sum"]
            if entry.get("t", 0) <= start:
                base = entry["sum"]
            else:
                break
    if not base and first is not None:
        base = first  # the endpoint's server started inside the window: count from its start
    return difference(now, base)


# -- Prometheus text format -------------------------------------------------------------------


def prometheus(summed: Mapping[str, Any], endpoint: str) -> bytes:
    """The summed counts in Prometheus' text exposition format (per endpoint and variant)."""
    variants = by_variant(summed)
    lines: list[str] = []
    helps = {
        "Invocations": "Requests to /invocations (SageMaker: Invocations).",
        "Invocation4XXErrors": "Invocations answered with a 4xx status.",
        "Invocation5XXErrors": "Invocations answered with a 5xx status.",
    }
    for name in COUNTERS:
        lines += [f"# HELP {name} {helps[name]}", f"# TYPE {name} counter"]
        for variant, counts in sorted(variants.items()):
            lines.append(f"{name}{_labels(endpoint, variant)} {counts[name]}")
    for name, text in (
        ("ModelLatency", "Time the model's handlers took, in microseconds (SageMaker's unit)."),
        ("OverheadLatency", "Time spent outside the model's handlers, in microseconds."),
    ):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
        for variant, counts in sorted(variants.items()):
            buckets = counts[name]
            dense = [0] * (len(BOUNDS_US) + 1)
            for index, n in buckets.items():
                dense[int(index)] += n
            running = 0
            position = 0
            for bound_index in _PROM_BOUNDS:
                while position <= bound_index:
                    running += dense[position]
                    position += 1
                le = f"{BOUNDS_US[bound_index]:.6g}"
                lines.append(f"{name}_bucket{_labels(endpoint, variant, le=le)} {running}")
            total = sum(dense)
            lines.append(f"{name}_bucket{_labels(endpoint, variant, le='+Inf')} {total}")
            lines.append(f"{name}_sum{_labels(endpoint, variant)} {counts[name + 'Sum']:.6g}")
            lines.append(f"{name}_count{_labels(endpoint, variant)} {total}")
    for name, n in sorted((summed.get("counters") or {}).items()):
        lines += [f"# TYPE {name} counter", f'{name}{{endpoint="{_escape(endpoint)}"}} {n}']
    return ("\n".join(lines) + "\n").encode()


def _labels(endpoint: str, variant: str, **extra: str) -> str:
    pairs = [("endpoint", endpoint), ("variant", variant), *extra.items()]
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _empty() -> dict[str, Any]:
    return {
        **dict.fromkeys(COUNTERS, 0),
        "ModelLatency": {},
        "ModelLatencySum": 0.0,
        "OverheadLatency": {},
        "OverheadLatencySum": 0.0,
    }


def _sparse(buckets: list[int]) -> dict[str, int]:
    return {str(i): n for i, n in enumerate(buckets) if n}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(data, separators=(",", ":")))


def _write_text(path: Path, text: str) -> None:
    # Snapshots are rewritten twice a second and rebuilt from memory: rename for atomicity,
    # no fsync (a crash loses half a second of counts, not the file).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
