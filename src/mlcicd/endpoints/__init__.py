"""Endpoint lifecycle: create, update, describe, delete — local and SageMaker side by side.

base.py       ProductionVariant, EndpointConfig, EndpointDescription, EndpointMetrics,
              EndpointBackend
local.py      LocalEndpointBackend: a supervisor process per endpoint on this machine
sagemaker.py  SageMakerEndpointBackend: SageMaker endpoints (their metrics from CloudWatch)
client.py     calling an endpoint over HTTP
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
