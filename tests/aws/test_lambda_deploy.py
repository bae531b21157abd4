"""The deploy Lambda, called as a Python function with CodePipeline's job events, against
moto's server through real boto3 clients.

What is real: the ModelOutput artifact in S3, SageMaker's model registry, Models,
EndpointConfigs (weights, DataCaptureConfig) and endpoint creation as moto implements them,
the rollback alarms put in moto's CloudWatch, the function's environment as the generated
template sets it from mlcicd.yaml.

What is simulated, and how (botocore's Stubber on the function's own clients, those
operations only): CodePipeline's PutJobSuccessResult / PutJobFailureResult; UpdateEndpoint,
which moto lacks; and DescribeEndpoint while an endpoint updates, fails or rolls back —
moto's endpoints are InService at once and cannot be updated. moto keeps no
ShadowProductionVariants (it accepts and drops them): what was sent is recorded on its way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas import deploy
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws.conftest import AwsClient, iris_with, iris_with_deploy
from tests.aws.events import (
    ARTIFACTS_BUCKET,
    ENDPOINT_ROLE_ARN,
    IMAGE,
    MODELS_BUCKET,
    artifact,
    job_event,
    lambda_environment,
    token_of,
    zip_bytes,
)
from tests.aws.stubs import OperationStubber, SentParams

pytestmark = pytest.mark.integration

FUNCTION = "ml-cicd-pipeline-deploy"
ENDPOINT = "iris-classifier-endpoint"
INPUTS = [artifact("ModelOutput", "ml-cicd-pipeline/ModelOutpu/model.zip")]
SHA = "ab" * 32
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"
ERRORS_ALARM = f"{ENDPOINT}-rollback-5xx-rate"
LATENCY_ALARM = f"{ENDPOINT}-rollback-model-latency-p99"


def configure(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    """The deploy function's environment as the stack generated from ``config`` sets it."""
    for name, value in lambda_environment(build_template(config), "DeployFunction").items():
        monkeypatch.setenv(name, value)


def set_up(aws: AwsClient, monkeypatch: pytest.MonkeyPatch, config: Config) -> AwsClient:
    """The deploy function configured from ``config``; the artifacts bucket, the registry."""
    configure(monkeypatch, config)
    aws("s3").create_bucket(Bucket=ARTIFACTS_BUCKET)
    aws("sagemaker").create_model_package_group(ModelPackageGroupName="iris-classifier")
    return aws


@pytest.fixture
def pipeline(
    aws_env: AwsClient, iris_config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsClient]:
    yield set_up(aws_env, monkeypatch, iris_config)


def trained(
    aws: AwsClient, *, status: str = "Approved", job: str = "iris-classifier-0123", sha: str = SHA
) -> dict[str, Any]:
    """What the training Lambda leaves: a model package and model.json in ModelOutput."""
    data_url = f"s3://{MODELS_BUCKET}/iris-classifier/{job}/output/model.tar.gz"
    arn = aws("sagemaker").create_model_package(
        ModelPackageGroupName="iris-classifier",
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": data_url}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"model_sha256": sha, "training_job": job},
    )["ModelPackageArn"]
    model = {
        "model_data_url": data_url,
        "model_sha256": sha,
        "model_package_arn": arn,
        "model_package_version": int(arn.rsplit("/", 1)[1]),
        "image_uri": IMAGE,
        "approval_status": status,
        "metrics": {"accuracy": 0.97},
    }
    aws("s3").put_object(
        Bucket=ARTIFACTS_BUCKET,
        Key=INPUTS[0]["location"]["s3Location"]["objectKey"],
        Body=zip_bytes({"model.json": json.dumps(model).encode()}),
    )
    return model


def report(
    job_id: str, *, continuation: str | None = None, fails: bool = False
) -> tuple[str, dict[str, Any]]:
    stub = OperationStubber(client("codepipeline"), "PutJobSuccessResult", "PutJobFailureResult")
    stub.add_response("put_job_failure_result" if fails else "put_job_success_result", {})
    with stub:
        deploy.handler(
            job_event(job_id, function=FUNCTION, inputs=INPUTS, continuation=continuation), None
        )
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
    assert model["ExecutionRoleArn"] == ENDPOINT_ROLE_ARN  # the endpoint's own, read-only on models
    assert model["PrimaryContainer"]["Image"] == IMAGE
    # As `mlcicd run` sets it (the code is in the image, not named on S3).
    assert model["PrimaryContainer"][
        "Environment"
    ] == {  # the container checks that digest, fetched from there
        "MLCICD_MODEL_SHA256": SHA,
        "MLCICD_MODEL_DATA_URL": model["PrimaryContainer"]["ModelDataUrl"],
        "SAGEMAKER_PROGRAM": "inference.py",
    }
    assert not described.get(
        "DataCaptureConfig"
    )  # deploy.data_capture is not enabled (moto answers {})
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
    package = pipeline("sagemaker").describe_model_package(
        ModelPackageName=model["model_package_arn"]
    )
    assert package["ModelApprovalStatus"] == "Approved"


def test_a_rejected_model_is_not_deployed(pipeline: AwsClient) -> None:
    model = trained(pipeline, status="Rejected")
    call = report("job-1", fails=True)
    assert call[1]["failureDetails"]["message"].startswith(
        f"model package {model['model_package_arn']} is Rejected"
    )
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []


@pytest.mark.parametrize("forged", ["another pipeline's config", "another endpoint", "variants"])
def test_a_continuation_token_naming_what_this_action_did_not_make_changes_no_endpoint(
    pipeline: AwsClient, forged: str
) -> None:
    """Whoever can call codepipeline:PutJobSuccessResult puts a token of their own: another
    pipeline's EndpointConfig for this endpoint, or this config for another endpoint, as not
    yet started. The action fails before either is touched."""
    trained(pipeline)
    token = json.loads(token_of(report("job-1")))
    sagemaker = pipeline("sagemaker")
    sagemaker.create_model(
        ModelName="their-model",
        ExecutionRoleArn=ENDPOINT_ROLE_ARN,
        PrimaryContainer={"Image": IMAGE},
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "their-model",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sagemaker.create_endpoint_config(
        EndpointConfigName="their-config",
        ProductionVariants=[variant],
        Tags=[{"Key": "mlcicd:pipeline", "Value": "another-pipeline"}],
    )
    if forged == "another endpoint":
        theirs = {**token, "endpoint": "another-endpoint", "started": False}
    elif forged == "variants":  # the rollback alarms would watch a variant that serves nothing
        theirs = {**token, "variants": ["Unwatched"], "started": False}
    else:
        theirs = {**token, "config": "their-config", "started": False}
    call = report("job-2", continuation=json.dumps(theirs), fails=True)
    message = call[1]["failureDetails"]["message"]
    if forged == "variants":
        assert message.startswith(
            f"the continuation token names variants ['Unwatched'], not those endpoint config "
            f"{token['config']} serves (['AllTraffic'])"
        ), message
    else:
        assert message.startswith(
            f"the continuation token names endpoint {theirs['endpoint']} and endpoint config "
            f"{theirs['config']}, which this action did not make"
        ), message
    (endpoint,) = sagemaker.list_endpoints()["Endpoints"]
    assert endpoint["EndpointName"] == ENDPOINT
    described = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointConfigName"] == token["config"]


def _deploy_first_version(aws: AwsClient) -> str:
    trained(aws)
    token = token_of(report("job-1"))
    report("job-2", continuation=token)
    return str(json.loads(token)["config"])


def test_without_strategy_or_alarms_an_update_is_sagemakers_own(pipeline: AwsClient) -> None:
    _deploy_first_version(pipeline)
    trained(pipeline, job="iris-classifier-0456")
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        token = token_of(report("job-3"))
    ((_, update),) = sagemaker.calls
    assert update == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": json.loads(token)["config"],
    }  # as `mlcicd run`
    assert pipeline("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_a_canary_deploy_with_rollback_alarms_and_data_capture(
    pipeline: AwsClient, canary_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, canary_config)
    sagemaker_ = pipeline("sagemaker")
    old = _deploy_first_version(pipeline)
    (variant,) = sagemaker_.describe_endpoint_config(EndpointConfigName=old)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 2)
    # Where `mlcicd run --backend aws --stack-name` has it go: its store is the models bucket.
    assert sagemaker_.describe_endpoint_config(EndpointConfigName=old)["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": f"s3://{MODELS_BUCKET}/ml-cicd-pipeline-artifacts/data-capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "JsonContentTypes": ["application/json", "application/jsonlines"],
            "CsvContentTypes": ["text/csv"],
        },
    }
    # Creating an endpoint rolls nothing out: no alarm yet.
    assert pipeline("cloudwatch").describe_alarms()["MetricAlarms"] == []

    trained(pipeline, job="iris-classifier-0456", sha="cd" * 32)  # version 2
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        token = token_of(report("job-3"))
    new = json.loads(token)["config"]
    assert new.startswith(f"{ENDPOINT}-v2-") and new != old
    ((_, update),) = sagemaker.calls
    assert update == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": new,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 300,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                },
                "TerminationWaitInSeconds": 0,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": ERRORS_ALARM}, {"AlarmName": LATENCY_ALARM}]
            },
        },
    }
    # deploy.alarms, put as `mlcicd run` puts them: on the new config's fleet only.
    alarms = {a["AlarmName"]: a for a in pipeline("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert {name: alarm["Threshold"] for name, alarm in alarms.items()} == {
        ERRORS_ALARM: 0.01,
        LATENCY_ALARM: 250_000.0,
    }
    for alarm in alarms.values():
        dimensions = [
            {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
            for m in alarm["Metrics"]
            if "MetricStat" in m
        ]
        assert dimensions and all(
            d == {"EndpointName": ENDPOINT, "VariantName": "AllTraffic", "EndpointConfigName": new}
            for d in dimensions
        )
        (expression,) = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData")]
        assert expression.startswith("IF(n0 >= 20, ")

    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "Updating"))
        sagemaker.add_response("describe_endpoint", endpoint_answer(new, "InService"))
        assert token_of(report("job-4", continuation=token)) == token
        done = report("job-5", continuation=token)
    assert done[1]["outputVariables"]["EndpointConfigName"] == new


def test_the_alarms_are_not_moved_while_another_update_rolls_out(
    pipeline: AwsClient, canary_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, canary_config)
    old = _deploy_first_version(pipeline)
    trained(pipeline, job="iris-classifier-0456")
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "Updating"))
        token = token_of(report("job-3"))
    assert json.loads(token)["started"] is False
    assert (
        pipeline("cloudwatch").describe_alarms()["MetricAlarms"] == []
    )  # the other rollout's stay its own
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        report("job-4", continuation=token)
    assert len(pipeline("cloudwatch").describe_alarms()["MetricAlarms"]) == 2


def test_weighted_variants_serve_registered_versions(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        iris_with_deploy(
            variants=[
                {"name": "Champion", "model": 1, "weight": 3},
                {"name": "Challenger", "model": "latest", "weight": 1},
            ]
        ),
    )
    first = trained(pipeline)  # version 1
    newest = trained(pipeline, job="iris-classifier-0456", sha="cd" * 32)  # version 2: this run's
    config = json.loads(token_of(report("job-1")))["config"]
    sagemaker = pipeline("sagemaker")
    variants = {
        v["VariantName"]: v
        for v in sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    }
    assert {name: v["InitialVariantWeight"] for name, v in variants.items()} == {
        "Champion": 3.0,
        "Challenger": 1.0,
    }
    champion = sagemaker.describe_model(ModelName=variants["Champion"]["ModelName"])[
        "PrimaryContainer"
    ]
    challenger = sagemaker.describe_model(ModelName=variants["Challenger"]["ModelName"])[
        "PrimaryContainer"
    ]
    assert variants["Champion"]["ModelName"].startswith("iris-classifier-v1-")
    assert (champion["ModelDataUrl"], champion["Environment"]["MLCICD_MODEL_SHA256"]) == (
        first["model_data_url"],
        SHA,
    )
    assert (challenger["ModelDataUrl"], challenger["Environment"]["MLCICD_MODEL_SHA256"]) == (
        newest["model_data_url"],
        "cd" * 32,
    )
    assert champion["Image"] == challenger["Image"] == IMAGE  # every variant on this commit's code


def test_the_shadow_sees_every_request(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        iris_with_deploy(
            variants=[{"name": "Current", "model": 1, "weight": 2}],
            shadow={"model": "latest", "name": "Shadow"},
        ),
    )
    trained(pipeline)
    newest = trained(pipeline, job="iris-classifier-0456", sha="cd" * 32)
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        report("job-1")
    ((_, params),) = sent.calls
    (shadow,) = params["ShadowProductionVariants"]
    assert (shadow["VariantName"], shadow["InitialVariantWeight"]) == (
        "Shadow",
        2,
    )  # weighted as the production one
    model = pipeline("sagemaker").describe_model(ModelName=shadow["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == newest["model_data_url"]
    assert [v["VariantName"] for v in params["ProductionVariants"]] == ["Current"]


def test_a_version_the_registry_does_not_hold_fails_the_job(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch, iris_with_deploy(variants=[{"name": "Old", "model": 7}, {"name": "New"}])
    )
    trained(pipeline)
    call = report("job-1", fails=True)
    message = call[1]["failureDetails"]["message"]
    assert "names model version 7, and the model registry has no iris-classifier/7" in message
    assert pipeline("sagemaker").list_endpoints()["Endpoints"] == []


def test_an_update_rolled_back_fails_with_sagemakers_reason(pipeline: AwsClient) -> None:
    old = _deploy_first_version(pipeline)
    trained(pipeline)
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        token = token_of(report("job-3"))
    reason = f"Alarm {ERRORS_ALARM} went into ALARM state; rolled back"
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(old, "InService", reason))
        call = report("job-4", continuation=token, fails=True)
    message = call[1]["failureDetails"]["message"]
    assert f"still serves {old}" in message and reason in message


def test_a_failed_endpoint_fails_with_sagemakers_reason(pipeline: AwsClient) -> None:
    trained(pipeline)
    token = token_of(report("job-1"))
    config = json.loads(token)["config"]
    reason = (
        "The primary container for production variant AllTraffic did not pass the ping "
        "health check."
    )
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
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        again = token_of(report("job-4", continuation=token))
    assert json.loads(again)["started"] is True


AUTOSCALING = {
    "min_instances": 1,
    "max_instances": 4,
    "target_invocations_per_instance": 1000,
}


def scaling(aws: AwsClient) -> dict[str, Any]:
    """The endpoint's scalable targets and policies, as Application Auto Scaling has them."""
    autoscaling = aws("application-autoscaling")
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")
    return {
        "targets": {
            t["ResourceId"]: (t["MinCapacity"], t["MaxCapacity"])
            for t in targets["ScalableTargets"]
        },
        "policies": {
            p["ResourceId"]: p["TargetTrackingScalingPolicyConfiguration"]
            for p in policies["ScalingPolicies"]
        },
    }


def test_autoscaling_is_registered_once_in_service_and_lifted_around_an_update(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, iris_with_deploy(autoscaling=AUTOSCALING))
    trained(pipeline)
    token = token_of(report("job-1"))
    assert scaling(pipeline)["targets"] == {}  # not before the endpoint is InService
    report("job-2", continuation=token)
    variant = f"endpoint/{ENDPOINT}/variant/AllTraffic"
    registered = scaling(pipeline)
    assert registered["targets"] == {variant: (1, 4)}
    assert registered["policies"] == {
        variant: {
            "TargetValue": 1000.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        }
    }

    # An update: deregistered before UpdateEndpoint (SageMaker refuses some updates of a
    # registered variant), registered again once InService on the new config.
    trained(pipeline, job="iris-classifier-0456", sha="cd" * 32)
    with OperationStubber(client("sagemaker"), "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        token = token_of(report("job-3"))
    assert len(sagemaker.calls) == 1
    assert scaling(pipeline)["targets"] == {}
    new = json.loads(token)["config"]
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", endpoint_answer(new, "InService"))
        report("job-4", continuation=token)
    assert scaling(pipeline) == registered


def test_autoscaling_removed_from_the_config_is_deregistered(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy.autoscaling removed from mlcicd.yaml (and so from the stack): the next deploy
    lifts the variant's scalable target and policy — left there, Application Auto Scaling
    would go on resizing an endpoint the config says has a fixed count. The same model
    again: no update of the endpoint, only the registration goes."""
    configure(monkeypatch, iris_with_deploy(autoscaling=AUTOSCALING))
    trained(pipeline)
    report("job-2", continuation=token_of(report("job-1")))
    assert scaling(pipeline)["targets"]

    configure(monkeypatch, iris_with_deploy())  # examples/iris: no autoscaling
    token = token_of(report("run-2"))
    assert json.loads(token)["started"] is True  # "already on" its config: nothing to update
    done = report("run-2-2", continuation=token)
    assert done[0] == "PutJobSuccessResult"
    assert scaling(pipeline) == {"targets": {}, "policies": {}}


def test_a_serverless_endpoint_config_has_no_instances(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        iris_with_deploy(serverless={"memory_mb": 4096, "max_concurrency": 5}),
    )
    trained(pipeline)
    config = json.loads(token_of(report("job-1")))["config"]
    (variant,) = pipeline("sagemaker").describe_endpoint_config(EndpointConfigName=config)[
        "ProductionVariants"
    ]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant


def test_models_in_the_vpc_isolated_check_the_archive_without_network(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = {
        "subnets": ["subnet-0123456789abcdef0"],
        "security_groups": ["sg-0123abcd"],
        "isolation": True,
    }
    configure(monkeypatch, iris_with(network=network))
    model = trained(pipeline)
    with SentParams(client("sagemaker"), "CreateModel") as sent:  # moto drops the isolation
        config = json.loads(token_of(report("job-1")))["config"]
    ((_, params),) = sent.calls
    assert params["EnableNetworkIsolation"] is True
    sagemaker = pipeline("sagemaker")
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    described = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert described["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123abcd"],
        "Subnets": ["subnet-0123456789abcdef0"],
    }
    # The archive itself lands in /opt/ml/model: the container checks it with no network.
    assert described["PrimaryContainer"]["ModelDataSource"] == {
        "S3DataSource": {
            "S3Uri": model["model_data_url"],
            "S3DataType": "S3Object",
            "CompressionType": "None",
        }
    }


EXPLAINED = {
    "explainer": "linear",
    "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "importance": {
        "sepal_length": 0.5,
        "sepal_width": 0.2,
        "petal_length": 1.0,
        "petal_width": 1.3,
    },
    "expected_value": {"0": 0.1, "1": 0.2, "2": 0.3},
    "baseline": [[5.0, 3.4, 1.5, 0.2], [6.5, 3.0, 5.5, 2.0]],
}


def explained(aws: AwsClient, **model_json: Any) -> dict[str, Any]:
    """A trained model whose model.json says what the training Lambda's explainer left."""
    model = {**trained(aws), **model_json}
    aws("s3").put_object(
        Bucket=ARTIFACTS_BUCKET,
        Key=INPUTS[0]["location"]["s3Location"]["objectKey"],
        Body=zip_bytes({"model.json": json.dumps(model).encode()}),
    )
    return model


def test_explain_online_gives_the_endpoint_config_clarify_from_the_models_report(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, iris_with(explain={"online": True}))
    pipeline("s3").create_bucket(Bucket=MODELS_BUCKET)
    key = "iris-classifier/iris-classifier-0123/explain/abababababababab.json"
    stored = json.dumps(EXPLAINED).encode()
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=stored)
    explained(
        pipeline,
        explanation=f"s3://{MODELS_BUCKET}/{key}",
        explanation_sha256=hashlib.sha256(stored).hexdigest(),
    )
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        assert report("job-1")[0] == "PutJobSuccessResult"
    ((_, params),) = sent.calls
    # The same ClarifyExplainerConfig `mlcicd run`'s SageMaker backend sends (moto drops it:
    # what was sent is checked), its baseline beside the models.
    clarify = params["ExplainerConfig"]["ClarifyExplainerConfig"]
    uri = clarify["ShapConfig"]["ShapBaselineConfig"]["ShapBaselineUri"]
    assert uri.startswith(f"s3://{MODELS_BUCKET}/iris-classifier/explain/")
    assert clarify == {
        "EnableExplanations": "`false`",
        "ShapConfig": {"ShapBaselineConfig": {"MimeType": "text/csv", "ShapBaselineUri": uri}},
        "InferenceConfig": {
            "FeatureHeaders": EXPLAINED["features"],
            "LabelHeaders": ["0", "1", "2"],
            "MaxRecordCount": 100,
        },
    }
    stored = pipeline("s3").get_object(Bucket=MODELS_BUCKET, Key=uri.split("/", 3)[3])
    assert stored["Body"].read().decode() == "5.0,3.4,1.5,0.2\n6.5,3.0,5.5,2.0"


def test_a_report_replaced_since_the_train_action_stored_it_is_not_served(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.json carries the stored report's sha256: a report replaced while the model
    waited for its approval (its baseline, its features) does not become the endpoint's
    Clarify config; the action fails naming it, explain.required or not."""
    configure(monkeypatch, iris_with(explain={"online": True}))
    pipeline("s3").create_bucket(Bucket=MODELS_BUCKET)
    key = "iris-classifier/iris-classifier-0123/explain/abababababababab.json"
    stored = json.dumps(EXPLAINED).encode()
    theirs = json.dumps({**EXPLAINED, "baseline": [[0.0, 0.0, 0.0, 0.0]]}).encode()
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=theirs)
    explained(
        pipeline,
        explanation=f"s3://{MODELS_BUCKET}/{key}",
        explanation_sha256=hashlib.sha256(stored).hexdigest(),
    )
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        failed = report("job-1", fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith(
        f"explain.online: the report of model arn:aws:sagemaker:us-east-1:123456789012:"
        f"model-package/iris-classifier/1 at s3://{MODELS_BUCKET}/{key} is not the one the "
        "Train action stored"
    ), message
    assert sent.calls == []


def test_a_report_without_its_sha256_is_not_served_and_fails_the_action_if_required(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """model.json of an older Train action carries no sha256 of the report: whoever can write
    the models bucket could have replaced it, and nothing would tell. The endpoint is served
    without explanations (the log says why) — or, with explain.required, the action fails
    saying to rerun the Train action."""
    pipeline("s3").create_bucket(Bucket=MODELS_BUCKET)
    key = "iris-classifier/iris-classifier-0123/explain/abababababababab.json"
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=json.dumps(EXPLAINED).encode())
    configure(monkeypatch, iris_with(explain={"online": True}))
    explained(pipeline, explanation=f"s3://{MODELS_BUCKET}/{key}")
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        assert report("job-1")[0] == "PutJobSuccessResult"
    ((_, params),) = sent.calls
    assert "ExplainerConfig" not in params
    logged = capsys.readouterr().out
    assert "registered without the sha256 of its report" in logged
    assert "the endpoint serves it without explanations" in logged

    configure(monkeypatch, iris_with(explain={"online": True, "required": True}))
    explained(pipeline, explanation=f"s3://{MODELS_BUCKET}/{key}")
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        failed = report("job-2", fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith("explain.online: model arn:aws:sagemaker:"), message
    assert "registered without the sha256 of its report" in message
    assert "rerun the Train action" in message
    assert sent.calls == []


def test_a_model_that_could_not_be_explained_is_served_without_unless_required(
    pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, iris_with(explain={"online": True}))
    explained(pipeline, explanation_error="model_fn of inference.py raised KeyError: 110")
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        assert report("job-1")[0] == "PutJobSuccessResult"
    ((_, params),) = sent.calls
    assert "ExplainerConfig" not in params  # served, without explanations (the log says why)

    configure(monkeypatch, iris_with(explain={"online": True, "required": True}))
    explained(pipeline, explanation_error="model_fn of inference.py raised KeyError: 110")
    failed = report("job-2", fails=True)
    assert failed[0] == "PutJobFailureResult"
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith("explain.online: model arn:aws:sagemaker:")
    assert "could not be explained at register: model_fn of inference.py raised" in message
