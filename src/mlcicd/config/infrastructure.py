"""The checks of what a run stands on: ``deploy.autoscaling``, ``deploy.serverless``,
``api``, ``network`` and spot training's ``train.max_wait``.

Ranges hold on every backend (the local endpoint scales its workers on the same keys);
``check_sagemaker_hosting`` adds what SageMaker refuses, called with the rest of
``check_sagemaker_deploy`` so a combination SageMaker would refuse after training fails at
load, naming the key.
"""

from __future__ import annotations

import re

from mlcicd.config.bounds import at_least, not_negative, one_of, positive, within
from mlcicd.config.schema import Config, DeployConfig, ServerlessConfig
from mlcicd.errors import ConfigError

# SageMaker's ServerlessConfig: MemorySizeInMB in steps of 1 GB, MaxConcurrency per endpoint.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200
# VpcConfig: 1 to 16 subnets, 1 to 5 security groups, in the ids' own shapes.
_MAX_SUBNETS = 16
_MAX_SECURITY_GROUPS = 5
_ID_RE = {
    "subnets": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
    "security_groups": re.compile(r"^sg-[0-9a-f]{8,17}$"),
    "route_tables": re.compile(r"^rtb-[0-9a-f]{8,17}$"),
}
_EXAMPLE_IDS = {
    "subnets": "subnet-0123456789abcdef0",
    "security_groups": "sg-0123abcd",
    "route_tables": "rtb-0123abcd",
}
_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
# API Gateway's account-level default throttle; a usage plan cannot exceed it.
_MAX_API_RATE = 10_000.0
_MAX_API_BURST = 5_000


def check_infrastructure(config: Config, source: str) -> None:
    _check_autoscaling(config.deploy, source)
    _check_local_workers(config.deploy, source)
    _check_serverless(config.deploy.serverless, source)
    _check_api(config, source)
    _check_network(config, source)
    _check_spot(config, source)


def _check_autoscaling(deploy: DeployConfig, source: str) -> None:
    scaling = deploy.autoscaling
    if scaling is None:
        return

    def fail(key: str, message: str, hint: str | None = None) -> None:
        raise ConfigError(message, path=source, key=f"deploy.autoscaling.{key}", hint=hint)

    at, low = "deploy.autoscaling.", scaling.min_instances
    at_least(source, at + "min_instances", low, 1)
    at_least(source, at + "max_instances", scaling.max_instances, low, name="min_instances")
    target, per = scaling.target_invocations_per_instance, "invocations per instance per minute"
    positive(source, at + "target_invocations_per_instance", target, f"number of {per}")
    not_negative(source, at + "scale_in_cooldown", scaling.scale_in_cooldown)
    not_negative(source, at + "scale_out_cooldown", scaling.scale_out_cooldown)
    if deploy.serverless is not None:
        fail(
            "min_instances",
            "a serverless endpoint has no instances to scale: SageMaker scales it up to "
            "deploy.serverless.max_concurrency itself",
            hint="drop deploy.autoscaling, or deploy.serverless",
        )


def _check_serverless(serverless: ServerlessConfig | None, source: str) -> None:
    if serverless is None:
        return
    at, most = "deploy.serverless.", SERVERLESS_MAX_CONCURRENCY
    memory = "SageMaker's MemorySizeInMB is"
    one_of(source, at + "memory_mb", serverless.memory_mb, SERVERLESS_MEMORY_MB, memory)
    concurrency = f"SageMaker's MaxConcurrency is 1 to {most}"
    within(source, at + "max_concurrency", serverless.max_concurrency, 1, most, concurrency)


def check_sagemaker_hosting(config: Config, source: str) -> None:
    """What SageMaker refuses of a serverless endpoint (its "feature exclusions"), each
    naming the key to drop: instances, more than one variant, a shadow, data capture, a VPC."""
    deploy = config.deploy
    if deploy.serverless is None:
        return
    defaults = DeployConfig()
    refused = [
        ("deploy.instance_type", deploy.instance_type != defaults.instance_type, "instance type"),
        (
            "deploy.instance_count",
            deploy.instance_count != defaults.instance_count,
            "instance count",
        ),
        ("deploy.variants", len(deploy.variants) > 1, "more than one production variant"),
        ("deploy.shadow", deploy.shadow is not None, "shadow variant"),
        ("deploy.data_capture.enabled", deploy.data_capture.enabled, "data capture"),
        ("network.subnets", config.network.in_vpc, "VPC configuration"),
        ("network.isolation", config.network.isolation, "network isolation"),
    ]
    for key, present, what in refused:
        if present:
            raise ConfigError(
                f"a serverless endpoint (deploy.serverless) takes no {what}: SageMaker refuses "
                "the combination",
                path=source,
                key=key,
                hint=f"drop {key}, or deploy.serverless for instances",
            )


def _check_api(config: Config, source: str) -> None:
    throttle, limit = config.api.throttle, "(API Gateway's account limit)"
    rate = f"requests per second above 0 and at most {_MAX_API_RATE:g} {limit}"
    within(source, "api.throttle.rate", throttle.rate, 0, _MAX_API_RATE, rate, above=True)
    burst = f"a burst of 1 to {_MAX_API_BURST} requests {limit}"
    within(source, "api.throttle.burst", throttle.burst, 1, _MAX_API_BURST, burst)


def _check_network(config: Config, source: str) -> None:
    network = config.network
    for key, ids, most in (
        ("subnets", network.subnets, _MAX_SUBNETS),
        ("security_groups", network.security_groups, _MAX_SECURITY_GROUPS),
        ("route_tables", network.route_tables, _MAX_SUBNETS),
    ):
        if len(ids) > most:
            raise ConfigError(
                f"SageMaker's VpcConfig takes at most {most}, got {len(ids)}",
                path=source,
                key=f"network.{key}",
            )
        for i, value in enumerate(ids):
            if not _ID_RE[key].match(value):
                raise ConfigError(
                    f"{value!r} is not a {key[:-1].replace('_', ' ')} id",
                    path=source,
                    key=f"network.{key}[{i}]",
                    hint=f"e.g. {_EXAMPLE_IDS[key]}",
                )
    if bool(network.subnets) != bool(network.security_groups):
        missing = "security_groups" if network.subnets else "subnets"
        raise ConfigError(
            "SageMaker's VpcConfig needs both subnets and security groups",
            path=source,
            key=f"network.{missing}",
            hint=f"list the {missing.replace('_', ' ')} too, or neither",
        )
    if network.vpc_id is not None and not _VPC_RE.match(network.vpc_id):
        raise ConfigError(
            f"{network.vpc_id!r} is not a VPC id",
            path=source,
            key="network.vpc_id",
            hint="e.g. vpc-0123456789abcdef0",
        )
    if network.private_subnets and not network.in_vpc:
        raise ConfigError(
            "private subnets need network.subnets and network.security_groups",
            path=source,
            key="network.private_subnets",
        )
    if network.private_subnets and network.vpc_id is None:
        raise ConfigError(
            "the S3 and SageMaker VPC endpoints for private subnets are created in a VPC: "
            "network.vpc_id is not set",
            path=source,
            key="network.vpc_id",
            hint="give the subnets' VPC id",
        )
    if network.private_subnets and not network.route_tables:
        raise ConfigError(
            "S3's VPC endpoint for private subnets is a gateway on their route tables: "
            "network.route_tables lists none",
            path=source,
            key="network.route_tables",
            hint="list the route tables of network.subnets (rtb-…)",
        )
    if network.isolation and config.deploy.backend == "sagemaker":
        raise ConfigError(
            "deploy.backend: sagemaker serves the inference code from S3 (sourcedir.tar.gz), "
            "which an isolated container cannot fetch",
            path=source,
            key="network.isolation",
            hint="deploy through the stack's pipeline (its image holds the code), or drop "
            "network.isolation for `mlcicd run`",
        )
    if network.isolation and not config.train.network_isolation:
        raise ConfigError(
            "network.isolation isolates the models and training jobs, and "
            "train.network_isolation is false",
            path=source,
            key="train.network_isolation",
            hint="drop train.network_isolation: false, or network.isolation",
        )


def _check_spot(config: Config, source: str) -> None:
    train = config.train
    if train.max_wait is None:
        return
    if not train.use_spot:
        raise ConfigError(
            "max_wait is how long a spot job may wait for capacity, and train.use_spot is false",
            path=source,
            key="train.max_wait",
            hint="set train.use_spot: true, or drop max_wait",
        )
    if train.max_wait < train.max_runtime:
        raise ConfigError(
            f"must be at least train.max_runtime ({train.max_runtime}s) for spot training, got "
            f"{train.max_wait}",
            path=source,
            key="train.max_wait",
            hint="it is the runtime plus the time to wait for spot capacity",
        )


# A local endpoint's workers are processes on this machine: an update runs two generations at
# once, and the connection board has 64 slots (mlcicd.serving.config.MAX_WORKERS says the same).
LOCAL_MAX_WORKERS = 32


def _check_local_workers(deploy: DeployConfig, source: str) -> None:
    """How many worker processes an endpoint on this machine (local, or a container's
    ``serve``) may run; SageMaker bounds its instances itself (check_sagemaker_hosting)."""
    if deploy.backend == "sagemaker":
        return
    scaling = deploy.autoscaling
    counts = {"workers": deploy.workers}
    if scaling is not None:
        counts["autoscaling.max_instances"] = scaling.max_instances
    for key, count in counts.items():
        if count > LOCAL_MAX_WORKERS:
            raise ConfigError(
                f"an endpoint on this machine runs 1 to {LOCAL_MAX_WORKERS} worker processes, "
                f"got {count}",
                path=source,
                key=f"deploy.{key}",
                hint="for more, deploy to SageMaker (deploy.backend: sagemaker)",
            )
