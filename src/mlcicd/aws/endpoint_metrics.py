"""A SageMaker endpoint's metrics from CloudWatch, summarised as a local endpoint's are.

SageMaker publishes its endpoint metrics per minute in the namespace ``AWS/SageMaker``
with the dimensions ``EndpointName`` and ``VariantName``: ``Invocations``,
``Invocation4XXErrors`` and ``Invocation5XXErrors`` (counts: their Sum over the window),
``ModelLatency`` and ``OverheadLatency`` (microseconds: their p50, p90 and p99 over the
window, made milliseconds as the local summary shows them). The window is one CloudWatch
period of whole minutes (see :func:`metrics_window`), so every query has one datapoint at
most and CloudWatch computes each percentile over the whole window. Every query of every
variant (nine each) goes in one GetMetricData call — more only past its 500-query limit,
which SageMaker's ten production variants never reach.

Making the queries (:func:`metric_queries`) and reading their answer (:func:`summaries`)
are plain data; :func:`endpoint_metrics` calls CloudWatch. The metrics reach CloudWatch
about a minute after the requests, so a window under five minutes says so in its notes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlcicd.aws.alarms import NAMESPACE
from mlcicd.aws.clients import AwsClient
from mlcicd.errors import AwsError
from mlcicd.serving.metrics import COUNTERS, LATENCIES, PERCENTILES, variant_summary
from mlcicd.shapes import EndpointMetrics

MAX_QUERIES = 500  # GetMetricData's limit on MetricDataQueries per call
SHORT_WINDOW = 300.0  # seconds: below it, SageMaker's delay is worth a note
DELAY_NOTE = (
    "SageMaker's metrics reach CloudWatch about a minute late: a window under 5 minutes "
    "may not count the latest requests yet"
)
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException")
_ANSWERED = (None, "Complete", "PartialData")  # PartialData: the rest is on the next page
# The finest period CloudWatch answers for a window starting this long ago: it keeps
# minutes for 15 days, 5 minutes for 63, then hours.
_RESOLUTIONS = ((60, timedelta(days=15)), (300, timedelta(days=63)), (3600, None))


@dataclass(frozen=True)
class MetricsWindow:
    """GetMetricData's StartTime and EndTime: one period, aligned on it."""

    start: datetime
    end: datetime

    @property
    def period(self) -> int:
        return int((self.end - self.start).total_seconds())


def metrics_window(seconds: float, now: datetime) -> MetricsWindow:
    """The period covering the last ``seconds`` before ``now``: whole minutes (whole 5 minutes
    or hours once it starts more than 15 or 63 days ago), ending at the next whole one — so
    CloudWatch, which aligns a query's start on its resolution, answers one datapoint."""
    for step, kept in _RESOLUTIONS:
        end = datetime.fromtimestamp(math.ceil(now.timestamp() / step) * step, UTC)
        start = end - timedelta(seconds=max(1, math.ceil(seconds / step)) * step)
        if kept is None or now - start <= kept:
            break
    return MetricsWindow(start, end)


def variant_names(described: Mapping[str, Any]) -> list[str]:
    """The variants DescribeEndpoint names: production ones, then shadow ones (whose requests
    SageMaker counts under their own VariantName, as the local endpoint does)."""
    names = [v["VariantName"] for v in described.get("ProductionVariants") or []]
    names += [v["VariantName"] for v in described.get("ShadowProductionVariants") or []]
    return list(dict.fromkeys(names))


def _query_id(index: int, metric: str, stat: str) -> str:
    return f"v{index}_{metric.lower()}_{stat.lower()}"  # a lowercase letter first, as asked


def _stats() -> Iterator[tuple[str, str]]:
    """Each (metric, statistic) a variant is asked for."""
    for metric in COUNTERS:
        yield metric, "Sum"
    for metric in LATENCIES:
        for label, _ in PERCENTILES:
            yield metric, label


def metric_queries(endpoint: str, variants: Sequence[str], period: int) -> list[dict[str, Any]]:
    """GetMetricData's MetricDataQueries: each variant's counts and percentiles over ``period``."""
    queries = []
    for index, variant in enumerate(variants):
        dimensions = [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ]
        for metric, stat in _stats():
            queries.append(
                {
                    "Id": _query_id(index, metric, stat),
                    "ReturnData": True,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": metric,
                            "Dimensions": dimensions,
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                }
            )
    return queries


def batches(queries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``queries`` in as few GetMetricData calls as its limit allows (one, for an endpoint)."""
    return [list(queries[i : i + MAX_QUERIES]) for i in range(0, len(queries), MAX_QUERIES)]


def summaries(
    variants: Sequence[str], values: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, Any]]:
    """Each variant's summary from GetMetricData's values by query Id; a query without
    datapoints (no requests in the window) counts 0, and its percentile is None."""
    out = {}
    for index, variant in enumerate(variants):
        counts = {m: round(sum(values.get(_query_id(index, m, "Sum"), ()))) for m in COUNTERS}
        latencies: dict[str, float | None] = {}
        for metric in LATENCIES:
            for label, _ in PERCENTILES:
                found = values.get(_query_id(index, metric, label))
                # One period, so one value; were there more, the highest bounds them all.
                latencies[f"{metric}{label}"] = max(found) if found else None
        out[variant] = variant_summary(counts, latencies)
    return dict(sorted(out.items()))


def read_values(
    cloudwatch: AwsClient, queries: Sequence[dict[str, Any]], window: MetricsWindow
) -> tuple[dict[str, list[float]], list[str]]:
    """Each query's values by Id, and a note for each answer CloudWatch could not complete."""
    values: dict[str, list[float]] = {}
    incomplete: set[str] = set()
    for batch in batches(queries):
        pages = cloudwatch.paginate(
            "get_metric_data",
            MetricDataQueries=batch,
            StartTime=window.start,
            EndTime=window.end,
            ScanBy="TimestampAscending",
        )
        for page in pages:
            for result in page.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(
                    float(v) for v in result.get("Values", [])
                )
                status = result.get("StatusCode")
                if status not in _ANSWERED:
                    incomplete.add(str(status))
    notes = [
        f"CloudWatch answered {status} for some metrics: those may be short"
        for status in sorted(incomplete)
    ]
    return values, notes


def endpoint_metrics(
    cloudwatch: AwsClient,
    described: Mapping[str, Any],
    window: float | None,
    now: datetime | None = None,
) -> EndpointMetrics:
    """The summary of the endpoint DescribeEndpoint ``described`` over the last ``window``
    seconds (None: since it was created). ``AwsError`` naming cloudwatch:GetMetricData when
    the credentials may not read the metrics."""
    name = str(described["EndpointName"])
    now = now or datetime.now(UTC)
    seconds = window
    if not seconds:
        created = described.get("CreationTime")
        seconds = (now - created).total_seconds() if isinstance(created, datetime) else 0.0
    span = metrics_window(seconds, now)
    variants = variant_names(described)
    try:
        values, notes = read_values(cloudwatch, metric_queries(name, variants, span.period), span)
    except AwsError as exc:
        if exc.code not in _ACCESS_DENIED:
            raise
        raise AwsError(
            f"endpoint {name}: CloudWatch refused its metrics ({exc.code}: {exc.aws_message})",
            code=exc.code,
            aws_message=exc.aws_message,
            operation=exc.operation,
            hint="the credentials in use need the permission cloudwatch:GetMetricData",
        ) from exc
    if window and window < SHORT_WINDOW:
        notes.insert(0, DELAY_NOTE)
    return {
        "endpoint": name,
        "window_seconds": window,
        "variants": summaries(variants, values),
        "counters": {},
        "notes": notes,
    }


__all__ = [
    "DELAY_NOTE",
    "MAX_QUERIES",
    "MetricsWindow",
    "batches",
    "endpoint_metrics",
    "metric_queries",
    "metrics_window",
    "summaries",
    "variant_names",
]
