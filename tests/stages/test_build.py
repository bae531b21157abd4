"""The build stage's environment: what goes into it besides the project's requirements."""

from __future__ import annotations

from importlib import metadata

from mlcicd.config import parse_config
from mlcicd.environments import environment_extras


def extras(text: str) -> tuple[str, ...]:
    return environment_extras(
        parse_config("pipeline: p\nbuild: {test_requirements: [pytest]}\n" + text)
    )


def test_boto3_joins_only_when_a_local_endpoint_captures_to_an_s3_store() -> None:
    capture = "deploy: {data_capture: {enabled: true}}\n"
    # The workers write the capture objects themselves: they need boto3, as the CLI runs it.
    assert extras(capture + "store: {uri: s3://bucket/runs}\n") == (
        "pytest",
        f"boto3=={metadata.version('boto3')}",
    )
    assert extras(capture) == ("pytest",)  # a local store: files, no boto3
    assert extras("store: {uri: s3://bucket/runs}\n") == ("pytest",)  # no capture
    on_sagemaker = "deploy: {backend: sagemaker, data_capture: {enabled: true}}\n"
    assert extras(on_sagemaker + "store: {uri: s3://bucket/runs}\n") == ("pytest",)


def test_boto3_joins_when_the_endpoint_tests_call_a_sagemaker_staging_endpoint() -> None:
    # SageMaker's runtime takes only signed requests: the tests need boto3's sagemaker-runtime.
    staged = "staging: {test: python -m pytest -q tests/endpoint}\n"
    boto3 = f"boto3=={metadata.version('boto3')}"
    assert extras("deploy: {backend: sagemaker}\n" + staged) == ("pytest", boto3)
    assert extras(staged) == ("pytest",)  # a local staging endpoint: plain HTTP
    assert extras("deploy: {backend: sagemaker}\nstaging: {keep: true}\n") == ("pytest",)
