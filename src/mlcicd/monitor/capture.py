"""Reading what an endpoint captured: SageMaker's capture records, from a directory or S3.

Files are where the capture writers (mlcicd's, or SageMaker's under ``DestinationS3Uri``) put
them: ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, read through the
artifact store. Only the hours from ``since`` on are read, and only records whose
``inferenceTime`` is at or after ``since`` and before ``until``: two windows that meet share
no record (the scheduled checks of `mlcicd up` rely on it).

Nothing captured is trusted: a line that is not a capture record, has no ``endpointInput``
(output-only capture), no time or variant, or a body that cannot be read as rows is counted,
by reason, and skipped. Records a shadow variant wrote (``eventMetadata.shadowOf``) hold a copy
of a production request: they are counted apart and not analysed twice.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mlcicd.errors import ArtifactError
from mlcicd.monitor.dataset import Row, UnreadableBody, body_rows
from mlcicd.store import ArtifactStore, LocalArtifactStore, S3ArtifactStore

_HOUR_RE = re.compile(r"/(\d{4})/(\d\d)/(\d\d)/(\d\d)/[^/]+$")


@dataclass
class CapturedRecord:
    variant: str
    at: float  # inferenceTime, epoch seconds
    rows: list[Row]


@dataclass
class CaptureScan:
    """What was read: records in the window, and what was skipped, by reason."""

    destination: str
    files: int = 0
    lines: int = 0
    records: list[CapturedRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    shadow_copies: int = 0


def capture_store(destination: str) -> ArtifactStore:
    """The store a capture destination (a directory, or ``s3://bucket/prefix``) is read through."""
    if destination.startswith("s3://"):
        return S3ArtifactStore(destination)
    return LocalArtifactStore(Path(destination))


def read_capture(
    destination: str, endpoint: str, since: float, until: float | None = None
) -> CaptureScan:
    """Every readable input record ``endpoint`` captured under ``destination`` from ``since``
    (and before ``until``, when given)."""
    store = capture_store(destination)
    scan = CaptureScan(destination=destination)
    first_hour = datetime.fromtimestamp(since, UTC).replace(minute=0, second=0, microsecond=0)
    for uri in store.list_uris(endpoint):
        if not uri.endswith(".jsonl") or not _in_window(uri, first_hour):
            continue
        try:
            content = store.read_bytes(uri)
        except ArtifactError:  # removed since it was listed
            continue
        scan.files += 1
        for line in content.splitlines():
            if not line.strip():
                continue
            scan.lines += 1
            outcome = _record(line, since, until)
            if isinstance(outcome, CapturedRecord):
                scan.records.append(outcome)
            elif outcome == "shadow":
                scan.shadow_copies += 1
            elif outcome is not None:
                scan.skipped[outcome] += 1
    return scan


def _in_window(uri: str, first_hour: datetime) -> bool:
    match = _HOUR_RE.search(uri)
    if match is None:
        return True  # not in SageMaker's layout: read it, each record's time decides
    year, month, day, hour_of_day = (int(g) for g in match.groups())
    try:
        hour = datetime(year, month, day, hour_of_day, tzinfo=UTC)
    except ValueError:
        return True
    return hour >= first_hour


def _record(line: bytes, since: float, until: float | None) -> CapturedRecord | str | None:
    """A record in the window; None for one outside it; "shadow"; or why the line is skipped."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not a JSON line"
    if not isinstance(record, dict):
        return "not a capture record"
    metadata = record.get("eventMetadata")
    data = record.get("captureData")
    if not isinstance(metadata, dict) or not isinstance(data, dict):
        return "not a capture record"
    at = _time(metadata.get("inferenceTime"))
    if at is None:
        return "no inferenceTime"
    if at < since or (
        until is not None and at >= until
    ):  # [since, until): windows end to end share no record
        return None
    if "shadowOf" in metadata:
        return "shadow"
    variant = metadata.get("variant")
    if not isinstance(variant, str) or not variant:
        return "no variant"
    payload: Any = data.get("endpointInput")
    if not isinstance(payload, dict):
        return "no endpointInput (output only)"
    try:
        rows = body_rows(
            str(payload.get("observedContentType") or ""),
            str(payload.get("data", "")),
            str(payload.get("encoding") or ""),
        )
    except UnreadableBody as exc:
        return str(exc)
    if not rows:
        return "a body without rows"
    return CapturedRecord(variant=variant, at=at, rows=rows)


def _time(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


__all__ = ["CaptureScan", "CapturedRecord", "capture_store", "read_capture"]
