"""The ASGI app of one worker: SageMaker's container contract plus the Runtime API path.

    GET  /ping                              200 once the model is loaded
    GET  /metrics                           every worker's counts, Prometheus text format
    GET  /execution-parameters              what a batch transform may send: concurrency,
                                            batch strategy, payload size (SageMaker's ask)
    POST /invocations                       the container contract; errors keep their status
    POST /endpoints/{name}/invocations      what ``boto3 sagemaker-runtime invoke_endpoint``
                                            calls; errors take SageMaker Runtime's shape

On the Runtime path a failure inside the model's container (any 4xx/5xx the handlers
produce) is answered as SageMaker answers it: 424 ``ModelError`` with ``OriginalStatusCode``
and ``OriginalMessage``; a request SageMaker itself would refuse (unknown endpoint or
variant) is a 400 ``ValidationError``; an oversized body a 413. Both carry
``x-amzn-RequestId`` and ``x-amzn-ErrorType``, from which botocore picks the exception class.

Raw ASGI on purpose: the hot path is headers → body → handlers → one response, with every
lookup that can be made once (content types, Accept negotiation, variant table) cached.
Prediction runs on the event loop thread: a worker is one core's worth of model. A handler
that never returns stalls the whole worker; :mod:`mlcicd.serving.watchdog` answers for it.

Traffic is split here, in the worker, with no proxy: a :class:`~mlcicd.serving.fleet.Fleet`
is one endpoint config's production variants with their weights; during a canary or linear
update the worker holds two fleets, the serving config's (``blue``) and the new one, and
``green_share`` of requests go to the new one. Data capture and the shadow variant happen
after the response is sent, through bounded queues. The shapes of the answers, errors
included, are :mod:`mlcicd.serving.responses`'s.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from time import perf_counter
from typing import Any

import orjson

from mlcicd.serving import batching, codecs, responses
from mlcicd.serving import metrics as metrics_files
from mlcicd.serving.capture import CaptureWriter
from mlcicd.serving.codecs import BadRequestError, InvocationError, PayloadTooLargeError
from mlcicd.serving.config import DEFAULT_MAX_PAYLOAD_BYTES
from mlcicd.serving.explanations import ENABLE_EXPLANATIONS, EXPLAINER_HEADER
from mlcicd.serving.fleet import Fleet
from mlcicd.serving.handlers import InvocationContext, LoadedVariant, describe_exception
from mlcicd.serving.metrics import VariantMetrics
from mlcicd.serving.responses import BODY, INVOKED_VARIANT, JSON_HEADER, Headers, Send, respond
from mlcicd.serving.watchdog import IN_HANDLERS

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
INFERENCE_ID = b"x-amzn-sagemaker-inference-id"
# A refused body is still read to its end by uvicorn, but discarded (never held), so the client
# gets its 413 rather than a reset mid-upload and the connection stays usable. Past this
# declared size that is not worth it: the connection is closed instead.
_DISCARD_LIMIT = 64 * 1024 * 1024
_CACHE_SIZE = 256
_PROMETHEUS_HEADER = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_UNSEEN = object()


class InferenceApp:
    """One worker's answer to every request; never raises into the server."""

    def __init__(
        self,
        variants: Sequence[LoadedVariant],
        *,
        endpoint_name: str | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        default_accept: str | None = None,
        logger: logging.Logger | None = None,
        log_hint: str = "the endpoint log",
        config_name: str = "",
        metrics: metrics_files.WorkerMetrics | None = None,
        blue: tuple[str, Sequence[LoadedVariant]] | None = None,
        green_share: float = 1.0,
        capture: CaptureWriter | None = None,
        shadow: Any = None,  # a ShadowRunner
        explainers: Mapping[LoadedVariant, Any] | None = None,  # OnlineExplainer per variant
        workers: int = 1,
    ) -> None:
        self.metrics = metrics or metrics_files.WorkerMetrics(endpoint_name or "", None, "0")
        self.fleet = Fleet(config_name, variants, self.metrics)
        self.variants = self.fleet.variants
        self.blue = Fleet(blue[0], blue[1], self.metrics) if blue is not None else None
        self.green_share = green_share
        self.capture = capture
        self.shadow = shadow
        # Built at load (serving.explanations); only a request asking for one reaches them.
        self.explainers = dict(explainers or {})
        self.endpoint_name = endpoint_name
        self.max_payload_bytes = max_payload_bytes
        self.default_accept = default_accept or os.environ.get(
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", codecs.JSON
        )
        self.log = logger or logging.getLogger("mlcicd.serving")
        self.log_hint = log_hint
        self.healthy = True  # the variants are loaded before the app exists
        self.draining = False  # set on shutdown: answer with `connection: close`
        self._media_cache: dict[bytes | None, str] = {}
        self._accept_cache: dict[tuple[bytes | None, bool], object] = {}
        self._type_headers: dict[str, bytes] = {}
        self._id_prefix = str(uuid.uuid4())[:24]
        self._execution_parameters = execution_parameters(workers, max_payload_bytes)
        self._ids = itertools.count(1)

    # -- the ASGI entry point -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off and websockets are not served
        path = scope["path"]
        method = scope["method"]
        try:
            if path == "/invocations":
                if method == "POST":
                    await self._invoke(scope, receive, send, None)
                else:
                    await responses.plain_error(
                        send, 405, f"{method} {path}: use POST", close=self.draining, allow=b"POST"
                    )
            elif path == "/metrics":
                await self._metrics(send)
            elif path == "/ping" or path == "/execution-parameters":
                if method not in ("GET", "HEAD"):
                    await responses.plain_error(
                        send,
                        405,
                        f"{method} {path}: use GET",
                        close=self.draining,
                        allow=b"GET, HEAD",
                    )
                elif path == "/ping":
                    await self._ping(send)
                else:
                    body = self._execution_parameters
                    headers = [JSON_HEADER, (b"content-length", str(len(body)).encode())]
                    await respond(send, 200, headers, body, self.draining)
            elif (
                path.startswith("/endpoints/") and path.endswith("/invocations") and len(path) > 23
            ):
                if method == "POST":
                    await self._invoke(scope, receive, send, path[11:-12])
                else:
                    await responses.plain_error(
                        send, 405, f"{method} {path}: use POST", close=self.draining, allow=b"POST"
                    )
            else:
                await responses.plain_error(
                    send,
                    404,
                    f"no such path {path!r}: use GET /ping or POST /invocations",
                    close=self.draining,
                )
        except Exception as exc:  # a bug of ours: answer, log, keep serving
            self.log.exception("internal error answering %s %s", method, path)
            try:
                await responses.plain_error(
                    send,
                    500,
                    f"internal server error: {describe_exception(exc)}",
                    close=self.draining,
                )
            except Exception:
                self.log.debug("could not send the 500 response", exc_info=True)

    # -- routes ---------------------------------------------------------------------------

    def set_weights(self, config_name: str, weights: Mapping[str, float]) -> None:
        """``mlcicd endpoints set-weights``: new weights for the fleet of ``config_name``."""
        for fleet in (self.fleet, self.blue):
            if fleet is not None and fleet.config_name == config_name:
                fleet.set_weights(weights)

    async def _metrics(self, send: Send) -> None:
        own = self.metrics.snapshot()
        directory = self.metrics.directory
        summed = (
            metrics_files.read_all(directory, live=own) if directory else metrics_files.merge([own])
        )
        body = metrics_files.prometheus(summed, self.endpoint_name or "")
        headers = [_PROMETHEUS_HEADER, (b"content-length", str(len(body)).encode())]
        await respond(send, 200, headers, body, self.draining)

    async def _ping(self, send: Send) -> None:
        if self.healthy:
            await respond(send, 200, [JSON_HEADER, (b"content-length", b"2")], b"{}", self.draining)
        else:
            await responses.plain_error(send, 503, "the model is not loaded", close=self.draining)

    async def _invoke(
        self, scope: Scope, receive: Receive, send: Send, runtime_name: str | None
    ) -> None:
        arrived = perf_counter()
        runtime = runtime_name is not None
        request_id = f"{self._id_prefix}{next(self._ids):012x}" if runtime else None

        content_type = accept = length = attributes = target = inference_id = explain = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"content-length":
                length = value
            elif name == CUSTOM_ATTRIBUTES:
                attributes = value
            elif name == TARGET_VARIANT:
                target = value
            elif name == INFERENCE_ID:
                inference_id = value
            elif name == ENABLE_EXPLANATIONS:
                explain = value

        # The variant by weight (the fleet first, during a canary); counted from here on.
        fleet = self.fleet
        if self.blue is not None and random.random() >= self.green_share:
            fleet = self.blue
        variant = fleet.pick()
        vmetrics = fleet.metrics[variant.name]
        vmetrics.invocations += 1

        if runtime and self.endpoint_name is not None and runtime_name != self.endpoint_name:
            vmetrics.errors_4xx += 1
            await responses.validation_error(
                send,
                400,
                f"Endpoint {runtime_name} of account local not found.",
                request_id,
                close=self.draining,
            )
            return

        # The body, refused as soon as it is known to be too large.
        limit = self.max_payload_bytes
        declared = _int(length)
        if declared is not None and declared > limit:
            vmetrics.errors_4xx += 1
            await self._too_large(
                send, declared, runtime, request_id, close=declared > _DISCARD_LIMIT
            )
            return
        body: bytes | None = scope.get(BODY)  # the direct path read it whole already
        if body is None:
            body = await self._receive(receive, send, vmetrics, runtime, request_id)
            if body is None:
                return
        if len(body) > limit:
            vmetrics.errors_4xx += 1
            await self._too_large(send, len(body), runtime, request_id, close=False)
            return

        if target is not None:  # the variant asked for, in the fleet drawn, else in the other
            wanted = target.decode("latin-1")
            chosen = fleet.by_name.get(wanted)
            if chosen is None and self.blue is not None:
                fleet = self.blue if fleet is self.fleet else self.fleet
                chosen = fleet.by_name.get(wanted)
            if chosen is None:
                vmetrics.errors_4xx += 1
                await responses.validation_error(
                    send,
                    400,
                    f"Variant {wanted} does not exist for endpoint {runtime_name or ''}.".rstrip(),
                    request_id,
                    close=self.draining,
                )
                return
            if chosen is not variant:
                vmetrics.invocations -= 1
                variant, vmetrics = chosen, fleet.metrics[chosen.name]
                vmetrics.invocations += 1

        # Should the handlers stall the loop, the watchdog answers 504 with these metrics.
        scope[IN_HANDLERS] = vmetrics
        context = None
        if variant.handlers.wants_context:
            context = InvocationContext(
                variant=variant.name,
                custom_attributes=attributes.decode("latin-1") if attributes is not None else None,
                request_id=request_id,
            )
        started = perf_counter()
        try:
            media = self._media(content_type)
            answer_type = self._accept(accept, variant.handlers.default_output)
            if explain is not None:  # off the hot path: Clarify's answer, with attributions
                out, out_type = self._explained(variant, body, media, answer_type, context, explain)
            elif (batcher := batching.batcher_for(variant)) is None:
                out, out_type = variant.invoke(body, media, answer_type, context)
            else:  # Batcher.invoke's steps, one coroutine less per request
                data = variant.read_input(body, media, context)
                hop = batcher.place(data)
                prediction = variant.predict(data, context) if hop is None else await hop
                out, out_type = variant.write_output(prediction, answer_type, context)
        except InvocationError as exc:
            vmetrics.error(exc.status)
            self._log_failure(scope, variant.name, request_id, exc)
            if runtime:
                await responses.model_error(
                    send, exc, request_id, log_hint=self.log_hint, close=self.draining
                )
            else:
                await responses.error(
                    send,
                    exc.status,
                    exc.error_type,
                    exc.message,
                    close=self.draining,
                    variant=fleet.header[variant.name],
                )
            return
        latency = perf_counter() - started

        headers: Headers = [
            (b"content-type", self._type_header(out_type)),
            (b"content-length", str(len(out)).encode()),
            (INVOKED_VARIANT, fleet.header[variant.name]),
        ]
        if explain is not None:
            headers.append((EXPLAINER_HEADER, self.explainers[variant].header))
        if runtime:
            headers.append((b"x-amzn-requestid", (request_id or "").encode()))
        if context is not None and context.response_custom_attributes is not None:
            value = context.response_custom_attributes
            if value.isascii() and value.isprintable():
                headers.append((CUSTOM_ATTRIBUTES, value.encode()))
            else:
                self.log.warning(
                    "dropped custom attributes that are not printable ASCII: %r", value
                )
        vmetrics.observe(latency, perf_counter() - arrived - latency)
        await respond(send, 200, headers, out, self.draining)

        # Off the hot path: the answer is sent; both only queue (bounded) and never raise.
        capture, shadow = self.capture, self.shadow
        if capture is not None or shadow is not None:
            iid = inference_id.decode("latin-1") if inference_id is not None else request_id
            if capture is not None and capture.sampled():
                capture.offer((variant.name, iid, time.time(), media, body, out_type, out, None))
            if shadow is not None and fleet is self.fleet and explain is None:
                shadow.offer((iid, body, media, answer_type, variant.name, out, out_type))

    async def _receive(
        self,
        receive: Receive,
        send: Send,
        vmetrics: VariantMetrics,
        runtime: bool,
        request_id: str | None,
    ) -> bytes | None:
        """The body from ASGI messages, refused (413, None) once past the limit; None when
        the client went away."""
        limit = self.max_payload_bytes
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            parts = [body]
            size = len(body)
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    vmetrics.errors_4xx += 1
                    await self._too_large(send, size, runtime, request_id, close=False)
                    return None
                parts.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(parts)
        return body

    def _explained(
        self,
        variant: LoadedVariant,
        body: bytes,
        media: str,
        accept: str,
        context: InvocationContext | None,
        expression: bytes,
    ) -> tuple[bytes, str]:
        explainer = self.explainers.get(variant)
        if explainer is None:
            raise BadRequestError(
                f"endpoint {self.endpoint_name or ''} has no explainer: its endpoint config "
                "carries no ClarifyExplainerConfig (explain.online is off, or the model was "
                "not explained at register: the deploy log says which)"
            )
        answer = explainer.explain(body, media, accept, expression.decode("latin-1"), context)
        return answer, codecs.JSON

    # -- once-per-value lookups -----------------------------------------------------------

    def _media(self, header: bytes | None) -> str:
        media = self._media_cache.get(header)
        if media is None:
            media = codecs.media_type(header.decode("latin-1") if header else None) or codecs.JSON
            _remember(self._media_cache, header, media)
        return media

    def _accept(self, header: bytes | None, default_output: bool) -> str:
        key = (header, default_output)
        cached = self._accept_cache.get(key, _UNSEEN)
        if isinstance(cached, str):
            return cached
        text = header.decode("latin-1") if header is not None else None
        if cached is None:  # remembered as not acceptable
            raise codecs.NotAcceptableError(
                f"cannot answer with any type in Accept: {text!r}; supported: "
                f"{', '.join(codecs.SUPPORTED)}"
            )
        try:
            if default_output:
                choice = codecs.negotiate(text, self.default_accept)
            else:
                choice = codecs.preferred_accept(text, self.default_accept)
        except codecs.NotAcceptableError:
            _remember(self._accept_cache, key, None)
            raise
        _remember(self._accept_cache, key, choice)
        return choice

    def _type_header(self, content_type: str) -> bytes:
        value = self._type_headers.get(content_type)
        if value is None:
            value = content_type.encode("latin-1")
            _remember(self._type_headers, content_type, value)
        return value

    # -- errors ---------------------------------------------------------------------------

    def _log_failure(
        self, scope: Scope, variant: str, request_id: str | None, exc: InvocationError
    ) -> None:
        rid = f" request={request_id}" if request_id else ""
        level = logging.ERROR if exc.status >= 500 else logging.WARNING
        self.log.log(
            level,
            "%s %s -> %d variant=%s%s: %s",
            scope["method"],
            scope["path"],
            exc.status,
            variant,
            rid,
            exc.message,
        )

    async def _too_large(
        self, send: Send, size: int, runtime: bool, request_id: str | None, *, close: bool
    ) -> None:
        exc = PayloadTooLargeError(
            f"request body of {size} bytes is larger than the limit of {self.max_payload_bytes} "
            "bytes"
        )
        self.log.warning("POST invocations -> 413: %s", exc.message)
        if runtime:
            await responses.validation_error(
                send, 413, exc.message, request_id, close=close or self.draining
            )
        else:
            await responses.error(
                send, 413, exc.error_type, exc.message, close=close or self.draining
            )


def execution_parameters(workers: int, max_payload_bytes: int) -> bytes:
    """``GET /execution-parameters``, as SageMaker's containers answer it: a batch transform
    job left at ``MaxConcurrentTransforms=0`` asks the container how to send its records.

    One request at a time per worker is what keeps every core busy (each worker predicts on
    its own loop, micro-batching what arrives together), ``workers`` being as many as the
    endpoint may run (with autoscaling, ``max_instances``: a transform held to today's count
    would never load it enough to scale out); records may be sent several to a
    request (the codecs take many rows, CSV lines or JSON Lines: ``MULTI_RECORD``); and a
    payload as large as the endpoint accepts, in whole MB (at least 1: 0 would mean
    "unlimited, chunked" to SageMaker).
    """
    return orjson.dumps(
        {
            "MaxConcurrentTransforms": max(1, workers),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, max_payload_bytes // (1024 * 1024)),
        }
    )


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:  # headers are client-controlled: keep the cache bounded
        cache.clear()
    cache[key] = value
