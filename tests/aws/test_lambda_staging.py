"""The deploy Lambda's staging actions (mlcicd/aws/lambdas/staging.py), called as a Python
function with CodePipeline's job events carrying the Staging stage's UserParameters, against
moto's server; the function's environment is what the template generated from a config with
``staging:`` sets. As in test_lambda_deploy.py, CodePipeline's job results and the states moto
cannot show (an endpoint Failed) are answered by botocore's Stubber, those operations only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas import deploy
from mlcicd.aws.template.staging import user_parameters
from mlcicd.config import Config
from tests.aws.conftest import CANARY_DEPLOY, STAGING, AwsClient, iris_with
from tests.aws.events import job_event, token_of
from tests.aws.stubs import OperationStubber
from tests.aws.test_lambda_deploy import (
    ENDPOINT,
    FUNCTION,
    INPUTS,
    configure,
    endpoint_answer,
    set_up,
    trained,
)

pytestmark = pytest.mark.integration

STAGING_ENDPOINT = f"{ENDPOINT}-staging"
STAGING_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{STAGING_ENDPOINT}"
DEPLOY, DELETE = user_parameters(), user_parameters(delete=True)


@pytest.fixture
def pipeline(
    aws_env: AwsClient, staging_config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsClient]:
    yield set_up(aws_env, monkeypatch, staging_config)


def report(
    job_id: str,
    parameters: str | None,
    *,
    continuation: str | None = None,
    fails: bool = False,
) -> tuple[str, dict[str, Any]]:
    stub = OperationStubber(client("codepipeline"), "PutJobSuccessResult", "PutJobFailureResult")
    stub.add_response("put_job_failure_result" if fails else "put_job_success_result", {})
    inputs = [] if parameters == DELETE else INPUTS  # DeleteStaging takes no artifact
    event = job_event(
        job_id,
        function=FUNCTION,
        inputs=inputs,
        continuation=continuation,
        user_parameters=parameters,
    )
    with stub:
        deploy.handler(event, None)
    (call,) = stub.calls
    return call


def _deploy_staging(aws: AwsClient, job: str = "job-1") -> str:
    token = token_of(report(job, DEPLOY))
    done = report(f"{job}-done", DEPLOY, continuation=token)
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    config = str(json.loads(token)["config"])
    assert done[1]["outputVariables"] == {
        "EndpointName": STAGING_ENDPOINT,
        "EndpointConfigName": config,
    }
    return config


def test_deploys_the_model_to_the_staging_endpoint_and_leaves_its_approval_waiting(
    pipeline: AwsClient,
) -> None:
    model = trained(pipeline, status="PendingManualApproval")
    config = _deploy_staging(pipeline)
    # Its own configs, under the prefix the function's policy allows for them.
    assert config.startswith(f"{STAGING_ENDPOINT}-v1-")
    sagemaker = pipeline("sagemaker")
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [
        STAGING_ENDPOINT
    ]  # production is untouched
    assert sagemaker.describe_endpoint(EndpointName=STAGING_ENDPOINT)["EndpointConfigName"] == (
        config
    )
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    assert variant["ModelName"].startswith("iris-classifier-v1-")
    # The approval comes after the staging stage: the package still waits for it.
    package = sagemaker.describe_model_package(ModelPackageName=model["model_package_arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"

    # Production's deploy then makes the same Model, and its own config, on its endpoint.
    token = token_of(report_production("job-2"))
    production = json.loads(token)["config"]
    assert production.startswith(f"{ENDPOINT}-v1-") and production != config
    (prod_variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=production)[
        "ProductionVariants"
    ]
    assert prod_variant["ModelName"] == variant["ModelName"]


def report_production(job_id: str) -> tuple[str, dict[str, Any]]:
    return report(job_id, None)


def test_a_rejected_model_is_not_staged(pipeline: AwsClient) -> None:
    trained(pipeline, status="Rejected")
    failed = report("job-1", DEPLOY, fails=True)
    assert "is Rejected" in failed[1]["failureDetails"]["message"]
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []


def test_staging_has_productions_instances_without_its_capture_or_rollback_alarms(
    aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_up(aws_env, monkeypatch, iris_with(staging=STAGING, deploy=CANARY_DEPLOY))
    trained(aws_env)
    config = _deploy_staging(aws_env)
    sagemaker = aws_env("sagemaker")
    described = sagemaker.describe_endpoint_config(EndpointConfigName=config)
    (variant,) = described["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 2)
    assert not described.get("DataCaptureConfig")  # test traffic is no one's data

    # A second model: the staging endpoint (kept, or left by a stopped run) is updated all
    # at once, with no DeploymentConfig and no alarm put under production's names.
    trained(aws_env, job="iris-classifier-0456", sha="cd" * 32)
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as update:
        update.add_response(
            "update_endpoint",
            {"EndpointArn": STAGING_ARN},
        )
        token = token_of(report("job-2", DEPLOY))
    ((_, sent),) = update.calls
    assert sent == {
        "EndpointName": STAGING_ENDPOINT,
        "EndpointConfigName": json.loads(token)["config"],
    }
    assert aws_env("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_delete_staging_removes_the_staging_endpoint_and_only_it(pipeline: AwsClient) -> None:
    trained(pipeline)
    _deploy_staging(pipeline)
    token = token_of(report_production("job-2"))
    report_production_done = report("job-2-done", None, continuation=token)
    assert report_production_done[0] == "PutJobSuccessResult"

    token = token_of(report("job-3", DELETE))
    assert json.loads(token) == {"deleting": STAGING_ENDPOINT}
    done = report("job-3-done", DELETE, continuation=token)
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    assert [e["EndpointName"] for e in pipeline("sagemaker").list_endpoints()["Endpoints"]] == [
        ENDPOINT
    ]
    # Retried after the endpoint is gone: nothing to do, and it says so.
    again = report("job-3", DELETE)
    assert again[0] == "PutJobSuccessResult" and "continuationToken" not in again[1]


def test_a_failed_staging_endpoint_left_behind_is_replaced(pipeline: AwsClient) -> None:
    trained(pipeline)
    first = _deploy_staging(pipeline)
    trained(pipeline, job="iris-classifier-0456", sha="cd" * 32)
    sagemaker = client("sagemaker")
    with OperationStubber(sagemaker, "DescribeEndpoint") as describe:
        describe.add_response(
            "describe_endpoint",
            {
                **endpoint_answer(first, "Failed", "the container exited"),
                "EndpointName": STAGING_ENDPOINT,
            },
        )
        token = token_of(report("job-2", DEPLOY))
    assert json.loads(token)["started"] is False  # deleted it (moto's is gone at once)
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []
    created = token_of(report("job-2-more", DEPLOY, continuation=token))
    config = json.loads(created)["config"]
    assert config.startswith(f"{STAGING_ENDPOINT}-v2-")
    described = pipeline("sagemaker").describe_endpoint(EndpointName=STAGING_ENDPOINT)
    assert described["EndpointConfigName"] == config


@pytest.mark.parametrize(
    "parameters",
    [
        '{"endpoint": "iris-classifier-endpoint", "action": "delete"}',
        '{"endpoint": "staging", "action": "drop"}',
        '{"endpoint": "staging", "name": "iris-classifier-endpoint"}',
        "delete",
    ],
)
def test_user_parameters_that_are_not_a_staging_action_touch_nothing(
    pipeline: AwsClient, parameters: str
) -> None:
    trained(pipeline)
    token = token_of(report_production("job-1"))
    report("job-1-done", None, continuation=token)
    failed = report("job-2", parameters, fails=True)
    assert "UserParameters" in failed[1]["failureDetails"]["message"]
    assert [e["EndpointName"] for e in pipeline("sagemaker").list_endpoints()["Endpoints"]] == [
        ENDPOINT
    ]


def test_a_stack_without_staging_refuses_the_staging_actions(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, iris_with(staging=None))
    trained(pipeline)
    for parameters in (DEPLOY, DELETE):
        failed = report("job-1", parameters, fails=True)
        assert "MLCICD_STAGING_ENDPOINT_NAME is not set" in failed[1]["failureDetails"]["message"]
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []


def test_a_staging_endpoint_still_being_deleted_is_waited_for(pipeline: AwsClient) -> None:
    """The previous execution's post_build deleted it a moment ago: wait, then create."""
    trained(pipeline)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as describe:
        describe.add_response(
            "describe_endpoint",
            {**endpoint_answer("old", "Deleting"), "EndpointName": STAGING_ENDPOINT},
        )
        token = token_of(report("job-1", DEPLOY))
    assert json.loads(token)["started"] is False
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []  # nothing asked of it yet
    created = json.loads(token_of(report("job-1-more", DEPLOY, continuation=token)))
    described = pipeline("sagemaker").describe_endpoint(EndpointName=STAGING_ENDPOINT)
    assert described["EndpointConfigName"] == created["config"]
