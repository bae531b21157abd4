"""What `mlcicd aws deploy` supplies to the stack: the Lambda code, against moto's server.

The whole deploy through the CLI (the webhook secret made once and never shown among it) is
tests/aws/test_stack_deploy.py.
"""

from __future__ import annotations

import pytest

from mlcicd.aws.pipeline_stack import publish_lambda_code
from tests.aws.conftest import AwsClient

pytestmark = pytest.mark.integration


def test_named_code_is_not_built_nor_uploaded(aws_env: AwsClient) -> None:
    assert publish_lambda_code({"LambdaCodeKey": "mlcicd/lambdas-mine.zip"}, "ours") is None
    assert aws_env("s3").list_buckets()["Buckets"] == []


def test_the_code_goes_to_the_parameters_bucket_before_the_options(aws_env: AwsClient) -> None:
    code = publish_lambda_code({"LambdaCodeBucket": "theirs"}, "ours")
    assert code is not None and code.bucket == "theirs"
    head = aws_env("s3").head_object(Bucket="theirs", Key=code.key)
    assert head["Metadata"]["sha256"] == code.sha256 and code.key.startswith("mlcicd/lambdas-")
    assert [b["Name"] for b in aws_env("s3").list_buckets()["Buckets"]] == ["theirs"]
