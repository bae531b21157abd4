"""What SageMaker accepts of ``deploy:``, checked when the config is loaded (or switched to
``--backend aws``), each failure naming its key — not found by a failed UpdateEndpoint
after the model has trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.config import parse_config, with_backend
from mlcicd.endpoints.sagemaker import SageMakerEndpointBackend
from mlcicd.errors import ConfigError
from mlcicd.store import LocalArtifactStore

ON_SAGEMAKER = "pipeline: p\ndeploy:\n  backend: sagemaker\n"
TWO = "  variants: [{name: A, weight: 1}, {name: B, weight: 1}]\n"


@pytest.mark.parametrize(
    ("deploy", "key", "message"),
    [
        (
            "  strategy: canary\n  canary: {percent: 60}\n",
            "deploy.canary.percent",
            "SageMaker's CanarySize is a whole percentage of the instances from 1 to 50, got 60",
        ),
        ("  strategy: canary\n  canary: {percent: 12.5}\n", "deploy.canary.percent", "got 12.5"),
        (
            "  strategy: linear\n  linear: {step_percent: 5}\n",
            "deploy.linear.step_percent",
            "SageMaker's LinearStepSize is a whole percentage of the instances from 10 to 50, "
            "got 5",
        ),
        (
            "  strategy: canary\n  canary: {bake_seconds: 7200}\n",
            "deploy.canary.bake_seconds",
            "SageMaker waits whole seconds, at most 3600 (WaitIntervalInSeconds), got 7200",
        ),
        (
            "  strategy: linear\n  linear: {interval_seconds: 0.5}\n",
            "deploy.linear.interval_seconds",
            "got 0.5",
        ),
        (
            "  alarms: {max_5xx_rate: 0.01, bake_seconds: 4000}\n",
            "deploy.alarms.bake_seconds",
            "got 4000",
        ),
        (
            TWO + "  shadow: {model: latest}\n",
            "deploy.shadow",
            "SageMaker puts a shadow variant beside one production variant, and deploy.variants "
            "has 2",
        ),
        (
            "  variants: ["
            + ", ".join(f"{{name: V{i}}}" for i in range(6))
            + "]\n  alarms: {max_p99_latency_ms: 50}\n",
            "deploy.alarms",
            "alarms watch at most 5 variants",
        ),
        (
            "  data_capture: {enabled: true, sampling_percentage: 12.5}\n",
            "deploy.data_capture.sampling_percentage",
            "SageMaker samples a whole percentage (InitialSamplingPercentage), got 12.5",
        ),
        (
            "  data_capture: {enabled: true, capture: []}\n",
            "deploy.data_capture.capture",
            "SageMaker captures input, output or both",
        ),
    ],
)
def test_what_sagemaker_cannot_do_names_its_key(deploy: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(ON_SAGEMAKER + deploy)
    assert info.value.key == key
    assert str(info.value).startswith(f"mlcicd.yaml: {key}: ")
    assert message in str(info.value)
    # The local endpoint has none of these limits.
    parse_config(ON_SAGEMAKER.replace("sagemaker", "local") + deploy)


def test_what_sagemaker_can_do_loads() -> None:
    config = parse_config(
        ON_SAGEMAKER
        + TWO
        + """\
  strategy: linear
  linear: {step_percent: 20, interval_seconds: 600}
  alarms: {max_5xx_rate: 0.01, max_p99_latency_ms: 50, min_invocations: 20}
  data_capture: {enabled: true, sampling_percentage: 20, capture: [input]}
"""
    )
    assert config.deploy.linear.step_percent == 20 and len(config.deploy.variants) == 2
    shadow = parse_config(
        ON_SAGEMAKER + "  shadow: {model: latest}\n  strategy: canary\n  canary: {percent: 50}\n"
    )
    assert shadow.deploy.shadow is not None


def test_backend_aws_checks_the_deploy_config_before_anything_starts() -> None:
    local = parse_config("pipeline: p\ndeploy:\n  strategy: canary\n  canary: {percent: 75}\n")
    with pytest.raises(ConfigError) as info:
        with_backend(
            local,
            "aws",
            stack_outputs={
                "SageMakerRoleArn": "arn:aws:iam::123456789012:role/r",
                "ModelsBucketName": "models",
                "RepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-model-repo",
            },
            commit="0" * 40,
        )
    assert info.value.key == "deploy.canary.percent"


def test_capture_on_sagemaker_needs_the_store_on_s3(tmp_path: Path) -> None:
    config = parse_config(
        ON_SAGEMAKER + "  data_capture: {enabled: true}\n  shadow: {model: latest}\n"
        "train: {image: img, role: 'arn:aws:iam::123456789012:role/r'}\n"
    )
    with pytest.raises(ConfigError) as info:
        SageMakerEndpointBackend.from_config(config, LocalArtifactStore(tmp_path))
    assert info.value.key == "store.uri"
    assert "SageMaker endpoints need the artifact store on S3" in str(info.value)
