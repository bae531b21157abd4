"""What a test process gets to call a SageMaker endpoint (mlcicd/endpoints/sagemaker_runtime.py):
checked by running boto3's ``sagemaker-runtime`` in a child with that environment and a
profile of its own (never this process's keys), against moto's server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.endpoints.sagemaker_runtime import client_environment
from tests.aws.conftest import AwsClient

pytestmark = pytest.mark.integration

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/iris-classifier-endpoint-staging"
CALL = """
import boto3, json, os
answer = boto3.client("sagemaker-runtime").invoke_endpoint(
    EndpointName=os.environ["MLCICD_ENDPOINT_NAME"], Body=b"[[1, 2, 3, 4]]",
    ContentType="application/json")
print(json.dumps({"body": answer["Body"].read().decode(), "region": os.environ["AWS_REGION"]}))
"""


def test_a_boto3_test_reaches_the_endpoint_with_that_environment_and_its_own_profile(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    environment = client_environment(ARN)
    assert environment["AWS_REGION"] == "eu-west-1"  # the endpoint's, from its ARN
    # This process's keys stay here: the test signs with credentials of its own.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(
        environment
    )
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[endpoint-tests]\naws_access_key_id = tests\naws_secret_access_key = tests\n"
    )
    child = {
        "PATH": "/usr/bin:/bin",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_PROFILE": "endpoint-tests",
        "MLCICD_ENDPOINT_NAME": "iris-classifier-endpoint-staging",
        **environment,
    }
    result = subprocess.run(
        [sys.executable, "-c", CALL], env=child, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # moto's canned answer: the call went to the AWS endpoint mlcicd talks to, signed.
    assert json.loads(result.stdout) == {"body": "body", "region": "eu-west-1"}


def test_without_an_endpoint_override_boto3_goes_to_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLCICD_AWS_ENDPOINT_URL", raising=False)
    assert "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in client_environment(ARN)
    with pytest.raises(ValueError, match="not a SageMaker endpoint ARN"):
        client_environment("iris-classifier-endpoint-staging")
