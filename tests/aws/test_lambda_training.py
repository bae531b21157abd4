"""The training Lambda, called as a Python function with CodePipeline's job events, against
moto's server through real boto3 clients.

What is real: S3 (artifacts, channels, the model, the registration marker), SageMaker's
training jobs and model registry as moto implements them, the function's environment
exactly as the generated template sets it.

What is simulated, and how:
- CodePipeline's PutJobSuccessResult / PutJobFailureResult (not in moto): botocore's Stubber
  on the function's own codepipeline client, which records each result.
- SageMaker's work: moto reports every training job Completed at once and writes nothing,
  so the tests put model.tar.gz and output.tar.gz (holding metrics.json) where SageMaker
  would, between the start and the continuation. A job still running or failed is shown by
  stubbing DescribeTrainingJob alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas import training
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws.conftest import AwsClient
from tests.aws.events import (
    ARTIFACTS_BUCKET,
    COMMIT,
    IMAGE,
    KEY_ARN,
    MODELS_BUCKET,
    ROLE_ARN,
    artifact,
    create_models_bucket,
    job_event,
    lambda_environment,
    read_zip,
    token_of,
    zip_bytes,
)
from tests.aws.stubs import OperationStubber, SentParams
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

FUNCTION = "ml-cicd-pipeline-training"
INPUTS = [
    artifact("BuildOutput", "ml-cicd-pipeline/BuildOutpu/build.zip"),
    artifact("SourceOutput", "ml-cicd-pipeline/SourceOutp/source.zip", revision=COMMIT),
]
OUTPUTS = [artifact("ModelOutput", "ml-cicd-pipeline/ModelOutpu/model.zip")]


@pytest.fixture
def pipeline(
    aws_env: AwsClient, iris_config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsClient]:
    """The stack's buckets, the Build and Source artifacts, the function's environment."""
    environment = lambda_environment(build_template(iris_config), "TrainingFunction")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    s3 = aws_env("s3")
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    create_models_bucket(s3)
    s3.put_object(
        Bucket=ARTIFACTS_BUCKET,
        Key=INPUTS[0]["location"]["s3Location"]["objectKey"],
        Body=zip_bytes(
            {"imageDetail.json": json.dumps({"ImageURI": IMAGE}).encode(), "build.json": b"{}"}
        ),
    )
    source = {
        p.relative_to(IRIS).as_posix(): p.read_bytes()
        for p in IRIS.rglob("*")
        if p.is_file() and ".mlcicd" not in p.parts and "__pycache__" not in p.parts
    }
    s3.put_object(
        Bucket=ARTIFACTS_BUCKET,
        Key=INPUTS[1]["location"]["s3Location"]["objectKey"],
        Body=zip_bytes(source),
    )
    yield aws_env


def invoke(job_id: str, *, continuation: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Invoke the handler once, expecting a success; return what it reported."""
    return [report(job_id, continuation=continuation)]


def report(
    job_id: str, *, continuation: str | None = None, fails: bool = False
) -> tuple[str, dict[str, Any]]:
    """Invoke the handler; return the one result it reported (success or failure)."""
    stub = OperationStubber(client("codepipeline"), "PutJobSuccessResult", "PutJobFailureResult")
    stub.add_response("put_job_failure_result" if fails else "put_job_success_result", {})
    with stub:
        training.handler(
            job_event(
                job_id, function=FUNCTION, inputs=INPUTS, outputs=OUTPUTS, continuation=continuation
            ),
            None,
        )
    (call,) = stub.calls
    return call


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sagemaker_writes_output(aws: AwsClient, job: str, metrics: dict[str, float]) -> bytes:
    """What SageMaker uploads when a job completes: model/ and output/data/ as tar.gz files."""
    model = tar_gz({"model.joblib": b"a fitted model"})
    key = f"iris-classifier/{job}/output"
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{key}/model.tar.gz", Body=model)
    aws("s3").put_object(
        Bucket=MODELS_BUCKET,
        Key=f"{key}/output.tar.gz",
        Body=tar_gz({"metrics.json": json.dumps(metrics).encode()}),
    )
    return model


def started_job(aws: AwsClient) -> dict[str, Any]:
    (summary,) = aws("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    described: dict[str, Any] = aws("sagemaker").describe_training_job(
        TrainingJobName=summary["TrainingJobName"]
    )
    return described


def test_start_uploads_the_channels_and_starts_the_job_once(pipeline: AwsClient) -> None:
    (call,) = invoke("job-1")
    state = json.loads(token_of(call))
    job = started_job(pipeline)
    assert state == {"image": IMAGE, "job": job["TrainingJobName"], "revision": COMMIT}
    assert job["TrainingJobName"].startswith(
        "iris-classifier-"
    )  # the policy's training-job/<pipeline>-*
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["RoleArn"] == ROLE_ARN
    assert job["HyperParameters"] == {"C": "1.0", "max_iter": "200"}
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 600
    assert job["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{MODELS_BUCKET}/iris-classifier",
        "KmsKeyId": KEY_ARN,
    }
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert job["EnableNetworkIsolation"] is True  # the code is in the image: no network needed
    (channel,) = job["InputDataConfig"]
    uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
    assert (channel["ChannelName"], uri) == (
        "training",
        f"s3://{MODELS_BUCKET}/iris-classifier/{job['TrainingJobName']}/input/data/training/",
    )
    keys = [o["Key"] for o in pipeline("s3").list_objects_v2(Bucket=MODELS_BUCKET)["Contents"]]
    assert keys == [f"iris-classifier/{job['TrainingJobName']}/input/data/training/iris.csv"]
    assert call[1]["executionDetails"]["externalExecutionId"] == job["TrainingJobName"]

    # Lambda retries an invocation that errored with the same event: nothing new is started.
    (again,) = invoke("job-1")
    assert json.loads(token_of(again)) == state
    assert len(pipeline("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 1


def test_start_then_continue_to_a_registered_model(pipeline: AwsClient) -> None:
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    model = sagemaker_writes_output(pipeline, name, {"accuracy": 0.97, "f1": 0.96})

    done = report("job-2", continuation=token)
    assert done[0] == "PutJobSuccessResult"
    assert "continuationToken" not in done[1]
    variables = done[1]["outputVariables"]
    assert variables["TrainingJobName"] == name
    package = pipeline("sagemaker").describe_model_package(
        ModelPackageName=variables["ModelPackageArn"]
    )
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelPackageGroupName"] == "iris-classifier"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container == {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{MODELS_BUCKET}/iris-classifier/{name}/output/model.tar.gz",
    }

    output = pipeline("s3").get_object(
        Bucket=ARTIFACTS_BUCKET, Key=OUTPUTS[0]["location"]["s3Location"]["objectKey"]
    )
    assert output["ServerSideEncryption"] == "aws:kms"  # under the pipeline's key
    written = json.loads(read_zip(output["Body"].read())["model.json"])
    assert written["model_data_url"] == container["ModelDataUrl"]
    assert written["model_package_arn"] == variables["ModelPackageArn"]
    assert written["model_package_version"] == 1
    assert written["metrics"]["accuracy"] == 0.97
    assert written["metrics"]["train:progress"] == 100.0  # moto's FinalMetricDataList, kept
    assert written["image_uri"] == IMAGE and written["source_revision"] == COMMIT
    assert written["model_sha256"] == hashlib.sha256(model).hexdigest()

    # A retried continuation registers nothing twice.
    again = report("job-2", continuation=token)
    assert again[1]["outputVariables"]["ModelPackageArn"] == variables["ModelPackageArn"]
    packages = pipeline("sagemaker").list_model_packages(ModelPackageGroupName="iris-classifier")
    assert len(packages["ModelPackageSummaryList"]) == 1


def test_continues_while_the_job_runs(pipeline: AwsClient) -> None:
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    running = {
        **_described(name),
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Training",
        "SecondaryStatusTransitions": [
            {
                "Status": "Training",
                "StartTime": 0,
                "StatusMessage": "Training image download completed.",
            }
        ],
    }
    with OperationStubber(client("sagemaker"), "DescribeTrainingJob") as sagemaker:
        for _ in ("the token's check (provenance)", "the job's progress"):
            sagemaker.add_response("describe_training_job", running, {"TrainingJobName": name})
        call = report("job-2", continuation=token)
    assert token_of(call) == token
    assert "InProgress (Training)" in call[1]["executionDetails"]["summary"]


def test_a_failed_job_fails_with_sagemakers_reason(pipeline: AwsClient) -> None:
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    failed = {
        **_described(name),
        "TrainingJobStatus": "Failed",
        "SecondaryStatus": "Failed",
        "FailureReason": "AlgorithmError: ExecuteUserScriptError: accuracy below the minimum",
    }
    with OperationStubber(client("sagemaker"), "DescribeTrainingJob") as sagemaker:
        for _ in ("the token's check (provenance)", "the job's progress"):
            sagemaker.add_response("describe_training_job", failed, {"TrainingJobName": name})
        call = report("job-2", continuation=token, fails=True)
    assert call[0] == "PutJobFailureResult"
    assert call[1]["failureDetails"]["type"] == "JobFailed"
    assert (
        "AlgorithmError: ExecuteUserScriptError: accuracy below the minimum"
        in call[1]["failureDetails"]["message"]
    )
    assert f"training job {name} failed" in call[1]["failureDetails"]["message"]


def test_a_model_missing_the_gate_is_rejected_and_fails_the_job(pipeline: AwsClient) -> None:
    token = token_of(invoke("job-1")[0])
    sagemaker_writes_output(pipeline, json.loads(token)["job"], {"accuracy": 0.61, "f1": 0.6})
    call = report("job-2", continuation=token, fails=True)
    message = call[1]["failureDetails"]["message"]
    assert message.startswith("quality gate failed: accuracy = 0.61 does not meet accuracy >= 0.85")
    (summary,) = pipeline("sagemaker").list_model_packages(ModelPackageGroupName="iris-classifier")[
        "ModelPackageSummaryList"
    ]
    assert summary["ModelApprovalStatus"] == "Rejected"
    assert summary["ModelPackageArn"] in message
    assert "Contents" not in pipeline("s3").list_objects_v2(
        Bucket=ARTIFACTS_BUCKET, Prefix="ml-cicd-pipeline/ModelOutpu"
    )


def test_approval_and_spot_training(pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCICD_REQUIRE_APPROVAL", "true")
    monkeypatch.setenv("MLCICD_TRAINING_USE_SPOT", "true")
    monkeypatch.setenv("MLCICD_TRAINING_MAX_WAIT", "1200")
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    job = started_job(pipeline)
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}
    assert (
        job["CheckpointConfig"]["S3Uri"]
        == f"s3://{MODELS_BUCKET}/iris-classifier/{name}/checkpoints"
    )
    sagemaker_writes_output(pipeline, name, {"accuracy": 0.97})
    call = report("job-2", continuation=token)
    package = pipeline("sagemaker").describe_model_package(
        ModelPackageName=call[1]["outputVariables"]["ModelPackageArn"]
    )
    assert package["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_missing_image_detail_fails_the_job_with_a_clear_reason(pipeline: AwsClient) -> None:
    pipeline("s3").put_object(
        Bucket=ARTIFACTS_BUCKET,
        Key=INPUTS[0]["location"]["s3Location"]["objectKey"],
        Body=zip_bytes({"build.json": b"{}"}),
    )
    call = report("job-1", fails=True)
    assert call[1]["failureDetails"]["message"].startswith(
        "artifact BuildOutput holds no imageDetail.json"
    )
    assert pipeline("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_bad_setting_fails_the_job(pipeline: AwsClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCICD_GATE_THRESHOLDS", "[{")
    call = report("job-1", fails=True)
    assert "MLCICD_GATE_THRESHOLDS is not JSON" in call[1]["failureDetails"]["message"]


def test_not_a_codepipeline_event() -> None:
    from mlcicd.errors import MlcicdError

    with pytest.raises(MlcicdError, match="not a CodePipeline job"):
        training.handler({"Records": []}, None)


def _described(name: str) -> dict[str, Any]:
    """The fields DescribeTrainingJob always returns, for a stubbed answer."""
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {
            "S3ModelArtifacts": f"s3://{MODELS_BUCKET}/iris-classifier/{name}/output/model.tar.gz"
        },
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "CreationTime": 0,
        "OutputDataConfig": {"S3OutputPath": f"s3://{MODELS_BUCKET}/iris-classifier"},
    }


def test_a_job_goes_onto_the_network_only_when_mlcicd_yaml_says_so(iris_config: Config) -> None:
    isolated = training.TrainingSettings.from_environ(
        lambda_environment(build_template(iris_config), "TrainingFunction")
    )
    assert (isolated.network_isolation, isolated.kms_key_id) == (True, KEY_ARN)
    online = dataclasses.replace(
        iris_config, train=dataclasses.replace(iris_config.train, network_isolation=False)
    )
    settings = training.TrainingSettings.from_environ(
        lambda_environment(build_template(online), "TrainingFunction")
    )
    assert (settings.network_isolation, settings.kms_key_id) == (False, KEY_ARN)


def test_a_job_in_the_vpc_with_checkpoints_as_the_stack_sets_it(
    pipeline: AwsClient, scaled_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """network: and train.checkpoints reach CreateTrainingJob through the function's
    environment (moto keeps the VpcConfig; the request itself is read for the rest)."""
    for name, value in lambda_environment(
        build_template(scaled_config), "TrainingFunction"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLCICD_TRAINING_MAX_WAIT", "")  # scaled's 90000 s: iris runs 600 s
    monkeypatch.setenv("MLCICD_TRAINING_USE_SPOT", "false")  # checkpoints without spot
    with SentParams(client("sagemaker"), "CreateTrainingJob") as sent:
        name = json.loads(token_of(invoke("job-1")[0]))["job"]
    ((_, request),) = sent.calls
    vpc = {
        "SecurityGroupIds": ["sg-0123abcd"],
        "Subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    }
    assert request["VpcConfig"] == vpc
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["EnableNetworkIsolation"] is True
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{MODELS_BUCKET}/iris-classifier/{name}/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert started_job(pipeline)["VpcConfig"] == vpc


def fails_registering_nothing(pipeline: AwsClient, token: str) -> str:
    """The Train action's continuation fails: its message; no model package was made."""
    call = report("job-2", continuation=token, fails=True)
    listed = pipeline("sagemaker").list_model_packages(ModelPackageGroupName="iris-classifier")
    assert not listed["ModelPackageSummaryList"]
    return str(call[1]["failureDetails"]["message"])


@pytest.mark.parametrize("replaced", ["model.tar.gz", "output.tar.gz"])
def test_an_output_written_again_after_its_job_stops_the_pipeline_naming_it(
    pipeline: AwsClient, replaced: str
) -> None:
    """Whoever can write the models bucket replaces the model (or the metrics) after the job
    wrote it and before the Lambda reads it: the bucket's versions show a second write, the
    action fails naming the object, and nothing is registered."""
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    sagemaker_writes_output(pipeline, name, {"accuracy": 0.5})  # would miss the gate
    key = f"iris-classifier/{name}/output/{replaced}"
    theirs = {"model.joblib": b"their model", "metrics.json": b'{"accuracy": 0.99}'}
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=tar_gz(theirs))

    message = fails_registering_nothing(pipeline, token)
    assert message.startswith(
        f"s3://{MODELS_BUCKET}/{key} was written or deleted after job {name} wrote it "
        "(2 versions, 0 delete markers)"
    ), message


def test_a_garbled_registration_marker_fails_naming_it(pipeline: AwsClient) -> None:
    """The marker beside the job's output is read as data, as the other JSON the Lambdas read
    on S3: one that is not JSON fails the action naming it, not as an internal error."""
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    sagemaker_writes_output(pipeline, name, {"accuracy": 0.97, "f1": 0.96})
    marker = f"iris-classifier/{name}/model-package.json"
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=marker, Body=b"[" * 100_000)
    message = fails_registering_nothing(pipeline, token)
    assert message.startswith(f"{name}'s registration (s3://{MODELS_BUCKET}/{marker}): not JSON")


def test_a_planted_registration_marker_is_not_believed(pipeline: AwsClient) -> None:
    """Whoever can write the models bucket plants the marker beside the job's output, naming a
    package of theirs: the action fails naming it instead of reporting (and deploying) it."""
    token = token_of(invoke("job-1")[0])
    name = json.loads(token)["job"]
    sagemaker_writes_output(pipeline, name, {"accuracy": 0.97, "f1": 0.96})
    sagemaker = pipeline("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="theirs")
    theirs = sagemaker.create_model_package(
        ModelPackageGroupName="theirs",
        InferenceSpecification={
            "Containers": [{"Image": "their/image", "ModelDataUrl": "s3://their/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"training_job": name},
    )["ModelPackageArn"]
    marker = f"iris-classifier/{name}/model-package.json"
    known = {"arn": theirs, "version": 1, "status": "Approved", "training_job": name}
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=marker, Body=json.dumps(known).encode())
    message = fails_registering_nothing(pipeline, token)
    assert message.startswith(
        f"{name}'s registration (s3://{MODELS_BUCKET}/{marker}) names {theirs}, which is not this "
        "job's model"
    ), message


FOREIGN_TAGS = {
    "another pipeline's": {"mlcicd:pipeline": "another-pipeline"},
    "another execution's": {"mlcicd:pipeline": "iris-classifier", "mlcicd:execution": "0" * 16},
}


@pytest.mark.parametrize("whose", [*FOREIGN_TAGS, "a model its job did not write"])
def test_a_continuation_token_naming_a_job_this_execution_did_not_start_fails_it(
    pipeline: AwsClient, whose: str
) -> None:
    """Whoever can call codepipeline:PutJobSuccessResult puts a token of their own: naming a
    completed training job of another pipeline (or another execution of this one) whose model
    passes the gate, or this job with another model. The action fails before reading it, and
    nothing is registered."""
    token = json.loads(token_of(invoke("job-1")[0]))
    theirs = "another-pipeline-0123456789abcdef"
    pipeline("sagemaker").create_training_job(
        TrainingJobName=theirs,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE_ARN,
        OutputDataConfig={"S3OutputPath": f"s3://{MODELS_BUCKET}/iris-classifier"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Tags=[{"Key": k, "Value": v} for k, v in FOREIGN_TAGS.get(whose, {}).items()],
    )
    model = sagemaker_writes_output(pipeline, theirs, {"accuracy": 0.99})
    if whose in FOREIGN_TAGS:
        forged = {**token, "job": theirs}
    else:  # this execution's job, finished, and their model as the one it wrote
        sagemaker_writes_output(pipeline, token["job"], {"accuracy": 0.99})
        uri = f"s3://{MODELS_BUCKET}/iris-classifier/{theirs}/output/model.tar.gz"
        forged = {**token, "model": {"uri": uri, "sha256": hashlib.sha256(model).hexdigest()}}

    message = fails_registering_nothing(pipeline, json.dumps(forged))
    if whose in FOREIGN_TAGS:
        assert message.startswith(
            f"the continuation token names training job {theirs}, which this pipeline's "
            "execution did not start"
        ), message
    else:
        assert message.startswith(f"the continuation token names the model {uri}, not the one")
    assert "PutJobSuccessResult" in message  # the hint: who could have done it


def test_a_continuation_token_naming_another_image_fails_before_it_is_registered(
    pipeline: AwsClient,
) -> None:
    """The token carries the image the build pushed, to have it at hand: a forged one names
    an image of the caller's choosing, which would be the registered model's container (and
    the deploy Lambda's endpoint's). The image is the event's build artifact's."""
    token = json.loads(token_of(invoke("job-1")[0]))
    sagemaker_writes_output(pipeline, token["job"], {"accuracy": 0.99})
    theirs = "111111111111.dkr.ecr.us-east-1.amazonaws.com/theirs:latest"

    message = fails_registering_nothing(pipeline, json.dumps({**token, "image": theirs}))
    assert message.startswith(
        f"the continuation token names image {theirs!r}, not this execution's ({IMAGE!r})"
    ), message


def test_a_continuation_token_carrying_an_explanation_report_fails_the_action(
    pipeline: AwsClient,
) -> None:
    """The explainer's outcome is decided and written into model.json within one invocation:
    a token carrying one would hand the deploy Lambda a report (and its sha256) of the
    caller's choosing as the endpoint's Clarify baseline."""
    token = json.loads(token_of(invoke("job-1")[0]))
    sagemaker_writes_output(pipeline, token["job"], {"accuracy": 0.99})
    report_uri = f"s3://{MODELS_BUCKET}/theirs/report.json"
    forged = {**token, "explained": report_uri, "explained_sha256": "0" * 64}

    message = fails_registering_nothing(pipeline, json.dumps(forged))
    assert message.startswith(
        "the continuation token says explained, explained_sha256, which the action decides itself"
    ), message


def test_a_continuation_token_with_a_replaced_models_digest_fails_the_action(
    pipeline: AwsClient,
) -> None:
    """Whoever can write the models bucket and call PutJobSuccessResult replaces the model
    the job wrote and hands in a token with the replacement's sha256: every reader (the
    explainer, the registry, the endpoint's container) would check their model against their
    digest. The token's model must still be the one version its job wrote."""
    token = json.loads(token_of(invoke("job-1")[0]))
    sagemaker_writes_output(pipeline, token["job"], {"accuracy": 0.99})
    key = f"iris-classifier/{token['job']}/output/model.tar.gz"
    theirs = tar_gz({"model.joblib": b"their model"})
    pipeline("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=theirs)
    model = {"uri": f"s3://{MODELS_BUCKET}/{key}", "sha256": hashlib.sha256(theirs).hexdigest()}

    message = fails_registering_nothing(pipeline, json.dumps({**token, "model": model}))
    assert message.startswith(
        f"s3://{MODELS_BUCKET}/{key} was written or deleted after job {token['job']} wrote it"
    ), message
