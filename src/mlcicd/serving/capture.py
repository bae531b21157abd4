"""Data capture (SageMaker's ``DataCaptureConfig``): sampled requests and responses as JSON Lines.

The request path only draws a random number and, when sampled, puts a tuple of references
on a bounded queue (``put_nowait``: when full, the record is dropped and counted as
``CaptureDropped``). A thread encodes the records and writes one complete file per folder
per second at most, through the artifact store — to a directory (temp file, then rename) or
to an ``s3://`` destination (one PutObject per file: an object is never appended to) — laid
out as SageMaker lays out S3:

    <destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/<mm-ss-mmm>-<worker>.jsonl

The name is the file's first record's time, kept increasing per writer, so no file or
object is ever overwritten. A write that fails (a full disk; on S3 a missing bucket,
credentials, the network, after the client's own retries — short ones, see
``S3_TIMEOUTS``) drops that file's records and
counts them as ``CaptureDropped`` too, with a warning in the log (at most one a minute,
with how many were dropped); the thread goes on with the next file, the requests never
notice. What waits in memory is bounded by the queue and ``FILE_RECORDS`` per folder.

Each line has SageMaker's capture record shape::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data",
                                       "encoding": "JSON" | "CSV" | "BASE64"},
                     "endpointOutput": {... "mode": "OUTPUT"}},
     "eventMetadata": {"eventId", "inferenceId", "inferenceTime", "variant"},
     "eventVersion": "0"}
"""

from __future__ import annotations

import base64
import logging
import queue
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mlcicd.errors import MlcicdError
from mlcicd.serving.background import STOP, BackgroundQueue
from mlcicd.serving.config import CaptureSpec
from mlcicd.store import ArtifactStore, LocalArtifactStore, S3ArtifactStore

log = logging.getLogger("mlcicd.serving.capture")

FLUSH_INTERVAL = 1.0
FILE_RECORDS = 1000
WARN_INTERVAL = 60.0  # seconds between two warnings of failed writes

# The S3 client's (connect s, read s, attempts), not botocore's 60 s, 60 s and 6 attempts.
# One thread writes: while a PutObject waits, records pile up in the bounded queue and
# beyond it are dropped, for as long as it waits. Where there is a route S3 accepts a
# connection in milliseconds, so 2 s gives up only on one that is not coming; a capture file
# is small (at most FILE_RECORDS records) and S3 answers its PutObject in well under a
# second, so 10 s without a byte back (a limit per socket read, not on the whole request) is
# a stalled request; the second attempt absorbs a throttle, a 5xx or a dropped connection.
# A file then fails in about 5 s when S3 is unreachable (about 20 s when it stalls) instead
# of 6 minutes and more, and the next file tries afresh.
S3_TIMEOUTS = (2.0, 10.0, 2)


# (variant, inference id, time, input type, input, output type, output, extra metadata)
Record = tuple[str, str | None, float, str, bytes, str | None, bytes | None, dict[str, Any] | None]


def capture_store(destination: str) -> ArtifactStore:
    """The store capture files go to: S3 under an ``s3://`` destination, else a directory."""
    if destination.startswith("s3://"):
        # Imported only here: a worker that captures to a directory never loads mlcicd.aws.
        from mlcicd.aws.clients import Timeouts

        connect, read, attempts = S3_TIMEOUTS
        return S3ArtifactStore(destination, timeouts=Timeouts(connect, read, attempts))
    return LocalArtifactStore(Path(destination))


class CaptureWriter(BackgroundQueue):
    """A bounded queue and the thread that empties it into files."""

    def __init__(self, spec: CaptureSpec, endpoint: str, worker_id: str, on_drop: Any) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.worker_id = worker_id
        self.rate = spec.sampling_percentage / 100.0
        self.written = 0
        self.failed = 0  # records dropped because their file could not be written
        self.store = capture_store(spec.destination)
        self._last_ms = 0
        self._warned_at: float | None = None
        self._unreported = 0
        if isinstance(self.store, S3ArtifactStore):
            try:  # boto3 imported and the client made now, before serving, not on first flush
                _ = self.store.client
            except MlcicdError as exc:
                log.warning("data capture to %s will fail: %s", spec.destination, exc.headline)
        super().__init__("data-capture", on_drop, spec.queue_size)

    def sampled(self) -> bool:
        return self.rate >= 1.0 or random.random() < self.rate

    def _run(self) -> None:
        pending: dict[str, tuple[float, list[bytes]]] = {}  # folder: (first record's time, lines)
        deadline = time.monotonic() + FLUSH_INTERVAL
        stop = False
        while not stop:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is STOP:
                stop = True
            elif item is not None:
                try:
                    path, line = self._encode(item)
                except Exception:  # a record we cannot encode must not stop the thread
                    log.exception("could not encode a capture record")
                    continue
                pending.setdefault(path, (item[2], []))[1].append(line)
            full = any(len(lines) >= FILE_RECORDS for _, lines in pending.values())
            if pending and (stop or full or time.monotonic() >= deadline):
                self._flush(pending)
                pending = {}
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + FLUSH_INTERVAL

    def _encode(self, record: Record) -> tuple[str, bytes]:
        variant, inference_id, when, in_type, body, out_type, out, extra = record
        stamp = datetime.fromtimestamp(when, UTC)
        data: dict[str, Any] = {}
        if self.spec.capture_input:
            data["endpointInput"] = _payload(in_type, body, "INPUT")
        if self.spec.capture_output and out is not None:
            data["endpointOutput"] = _payload(out_type or "", out, "OUTPUT")
        metadata: dict[str, Any] = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "variant": variant,
        }
        if inference_id:
            metadata["inferenceId"] = inference_id
        if extra:
            metadata.update(extra)
        line = orjson.dumps({"captureData": data, "eventMetadata": metadata, "eventVersion": "0"})
        folder = f"{self.endpoint}/{variant}/{stamp:%Y/%m/%d/%H}"
        return folder, line + b"\n"

    def _flush(self, pending: dict[str, tuple[float, list[bytes]]]) -> None:
        for folder, (first, lines) in pending.items():
            name = self._name(first)
            try:
                self.store.put_bytes(b"".join(lines), folder, name)
            except Exception as exc:  # a failed write must not end the thread
                where = f"{self.spec.destination.rstrip('/')}/{folder}/{name}"
                self._dropped(len(lines), where, exc)
            else:
                self.written += len(lines)

    def _name(self, first: float) -> str:
        """A file's name: its first record's time (so within its hour's folder), made later
        than every name this writer gave before, so that none is ever reused."""
        ms = max(int(first * 1000), self._last_ms + 1)
        self._last_ms = ms
        seconds, millis = divmod(ms, 1000)
        return f"{datetime.fromtimestamp(seconds, UTC):%M-%S}-{millis:03d}-{self.worker_id}.jsonl"

    def _dropped(self, count: int, where: str, exc: Exception) -> None:
        """Count the records of a file that could not be written; warn now and then. The
        warning comes before the count: whoever waits on the drop count (the worker's metrics,
        a test) then finds the reason already in the log."""
        self.failed += count
        self._unreported += count
        self._warn(where, exc)
        for _ in range(count):
            self.on_drop()

    def _warn(self, where: str, exc: Exception) -> None:
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < WARN_INTERVAL:
            return
        self._warned_at = now
        expected = isinstance(exc, (MlcicdError, OSError))
        reason = exc.headline if isinstance(exc, MlcicdError) else str(exc)
        log.warning(
            "could not write %s: %s; %d capture record(s) dropped since the last warning",
            where,
            reason,
            self._unreported,
            exc_info=not expected,
        )
        self._unreported = 0


def _payload(content_type: str, body: bytes, mode: str) -> dict[str, Any]:
    media = content_type.split(";", 1)[0].strip().lower()
    encoding = "BASE64"
    data: str
    if media in ("application/json", "application/jsonlines", "text/csv"):
        try:
            data = body.decode("utf-8")
            encoding = "CSV" if media == "text/csv" else "JSON"
        except UnicodeDecodeError:
            data = base64.b64encode(body).decode()
    else:
        data = base64.b64encode(body).decode()
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}
