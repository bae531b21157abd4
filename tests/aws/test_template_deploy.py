"""``deploy:`` in the stack: the deploy Lambda's settings and permissions, generated from
mlcicd.yaml so that a push deploys as ``mlcicd run --backend aws`` does (plain data, no AWS).

The deploy Lambda reads its settings back through DeploySettings, and what it reads is what
``mlcicd run`` derives from the same ``deploy:`` (mlcicd.endpoints.base, mlcicd.aws.deployment).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mlcicd.aws import names
from mlcicd.aws.deployment import CAPTURE_PREFIX, rollback_thresholds, traffic_routing
from mlcicd.aws.lambdas.deploy import DeploySettings
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from mlcicd.endpoints.base import data_capture, deployment_policy
from mlcicd.errors import ConfigError
from mlcicd.store import S3ArtifactStore
from tests.aws.cfn import as_list, resolve, role_statements
from tests.aws.conftest import iris_with_deploy
from tests.aws.events import MODELS_BUCKET, lambda_environment

ALARM_ARN = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
ERRORS_ALARM = "iris-classifier-endpoint-rollback-5xx-rate"
LATENCY_ALARM = "iris-classifier-endpoint-rollback-model-latency-p99"
DEPLOY_SETTINGS = (
    names.ENV_TRAFFIC_ROUTING,
    names.ENV_ROLLBACK_THRESHOLDS,
    names.ENV_DATA_CAPTURE,
    names.ENV_VARIANTS,
    names.ENV_SHADOW,
    names.ENV_ENDPOINT_ENVIRONMENT,
)


def _deploy_environment(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"])


def _statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for r, s in role_statements(resolve(template)) if r == role}


def _alarm_arns(statement: dict[str, Any]) -> set[str]:
    return {resource["Fn::Sub"] for resource in as_list(statement["Resource"])}


def test_without_the_rest_of_deploy_a_plain_update_and_no_alarm_permission(
    iris_config: Config,
) -> None:
    template = build_template(iris_config)
    env = _deploy_environment(template)
    assert set(DEPLOY_SETTINGS) <= set(env) and "MLCICD_ROLLBACK_ALARMS" not in env
    assert json.loads(env[names.ENV_TRAFFIC_ROUTING]) == {"type": "ALL_AT_ONCE", "wait_seconds": 0}
    for unset in (
        names.ENV_ROLLBACK_THRESHOLDS,
        names.ENV_DATA_CAPTURE,
        names.ENV_VARIANTS,
        names.ENV_SHADOW,
    ):
        assert env[unset] == ""
    assert json.loads(env[names.ENV_ENDPOINT_ENVIRONMENT]) == {"SAGEMAKER_PROGRAM": "inference.py"}
    deploy_role = _statements(template, "DeployFunctionRole")
    # No alarm of its own to put: only the target-tracking alarms an earlier
    # deploy.autoscaling left, which deleting its policy deletes in the Lambda's name.
    assert {
        sid: as_list(s["Action"])
        for sid, s in deploy_role.items()
        if any(a.startswith("cloudwatch:") for a in as_list(s["Action"]))
    } == {"TheTargetTrackingAlarms": ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]}
    # What SageMaker reads for a rollback: the two alarms deploy.alarms becomes, and no other.
    read = _statements(template, "EndpointExecutionRole")["ReadRollbackAlarms"]
    assert _alarm_arns(read) == {ALARM_ARN + ERRORS_ALARM, ALARM_ARN + LATENCY_ALARM}


def test_canary_alarms_and_capture_reach_the_deploy_lambda(canary_config: Config) -> None:
    template = build_template(canary_config)
    env = _deploy_environment(template)
    assert (env[names.ENV_ENDPOINT_INSTANCE_TYPE], env[names.ENV_ENDPOINT_INSTANCE_COUNT]) == (
        "ml.c5.large",
        "2",
    )
    assert json.loads(env[names.ENV_TRAFFIC_ROUTING]) == {
        "type": "CANARY",
        "size_percent": 20,
        "wait_seconds": 300,
    }
    assert json.loads(env[names.ENV_ROLLBACK_THRESHOLDS]) == {
        "max_5xx_rate": 0.01,
        "max_p99_latency_ms": 250,
        "min_invocations": 20,
    }
    capture = json.loads(env[names.ENV_DATA_CAPTURE]["Fn::Sub"])
    assert capture == {
        "sampling_percentage": 20,
        "capture_input": True,
        "capture_output": True,
        "destination": "s3://${ModelsBucket}/ml-cicd-pipeline-artifacts/data-capture",
    }
    # The place `mlcicd run --backend aws --stack-name` writes to: its store is the models bucket.
    store = S3ArtifactStore(f"s3://{MODELS_BUCKET}")
    assert capture["destination"].replace("${ModelsBucket}", MODELS_BUCKET) == store.uri(
        canary_config.store.artifacts_bucket, CAPTURE_PREFIX
    )

    # The deploy Lambda may put exactly the alarms it puts (with their tags), nothing else.
    put = _statements(template, "DeployFunctionRole")["PutTheRollbackAlarms"]
    assert sorted(as_list(put["Action"])) == ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"]
    assert _alarm_arns(put) == {ALARM_ARN + ERRORS_ALARM, ALARM_ARN + LATENCY_ALARM}


def test_one_threshold_one_alarm_to_put(iris_config: Config) -> None:
    template = build_template(iris_with_deploy(alarms={"max_p99_latency_ms": 100}))
    put = _statements(template, "DeployFunctionRole")["PutTheRollbackAlarms"]
    assert _alarm_arns(put) == {ALARM_ARN + LATENCY_ALARM}
    assert json.loads(_deploy_environment(template)[names.ENV_ROLLBACK_THRESHOLDS]) == {
        "max_p99_latency_ms": 100,
        "min_invocations": 1,
    }


@pytest.mark.parametrize(
    "deploy",
    [
        {},
        {
            "strategy": "linear",
            "linear": {"step_percent": 20, "interval_seconds": 600},
            "alarms": {"max_5xx_rate": 0.05},
        },
        {"alarms": {"max_p99_latency_ms": 50, "bake_seconds": 120}},
        {
            "strategy": "canary",
            "canary": {"percent": 5, "bake_seconds": 60},
            "data_capture": {"enabled": True, "sampling_percentage": 100, "capture": ["output"]},
            "variants": [{"name": "Current", "model": 3, "weight": 2}],
            "shadow": {"model": "latest"},
            "environment": {"LOG_LEVEL": "debug"},
            "entry_point": "serve.py",
        },
    ],
    ids=["plain", "linear", "all-at-once-baking", "canary-shadow-capture"],
)
def test_the_lambda_reads_what_mlcicd_run_derives(deploy: dict[str, Any]) -> None:
    config = iris_with_deploy(**deploy)
    environ = lambda_environment(build_template(config), "DeployFunction")
    settings = DeploySettings.from_environ(environ)
    policy = deployment_policy(config.deploy)
    assert settings.routing == traffic_routing(policy)
    assert settings.thresholds == rollback_thresholds(policy)
    destination = S3ArtifactStore(f"s3://{MODELS_BUCKET}").uri(
        config.store.artifacts_bucket, CAPTURE_PREFIX
    )
    assert settings.capture == data_capture(config.deploy, destination)
    assert settings.variants == config.deploy.variants and settings.shadow == config.deploy.shadow
    assert settings.environment == {
        "SAGEMAKER_PROGRAM": config.deploy.entry_point,
        **config.deploy.environment,
    }
    assert (settings.instance_type, settings.instance_count) == (
        config.deploy.instance_type,
        config.deploy.instance_count,
    )


def test_what_sagemaker_cannot_do_stops_the_template(iris_config: Config) -> None:
    # Loaded for the local backend, which can; the stack's pipeline deploys to SageMaker.
    config = iris_with_deploy(strategy="canary", canary={"percent": 75})
    assert config.deploy.backend == "local"
    with pytest.raises(ConfigError) as info:
        build_template(config)
    assert info.value.key == "deploy.canary.percent"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (names.ENV_ROLLBACK_THRESHOLDS, '{"max_5xx": 0.1}', "unknown keys ['max_5xx']"),
        (names.ENV_DATA_CAPTURE, '{"sampling_percentage": 10}', "destination must be an s3:// URI"),
        (names.ENV_VARIANTS, '[{"weight": 1}]', "is not a VariantConfig"),
        (names.ENV_SHADOW, "[1]", "must be a JSON dict"),
    ],
)
def test_a_bad_setting_names_its_variable(
    iris_config: Config, name: str, value: str, message: str
) -> None:
    environ = {**lambda_environment(build_template(iris_config), "DeployFunction"), name: value}
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        DeploySettings.from_environ(environ)
    assert name in str(info.value)
