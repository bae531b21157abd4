"""The endpoint lifecycle, whatever serves it: SageMaker's nouns as plain data.

A :class:`ProductionVariant` is one model behind an endpoint; an :class:`EndpointConfig`
names what an endpoint serves; an :class:`EndpointBackend` makes an endpoint serve it
(``deploy`` creates or updates, and blocks until InService or failure) and reports on it.
A failed update leaves the endpoint serving its previous config, as on SageMaker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint limit

# SageMaker's endpoint statuses that a backend reports.
CREATING = "Creating"
UPDATING = "Updating"
IN_SERVICE = "InService"
FAILED = "Failed"
OUT_OF_SERVICE = "OutOfService"
STATUSES = (CREATING, UPDATING, IN_SERVICE, FAILED, OUT_OF_SERVICE)


@dataclass(frozen=True)
class ProductionVariant:
    """One model behind an endpoint, with the code and interpreter that serve it."""

    name: str  # "AllTraffic" when there is only one
    model_data: Path  # model.tar.gz
    model_sha256: str  # checked before the model is extracted
    code_dir: Path  # holds the inference entry point
    entry_point: str  # "inference.py"
    python: Path  # the model environment's interpreter (with uvicorn, httptools, orjson, mlcicd)
    weight: float = 1.0
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointConfig:
    """What an endpoint serves and how; ``name`` identifies this exact config."""

    name: str
    endpoint_name: str
    variants: tuple[ProductionVariant, ...]
    port: int | None = None  # None: keep the current port, or any free one
    workers: int = 2
    startup_timeout: float = 60.0  # for model_fn in every worker, per generation
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    drain_timeout: float = 30.0  # for in-flight requests of a retiring generation


@dataclass
class EndpointDescription:
    """An endpoint as its backend sees it now (``describe`` reconciles with reality)."""

    name: str
    status: str  # one of STATUSES
    url: str | None
    port: int | None
    pid: int | None
    config_name: str | None
    model_sha256: str | None
    failure_reason: str | None
    last_update_failure: str | None
    created_at: float | None = None  # seconds since the epoch
    updated_at: float | None = None
    generation: int | None = None  # bumps with every successful update
    log_path: Path | None = None


class EndpointBackend(Protocol):
    """Creates, updates, describes and deletes endpoints of one kind."""

    TYPE: ClassVar[str]

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        """Create the endpoint or update it to ``config``; block until InService.

        Raises ``EndpointError`` with the reason when it fails (``PortInUseError`` if the port
        is taken); a failed update leaves the previous config serving.
        """
        ...

    def describe(self, name: str) -> EndpointDescription:
        """The endpoint now; ``NotFoundError`` if there is none of that name."""
        ...

    def list(self) -> list[EndpointDescription]:
        """Every endpoint of this backend."""
        ...

    def delete(self, name: str) -> None:
        """Stop the endpoint (in-flight requests finish) and forget it."""
        ...
