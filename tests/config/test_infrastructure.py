"""The keys a run stands on — deploy.autoscaling, deploy.serverless, api, network, spot —
load with their defaults, and each bad value or combination SageMaker refuses fails at load
naming its key (not after training, in a failed CreateEndpointConfig)."""

from __future__ import annotations

import pytest

from mlcicd.config import parse_config
from mlcicd.errors import ConfigError

SUBNET = "subnet-0123456789abcdef0"
SG = "sg-0123abcd"


def test_the_issue_s_example_loads_with_its_defaults() -> None:
    config = parse_config(
        "pipeline: p\n"
        "deploy:\n"
        "  autoscaling: {min_instances: 1, max_instances: 4,\n"
        "                target_invocations_per_instance: 1000}\n"
        "api: {enabled: true, auth: api_key, throttle: {rate: 100, burst: 200}}\n"
        f"network: {{subnets: [{SUBNET}], security_groups: [{SG}], isolation: true}}\n"
        "train: {use_spot: true, max_wait: 90000, checkpoints: true}\n"
    )
    scaling = config.deploy.autoscaling
    assert scaling is not None
    assert (scaling.min_instances, scaling.max_instances) == (1, 4)
    assert scaling.target_invocations_per_instance == 1000.0
    assert (scaling.scale_in_cooldown, scaling.scale_out_cooldown) == (300, 60)
    assert config.api.enabled and config.api.auth == "api_key"
    assert (config.api.throttle.rate, config.api.throttle.burst) == (100.0, 200)
    assert config.network.in_vpc and config.network.isolation
    assert config.network.encrypt_inter_container
    assert config.train.checkpoints and config.train.max_wait == 90000
    serverless = parse_config("pipeline: p\ndeploy: {serverless: {}}\n").deploy.serverless
    assert serverless is not None
    assert (serverless.memory_mb, serverless.max_concurrency) == (2048, 20)
    default = parse_config("pipeline: p\n")
    assert default.deploy.autoscaling is None and default.deploy.serverless is None
    assert not default.api.enabled and not default.network.in_vpc
    assert not default.train.checkpoints


@pytest.mark.parametrize(
    ("yaml", "key", "message"),
    [
        (
            "deploy: {autoscaling: {max_instances: 4}}",
            "deploy.autoscaling.target_invocations_per_instance",
            "required key is missing",
        ),
        (
            "deploy: {autoscaling: {min_instances: 0, max_instances: 4, "
            "target_invocations_per_instance: 10}}",
            "deploy.autoscaling.min_instances",
            "must be at least 1, got 0",
        ),
        (
            "deploy: {autoscaling: {min_instances: 3, max_instances: 2, "
            "target_invocations_per_instance: 10}}",
            "deploy.autoscaling.max_instances",
            "must be at least min_instances (3), got 2",
        ),
        (
            "deploy: {autoscaling: {max_instances: 2, target_invocations_per_instance: 0}}",
            "deploy.autoscaling.target_invocations_per_instance",
            "must be a positive number of invocations per instance per minute, got 0",
        ),
        (
            "deploy: {autoscaling: {max_instances: 2, target_invocations_per_instance: 5, "
            "scale_in_cooldown: -1}}",
            "deploy.autoscaling.scale_in_cooldown",
            "got -1",
        ),
        (
            "deploy: {serverless: {}, autoscaling: {max_instances: 2, "
            "target_invocations_per_instance: 5}}",
            "deploy.autoscaling.min_instances",
            "a serverless endpoint has no instances to scale",
        ),
        (
            "deploy: {serverless: {memory_mb: 1500}}",
            "deploy.serverless.memory_mb",
            "SageMaker's MemorySizeInMB is one of 1024, 2048",
        ),
        (
            "deploy: {serverless: {max_concurrency: 201}}",
            "deploy.serverless.max_concurrency",
            "SageMaker's MaxConcurrency is 1 to 200, got 201",
        ),
        ("api: {auth: cognito}", "api.auth", "expected one of 'iam', 'api_key'"),
        ("api: {throttle: {rate: 0}}", "api.throttle.rate", "got 0"),
        ("api: {throttle: {burst: 0}}", "api.throttle.burst", "got 0"),
        (
            "network: {subnets: [subnet-zz], security_groups: [sg-0123abcd]}",
            "network.subnets[0]",
            "'subnet-zz' is not a subnet id",
        ),
        (
            f"network: {{subnets: [{SUBNET}]}}",
            "network.security_groups",
            "SageMaker's VpcConfig needs both subnets and security groups",
        ),
        (
            f"network: {{subnets: [{SUBNET}], security_groups: [{', '.join([SG] * 6)}]}}",
            "network.security_groups",
            "takes at most 5, got 6",
        ),
        (
            f"network: {{subnets: [{SUBNET}], security_groups: [{SG}], private_subnets: true, "
            "route_tables: [rtb-0123abcd]}",
            "network.vpc_id",
            "network.vpc_id is not set",
        ),
        ("network: {private_subnets: true}", "network.private_subnets", "need network.subnets"),
        (
            f"network: {{subnets: [{SUBNET}], security_groups: [{SG}], private_subnets: true, "
            "vpc_id: vpc-0123abcd}",
            "network.route_tables",
            "network.route_tables lists none",
        ),
        (
            "network: {route_tables: [rt-1]}",
            "network.route_tables[0]",
            "'rt-1' is not a route table id",
        ),
        (
            "deploy: {backend: sagemaker}\nnetwork: {isolation: true}",
            "network.isolation",
            "an isolated container cannot fetch",
        ),
        ("network: {vpc_id: vpc-1}", "network.vpc_id", "'vpc-1' is not a VPC id"),
        (
            "network: {isolation: true}\ntrain: {network_isolation: false}",
            "train.network_isolation",
            "network.isolation isolates the models and training jobs",
        ),
        ("train: {max_wait: 3600}", "train.max_wait", "train.use_spot is false"),
        (
            "train: {use_spot: true, max_wait: 60, max_runtime: 120}",
            "train.max_wait",
            "must be at least train.max_runtime (120s) for spot training, got 60",
        ),
    ],
)
def test_a_bad_value_names_its_key(yaml: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"pipeline: p\n{yaml}\n")
    assert info.value.key == key
    assert message in str(info.value)


SERVERLESS = "pipeline: p\ndeploy:\n  backend: sagemaker\n  serverless: {memory_mb: 4096}\n"


@pytest.mark.parametrize(
    ("extra", "key", "what"),
    [
        ("  instance_type: ml.c5.xlarge\n", "deploy.instance_type", "instance type"),
        ("  instance_count: 2\n", "deploy.instance_count", "instance count"),
        (
            "  variants: [{name: A}, {name: B}]\n",
            "deploy.variants",
            "more than one production variant",
        ),
        ("  shadow: {model: 1}\n", "deploy.shadow", "shadow variant"),
        ("  data_capture: {enabled: true}\n", "deploy.data_capture.enabled", "data capture"),
        (
            f"network: {{subnets: [{SUBNET}], security_groups: [{SG}]}}\n",
            "network.subnets",
            "VPC configuration",
        ),
        ("network: {isolation: true}\n", "network.isolation", "network isolation"),
    ],
)
def test_what_sagemaker_refuses_of_a_serverless_endpoint(extra: str, key: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(SERVERLESS + extra)
    assert info.value.key == key
    assert f"a serverless endpoint (deploy.serverless) takes no {what}" in str(info.value)
    assert parse_config(SERVERLESS).deploy.serverless is not None


@pytest.mark.parametrize(
    ("deploy", "key"),
    [
        ("{workers: 33}", "deploy.workers"),
        ("{backend: container, workers: 33}", "deploy.workers"),
        (
            "{autoscaling: {max_instances: 1000, target_invocations_per_instance: 100}}",
            "deploy.autoscaling.max_instances",
        ),
    ],
)
def test_a_local_endpoint_runs_at_most_32_workers(deploy: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"pipeline: p\ndeploy: {deploy}\n")
    assert info.value.key == key
    assert "an endpoint on this machine runs 1 to 32 worker processes, got" in str(info.value)
    assert "deploy.backend: sagemaker" in str(info.value)
    sagemaker = deploy.replace("backend: container, ", "").replace("{", "{backend: sagemaker, ", 1)
    assert parse_config(f"pipeline: p\ndeploy: {sagemaker}\n").deploy.backend == "sagemaker"


def test_the_local_bound_is_the_serving_configs() -> None:
    from mlcicd.config.infrastructure import LOCAL_MAX_WORKERS
    from mlcicd.serving.config import MAX_WORKERS

    assert LOCAL_MAX_WORKERS == MAX_WORKERS
