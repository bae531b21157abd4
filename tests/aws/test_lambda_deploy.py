"""The deploy Lambda, called as a Python function with CodePipeline's job events, against
moto's server through real boto3 clients.

What is real: the ModelOutput artifact in S3, SageMaker's model registry, Models,
EndpointConfigs and endpoint creation as moto implements them, the function's environment
as the generated template sets it.

What is simulated, and how (botocore's Stubber on the function's own clients, those
operations only): CodePipeline's PutJobSuccessResult / PutJobFailureResult; UpdateEndpoint,
which moto lacks; and DescribeEndpoint while an endpoint updates, fails or rolls back —
moto's endpoints are InService at once and cannot be updated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas import deploy
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws.conftest import AwsClient
from tests.aws.events import (
    ARTIFACTS_BUCKET,
    IMAGE,
    MODELS_BUCKET,
    ROLE_ARN,
    artifact,
    job_event,
    lambda_environment,
    token_of,
    zip_bytes,
)
from tests.aws.stubs import OperationStubber

pytestmark = pytest.mark.integration

FUNCTION = "ml-cicd-pipeline-deploy"
ENDPOINT = "iris-classifier-endpoint"
INPUTS = [artifact("ModelOutput", "ml-cicd-pipeline/ModelOutpu/model.zip")]
SHA = "ab" * 32


@pytest.fixture
def pipeline(aws_env: AwsClient, iris_config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClient]:
    for name, value in lambda_environment(build_template(iris_config), "DeployFunction").items():
        monkeypatch.setenv(name, value)
    aws_env("s3").create_bucket(Bucket=ARTIFACTS_BUCKET)
    aws_env("sagemaker").create_model_package_group(ModelPackageGroupName="iris-classifier")
    yield aws_env


def trained(aws: AwsClient, *, status: str = "Approved") -> dict[str, Any]:
    """What the training Lambda leaves: a model package and model.json in ModelOutput."""
    data_url = f"s3://{MODELS_BUCKET}/iris-classifier/iris-classifier-0123/output/model.tar.gz"
    arn = aws("sagemaker").create_model_package(
        ModelPackageGroupName="iris-classifier", ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": IMAGE, "ModelDataUrl": data_url}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]  # fmt: skip
    model = {"model_data_url": data_url, "model_sha256": SHA, "model_package_arn": arn,
             "model_package_version": int(arn.rsplit("/", 1)[1]), "image_uri": IMAGE,
             "approval_status": status, "metrics": {"accuracy": 0.97}}  # fmt: skip
    aws("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key=INPUTS[0]["location"]["s3Location"]["objectKey"],
                         Body=zip_bytes({"model.json": json.dumps(model).encode()}))  # fmt: skip
    return model


def report(job_id: str, *, continuation: str | None = None, fails: bool = False) -> tuple[str, dict[str, Any]]:
    stub = OperationStubber(client("codepipeline"), "PutJobSuccessResult", "PutJobFailureResult")
    stub.add_response("put_job_failure_result" if fails else "put_job_success_result", {})
    with stub:
        deploy.handler(job_event(job_id, function=FUNCTION, inputs=INPUTS, continuation=continuation), None)
    (call,) = stub.calls
    return call


def endpoint_answer(config: str, status: str, reason: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def test_creates_the_endpoint_and_continues_until_in_service(pipeline: AwsClient) -> None:
    trained(pipeline)
    token = token_of(report("job-1"))
    state = json.loads(token)
    config = state["config"]
    assert config.startswith(f"{ENDPOINT}-v1-")  # the policy's endpoint-config/<endpoint>-*
    sagemaker = pipeline("sagemaker")
    described = sagemaker.describe_endpoint_config(EndpointConfigName=config)
    (variant,) = described["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert variant["ModelName"].startswith("iris-classifier-v1-")  # the policy's model/<pipeline>-*
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["Environment"] == {"MLCICD_MODEL_SHA256": SHA}
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == config

    done = report("job-2", continuation=token)
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    assert done[1]["outputVariables"] == {"EndpointName": ENDPOINT, "EndpointConfigName": config}

    # A retried first invocation creates nothing twice.
    assert json.loads(token_of(report("job-1")))["config"] == config
    assert len(sagemaker.list_models()["Models"]) == 1
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert len(sagemaker.list_endpoints()["Endpoints"]) == 1


def test_a_model_waiting_for_the_pipelines_approval_is_approved(pipeline: AwsClient) -> None:
    model = trained(pipeline, status="PendingManualApproval")
    report("job-1")
    package = pipeline("sagemaker").describe_model_package(ModelPackageName=model["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"


def test_a_rejected_model_is_not_deployed(pipeline: AwsClient) -> None:
    model = trained(pipeline, status="Rejected")
    call = report("job-1", fails=True)
    assert call[1]["failureDetails"]["message"].startswith(f"model package {model['model_package_arn']} is Rejected")
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []


def _deploy_first_version(aws: AwsClient) -> str:
    trained(aws)
    token = token_of(report("job-1"))
    report("job-2", continuation=token)
    return str(json.loads(token)["config"])


def test_updates_with_blue_green_canary_and_rollback_alarms(pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _deploy_first_version(pipeline)
    monkeypatch.setenv("MLCICD_TRAFFIC_ROUTING", json.dumps({"type": "CANARY", "size_percent": 20, "wait_seconds": 300}))
    trained(pipeline)  # version 2
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"})
        token = token_of(report("job-3"))
    new = json.loads(token)["config"]
    assert new.startswith(f"{ENDPOINT}-v2-") and new != old
    ((_, update),) = sagemaker.calls
    assert update == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": new,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 300,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}},
                "TerminationWaitInSeconds": 0,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "iris-classifier-endpoint-5xx-errors"},
                                                     {"AlarmName": "iris-classifier-endpoint-model-latency-p99"}]},
        },
    }  # fmt: skip

    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "Updating"))
        sagemaker.add_response("describe_endpoint", endpoint_answer(new, "InService"))
        assert token_of(report("job-4", continuation=token)) == token
        done = report("job-5", continuation=token)
    assert done[1]["outputVariables"]["EndpointConfigName"] == new


def test_an_update_rolled_back_fails_with_sagemakers_reason(pipeline: AwsClient) -> None:
    old = _deploy_first_version(pipeline)
    trained(pipeline)
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"})
        token = token_of(report("job-3"))
    reason = "Alarm iris-classifier-endpoint-5xx-errors went into ALARM state; rolled back"
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "InService", reason))
        call = report("job-4", continuation=token, fails=True)
    message = call[1]["failureDetails"]["message"]
    assert f"still serves {old}" in message and reason in message


def test_a_failed_endpoint_fails_with_sagemakers_reason(pipeline: AwsClient) -> None:
    trained(pipeline)
    token = token_of(report("job-1"))
    config = json.loads(token)["config"]
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(config, "Failed", reason))
        call = report("job-2", continuation=token, fails=True)
    assert call[1]["failureDetails"]["message"] == f"endpoint {ENDPOINT} (Failed): {reason}"


def test_waits_for_another_deployment_before_updating(pipeline: AwsClient) -> None:
    old = _deploy_first_version(pipeline)
    trained(pipeline)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "Updating"))
        token = token_of(report("job-3"))
    assert json.loads(token)["started"] is False
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"})
        again = token_of(report("job-4", continuation=token))
    assert json.loads(again)["started"] is True
