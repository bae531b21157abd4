"""`mlcicd run --backend aws|local`: the config of one run (unit), and the name limits."""

from __future__ import annotations

import dataclasses

import pytest

from mlcicd.aws.names import versioned_endpoint_config_name
from mlcicd.config import Config, TrainConfig, load_config, parse_config, with_backend
from mlcicd.endpoints.sagemaker import runtime_url
from mlcicd.errors import ConfigError
from tests.conftest import IRIS

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OUTPUTS = {
    "SageMakerRoleArn": "arn:aws:iam::123456789012:role/stack-SageMakerExecutionRole-X",
    "ModelsBucketName": "ml-cicd-pipeline-models-123456789012-us-east-1",
    "RepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-model-repo",
}


@pytest.fixture
def iris() -> Config:
    return load_config(IRIS)


def test_aws_fills_what_is_missing_from_the_stack(iris: Config) -> None:
    assert iris.train.backend == iris.deploy.backend == "local"
    on_aws = with_backend(iris, "aws", stack_outputs=OUTPUTS, commit=COMMIT)
    assert (on_aws.train.backend, on_aws.deploy.backend) == ("sagemaker", "sagemaker")
    assert on_aws.train.role == OUTPUTS["SageMakerRoleArn"]
    assert on_aws.train.image == f"{OUTPUTS['RepositoryUri']}:0123456789ab"
    assert on_aws.store.uri == f"s3://{OUTPUTS['ModelsBucketName']}"
    # A new config: the loaded one is untouched, and everything else is as loaded.
    assert iris.train.backend == "local" and iris.train.image is None and iris.store.uri is None
    assert on_aws.train.hyperparameters == iris.train.hyperparameters
    assert on_aws.gate == iris.gate and on_aws.deploy.endpoint_name == iris.deploy.endpoint_name


def test_aws_takes_the_endpoint_role_and_key_from_the_stack(iris: Config) -> None:
    outputs = {
        **OUTPUTS,
        "EndpointRoleArn": "arn:aws:iam::123456789012:role/stack-EndpointExecutionRole-Y",
        "EncryptionKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
    }
    on_aws = with_backend(iris, "aws", stack_outputs=outputs, commit=COMMIT)
    assert on_aws.deploy.role == outputs["EndpointRoleArn"] != on_aws.train.role
    assert on_aws.train.kms_key == outputs["EncryptionKeyArn"]
    assert on_aws.train.network_isolation is True
    # An older stack without them: the endpoint falls back to train.role, nothing is encrypted
    # by name.
    older = with_backend(iris, "aws", stack_outputs=OUTPUTS, commit=COMMIT)
    assert (older.deploy.role, older.train.kms_key) == (None, None)
    mine = parse_config(
        "pipeline: p\ntrain:\n  kms_key: alias/mine\n  network_isolation: false\n"
        "deploy:\n  role: arn:aws:iam::1:role/serve\n"
    )
    kept = with_backend(mine, "aws", stack_outputs=outputs, commit=COMMIT)
    assert (kept.train.kms_key, kept.train.network_isolation, kept.deploy.role) == (
        "alias/mine",
        False,
        "arn:aws:iam::1:role/serve",
    )


def test_aws_keeps_what_the_config_sets(iris: Config) -> None:
    mine = dataclasses.replace(
        iris,
        train=dataclasses.replace(iris.train, image="my/image:1", role="arn:aws:iam::1:role/mine"),
        store=dataclasses.replace(iris.store, uri="s3://mine/runs"),
    )
    on_aws = with_backend(mine, "aws", stack_outputs=OUTPUTS, commit=COMMIT)
    assert (on_aws.train.image, on_aws.train.role, on_aws.store.uri) == (
        "my/image:1",
        "arn:aws:iam::1:role/mine",
        "s3://mine/runs",
    )
    assert with_backend(mine, "aws") == on_aws  # nothing missing: no stack needed


def test_aws_without_a_stack_names_every_missing_key(iris: Config) -> None:
    with pytest.raises(ConfigError) as caught:
        with_backend(iris, "aws")
    message = caught.value.headline
    assert "train.image, train.role, store.uri" in message
    assert "--stack-name" in message


def test_aws_with_a_stack_lacking_outputs(iris: Config) -> None:
    with pytest.raises(ConfigError) as caught:
        with_backend(
            iris, "aws", stack_outputs={"RepositoryUri": OUTPUTS["RepositoryUri"]}, commit=COMMIT
        )
    assert "train.role, store.uri" in caught.value.headline
    assert "train.image" not in caught.value.headline.split("needs")[1].split(",")[0]


def test_aws_refuses_a_local_store(iris: Config) -> None:
    local_store = dataclasses.replace(
        iris, store=dataclasses.replace(iris.store, uri="/tmp/artifacts")
    )
    with pytest.raises(ConfigError, match=r"store\.uri.*not an s3:// URI"):
        with_backend(local_store, "aws", stack_outputs=OUTPUTS, commit=COMMIT)


def test_local_overrides_sagemaker_in_the_config(iris: Config) -> None:
    on_sagemaker = dataclasses.replace(
        iris, train=TrainConfig(backend="sagemaker", image="i", role="r")
    )
    local = with_backend(on_sagemaker, "local")
    assert (local.train.backend, local.deploy.backend) == ("local", "local")
    assert on_sagemaker.train.backend == "sagemaker"


def test_the_result_is_validated(iris: Config) -> None:
    broken = dataclasses.replace(
        iris, deploy=dataclasses.replace(iris.deploy, endpoint_name="x" * 51)
    )
    with pytest.raises(ConfigError, match=r"deploy\.endpoint_name"):
        with_backend(broken, "local")


def test_endpoint_names_are_at_most_50_characters() -> None:
    parse_config(f"pipeline: p\ndeploy:\n  endpoint_name: {'e' * 50}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pipeline: p\ndeploy:\n  endpoint_name: {'e' * 51}\n")
    assert "deploy.endpoint_name" in caught.value.headline and "at most 50" in caught.value.headline
    # The default name, <pipeline>-endpoint, is held to it too; the error says where it comes from.
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pipeline: {'p' * 45}\n")
    assert ": pipeline:" in caught.value.headline
    assert "deploy.endpoint_name" in (caught.value.hint or "")


@pytest.mark.parametrize("length", [1, 24, 40, 41, 50])
def test_endpoint_config_names_start_with_the_whole_endpoint_name(length: int) -> None:
    endpoint = "e" * length
    for version in (1, 12, 12345):
        name = versioned_endpoint_config_name(endpoint, version, "f" * 64)
        assert name.startswith(f"{endpoint}-v{version}-")
        assert len(name) <= 63
        assert len(name.rsplit("-", 1)[1]) >= 4
    # Short names keep the 8-digit digest (existing configs keep their names).
    assert (
        versioned_endpoint_config_name("iris-classifier-endpoint", 3, "abcdef0123")
        == "iris-classifier-endpoint-v3-abcdef01"
    )


def test_endpoint_config_name_without_room_for_a_digest() -> None:
    with pytest.raises(ConfigError, match=r"deploy\.endpoint_name"):
        versioned_endpoint_config_name("e" * 50, 10**8, "f" * 64)


def test_runtime_url() -> None:
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/iris-classifier-endpoint"
    assert runtime_url("Iris-Classifier-Endpoint", arn) == (
        "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/Iris-Classifier-Endpoint/invocations"
    )
    with pytest.raises(ValueError):
        runtime_url("x", "arn:aws:sagemaker:eu-west-1:1:model/x")


def test_the_processing_steps_go_where_training_goes() -> None:
    # examples/pipeline: prepare and evaluate run locally by default; on AWS they are
    # ProcessingJobs, as the stack's pipeline runs them.
    pipeline = load_config(IRIS.parent / "pipeline")
    assert {s.backend for s in pipeline.processing} == {"local"}
    on_aws = with_backend(pipeline, "aws", stack_outputs=OUTPUTS, commit=COMMIT)
    assert [s.backend for s in on_aws.processing] == ["sagemaker", "sagemaker"]
    assert [s.name for s in on_aws.processing] == ["prepare", "evaluate"]
    back = with_backend(on_aws, "local")
    assert [s.backend for s in back.processing] == ["local", "local"]
