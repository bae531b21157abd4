"""``network:`` on SageMaker, as plain data: the VpcConfig that training and processing jobs
and Models get (CreateTrainingJob, CreateProcessingJob's NetworkConfig, CreateModel — an
endpoint's or a transform job's), the same from ``mlcicd run`` and from the stack's Lambdas
(which read it back from ``$MLCICD_VPC_CONFIG``).

Both fields are needed, or neither (checked at load). In a VPC, SageMaker puts an elastic
network interface in one of the subnets for each instance; with no route to the internet
there (``network.private_subnets``), the stack adds the S3 and SageMaker VPC endpoints the
jobs and the container reach AWS through (mlcicd/aws/template/network.py).
"""

from __future__ import annotations

from typing import Any

from mlcicd.config import NetworkConfig
from mlcicd.errors import ConfigError


def vpc_config(network: NetworkConfig) -> dict[str, list[str]] | None:
    """VpcConfig for ``network``, or None when it names no VPC."""
    if not network.in_vpc:
        return None
    return {"SecurityGroupIds": list(network.security_groups), "Subnets": list(network.subnets)}


def vpc_from_json(value: Any, *, where: str) -> dict[str, list[str]] | None:
    """``$MLCICD_VPC_CONFIG`` read back: None for ``{}``."""
    if not value:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"SecurityGroupIds", "Subnets"}
        or not all(isinstance(v, list) and v for v in value.values())
    ):
        raise ConfigError(
            f"{where}: {value!r} is not a VpcConfig (SecurityGroupIds and Subnets)",
            path="the function's environment",
        )
    return {k: [str(i) for i in v] for k, v in value.items()}


__all__ = ["vpc_config", "vpc_from_json"]
