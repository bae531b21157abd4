"""The shadow variant: a copy of live traffic, answered off the hot path and never returned.

After the production answer is sent, the request (body, types, the production answer) is put
on a bounded queue (full: dropped and counted as ``ShadowDropped``). One thread invokes the
shadow's handlers, counts its latency and errors under its own variant name (the metrics
show it beside the production variants), and writes a capture record holding both answers,
so ``jq`` can compare them line by line.
"""

from __future__ import annotations

import logging
import time
from time import perf_counter
from typing import Any

from mlcicd.serving.background import STOP, BackgroundQueue
from mlcicd.serving.capture import CaptureWriter
from mlcicd.serving.codecs import InvocationError
from mlcicd.serving.handlers import LoadedVariant, describe_exception
from mlcicd.serving.metrics import VariantMetrics

log = logging.getLogger("mlcicd.serving.shadow")

QUEUE_SIZE = 256

# (inference id, body, content type, accept, production variant, production answer, its type)
ShadowRequest = tuple[str | None, bytes, str, str, str, bytes, str]


class ShadowRunner(BackgroundQueue):
    def __init__(
        self,
        variant: LoadedVariant,
        metrics: VariantMetrics,
        capture: CaptureWriter,
        on_drop: Any,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.variant = variant
        self.metrics = metrics
        self.capture = capture
        super().__init__("shadow", on_drop, queue_size)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is STOP:
                return
            try:
                self._one(item)
            except Exception:  # never let one request end the shadow
                log.exception("shadow invocation failed unexpectedly")

    def _one(self, item: ShadowRequest) -> None:
        inference_id, body, content_type, accept, production, answer, answer_type = item
        metrics = self.metrics
        metrics.invocations += 1
        started = perf_counter()
        extra: dict[str, Any] = {"shadowOf": production}
        out: bytes | None
        try:
            out, out_type = self.variant.invoke(body, content_type, accept)
        except InvocationError as exc:
            metrics.error(exc.status)
            out, out_type = None, None
            extra["shadowError"] = {"status": exc.status, "message": exc.message}
        except Exception as exc:
            metrics.error(500)
            out, out_type = None, None
            extra["shadowError"] = {"status": 500, "message": describe_exception(exc)}
        latency = perf_counter() - started
        metrics.observe(latency, 0.0)
        extra["shadowModelLatencyMs"] = round(latency * 1000, 3)
        extra["productionOutput"] = {
            "observedContentType": answer_type,
            "data": answer.decode("utf-8", "replace"),
        }
        self.capture.offer(
            (self.variant.name, inference_id, time.time(), content_type, body, out_type, out, extra)
        )
