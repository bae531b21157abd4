"""Calling the endpoint through the stack's API (``api:``, mlcicd/aws/template/api.py), as
an application outside AWS would: ``mlcicd invoke NAME --via-api``.

The stack's outputs say where the API is (``ApiUrl``), which endpoint it fronts
(``ApiEndpointName``) and how callers authenticate (``ApiAuth``): ``iam`` signs the request
with SigV4 for ``execute-api`` with the caller's own AWS credentials; ``api_key`` sends the
usage plan's key in ``x-api-key`` — given, or read with GetApiKey (``ApiKeyId``) by a caller
allowed to.

The URL is a stack output, and whoever can update the stack (or its template in S3) could
change it. Credentials go only where the template points: ``https://<id>.execute-api.<region>.
amazonaws.com[.cn]/…``, or the host of ``MLCICD_AWS_ENDPOINT_URL`` (an emulator such as moto,
which gets every other call too). A redirect is the API's answer, never followed: urllib would
resend ``x-api-key``, ``Authorization`` and the session token to wherever ``Location`` says.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from mlcicd.aws.clients import client, resolve_endpoint_url, signing_credentials
from mlcicd.aws.template.api import AUTH_OUTPUT, ENDPOINT_OUTPUT, KEY_OUTPUT, URL_OUTPUT
from mlcicd.endpoints.client import InvocationResponse
from mlcicd.errors import ConfigError, EndpointError

_REGION_RE = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


@dataclass(frozen=True)
class ApiTarget:
    """The stack's API: its URL, the endpoint behind it, how it authenticates."""

    url: str
    endpoint: str
    auth: str  # "iam" or "api_key"
    key_id: str | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str], *, stack: str, endpoint: str) -> ApiTarget:
        if URL_OUTPUT not in outputs:
            raise ConfigError(
                f"stack {stack} has no API in front of its endpoint",
                key="api.enabled",
                hint="set api: {enabled: true} in mlcicd.yaml and `mlcicd aws deploy` again",
            )
        fronted = outputs.get(ENDPOINT_OUTPUT, "")
        if fronted != endpoint:
            raise EndpointError(
                f"stack {stack}'s API calls endpoint {fronted or '(unknown)'}, not {endpoint}",
                hint=f"invoke {fronted} --via-api, or pick its stack with --stack-name",
            )
        return cls(
            url=_api_url(outputs[URL_OUTPUT], stack),
            endpoint=fronted,
            auth=outputs.get(AUTH_OUTPUT, "iam"),
            key_id=outputs.get(KEY_OUTPUT),
        )


def _api_url(url: str, stack: str) -> str:
    """``url`` when it is API Gateway's (or the emulator's): the only place to authenticate to."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    emulator = resolve_endpoint_url()
    if emulator and host == urllib.parse.urlsplit(emulator).hostname:
        return url
    if parts.scheme == "https" and _API_HOST.fullmatch(host) and parts.port in (None, 443):
        return url
    raise EndpointError(
        f"stack {stack}'s API URL {url} is not API Gateway's "
        "(https://<id>.execute-api.<region>.amazonaws.com/…): not sending credentials to it",
        hint="the stack's template was changed outside mlcicd; `mlcicd aws deploy` again",
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is returned as the answer: following it would resend the key or signature."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def api_key_value(key_id: str) -> str:
    """The usage plan key's value (apigateway:GET on the key)."""
    answer = client("apigateway").get_api_key(apiKey=key_id, includeValue=True)
    return str(answer["value"])


def invoke_api(
    target: ApiTarget,
    body: bytes,
    content_type: str = "application/json",
    *,
    accept: str | None = None,
    api_key: str | None = None,
    timeout: float = 70.0,
) -> InvocationResponse:
    """POST ``body`` to the API, authenticated as ``target.auth`` says."""
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    if target.auth == "api_key":
        key = api_key or (api_key_value(target.key_id) if target.key_id else None)
        if not key:
            raise ConfigError(
                "the API takes an API key, and none was given nor named by the stack",
                key="api.auth",
                hint="pass --api-key (or MLCICD_API_KEY)",
            )
        headers["x-api-key"] = key
    else:
        headers = _signed(target.url, body, headers)
    request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    try:
        opener = urllib.request.build_opener(_NoRedirects)
        with opener.open(request, timeout=timeout) as response:
            return _response(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return _response(exc.code, dict(exc.headers.items()), exc.read())
    except OSError as exc:
        raise EndpointError(
            f"cannot reach the API at {target.url}: {exc}",
            hint="`mlcicd aws deploy` prints its URL; check the network",
        ) from exc


def _signed(url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with SigV4's for ``execute-api``, in the API's region."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    host = urllib.parse.urlsplit(url).hostname or ""
    found = _REGION_RE.search(host)
    region = found.group(1) if found else client("sts").meta.region_name or "us-east-1"
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(signing_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def _response(status: int, headers: Mapping[str, str], body: bytes) -> InvocationResponse:
    return InvocationResponse(
        status=status,
        content_type=headers.get("Content-Type", ""),
        body=body,
        headers={k.lower(): v for k, v in headers.items()},
    )


__all__ = ["ApiTarget", "api_key_value", "invoke_api"]
