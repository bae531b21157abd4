from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.endpoints import EndpointConfig, ProductionVariant
from mlcicd.endpoints.local import LocalEndpointBackend
from tests.helpers import IrisModel, delete_endpoints
from tests.serving.helpers import write_code


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalEndpointBackend]:
    """A backend whose endpoints are all deleted (processes stopped) after the test."""
    backend = LocalEndpointBackend(tmp_path / "endpoints", stop_timeout=20.0)
    yield backend
    delete_endpoints(backend)


def endpoint_config(
    tmp_path: Path,
    model: IrisModel,
    script: str,
    *,
    name: str = "cfg-1",
    endpoint: str = "iris",
    port: int | None = None,
    workers: int = 1,
    startup_timeout: float = 30.0,
) -> EndpointConfig:
    code = write_code(tmp_path / f"code-{name}", script)
    variant = ProductionVariant(
        name="AllTraffic",
        model_data=model.archive,
        model_sha256=model.sha256,
        code_dir=code,
        entry_point="inference.py",
        python=Path(sys.executable),
    )
    return EndpointConfig(
        name=name,
        endpoint_name=endpoint,
        variants=(variant,),
        port=port,
        workers=workers,
        startup_timeout=startup_timeout,
        drain_timeout=10.0,
    )
