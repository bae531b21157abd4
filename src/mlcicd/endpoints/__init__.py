"""Endpoint lifecycle: create, update, describe, delete — local and SageMaker side by side.

base.py           ProductionVariant, EndpointConfig, EndpointDescription, EndpointMetrics,
                  EndpointBackend
local.py          LocalEndpointBackend: a supervisor process per endpoint on this machine
local_config.py   its serving config.json, models and code, built from an EndpointConfig
local_process.py  starting, watching and stopping its supervisor and workers
podman.py         PodmanEndpointBackend: the project's image running ``serve``, with podman
sagemaker.py      SageMakerEndpointBackend: SageMaker endpoints (their metrics from CloudWatch)
client.py         calling an endpoint over HTTP
"""

from mlcicd.endpoints.base import (
    STATUSES,
    DataCapture,
    DeploymentPolicy,
    EndpointBackend,
    EndpointConfig,
    EndpointDescription,
    EndpointMetrics,
    ProductionVariant,
)

__all__ = [
    "STATUSES",
    "DataCapture",
    "DeploymentPolicy",
    "EndpointBackend",
    "EndpointConfig",
    "EndpointDescription",
    "EndpointMetrics",
    "ProductionVariant",
]
