"""Request and response bodies: what SageMaker's default ``input_fn``/``output_fn`` do.

Decoding (the default ``input_fn``), after the SageMaker inference toolkit's ``decoder.py``:

    application/json        a number, a row, or a list of rows → numpy array
    text/csv                one row per line, numbers only → 2-D float64 array
    application/x-npy       ``np.save`` bytes (pickles refused) → numpy array
    application/jsonlines   one JSON row per line → numpy array

A flat list of numbers is one row (shape ``(1, n)``), so ``[5.1, 3.5, 1.4, 0.2]`` can be
sent as is; ragged rows, nulls and nested objects are the client's mistake (400).
Encoding (the default ``output_fn``) takes any array-like to the same four types.

Content negotiation follows SageMaker: a missing ``Accept`` or ``*/*`` means the default
accept, ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or ``application/json`` — *not* the request's
content type. Parameters such as ``; charset=utf-8`` are ignored on both headers.

Errors are :class:`InvocationError` subclasses carrying their HTTP status. They are answers
to one request, never mlcicd errors: they do not leave the worker.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
JSONLINES = "application/jsonlines"
ANY = "*/*"

SUPPORTED = (JSON, CSV, NPY, JSONLINES)
# The toolkit hands these to input_fn as str, every other type as bytes.
UTF8_TYPES = frozenset({JSON, CSV, JSONLINES})
_NPY_MAGIC = b"\x93NUMPY"


class InvocationError(Exception):
    """An error answer to one invocation: HTTP ``status`` and a message for the client."""

    status = 500
    error_type = "InternalServerError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(InvocationError):
    status = 400
    error_type = "BadRequest"


class NotAcceptableError(InvocationError):
    status = 406
    error_type = "NotAcceptable"


class PayloadTooLargeError(InvocationError):
    status = 413
    error_type = "PayloadTooLarge"


class UnsupportedMediaTypeError(InvocationError):
    status = 415
    error_type = "UnsupportedMediaType"


def media_type(header: str | None) -> str | None:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``; empty → None."""
    if not header:
        return None
    value = header.split(";", 1)[0].strip().lower()
    return value or None


def _accept_entries(header: str) -> list[str]:
    """Media ranges of an Accept header, best first (by ``q``, then by order)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        pieces = part.split(";")
        kind = pieces[0].strip().lower()
        if not kind:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, index, kind))
    return [kind for _, _, kind in sorted(ranked)]


def preferred_accept(header: str | None, default: str) -> str:
    """The accept a user's ``output_fn`` gets: the client's first choice, else ``default``."""
    if not header:
        return default
    entries = _accept_entries(header)
    if not entries or entries[0] == ANY:
        return default
    return entries[0]


def negotiate(header: str | None, default: str, supported: Iterable[str] = SUPPORTED) -> str:
    """The type the default ``output_fn`` answers with, or :class:`NotAcceptableError` (406)."""
    choices = tuple(supported)
    if not header:
        return default
    for kind in _accept_entries(header):
        if kind == ANY:
            return default
        if kind in choices:
            return kind
        if kind.endswith("/*"):
            family = kind[:-1]
            if default.startswith(family):
                return default
            for choice in choices:
                if choice.startswith(family):
                    return choice
    raise NotAcceptableError(
        f"cannot answer with any type in Accept: {header!r}; supported: {', '.join(choices)}"
    )


# ---------------------------------------------------------------------------- decoding


def decode(body: bytes | str, content_type: str) -> np.ndarray[Any, Any]:
    """The default ``input_fn``: a request body → a numpy array of rows."""
    if content_type == JSON:
        return _rows(_load_json(body, JSON), JSON)
    if content_type == CSV:
        return _decode_csv(_text(body, CSV))
    if content_type == NPY:
        return _rows(_decode_npy(body), NPY)
    if content_type == JSONLINES:
        lines = [line for line in _text(body, JSONLINES).splitlines() if line.strip()]
        if not lines:
            raise BadRequestError(f"{JSONLINES} body is empty")
        return _rows([_load_json(line, JSONLINES) for line in lines], JSONLINES)
    raise UnsupportedMediaTypeError(
        f"content type {content_type!r} is not supported by the default input_fn; "
        f"send one of {', '.join(SUPPORTED)} or define input_fn in the inference script"
    )


def _text(body: bytes | str, kind: str) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"{kind} body is not valid UTF-8: {exc}") from exc


def _load_json(body: bytes | str, kind: str) -> Any:
    if not body or (isinstance(body, str) and not body.strip()):
        raise BadRequestError(f"{kind} body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"{kind} body is not valid JSON: {exc}") from exc


def _rows(data: Any, kind: str) -> np.ndarray[Any, Any]:
    if isinstance(data, np.ndarray):
        array = data
    else:
        try:
            array = np.asarray(data)
        except ValueError as exc:
            raise BadRequestError(
                f"{kind} body is not a rectangular array: rows must all have the same length "
                f"({exc})"
            ) from exc
    if array.dtype.kind == "O":
        raise BadRequestError(
            f"{kind} body must hold only numbers or strings in equal-length rows "
            "(no nulls, objects or ragged rows)"
        )
    if array.ndim == 0:
        raise BadRequestError(f"{kind} body must be a list of rows or one row, not a single value")
    if array.size == 0:
        raise BadRequestError(f"{kind} body holds no values")
    if array.ndim == 1 and array.dtype.kind in "biuf":
        return array.reshape(1, -1)  # one record
    return array


def _decode_csv(text: str) -> np.ndarray[Any, Any]:
    stripped = text.strip()
    if not stripped:
        raise BadRequestError(f"{CSV} body is empty")
    if "\n" not in stripped and "\r" not in stripped:  # one record: the common case, kept cheap
        cells = stripped.split(",")
        try:
            return np.array([[float(cell) for cell in cells]])
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            column = cells.index(bad) + 1
            raise BadRequestError(
                f"{CSV} body: {bad.strip()!r} in row 1, column {column} is not a number"
            ) from None
    try:
        return np.loadtxt(io.StringIO(stripped), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise BadRequestError(f"{CSV} body: {exc}") from exc


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _decode_npy(body: bytes | str) -> np.ndarray[Any, Any]:
    if isinstance(body, str):
        body = body.encode("latin-1", errors="replace")
    if not body.startswith(_NPY_MAGIC):
        raise BadRequestError(f"{NPY} body is not in .npy format (it must start with \\x93NUMPY)")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequestError(f"{NPY} body cannot be read: {exc}") from exc
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load of .npy bytes
        raise BadRequestError(f"{NPY} body is not a single array")
    return array


# ---------------------------------------------------------------------------- encoding


def encode(prediction: Any, accept: str) -> bytes:
    """The default ``output_fn``: a prediction → bytes of type ``accept``."""
    if accept == JSON:
        return _dump_json(prediction)
    if accept == CSV:
        return _encode_csv(prediction)
    if accept == NPY:
        return _encode_npy(prediction)
    if accept == JSONLINES:
        rows = prediction if isinstance(prediction, np.ndarray | list | tuple) else [prediction]
        return b"".join(_dump_json(row) + b"\n" for row in rows)
    raise NotAcceptableError(f"cannot answer with {accept!r}; supported: {', '.join(SUPPORTED)}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _dump_json(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _encode_csv(prediction: Any) -> bytes:
    try:
        array = np.asarray(prediction)
    except ValueError as exc:
        raise NotAcceptableError(f"the prediction cannot be written as {CSV}: {exc}") from exc
    if array.dtype.kind == "O" or array.ndim > 2:
        raise NotAcceptableError(
            f"the prediction (shape {array.shape}, dtype {array.dtype}) cannot be written as "
            f"{CSV}; "
            f"ask for {JSON} or {NPY}"
        )
    if array.ndim < 2 and array.dtype.kind in "biuf":  # one value a row: no per-row join
        values = array.reshape(-1).tolist()
        return ("\n".join(map(str, values)) + "\n").encode() if values else b""
    rows = array.reshape(-1, 1) if array.ndim < 2 else array
    if array.dtype.kind in "biuf":
        return "".join(",".join(map(str, row)) + "\n" for row in rows.tolist()).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows.tolist())
    return out.getvalue().encode()


def _encode_npy(prediction: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        np.save(buffer, np.asarray(prediction), allow_pickle=False)
    except ValueError as exc:
        raise NotAcceptableError(f"the prediction cannot be written as {NPY}: {exc}") from exc
    return buffer.getvalue()
