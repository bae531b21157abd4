from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.endpoints import EndpointConfig, ProductionVariant
from mlcicd.endpoints.local import LocalEndpointBackend
from tests.serving.helpers import IrisModel, kill_tree, train_iris, write_code


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    """A model whose labels are reversed: an update to it visibly changes predictions."""
    return train_iris(tmp_path_factory.mktemp("flipped"), flip=True)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalEndpointBackend]:
    """A backend whose endpoints are all deleted (processes stopped) after the test."""
    backend = LocalEndpointBackend(tmp_path / "endpoints", stop_timeout=20.0)
    yield backend
    if backend.root.is_dir():
        for edir in backend.root.iterdir():
            try:
                backend.delete(edir.name)
            except Exception:
                from mlcicd.endpoints.local import _read

                status = _read(edir / "status.json") or {}
                kill_tree([status.get("pid", 0), *(w["pid"] for w in status.get("workers", []))])


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
