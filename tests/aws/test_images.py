"""Is the training image in ECR (mlcicd.aws.images)? Against moto's ECR (DescribeImages,
PutImage); botocore's Stubber only for a refused DescribeImages, which moto's server cannot
give (it enforces no IAM unless started to, for every test at once)."""

from __future__ import annotations

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.images import EcrImage, parse_ecr_image, require_image
from mlcicd.errors import ArtifactError
from tests.aws.conftest import AwsClient, push_image
from tests.aws.events import IMAGE
from tests.aws.stubs import OperationStubber

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_ecr_uris_are_parsed_and_other_registries_are_not() -> None:
    assert parse_ecr_image(IMAGE) == EcrImage(
        uri=IMAGE,
        registry=REGISTRY,
        account="123456789012",
        region="us-east-1",
        repository="ml-model-repo",
        tag="0123456789ab",
        digest=None,
    )
    nested = parse_ecr_image("210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/iris")
    assert nested is not None
    assert (nested.account, nested.region, nested.repository, nested.image_id) == (
        "210987654321",
        "eu-west-1",
        "team/iris",
        {"imageTag": "latest"},
    )
    pinned = parse_ecr_image(f"{REGISTRY}/ml-model-repo@sha256:{'a' * 64}")
    assert pinned is not None and pinned.image_id == {"imageDigest": f"sha256:{'a' * 64}"}
    for other in (
        "python:3.11-slim",
        "ghcr.io/ada/iris:1",
        "localhost:5000/iris:1",
        "docker.io/library/python:3.11",
        f"{REGISTRY}",
    ):
        assert parse_ecr_image(other) is None, other


@pytest.mark.integration
def test_a_tag_never_pushed_fails_naming_the_image_and_how_to_push_it(aws_env: AwsClient) -> None:
    push_image(aws_env, f"{REGISTRY}/ml-model-repo:fedcba987654")  # another commit's image
    with pytest.raises(ArtifactError) as raised:
        require_image(IMAGE)
    headline = raised.value.headline
    assert headline.startswith(
        f"image {IMAGE} is not in ECR: repository ml-model-repo has no image with tag 0123456789ab"
    )
    assert f"docker push {IMAGE}" in headline and f"docker build -t {IMAGE} ." in headline
    assert f"--password-stdin {REGISTRY}" in headline and "buildspec.yml" in headline


@pytest.mark.integration
def test_once_pushed_it_passes(aws_env: AwsClient) -> None:
    push_image(aws_env, IMAGE)
    found = require_image(IMAGE)
    assert found is not None and found.startswith(f"image {IMAGE} is in ECR (pushed ")


@pytest.mark.integration
def test_a_missing_repository_is_named(aws_env: AwsClient) -> None:
    with pytest.raises(ArtifactError) as raised:
        require_image(IMAGE)
    assert raised.value.message == (
        f"image {IMAGE}: ECR repository ml-model-repo does not exist in registry "
        "123456789012 (us-east-1)"
    )
    assert "mlcicd aws deploy" in (raised.value.hint or "")


@pytest.mark.integration
def test_another_registry_is_not_asked_and_a_refused_lookup_does_not_block(
    aws_env: AwsClient,
) -> None:
    assert require_image("ghcr.io/ada/iris:0123456789ab") is None
    push_image(aws_env, IMAGE)
    with OperationStubber(client("ecr"), "DescribeImages") as ecr:
        ecr.add_client_error(
            "describe_images", "AccessDeniedException", "not authorized to ecr:DescribeImages"
        )
        found = require_image(IMAGE)
    assert found is not None
    assert found.startswith(
        f"image {IMAGE} not looked up in ECR (AccessDeniedException: these credentials may not"
    )
