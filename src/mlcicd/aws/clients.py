"""Every boto3 client mlcicd uses comes from :func:`client`; every AWS error becomes ours here.

boto3 is imported only when a client is first asked for, so ``mlcicd`` without the
``aws`` extra (and the Lambda package, which relies on the runtime's boto3) imports fine.

``MLCICD_AWS_ENDPOINT_URL`` sends every client to one endpoint — moto's server or
LocalStack — instead of AWS. Clients are cached per service, region, endpoint and
:class:`Timeouts`: boto3 clients are thread-safe, and a Lambda that keeps its clients
between invocations saves their set-up on every warm start.

Every client retries in botocore's standard mode. By default it waits as botocore does
(60 s to connect, 60 s for an answer) and makes 6 attempts (``max_attempts: 5`` retries);
a caller that must not be held that long — data capture's writer thread — asks for its
own :class:`Timeouts` and gets a client of its own, leaving everyone else's as it was.

A call through a client raises :class:`~mlcicd.errors.AwsError` (AWS's code and message,
the operation) instead of botocore's ``ClientError`` or ``BotoCoreError``; code that drives
boto3 other than by calling a client method (iterating a paginator) wraps itself in
:func:`aws_errors`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlcicd.errors import AwsError

ENV_ENDPOINT_URL = "MLCICD_AWS_ENDPOINT_URL"

# Codes (and botocore exception names) worth a hint on what to do.
_HINTS = {
    "NoCredentialsError": "configure AWS credentials: `aws configure`, AWS_PROFILE, or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "PartialCredentialsError": "the AWS credentials are incomplete: check AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
    "NoRegionError": "set AWS_REGION (or AWS_DEFAULT_REGION), or a region in `aws configure`",
    "EndpointConnectionError": f"check the network and the region; {ENV_ENDPOINT_URL}, if set, "
    "must point at a running endpoint",
    "ConnectTimeoutError": "check the network and the region",
    "ExpiredToken": "the AWS session has expired: refresh the credentials",
    "ExpiredTokenException": "the AWS session has expired: refresh the credentials",
    "InvalidClientTokenId": "the AWS access key is not valid in this account or region",
    "UnrecognizedClientException": "the AWS access key is not valid in this account or region",
    "AccessDenied": "the credentials in use lack this permission",
    "AccessDeniedException": "the credentials in use lack this permission",
    "ThrottlingException": "AWS is throttling the calls: retry in a minute",
    "ResourceLimitExceeded": "an account quota is reached: raise it in Service Quotas, or "
    "free capacity",
}
_NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "ResourceNotFound",
        "ResourceNotFoundException",
    }
)
# SageMaker answers "not found" with a ValidationException; its message tells them apart.
_NOT_FOUND_WORDS = ("not find", "not found", "does not exist")


@dataclass(frozen=True)
class Timeouts:
    """How long a client waits and how often it tries: botocore's ``connect_timeout``,
    ``read_timeout`` (seconds) and ``retries.total_max_attempts`` (the first attempt
    included — botocore's ``max_attempts`` counts retries only), in standard mode."""

    connect_seconds: float
    read_seconds: float
    total_max_attempts: int

    def __post_init__(self) -> None:
        if self.connect_seconds <= 0 or self.read_seconds <= 0 or self.total_max_attempts < 1:
            raise ValueError(f"timeouts must be positive and attempts at least 1: {self}")


@dataclass(frozen=True)
class Credentials:
    """Explicit credentials (e.g. the ``artifactCredentials`` CodePipeline passes a Lambda)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def resolve_endpoint_url(explicit: str | None = None) -> str | None:
    """``explicit``, else ``$MLCICD_AWS_ENDPOINT_URL``, else None (AWS's own endpoints)."""
    return explicit or os.environ.get(ENV_ENDPOINT_URL) or None


def client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    credentials: Credentials | None = None,
    timeouts: Timeouts | None = None,
) -> AwsClient:
    """A client of ``service``; AWS errors from its calls are raised as ``AwsError``.

    ``region`` defaults to boto3's resolution (AWS_REGION, AWS_DEFAULT_REGION, the profile);
    ``endpoint_url`` to ``$MLCICD_AWS_ENDPOINT_URL``, else AWS's own endpoint; ``timeouts``
    to botocore's (module docstring). Clients with explicit ``credentials`` are not cached.
    """
    url = resolve_endpoint_url(endpoint_url)
    if credentials is not None:
        return AwsClient(_new_client(service, region, url, credentials, timeouts), service)
    return _cached(service, region or _default_region(), url, timeouts)


_lock = threading.Lock()
_cache: dict[tuple[str, str | None, str | None, Timeouts | None], AwsClient] = {}


def _cached(
    service: str, region: str | None, url: str | None, timeouts: Timeouts | None
) -> AwsClient:
    key = (service, region, url, timeouts)
    with _lock:
        if key not in _cache:
            _cache[key] = AwsClient(_new_client(service, region, url, None, timeouts), service)
        return _cache[key]


def clear_cache() -> None:
    """Forget the cached clients (they keep the credentials they were created with)."""
    with _lock:
        _cache.clear()


def _default_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _boto3() -> Any:
    """boto3, imported on first use, or AwsError saying how to install it."""
    try:
        import boto3
    except ImportError as exc:
        raise AwsError(
            "boto3 is not installed",
            code="ImportError",
            hint="install mlcicd with its AWS extra: pip install 'mlcicd[aws]'",
        ) from exc
    return boto3


def _new_client(
    service: str,
    region: str | None,
    url: str | None,
    credentials: Credentials | None,
    timeouts: Timeouts | None,
) -> Any:
    boto3 = _boto3()
    from botocore.config import Config as BotoConfig

    if timeouts is None:
        config = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
    else:
        config = BotoConfig(
            connect_timeout=timeouts.connect_seconds,
            read_timeout=timeouts.read_seconds,
            retries={"mode": "standard", "total_max_attempts": timeouts.total_max_attempts},
        )
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": url, "config": config}
    if credentials is not None:
        kwargs.update(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )
    with aws_errors(f"{service} client"):
        # A session per client: boto3's default session is not safe to share across threads.
        return boto3.session.Session().client(service, **kwargs)


def signing_credentials() -> Any:
    """botocore's credentials as boto3 resolves them (environment, profile, role), for
    signing a request no client makes (SigV4 for API Gateway's execute-api)."""
    boto3 = _boto3()
    with aws_errors("credentials"):
        found = boto3.session.Session().get_credentials()
    if found is None:
        raise AwsError(
            "no AWS credentials found", code="NoCredentialsError", hint=_HINTS["NoCredentialsError"]
        )
    return found


class AwsClient:
    """A boto3 client whose method calls raise ``AwsError``; ``raw`` is the client itself
    (for botocore's Stubber or paginators). Anything else passes through unchanged."""

    def __init__(self, raw: Any, service: str) -> None:
        self.raw = raw
        self.service = service

    @property
    def meta(self) -> Any:
        return self.raw.meta

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.raw, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return _translating(attribute, f"{self.service}:{_operation(name)}")

    def paginate(self, method: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of a paginated call, with errors translated as for a single call."""
        with aws_errors(f"{self.service}:{_operation(method)}"):
            yield from self.raw.get_paginator(method).paginate(**kwargs)


def _operation(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def _translating(method: Callable[..., Any], operation: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with aws_errors(operation):
            return method(*args, **kwargs)

    return call


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Raise botocore's and boto3's errors from inside as ``AwsError`` (``from`` the original)."""
    try:
        yield
    except AwsError:
        raise
    except Exception as exc:
        error = translate(exc, operation)
        if error is None:
            raise
        raise error from exc


def translate(exc: BaseException, operation: str) -> AwsError | None:
    """``exc`` as an ``AwsError``, or None if it is not an error of boto3 or botocore."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return _from_client_error(exc, operation)
    if isinstance(exc, BotoCoreError):
        code = type(exc).__name__
        return AwsError(
            f"{operation}: {exc}",
            code=code,
            aws_message=str(exc),
            operation=operation,
            hint=_HINTS.get(code),
        )
    try:
        from boto3.exceptions import Boto3Error
    except ImportError:  # pragma: no cover - botocore without boto3
        return None
    if isinstance(exc, Boto3Error):
        # S3 transfers wrap the ClientError that caused them; report AWS's code if there is one.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError):
            return _from_client_error(cause, operation)
        code = type(exc).__name__
        return AwsError(f"{operation}: {exc}", code=code, aws_message=str(exc), operation=operation)
    return None


def _from_client_error(exc: Any, operation: str) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "").strip()
    if code == "404" and not message:
        message = "Not Found"
    text = f"{operation} failed: {code}" + (f": {message}" if message else "")
    return AwsError(
        text, code=code, aws_message=message, operation=operation, hint=_HINTS.get(code)
    )


def is_already_there(error: AwsError) -> bool:
    """Whether AWS refused a create because the thing exists (another caller made it first)."""
    return error.code == "ResourceInUse" or "already exist" in error.aws_message.lower()


def is_not_found(error: AwsError) -> bool:
    """Whether AWS said the thing asked about does not exist."""
    if error.code in _NOT_FOUND_CODES:
        return True
    message = error.aws_message.lower()
    return error.code in ("ValidationException", "ValidationError") and any(
        words in message for words in _NOT_FOUND_WORDS
    )


__all__ = [
    "ENV_ENDPOINT_URL",
    "AwsClient",
    "Credentials",
    "Timeouts",
    "aws_errors",
    "clear_cache",
    "client",
    "is_already_there",
    "is_not_found",
    "resolve_endpoint_url",
    "signing_credentials",
    "translate",
]
