"""Adaptive micro-batching: concurrent requests to one variant share one ``predict_fn`` call.

Per-call overhead, not per-row work, dominates small models: scikit-learn's forest costs about
the same for 1 row as for 100. So requests that are in the worker at the same moment are
predicted together:

    request  → input_fn (its own task, on the event loop) → queue ──┐
    request  → input_fn → queue ────────────────────────────────────┤ next loop iteration:
    request  → input_fn → queue ────────────────────────────────────┘ one predict_fn call
    … each request gets its own rows of the answer back → output_fn (its own task)

The wait is adaptive and bounded: a flush is scheduled for the loop iteration after the first
queued request (``call_soon``), so a request waits for nothing but the requests that arrived
in the same instant — no timer, no added latency when the endpoint is idle, bigger batches
exactly when it is busy. ``MLCICD_BATCH_WAIT_MS`` adds a fixed collection window (default 0);
``MLCICD_MAX_BATCH`` bounds the rows of one call (default 256; a larger request goes alone).

Who is batched: variants with SageMaker's default ``predict_fn``, and inference scripts whose
``predict_fn`` declares it takes any number of rows and returns one answer per row, in order::

    def predict_fn(data, model):
        return model.predict(data)
    predict_fn.supports_batching = True

One answer per row: an array or a list with a row per input row, or a dict of such
columns (``{"predictions": [...], "probabilities": [...]}``), split key by key. A
``predict_fn`` that opts in is tried at load (:func:`check_batching`) on a sample of rows, in
one call and row by row: if the batch raises, or its answer is not those rows' answers, the
variant does not load — the mistake shows at deploy, not at the first busy second.

Never a ``predict_fn`` that takes the context argument (the context is per request) or a
``transform_fn``. Only 2-D numeric arrays with the same dtype and width are concatenated;
anything else is predicted alone. ``MLCICD_BATCHING=0`` turns batching off.

Failures stay with their request where possible: if the batched call raises or returns the
wrong number of rows, every request of the batch is predicted again on its own, so a bad
row fails only the request that sent it. The flush never raises into the event loop: every
queued future is resolved, with an answer or an error, so no request can hang on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import numpy as np

from mlcicd.compiler import probe_rows
from mlcicd.errors import EndpointError
from mlcicd.serving.codecs import InvocationError
from mlcicd.serving.handlers import InvocationContext, LoadedVariant, default_predict_fn

log = logging.getLogger("mlcicd.serving.batching")

DEFAULT_MAX_BATCH = 256
_OFF = ("0", "false", "no", "off")

Pending = tuple[Any, "Hop"]
_PENDING, _DONE, _FAILED, _CANCELLED = 0, 1, 2, 3


class Hop:
    """One request's place in a micro-batch: what it awaits instead of an asyncio future.

    A future wakes whoever awaits it on the next loop iteration (its callbacks go through
    ``call_soon``): a handle, an iteration and a callback per batched request. The direct
    path (:mod:`mlcicd.serving.direct`) drives the app's coroutine itself and asks, with
    :meth:`then`, to be resumed right inside the flush, with the answer. A task (uvicorn's
    path, tests) awaits it as it awaits a future — the duck-typed protocol asyncio's tasks
    accept (``_asyncio_future_blocking``, ``get_loop``, ``add_done_callback``, ``result``,
    ``cancel``) — and is woken as by a future, on the next iteration: a task must not be
    stepped while another one runs, and the flush may run inside one (a full queue).
    """

    __slots__ = ("_asyncio_future_blocking", "_callbacks", "_loop", "_state", "_then", "_value")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._value: Any = None
        self._then: Any = None
        self._callbacks: list[tuple[Any, Any]] | None = None
        self._asyncio_future_blocking = False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> Any:
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the micro-batch has not answered yet")
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        if self._state == _FAILED:
            raise self._value
        return self._value

    def then(self, callback: Any) -> None:
        """Call ``callback()`` as soon as this is done, synchronously, in the flush."""
        self._then = callback

    def add_done_callback(self, callback: Any, *, context: Any = None) -> None:
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append((callback, context))
        if self._state != _PENDING:
            self._wake()

    def remove_done_callback(self, callback: Any) -> int:
        before = len(self._callbacks or ())
        self._callbacks = [c for c in self._callbacks or () if c[0] != callback]
        return before - len(self._callbacks)

    def set_result(self, value: Any) -> None:
        self._finish(_DONE, value)

    def set_exception(self, exc: BaseException) -> None:
        self._finish(_FAILED, exc)

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._finish(_CANCELLED, None)
        return True

    def _finish(self, state: int, value: Any) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("the micro-batch answered this request already")
        self._state, self._value = state, value
        then, self._then = self._then, None
        if then is not None:
            then()
        if self._callbacks:
            self._wake()

    def _wake(self) -> None:
        callbacks, self._callbacks = self._callbacks or [], None
        for callback, context in callbacks:
            self._loop.call_soon(callback, self, context=context)

    def __await__(self) -> Any:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        return self.result()


def batchable(variant: LoadedVariant) -> bool:
    """May requests to ``variant`` share a ``predict_fn`` call?"""
    h = variant.handlers
    if os.environ.get("MLCICD_BATCHING", "1").strip().lower() in _OFF:
        return False
    if h.transform_fn is not None or "predict_fn" in h.with_context:
        return False
    return (
        h.predict_fn is default_predict_fn
        or getattr(h.predict_fn, "supports_batching", False) is True
    )


SAMPLE_ROWS = 4  # the rows check_batching predicts together and alone


def check_batching(variant: LoadedVariant) -> None:
    """A ``predict_fn`` that declares ``supports_batching`` must answer a batch as it answers
    its rows one by one; raise :class:`EndpointError` naming it if not.

    The sample is synthetic rows of the model's width (:func:`mlcicd.compiler.probe_rows`); a
    model that does not say its width (``n_features_in_``), or a ``predict_fn`` that refuses
    the sample row by row too, is not checked here (its batches still fall back to one call
    per request when they fail).
    """
    h = variant.handlers
    if h.predict_fn is default_predict_fn or not batchable(variant):
        return
    width = getattr(variant.model, "n_features_in_", None)
    if not isinstance(width, int) or width < 1:
        return
    rows = _sample(variant.model, width)
    try:
        alone = [variant.predict(rows[i : i + 1]) for i in range(len(rows))]
    except InvocationError:
        log.info("the batching check's sample does not suit predict_fn; not checked")
        return
    where = f"predict_fn of {h.script.name}"
    fix = f"make {where} answer one entry per row, or remove its supports_batching = True"
    try:
        together = variant.predict(rows)
    except InvocationError as exc:
        raise EndpointError(
            f"{where} declares supports_batching = True but raised on a batch of {len(rows)} "
            f"rows it answers one at a time: {exc.message}",
            hint=fix,
        ) from exc
    parts = _split(together, [1] * len(rows))
    if parts is None or not all(_same_answer(a, b) for a, b in zip(parts, alone, strict=True)):
        raise EndpointError(
            f"{where} declares supports_batching = True, but its answer to a batch of "
            f"{len(rows)} rows ({_describe(together)}) is not its answers to those rows one "
            "at a time",
            hint=fix,
        )


def _sample(model: Any, width: int) -> Any:
    """:data:`SAMPLE_ROWS` synthetic rows the model answers differently where it can: a
    handler that mixes rows up must show it."""
    rows = probe_rows(model, width)
    try:
        labels = np.asarray(model.predict(rows))
        _, first = np.unique(labels, return_index=True)
    except Exception:  # not an estimator we can ask: the first rows will do
        return rows[:SAMPLE_ROWS]
    rest = [i for i in range(len(rows)) if i not in set(first.tolist())]
    chosen = sorted(first.tolist())[:SAMPLE_ROWS] + rest
    return rows[chosen[:SAMPLE_ROWS]]


def _same_answer(a: Any, b: Any) -> bool:
    """Equal answers; floats within what a batched matrix product may change (1e-9)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same_answer(a[k], b[k]) for k in a)
        )
    try:
        x, y = np.asarray(a), np.asarray(b)
    except ValueError:  # ragged
        return bool(a == b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "fc" and y.dtype.kind in "fc":
        return bool(np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(x, y))


class Batcher:
    """The micro-batching queue of one variant in one worker (one event loop)."""

    def __init__(
        self, variant: LoadedVariant, *, max_rows: int | None = None, max_wait: float | None = None
    ) -> None:
        self.variant = variant
        self.max_rows = (
            max_rows if max_rows is not None else _env_int("MLCICD_MAX_BATCH", DEFAULT_MAX_BATCH)
        )
        wait_ms = _env_float("MLCICD_BATCH_WAIT_MS", 0.0)
        self.max_wait = max_wait if max_wait is not None else max(0.0, wait_ms) / 1000.0
        self._queue: list[Pending] = []
        self._rows = 0
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # predict_fn calls made for more than one request
        self.batched_requests = 0

    async def invoke(
        self, body: bytes, content_type: str, accept: str, context: InvocationContext | None = None
    ) -> tuple[bytes, str]:
        """One request, its prediction made together with whatever else is queued."""
        variant = self.variant
        data = variant.read_input(body, content_type, context)
        hop = self.place(data)
        prediction = variant.predict(data, context) if hop is None else await hop
        return variant.write_output(prediction, accept, context)

    def place(self, data: Any) -> Hop | None:
        """``data`` queued for the next batch (its :class:`Hop`), or None when it is to be
        predicted alone (not rows of numbers, or more rows than a batch holds)."""
        if (
            type(data) is np.ndarray
            and data.ndim == 2
            and 0 < data.shape[0] <= self.max_rows
            and data.dtype.kind in "biuf"
        ):
            return self.submit(data)
        return None

    def submit(self, data: Any) -> Hop:
        """Queue one request's rows; the :class:`Hop` resolves to its own rows of the answer."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a worker has one loop; tests may run several in turn
            self._reset(loop)
        future = Hop(loop)
        if self._rows + data.shape[0] > self.max_rows and self._queue:
            self._cancel_schedule()
            self.flush()  # the queue is full: answer it now, start a new one
        self._queue.append((data, future))
        self._rows += data.shape[0]
        if self._scheduled is None:
            if self.max_wait > 0:
                self._scheduled = loop.call_later(self.max_wait, self.flush)
            else:
                self._scheduled = loop.call_soon(self.flush)
        return future

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget what a previous, finished event loop left queued (its requests are gone)."""
        for _, future in self._queue:
            if not future.done() and not future.get_loop().is_closed():
                with contextlib.suppress(RuntimeError):  # a waiter on the closed loop
                    future.cancel()
        self._queue, self._rows, self._scheduled, self._loop = [], 0, None, loop

    def _cancel_schedule(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def flush(self) -> None:
        """Predict everything queued; resolve every queued future, whatever happens."""
        self._scheduled = None
        queue, self._queue, self._rows = self._queue, [], 0
        try:
            for group in _groups(queue):
                self._predict_group(group)
        except BaseException as exc:  # a bug of ours: no request may wait forever
            log.exception("micro-batch failed")
            for _, future in queue:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("batch aborted")
                    )
            if not isinstance(exc, Exception):
                raise

    def _predict_group(self, group: list[Pending]) -> None:
        live = [(data, future) for data, future in group if not future.done()]
        if not live:
            return
        if len(live) == 1:
            self._predict_alone(*live[0])
            return
        stacked = np.concatenate([data for data, _ in live])
        try:
            prediction = self.variant.predict(stacked)
        except InvocationError as exc:
            log.info("batched predict_fn raised (%s); predicting each request alone", exc.message)
            prediction = None
        parts = _split(prediction, [data.shape[0] for data, _ in live])
        if parts is None:
            if prediction is not None:
                log.warning(
                    "batched predict_fn answered %s for %d rows; predicting each request alone",
                    _describe(prediction),
                    stacked.shape[0],
                )
            for data, future in live:
                self._predict_alone(data, future)
            return
        self.batches += 1
        self.batched_requests += len(live)
        for (_, future), part in zip(live, parts, strict=True):
            future.set_result(part)

    def _predict_alone(self, data: Any, future: Hop) -> None:
        try:
            future.set_result(self.variant.predict(data))
        except InvocationError as exc:
            future.set_exception(exc)


# The batcher of each variant (None: not batched), made on first use inside the event loop.
_BATCHERS: dict[int, tuple[LoadedVariant, Batcher | None]] = {}


def batcher_for(variant: LoadedVariant) -> Batcher | None:
    entry = _BATCHERS.get(id(variant))
    if entry is not None and entry[0] is variant:
        return entry[1]
    batcher = Batcher(variant) if batchable(variant) else None
    _BATCHERS[id(variant)] = (variant, batcher)
    return batcher


async def invoke(
    variant: LoadedVariant,
    body: bytes,
    content_type: str,
    accept: str,
    context: InvocationContext | None = None,
) -> tuple[bytes, str]:
    """``variant.invoke``, micro-batched when the variant allows it."""
    batcher = batcher_for(variant)
    if batcher is None:
        return variant.invoke(body, content_type, accept, context)
    return await batcher.invoke(body, content_type, accept, context)


def _groups(queue: list[Pending]) -> list[list[Pending]]:
    """Requests whose arrays concatenate without changing a value: same dtype and width."""
    groups: dict[tuple[str, int], list[Pending]] = {}
    for item in queue:
        data = item[0]
        groups.setdefault((data.dtype.str, data.shape[1]), []).append(item)
    return list(groups.values())


def _split(prediction: Any, sizes: list[int]) -> list[Any] | None:
    """Each request's rows of a batched answer, or None if it has not one answer per row."""
    total = sum(sizes)
    if isinstance(prediction, dict):  # columns, one entry per row each: split key by key
        columns = {key: _split(value, sizes) for key, value in prediction.items()}
        if not columns or any(parts is None for parts in columns.values()):
            return None
        return [
            {key: parts[i] for key, parts in columns.items() if parts is not None}
            for i in range(len(sizes))
        ]
    if isinstance(prediction, np.ndarray):
        if prediction.ndim == 0 or prediction.shape[0] != total:
            return None
    elif isinstance(prediction, list | tuple):
        if len(prediction) != total:
            return None
    else:
        return None
    parts = []
    start = 0
    for size in sizes:
        parts.append(prediction[start : start + size])
        start += size
    return parts


def _describe(prediction: Any) -> str:
    shape = getattr(prediction, "shape", None)
    return f"{type(prediction).__name__}{list(shape) if shape is not None else ''}"


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default
