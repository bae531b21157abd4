"""Every client from one function, AWS's errors as ours: against moto's server."""

from __future__ import annotations

import pytest

from mlcicd.aws.clients import ENV_ENDPOINT_URL, AwsClient, clear_cache, client, is_not_found
from mlcicd.errors import AwsError, MlcicdError
from tests.aws.conftest import AwsClient as TestClients

pytestmark = pytest.mark.integration


def test_the_endpoint_comes_from_the_environment(aws_env: TestClients, moto_server: str) -> None:
    s3 = client("s3")
    assert isinstance(s3, AwsClient)
    assert s3.meta.endpoint_url == moto_server
    s3.create_bucket(Bucket="made-by-mlcicd")
    assert [b["Name"] for b in aws_env("s3").list_buckets()["Buckets"]] == ["made-by-mlcicd"]


def test_clients_are_cached_per_service_region_and_endpoint(
    aws_env: TestClients, moto_server: str
) -> None:
    assert client("sagemaker") is client("sagemaker")
    assert client("sagemaker") is not client("sagemaker", region="eu-west-1")
    assert client("sagemaker", region="eu-west-1").meta.region_name == "eu-west-1"
    assert client("s3", endpoint_url=moto_server + "/") is not client("s3")


def test_a_client_error_carries_awss_code_message_and_the_operation(aws_env: TestClients) -> None:
    with pytest.raises(AwsError) as raised:
        client("sagemaker").describe_training_job(TrainingJobName="iris-classifier-nope")
    error = raised.value
    assert isinstance(error, MlcicdError)
    assert error.code == "ValidationException"
    assert error.operation == "sagemaker:DescribeTrainingJob"
    assert "iris-classifier-nope" in error.aws_message
    assert error.headline.startswith("sagemaker:DescribeTrainingJob failed: ValidationException: ")
    assert is_not_found(error)
    assert isinstance(raised.value.__cause__, Exception)  # `raise … from` botocore's error


def test_s3_not_found_and_paginated_calls(aws_env: TestClients) -> None:
    with pytest.raises(AwsError) as raised:
        client("s3").head_bucket(Bucket="no-such-bucket")
    assert raised.value.code == "404" and is_not_found(raised.value)
    with pytest.raises(AwsError) as paged:
        list(client("s3").paginate("list_objects_v2", Bucket="no-such-bucket"))
    assert paged.value.code == "NoSuchBucket"
    assert paged.value.operation == "s3:ListObjectsV2"


def test_no_credentials_is_a_one_line_error_with_what_to_do(
    aws_env: TestClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    clear_cache()
    try:
        with pytest.raises(AwsError) as raised:
            client("s3").list_buckets()
    finally:
        clear_cache()  # the next tests' clients must pick up credentials again
    assert raised.value.code == "NoCredentialsError"
    assert "aws configure" in (raised.value.hint or "")


def test_explicit_credentials_make_a_client_of_their_own(aws_env: TestClients) -> None:
    from mlcicd.aws.clients import Credentials

    mine = client("s3", credentials=Credentials("AKIAEXAMPLE", "secret", "token"))
    assert mine is not client("s3")
    assert mine.raw._request_signer._credentials.access_key == "AKIAEXAMPLE"


def test_timeouts_make_a_client_of_their_own_and_leave_the_others_as_they_were(
    aws_env: TestClients,
) -> None:
    from mlcicd.aws.clients import Timeouts

    short = Timeouts(connect_seconds=2, read_seconds=10, total_max_attempts=2)
    quick = client("s3", timeouts=short)
    assert quick is client("s3", timeouts=Timeouts(2, 10, 2))  # cached by value
    assert quick is not client("s3")
    config = quick.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    # Everyone else's: botocore's timeouts, standard retries, max_attempts 5 (= 6 attempts).
    usual = client("s3").meta.config
    assert (usual.connect_timeout, usual.read_timeout) == (60, 60)
    assert usual.retries == {"mode": "standard", "total_max_attempts": 6}
    quick.create_bucket(Bucket="made-quickly")  # it reaches the same endpoint
    assert [b["Name"] for b in aws_env("s3").list_buckets()["Buckets"]] == ["made-quickly"]
    with pytest.raises(ValueError):
        Timeouts(connect_seconds=0, read_seconds=10, total_max_attempts=2)


def test_the_variable_is_named_as_documented() -> None:
    assert ENV_ENDPOINT_URL == "MLCICD_AWS_ENDPOINT_URL"
