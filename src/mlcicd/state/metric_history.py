"""Endpoint metrics per minute: what an endpoint's ``/metrics`` counts, kept for a week.

`mlcicd up` samples each endpoint served on this machine (:mod:`mlcicd.daemon.endpoint_watch`)
and writes one row per (endpoint, minute, variant): invocations, 4XX and 5XX, p50/p99 model
latency and overhead, and the variant's share of the traffic. A minute's row is rewritten
while the minute lasts, so the newest point is live. Rows older than :data:`KEEP` are pruned
as new ones come: the table stays bounded (about 10,000 rows a week per variant) without a
Prometheus, and ``/metrics`` stays as it is for those who have one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcicd.state.db import Tables

KEEP = 7 * 86400.0  # seconds of history kept


@dataclass
class MinuteMetrics:
    """One variant of one endpoint in one minute."""

    endpoint: str
    minute: int
    variant: str
    invocations: int
    errors_4xx: int
    errors_5xx: int
    model_p50_ms: float | None = None
    model_p99_ms: float | None = None
    overhead_p50_ms: float | None = None
    overhead_p99_ms: float | None = None
    share: float | None = None
    shift_percent: float | None = None


class MetricHistory(Tables):
    """Per-minute endpoint metrics."""

    def record_endpoint_minute(self, rows: list[MinuteMetrics], *, now: float) -> None:
        """Write (or rewrite) ``rows`` and prune what is older than :data:`KEEP` before
        ``now``; one transaction."""
        with self.db.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO endpoint_metrics VALUES (:endpoint, :minute, :variant,"
                " :invocations, :errors_4xx, :errors_5xx, :model_p50_ms, :model_p99_ms,"
                " :overhead_p50_ms, :overhead_p99_ms, :share, :shift_percent)",
                [row.__dict__ for row in rows],
            )
            for endpoint in {row.endpoint for row in rows}:
                db.execute(
                    "DELETE FROM endpoint_metrics WHERE endpoint=? AND minute<?",
                    (endpoint, int(now - KEEP)),
                )

    def endpoint_metric_history(
        self, endpoint: str, *, since: float, until: float | None = None, bucket: int = 60
    ) -> list[MinuteMetrics]:
        """The endpoint's minutes from ``since`` (to ``until``), oldest first; with ``bucket``
        (seconds, a multiple of 60) longer than a minute, each variant's minutes summed into
        buckets from ``since``: counts added, p50s averaged by invocations, the worst p99, the
        last share — a week fits a chart in a few hundred rows, summed by SQLite."""
        until = until if until is not None else 2**62
        if bucket <= 60:
            return self.db.all(
                MinuteMetrics,
                "SELECT * FROM endpoint_metrics WHERE endpoint=? AND minute>=? AND minute<=?"
                " ORDER BY minute, variant",
                endpoint,
                int(since),
                int(until),
            )
        start = int(since)
        return self.db.all(
            MinuteMetrics,
            "SELECT endpoint, ? + (minute - ?) / ? * ? AS minute, variant,"
            " SUM(invocations) AS invocations, SUM(errors_4xx) AS errors_4xx,"
            " SUM(errors_5xx) AS errors_5xx,"
            " SUM(model_p50_ms * invocations) / NULLIF(SUM(CASE WHEN model_p50_ms IS NULL"
            " THEN 0 ELSE invocations END), 0) AS model_p50_ms,"
            " MAX(model_p99_ms) AS model_p99_ms,"
            " SUM(overhead_p50_ms * invocations) / NULLIF(SUM(CASE WHEN overhead_p50_ms IS NULL"
            " THEN 0 ELSE invocations END), 0) AS overhead_p50_ms,"
            " MAX(overhead_p99_ms) AS overhead_p99_ms,"
            " AVG(share) AS share, MAX(shift_percent) AS shift_percent"
            " FROM endpoint_metrics WHERE endpoint=? AND minute>=? AND minute<=?"
            " GROUP BY 2, variant ORDER BY 2, variant",
            start,
            start,
            int(bucket),
            int(bucket),
            endpoint,
            start,
            int(until),
        )
