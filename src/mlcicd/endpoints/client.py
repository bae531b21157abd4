"""Calling an endpoint over HTTP, as an application would (SageMaker's container contract)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass

from mlcicd.errors import EndpointError


@dataclass(frozen=True)
class InvocationResponse:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_message(self) -> str:
        """The server's message for a failed invocation, from its JSON error body if it has one."""
        text = self.body.decode(errors="replace").strip()
        try:
            data = json.loads(text)
        except ValueError:
            return text
        if isinstance(data, dict):
            for key in ("message", "Message", "error"):
                if isinstance(data.get(key), str):
                    return str(data[key])
        return text


def invoke_endpoint(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    *,
    accept: str | None = None,
    path: str = "/invocations",
    timeout: float = 60.0,
    enable_explanations: str | None = None,
) -> InvocationResponse:
    """POST ``body`` to ``url`` + ``path``; connection problems become ``EndpointError``.
    ``enable_explanations``: Clarify's JMESPath expression, e.g. ```true``` (docs/explain.md)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.hostname is None:
        raise EndpointError(f"{url!r} is not an endpoint URL")
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    if enable_explanations is not None:
        headers["X-Amzn-SageMaker-Enable-Explanations"] = enable_explanations
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise EndpointError(
            f"cannot reach the endpoint at {url}: {exc}",
            hint="`mlcicd endpoints describe NAME` shows its status",
        ) from exc
    finally:
        conn.close()
    return InvocationResponse(
        status=response.status,
        content_type=response.getheader("Content-Type", ""),
        body=data,
        headers={k.lower(): v for k, v in response.getheaders()},
    )
