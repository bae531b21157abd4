"""The register-time explanation in the pipeline (``explain:``): examples/iris pushed to the
stack's training Lambda, against moto's server. After the gate, before register, the model is
explained by a processing job in the commit's image; the report is stored beside the model
and the model package refers to it.

Real: the Lambda's calls (S3, the training and processing jobs and the model registry as moto
implements them); the explain job's script, run as SageMaker would run it by
``sagemaker_sim.run_processing_job`` (inputs downloaded from S3, the entrypoint run, the output
uploaded), on a model examples/iris's train.py really fitted (trained once for the module).
Simulated: CodePipeline's results (the Stubber, as in test_lambda_training).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas.explain import SCRIPT
from tests.aws.conftest import AwsClient, iris_with
from tests.aws.events import ARTIFACTS_BUCKET, MODELS_BUCKET, read_zip, token_of
from tests.aws.sagemaker_sim import run_processing_job, tar_gz, train_here
from tests.aws.stubs import SentParams
from tests.aws.test_lambda_steps import set_up_stack
from tests.aws.test_lambda_training import OUTPUTS, report
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

GROUP = "iris-classifier"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, bytes]]:
    """examples/iris's model as its train.py fits it, and its output/data (metrics.json)."""
    model, output, _ = train_here(tmp_path_factory.mktemp("train"), IRIS / "src", IRIS / "data")
    return model, output


def source_files() -> dict[str, bytes]:
    return {
        p.relative_to(IRIS).as_posix(): p.read_bytes()
        for p in IRIS.rglob("*")
        if p.is_file() and ".mlcicd" not in p.parts and "__pycache__" not in p.parts
    }


def stack_with(aws: AwsClient, monkeypatch: pytest.MonkeyPatch, **explain: object) -> AwsClient:
    set_up_stack(aws, monkeypatch, iris_with(explain={"rows": 40, **explain}), source_files())
    return aws


def to_the_explainer(
    aws: AwsClient, run: str, model: bytes, output: dict[str, bytes], *, registered: int = 0
) -> tuple[str, dict[str, Any], str]:
    """Push ``run``: training starts, "completes" with ``model``, passes the gate and the
    explain job starts; return the training job, the explain job and the token to continue."""
    started = report(run)
    job = json.loads(token_of(started))["job"]
    prefix = f"{GROUP}/{job}/output"
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{prefix}/model.tar.gz", Body=model)
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{prefix}/output.tar.gz", Body=tar_gz(output))
    explaining = report(f"{run}-2", continuation=token_of(started))
    state = json.loads(token_of(explaining))
    assert state["explain"].startswith(f"{GROUP}-explain-")
    assert packages(aws) == registered  # not registered before it is explained
    described = aws("sagemaker").describe_processing_job(ProcessingJobName=state["explain"])
    return job, described, token_of(explaining)


def packages(aws: AwsClient) -> int:
    listed = aws("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)
    return len(listed["ModelPackageSummaryList"])


def only_package(aws: AwsClient) -> dict[str, Any]:
    (summary,) = aws("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)[
        "ModelPackageSummaryList"
    ]
    package: dict[str, Any] = aws("sagemaker").describe_model_package(
        ModelPackageName=summary["ModelPackageArn"]
    )
    return package


def stored(aws: AwsClient, uri: str) -> dict[str, Any]:
    key = uri.removeprefix(f"s3://{MODELS_BUCKET}/")
    document: dict[str, Any] = json.loads(
        aws("s3").get_object(Bucket=MODELS_BUCKET, Key=key)["Body"].read()
    )
    return document


def test_a_push_with_explain_registers_the_model_with_its_report_beside_it(
    aws_env: AwsClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trained: tuple[bytes, dict[str, bytes]],
) -> None:
    aws = stack_with(aws_env, monkeypatch)
    model, output = trained
    job, described, token = to_the_explainer(aws, "job-1", model, output)
    assert described["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        f"/opt/ml/processing/input/code/{SCRIPT}",
    ]
    arguments = described["AppSpecification"]["ContainerArguments"]
    assert arguments[:6] == ["--channel", "training", "--label", "species", "--rows", "40"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in described["ProcessingInputs"]}
    model_url = f"s3://{MODELS_BUCKET}/{GROUP}/{job}/output/model.tar.gz"
    assert inputs["model"] == model_url
    # The channel the training job read, and the commit's inference code.
    assert inputs["data"] == f"s3://{MODELS_BUCKET}/{GROUP}/{job}/input/data/training/"
    assert "baseline" not in inputs

    run_processing_job(aws, described["ProcessingJobName"], tmp_path / "explain")
    done = report("job-1-3", continuation=token)
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]

    package = only_package(aws)
    uri = package["CustomerMetadataProperties"]["explanation"]
    assert uri.startswith(f"s3://{MODELS_BUCKET}/{GROUP}/{job}/explain/")  # as `mlcicd explain`
    assert package["ModelMetrics"]["Explainability"]["Report"]["S3Uri"] == uri
    explanation = stored(aws, uri)
    assert explanation["features"] == FEATURES
    assert explanation["rows"] == 40 and explanation["baseline"]
    assert explanation["explainer"] == "linear"
    assert explanation["local_accuracy"]["max_error"] <= explanation["local_accuracy"]["tolerance"]
    assert max(explanation["importance"], key=explanation["importance"].get).startswith("petal")
    # The deploy action learns where it is (its endpoint's Clarify baseline).
    key = OUTPUTS[0]["location"]["s3Location"]["objectKey"]
    written = aws("s3").get_object(Bucket=ARTIFACTS_BUCKET, Key=key)["Body"].read()
    model_json = json.loads(read_zip(written)["model.json"])
    assert model_json["explanation"] == uri
    key = uri.removeprefix(f"s3://{MODELS_BUCKET}/")
    stored_bytes = aws("s3").get_object(Bucket=MODELS_BUCKET, Key=key)["Body"].read()
    assert model_json["explanation_sha256"] == hashlib.sha256(stored_bytes).hexdigest()


def test_an_explainer_that_fails_is_recorded_and_fails_the_action_only_when_required(
    aws_env: AwsClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trained: tuple[bytes, dict[str, bytes]],
) -> None:
    aws = stack_with(aws_env, monkeypatch)
    _, output = trained
    broken = tar_gz({"model.joblib": b"not a fitted model"})  # model_fn cannot load it
    job, described, token = to_the_explainer(aws, "job-1", broken, output)
    run_processing_job(aws, described["ProcessingJobName"], tmp_path / "one")
    done = report("job-1-3", continuation=token)
    assert done[0] == "PutJobSuccessResult"
    package = only_package(aws)
    assert "Explainability" not in package["ModelMetrics"]
    error = package["CustomerMetadataProperties"]["explanation_error"]
    assert "explanation" not in package["CustomerMetadataProperties"]
    assert error.startswith("model_fn of inference.py raised "), error
    # The stored report says why, where `mlcicd explain` looks for the model's report.
    digest = hashlib.sha256(broken).hexdigest()[:16]
    document = stored(aws, f"s3://{MODELS_BUCKET}/{GROUP}/{job}/explain/{digest}.json")
    assert document["error"].startswith(error[:100]), (document, error)
    assert "importance" not in document

    # required: true: the same failure fails the action, and nothing more is registered.
    environment = json.loads(os.environ["MLCICD_EXPLAIN"])
    monkeypatch.setenv("MLCICD_EXPLAIN", json.dumps({**environment, "required": True}))
    _, described, token = to_the_explainer(aws, "job-2", broken, output, registered=1)
    run_processing_job(aws, described["ProcessingJobName"], tmp_path / "two")
    failed = report("job-2-3", continuation=token, fails=True)
    assert failed[0] == "PutJobFailureResult"
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith("explain.required: ") and "could not be explained" in message
    assert only_package(aws)["ModelPackageArn"] == package["ModelPackageArn"]  # job-1's alone


def test_a_baseline_file_the_commit_lacks_is_recorded_without_starting_the_job(
    aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch, trained: tuple[bytes, dict[str, bytes]]
) -> None:
    aws = stack_with(aws_env, monkeypatch, baseline="data/absent.csv")
    model, output = trained
    started = report("job-1")
    job = json.loads(token_of(started))["job"]
    prefix = f"{GROUP}/{job}/output"
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{prefix}/model.tar.gz", Body=model)
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{prefix}/output.tar.gz", Body=tar_gz(output))
    done = report("job-1-2", continuation=token_of(started))
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    assert not aws("sagemaker").list_processing_jobs()["ProcessingJobSummaries"]
    error = only_package(aws)["CustomerMetadataProperties"]["explanation_error"]
    assert error.startswith("explain.baseline data/absent.csv is not in the source artifact")


def test_the_model_is_hashed_once_not_at_each_look_at_the_explainer(
    aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch, trained: tuple[bytes, dict[str, bytes]]
) -> None:
    """The continuation token carries the model's sha256 from the first read after the
    training job completed: while the explain job runs, CodePipeline's continuations read
    nothing of model.tar.gz (it was streamed whole each time) — they only list its versions,
    to know the token's digest is of the one the job wrote (provenance)."""
    aws = stack_with(aws_env, monkeypatch)
    model, output = trained
    job, described, token = to_the_explainer(aws, "job-1", model, output)
    assert json.loads(token)["model"]["sha256"] == hashlib.sha256(model).hexdigest()

    def running(parsed: dict[str, Any], **kwargs: Any) -> None:
        if parsed.get("ProcessingJobName") == described["ProcessingJobName"]:
            parsed["ProcessingJobStatus"] = "InProgress"  # moto's are Completed at once

    events = client("sagemaker").meta.events
    events.register("after-call.sagemaker.DescribeProcessingJob", running, unique_id="running")
    try:
        with SentParams(client("s3"), "GetObject", "HeadObject", "ListObjectVersions") as sent:
            for run in ("job-1-3", "job-1-4"):
                assert token_of(report(run, continuation=token)) == token
    finally:
        events.unregister("after-call.sagemaker.DescribeProcessingJob", unique_id="running")
    key = f"{GROUP}/{job}/output/model.tar.gz"
    read = [c for c in sent.calls if key in (c[1].get("Key"), c[1].get("Prefix"))]
    assert [operation for operation, _ in read] == ["ListObjectVersions"] * 2
    assert sent.calls  # the metrics were read: the hook saw the function's reads


def test_the_explain_job_runs_on_the_instance_mlcicd_yaml_names(
    aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch, trained: tuple[bytes, dict[str, bytes]]
) -> None:
    aws = stack_with(aws_env, monkeypatch, instance_type="ml.c5.xlarge", max_runtime=7200)
    model, output = trained
    with SentParams(client("sagemaker"), "CreateProcessingJob") as sent:
        _, described, _ = to_the_explainer(aws, "job-1", model, output)
    ((_, request),) = sent.calls  # moto keeps no ProcessingResources
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
