"""Data capture (SageMaker's ``DataCaptureConfig``): sampled requests and responses as JSON Lines.

The request path only draws a random number and, when sampled, puts a tuple of references
on a bounded queue (``put_nowait``: when full, the record is dropped and counted as
``CaptureDropped``). A thread encodes the records and writes one complete file (atomic
rename) per second at most, laid out as SageMaker lays out S3:

    <destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/<mm-ss-mmm>-<worker>.jsonl

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
import os
import queue
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mlcicd.serving.background import STOP, BackgroundQueue
from mlcicd.serving.config import CaptureSpec

log = logging.getLogger("mlcicd.serving.capture")

FLUSH_INTERVAL = 1.0
FILE_RECORDS = 1000


# (variant, inference id, time, input type, input, output type, output, extra metadata)
Record = tuple[str, str | None, float, str, bytes, str | None, bytes | None, dict[str, Any] | None]


class CaptureWriter(BackgroundQueue):
    """A bounded queue and the thread that empties it into files."""

    def __init__(self, spec: CaptureSpec, endpoint: str, worker_id: str, on_drop: Any) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.worker_id = worker_id
        self.rate = spec.sampling_percentage / 100.0
        self.written = 0
        super().__init__("data-capture", on_drop, spec.queue_size)

    def sampled(self) -> bool:
        return self.rate >= 1.0 or random.random() < self.rate

    def _run(self) -> None:
        pending: dict[str, list[bytes]] = {}
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
                pending.setdefault(path, []).append(line)
            full = any(len(lines) >= FILE_RECORDS for lines in pending.values())
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

    def _flush(self, pending: dict[str, list[bytes]]) -> None:
        now = datetime.now(UTC)
        for folder, lines in pending.items():
            directory = Path(self.spec.destination) / folder
            name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{self.worker_id}.jsonl"
            try:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = directory / f".{name}.tmp"
                with open(tmp, "wb") as fh:
                    fh.writelines(lines)
                os.replace(tmp, directory / name)
                self.written += len(lines)
            except OSError as exc:
                log.warning(
                    "could not write %d capture record(s) to %s: %s", len(lines), directory, exc
                )


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
