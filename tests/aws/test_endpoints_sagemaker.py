"""``deploy.backend: sagemaker`` (mlcicd.endpoints.sagemaker) against moto's server.

Real: the uploads (model, code), CreateModel, CreateEndpointConfig, CreateEndpoint,
DescribeEndpoint, DeleteEndpoint and ListEndpoints as moto implements them. Simulated, with
botocore's Stubber on those operations only: UpdateEndpoint (not in moto) and
DescribeEndpoint while an endpoint updates, rolls back or has failed (moto's endpoints are
InService at once).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY

from mlcicd.aws import autoscaling
from mlcicd.aws.clients import client
from mlcicd.config import AutoscalingConfig
from mlcicd.endpoints import EndpointConfig, ProductionVariant
from mlcicd.endpoints.sagemaker import SageMakerEndpointBackend
from mlcicd.errors import EndpointError, NotFoundError
from mlcicd.store import S3ArtifactStore
from tests.aws.conftest import AwsClient
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import tar_gz
from tests.aws.stubs import OperationStubber
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

STORE = "mlcicd-runs"
ENDPOINT = "iris-classifier-endpoint"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"


@pytest.fixture
def backend(aws_env: AwsClient) -> SageMakerEndpointBackend:
    aws_env("s3").create_bucket(Bucket=STORE)
    return SageMakerEndpointBackend(
        store=S3ArtifactStore(f"s3://{STORE}"),
        bucket="ml-cicd-pipeline-models",
        pipeline="iris-classifier",
        image=IMAGE,
        role_arn=ROLE_ARN,
        instance_type="ml.t2.medium",
        instance_count=2,
        poll_seconds=0.01,
    )


def config(tmp_path: Path, version: int) -> EndpointConfig:
    model = tmp_path / f"v{version}" / "model.tar.gz"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(tar_gz({"model.joblib": f"model {version}".encode()}))
    variant = ProductionVariant(
        name="AllTraffic",
        model_data=model,
        model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        code_dir=IRIS / "src",
        entry_point="inference.py",
        python=Path(sys.executable),
        environment={"MODEL_LOG_LEVEL": "info"},
    )
    return EndpointConfig(
        name=f"{ENDPOINT}-v{version}-0123abcd", endpoint_name=ENDPOINT, variants=(variant,)
    )


def answer(config_name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ARN,
        "EndpointConfigName": config_name,
        "EndpointStatus": status,
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    if reason:
        described["FailureReason"] = reason
    return described


def test_deploy_creates_the_endpoint(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    first = config(tmp_path, 1)
    described = backend.deploy(first)
    variant = first.variants[0]
    assert (described.status, described.config_name, described.model_sha256) == (
        "InService",
        first.name,
        variant.model_sha256,
    )
    assert described.url is None and described.pid is None
    sagemaker = aws_env("sagemaker")
    (production,) = sagemaker.describe_endpoint_config(EndpointConfigName=first.name)[
        "ProductionVariants"
    ]
    assert (production["InstanceType"], production["InitialInstanceCount"]) == ("ml.t2.medium", 2)
    model = sagemaker.describe_model(ModelName=production["ModelName"])
    container = model["PrimaryContainer"]
    assert production["ModelName"].startswith(f"iris-classifier-{variant.model_sha256[:12]}-")
    assert container["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE_ARN
    assert container["ModelDataUrl"] == (
        f"s3://{STORE}/ml-cicd-pipeline-models/iris-classifier/models/{variant.model_sha256}/model.tar.gz"
    )
    environment = container["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("/sourcedir.tar.gz")
    assert environment["MODEL_LOG_LEVEL"] == "info"
    assert environment["MLCICD_MODEL_SHA256"] == variant.model_sha256  # the container checks it
    assert environment["MLCICD_MODEL_DATA_URL"] == container["ModelDataUrl"]

    # The same config again: nothing new is made or uploaded.
    uploads = aws_env("s3").list_objects_v2(Bucket=STORE)["KeyCount"]
    assert backend.deploy(first).config_name == first.name
    assert aws_env("s3").list_objects_v2(Bucket=STORE)["KeyCount"] == uploads == 2
    assert len(sagemaker.list_models()["Models"]) == 1
    assert [e.name for e in backend.list()] == [ENDPOINT]


def test_a_model_overwritten_on_s3_is_uploaded_again(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    """Bytes of the same size under the old metadata: S3's checksum, not x-amz-meta-sha256,
    decides that the upload is not skipped."""
    first = config(tmp_path, 1)
    backend.deploy(first)
    variant = first.variants[0]
    key = f"ml-cicd-pipeline-models/iris-classifier/models/{variant.model_sha256}/model.tar.gz"
    good = variant.model_data.read_bytes()
    aws_env("s3").put_object(
        Bucket=STORE,
        Key=key,
        Body=bytes([good[0] ^ 1]) + good[1:],
        Metadata={"sha256": variant.model_sha256},
        ChecksumAlgorithm="SHA256",
    )
    backend.deploy(
        EndpointConfig(
            name="other-endpoint-v1", endpoint_name="other-endpoint", variants=(variant,)
        )
    )
    assert aws_env("s3").get_object(Bucket=STORE, Key=key)["Body"].read() == good


def test_a_model_changed_on_disk_is_not_deployed(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    first = config(tmp_path, 1)
    first.variants[0].model_data.write_bytes(b"changed")
    with pytest.raises(EndpointError, match="it changed after it was registered"):
        backend.deploy(first)


def test_an_update_waits_until_in_service_on_the_new_config(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    old, new = config(tmp_path, 1), config(tmp_path, 2)
    backend.deploy(old)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", answer(old.name, "InService"))  # is it Failed?
        sagemaker.add_response(
            "describe_endpoint", answer(old.name, "InService")
        )  # create or update?
        sagemaker.add_response(
            "update_endpoint",
            {"EndpointArn": ARN},
            {"EndpointName": ENDPOINT, "EndpointConfigName": new.name},
        )
        sagemaker.add_response("describe_endpoint", answer(old.name, "Updating"))
        sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))
        sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))  # describe()
        described = backend.deploy(new)
    assert (described.status, described.config_name) == ("InService", new.name)
    assert described.model_sha256 == new.variants[0].model_sha256


def test_an_update_sagemaker_rolled_back_raises_its_reason(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    old, new = config(tmp_path, 1), config(tmp_path, 2)
    backend.deploy(old)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(old.name, "InService"))
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        sagemaker.add_response(
            "describe_endpoint", answer(old.name, "InService", "ping health check failed")
        )
        with pytest.raises(
            EndpointError, match=f"still serves {old.name}: ping health check failed"
        ):
            backend.deploy(new)


def test_a_failed_endpoint_is_deleted_and_created_again(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    old, new = config(tmp_path, 1), config(tmp_path, 2)
    backend.deploy(old)
    gone = {
        "service_error_code": "ValidationException",
        "service_message": f"Could not find endpoint '{ARN}'.",
    }
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", answer(old.name, "Failed", "out of capacity"))
        sagemaker.add_client_error(
            "describe_endpoint", **gone
        )  # deleted (DeleteEndpoint went to moto)
        sagemaker.add_client_error("describe_endpoint", **gone)  # so: create
        sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))
        sagemaker.add_response(
            "describe_endpoint", answer(new.name, "InService"), {"EndpointName": ANY}
        )
        assert backend.deploy(new).config_name == new.name
    assert (
        backend.describe(ENDPOINT).config_name == new.name
    )  # moto: created again on the new config


def test_delete(backend: SageMakerEndpointBackend, tmp_path: Path) -> None:
    backend.deploy(config(tmp_path, 1))
    backend.delete(ENDPOINT)
    with pytest.raises(NotFoundError):
        backend.describe(ENDPOINT)
    with pytest.raises(NotFoundError):
        backend.delete(ENDPOINT)


def test_a_scaled_endpoint_is_deregistered_around_an_update(
    backend: SageMakerEndpointBackend, tmp_path: Path, aws_env: AwsClient
) -> None:
    """deploy.autoscaling: registered once InService; at the UpdateEndpoint, nothing is
    registered (SageMaker refuses some updates of a registered variant); registered again
    once InService on the new config."""
    backend.scaling = AutoscalingConfig(max_instances=3, target_invocations_per_instance=200)
    old, new = config(tmp_path, 1), config(tmp_path, 2)
    backend.deploy(old)
    variant = f"endpoint/{ENDPOINT}/variant/AllTraffic"
    scaling = aws_env("application-autoscaling")
    assert autoscaling.registered(client("application-autoscaling"), ENDPOINT) == [variant]
    at_update: list[list[str]] = []

    def look(**_: Any) -> None:
        at_update.append(autoscaling.registered(client("application-autoscaling"), ENDPOINT))

    events = client("sagemaker").raw.meta.events
    event, unique_id = "before-parameter-build.sagemaker.UpdateEndpoint", "look-at-scaling"
    events.register(event, look, unique_id=unique_id)
    try:
        with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as stub:
            for _ in range(2):
                stub.add_response("describe_endpoint", answer(old.name, "InService"))
            stub.add_response("update_endpoint", {"EndpointArn": ARN})
            for _ in range(2):
                stub.add_response("describe_endpoint", answer(new.name, "InService"))
            backend.deploy(new)
    finally:
        events.unregister(event, look, unique_id=unique_id)
    assert at_update == [[]]
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (variant, 1, 3)
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 200.0


def test_a_deploy_without_autoscaling_deregisters_what_an_earlier_one_registered(
    backend: SageMakerEndpointBackend, tmp_path: Path, aws_env: AwsClient
) -> None:
    """deploy.autoscaling removed from mlcicd.yaml: the next deploy — here of the same config,
    so with no update to deregister around — lifts the target and its policy, which would
    otherwise go on resizing an endpoint the config says has a fixed count."""
    backend.scaling = AutoscalingConfig(max_instances=3, target_invocations_per_instance=200)
    same = config(tmp_path, 1)  # once: a tar.gz made again has another gzip time, another digest
    backend.deploy(same)
    scaling = aws_env("application-autoscaling")
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    backend.scaling = None
    backend.deploy(same)
    assert not scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert not scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
