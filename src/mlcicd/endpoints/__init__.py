"""Endpoint lifecycle: create, update, describe, delete — local and SageMaker side by side.

base.py           ProductionVariant, EndpointConfig, EndpointDescription, EndpointBackend
                  (DataCapture, DeploymentPolicy and EndpointMetrics are in mlcicd.shapes,
                  which the AWS request builders share)
local.py          LocalEndpointBackend: a supervisor process per endpoint on this machine
local_config.py   its serving config.json, models and code, built from an EndpointConfig
local_process.py  starting, watching and stopping its supervisor and workers
podman.py         PodmanEndpointBackend: the project's image running ``serve``, with podman
podman_config.py  what its endpoint.json records of how it serves, read back to restart it
sagemaker.py      SageMakerEndpointBackend: SageMaker endpoints (their metrics from CloudWatch)
refresh.py        an endpoint's record brought up to date with what its backend reports
recorded.py       a recorded endpoint by name, through the backend that deployed it

:func:`open_backend` picks the backend by its ``TYPE`` (``deploy.backend``, or the one an
endpoint was recorded with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.endpoints.base import (
    STATUSES,
    EndpointBackend,
    EndpointConfig,
    EndpointDescription,
    ProductionVariant,
)
from mlcicd.errors import ConfigError
from mlcicd.shapes import DataCapture, DeploymentPolicy, EndpointMetrics

if TYPE_CHECKING:
    from mlcicd.project import Project

# The backends whose endpoints are served by processes on this machine: `mlcicd up` restarts
# them when they die (SageMaker looks after its own).
ON_THIS_MACHINE = ("local", "container")


def open_backend(kind: str, project: Project, *, image: str | None = None) -> EndpointBackend:
    """The endpoint backend whose ``TYPE`` is ``kind`` (``deploy.backend``, or an endpoint's
    recorded one); ``image`` is what a ``container`` endpoint is deployed from (the build
    stage's). Each is imported only when chosen: SageMaker's brings boto3, podman's its images.
    """
    if kind == "local":
        from mlcicd.endpoints.local import LocalEndpointBackend

        return LocalEndpointBackend(project.state_dir / "endpoints")
    if kind == "sagemaker":
        from mlcicd.endpoints.sagemaker import SageMakerEndpointBackend

        return SageMakerEndpointBackend.from_config(project.config, project.store)
    if kind == "container":
        from mlcicd.endpoints.podman import PodmanEndpointBackend

        return PodmanEndpointBackend(project.state_dir / "container-endpoints", image)
    raise ConfigError(
        f"deploy backend {kind!r} is not available in this version",
        key="deploy.backend",
        hint="use backend: local",
    )


__all__ = [
    "ON_THIS_MACHINE",
    "STATUSES",
    "DataCapture",
    "DeploymentPolicy",
    "EndpointBackend",
    "EndpointConfig",
    "EndpointDescription",
    "EndpointMetrics",
    "ProductionVariant",
    "open_backend",
]
