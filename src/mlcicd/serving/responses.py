"""How the endpoint server answers: one ASGI response, and the shapes of its errors.

On the container contract (``/invocations``, ``/ping``) an error is a JSON body
``{"error", "message"}`` under its status. On the Runtime API path
(``/endpoints/{name}/invocations``) it takes SageMaker Runtime's shape: ``{"__type", ...}``
with ``x-amzn-ErrorType`` and ``x-amzn-RequestId``, from which botocore picks the exception
class — a failure inside the model's handlers is a 424 ``ModelError`` carrying
``OriginalStatusCode`` and ``OriginalMessage``, a request SageMaker itself would refuse a
``ValidationError``. ``close`` adds ``connection: close`` (a draining worker, or a body not
worth reading to its end).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from mlcicd.serving.codecs import InvocationError

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

INVOKED_VARIANT = b"x-amzn-invoked-production-variant"
JSON_HEADER = (b"content-type", b"application/json")
BODY = "mlcicd.body"  # the scope key of a request body already read in full (the direct path)
_CLOSE = (b"connection", b"close")

_REASONS = {
    404: "NotFound",
    405: "MethodNotAllowed",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class WholeSend:
    """A ``send`` that also takes a whole response in one call (the direct path's): no
    message dicts, no two awaits."""

    __slots__ = ()

    async def __call__(self, message: Message) -> None:
        raise NotImplementedError

    def whole(self, status: int, headers: Headers, body: bytes) -> None:
        raise NotImplementedError


async def respond(send: Send, status: int, headers: Headers, body: bytes, close: bool) -> None:
    if close:
        headers.append(_CLOSE)
    if isinstance(send, WholeSend):
        send.whole(status, headers, body)
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def error(
    send: Send,
    status: int,
    error_type: str,
    message: str,
    *,
    close: bool,
    variant: bytes | None = None,
) -> None:
    """An invocation's error on the container contract (``variant``: the one that answered)."""
    body = orjson.dumps({"error": error_type, "message": message})
    headers = [JSON_HEADER, (b"content-length", str(len(body)).encode())]
    if variant is not None:
        headers.append((INVOKED_VARIANT, variant))
    await respond(send, status, headers, body, close)


async def plain_error(
    send: Send, status: int, message: str, *, close: bool, allow: bytes | None = None
) -> None:
    """An error that is no invocation's (a path, a method, the health check, a bug of ours)."""
    body = orjson.dumps({"error": _REASONS.get(status, "Error"), "message": message})
    headers = [JSON_HEADER, (b"content-length", str(len(body)).encode())]
    if allow is not None:
        headers.append((b"allow", allow))
    await respond(send, status, headers, body, close)


async def validation_error(
    send: Send, status: int, message: str, request_id: str | None, *, close: bool
) -> None:
    """SageMaker Runtime refusing the request itself (unknown endpoint or variant, too large)."""
    await runtime_error(send, status, "ValidationError", {"Message": message}, request_id, close)


async def model_error(
    send: Send, exc: InvocationError, request_id: str | None, *, log_hint: str, close: bool
) -> None:
    """SageMaker Runtime's answer when the model's container failed: 424 ``ModelError``."""
    kind = "client" if exc.status < 500 else "server"
    fields = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL"
        if exc.status < 500
        else "INTERNAL_FAILURE_FROM_MODEL",
        "Message": (
            f'Received {kind} error ({exc.status}) from primary with message "{exc.message}". '
            f"See {log_hint} for more information."
        ),
        "OriginalStatusCode": exc.status,
        "OriginalMessage": exc.message,
    }
    await runtime_error(send, 424, "ModelError", fields, request_id, close)


async def runtime_error(
    send: Send,
    status: int,
    error_type: str,
    fields: dict[str, Any],
    request_id: str | None,
    close: bool,
) -> None:
    body = orjson.dumps({"__type": error_type, **fields})
    headers = [
        JSON_HEADER,
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-errortype", error_type.encode()),
        (b"x-amzn-requestid", (request_id or "").encode()),
    ]
    await respond(send, status, headers, body, close)
