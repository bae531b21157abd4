"""The processing steps in the pipeline: the training Lambda runs examples/pipeline's prepare →
train → evaluate → gate as SageMaker jobs, called as a Python function with CodePipeline's job
events, against moto's server through real boto3 clients.

Real: S3 (the source artifact, the code and inputs uploaded, the cache index), SageMaker's
processing and training jobs and model registry as moto implements them (CreateProcessingJob,
DescribeProcessingJob…), the function's environment exactly as the generated template sets it.
Simulated: what SageMaker's jobs write (moto writes nothing; its jobs are Completed at once) —
the test puts each job's outputs where SageMaker would, between two invocations; a job that
fails is DescribeProcessingJob stubbed alone; CodePipeline's results (not in moto) are
recorded by the Stubber, as in test_lambda_training.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from mlcicd.aws import joboutputs
from mlcicd.aws.clients import client
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws import job_times
from tests.aws.conftest import PIPELINE_EXAMPLE, AwsClient, pipeline_with
from tests.aws.events import (
    ARTIFACTS_BUCKET,
    IMAGE,
    KEY_ARN,
    MODELS_BUCKET,
    ROLE_ARN,
    create_models_bucket,
    lambda_environment,
    read_zip,
    token_of,
    zip_bytes,
)
from tests.aws.stubs import OperationStubber
from tests.aws.test_lambda_training import INPUTS, OUTPUTS, report, tar_gz

pytestmark = pytest.mark.integration

EXAMPLE = PIPELINE_EXAMPLE
PIPELINE = "iris-pipeline"
TRAIN_CSV = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,0\n"


def source_files() -> dict[str, bytes]:
    return {
        p.relative_to(EXAMPLE).as_posix(): p.read_bytes()
        for p in EXAMPLE.rglob("*")
        if p.is_file() and ".mlcicd" not in p.parts and "__pycache__" not in p.parts
    }


def set_up_stack(
    aws: AwsClient, monkeypatch: pytest.MonkeyPatch, config: Config, files: dict[str, bytes]
) -> None:
    """The stack's buckets, the Build and Source (``files``) artifacts, the training function's
    environment as the template generated from ``config`` sets it."""
    environment = lambda_environment(build_template(config), "TrainingFunction")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    s3 = aws("s3")
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    create_models_bucket(s3)
    build = INPUTS[0]["location"]["s3Location"]["objectKey"]
    detail = json.dumps({"ImageURI": IMAGE}).encode()
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=build, Body=zip_bytes({"imageDetail.json": detail}))
    push_source(aws, files)


def push_source(aws: AwsClient, files: dict[str, bytes]) -> None:
    """A commit of ``files`` as the pipeline's source artifact."""
    source = INPUTS[1]["location"]["s3Location"]["objectKey"]
    aws("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key=source, Body=zip_bytes(files))


@pytest.fixture
def stack(aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch) -> AwsClient:
    """examples/pipeline's stack (without its data check), before its first push."""
    set_up_stack(aws_env, monkeypatch, pipeline_with(data_check="off"), source_files())
    return aws_env


def processing_job(aws: AwsClient, step: str) -> dict[str, Any]:
    """The one processing job of ``step`` (tagged by the Lambda)."""
    sagemaker = aws("sagemaker")
    found = [
        sagemaker.describe_processing_job(ProcessingJobName=s["ProcessingJobName"])
        for s in sagemaker.list_processing_jobs()["ProcessingJobSummaries"]
    ]
    (job,) = [j for j in found if j["ProcessingJobName"].startswith(f"{PIPELINE}-{step}-")]
    return job


def write_outputs(aws: AwsClient, job: dict[str, Any], files: dict[str, dict[str, bytes]]) -> None:
    """What SageMaker uploads from /opt/ml/processing/output/<name>/ when the job ends."""
    uris = {
        o["OutputName"]: o["S3Output"]["S3Uri"] for o in job["ProcessingOutputConfig"]["Outputs"]
    }
    for output, members in files.items():
        prefix = uris[output].removeprefix(f"s3://{MODELS_BUCKET}/")
        for name, data in members.items():
            aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{prefix}/{name}", Body=data)


def training_writes(aws: AwsClient, job: str, metrics: dict[str, float]) -> None:
    key = f"{PIPELINE}/{job}/output"
    model = tar_gz({"model.joblib": b"a fitted model"})
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{key}/model.tar.gz", Body=model)
    output = tar_gz({"metrics.json": json.dumps(metrics).encode()})
    aws("s3").put_object(Bucket=MODELS_BUCKET, Key=f"{key}/output.tar.gz", Body=output)


def prepared(aws: AwsClient) -> dict[str, Any]:
    """Run job-1's first invocation, and have prepare's job write its outputs."""
    job = processing_job(aws, "prepare")
    write_outputs(aws, job, {"train": {"train.csv": TRAIN_CSV}, "test": {"test.csv": TRAIN_CSV}})
    return job


def evaluated(aws: AwsClient, accuracy: float) -> dict[str, Any]:
    job = processing_job(aws, "evaluate")
    report_json = json.dumps({"metrics": {"accuracy": {"value": accuracy}}}).encode()
    write_outputs(aws, job, {"evaluation": {"evaluation.json": report_json}})
    return job


def test_prepare_train_evaluate_then_the_gate_on_the_report(stack: AwsClient) -> None:
    first = report("job-1")
    assert first[0] == "PutJobSuccessResult"
    prepare = prepared(stack)
    name = prepare["ProcessingJobName"]
    assert json.loads(token_of(first))["steps"] == {"prepare": name}
    assert name.startswith(f"{PIPELINE}-prepare-")  # the policy's processing-job/<pipeline>-*
    # The request is the one processing.backend: sagemaker sends (create_processing_job_request).
    assert prepare["AppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/prepare.py"],
        "ContainerArguments": ["--test-size", "0.2"],
    }
    assert prepare["RoleArn"] == ROLE_ARN
    assert prepare["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in prepare["ProcessingInputs"]}
    base = f"s3://{MODELS_BUCKET}/{PIPELINE}/processing/{name}/input"
    assert inputs == {"code": f"{base}/code/", "raw": f"{base}/raw/"}
    listed = stack("s3").list_objects_v2(Bucket=MODELS_BUCKET, Prefix=f"{PIPELINE}/processing/")
    keys = {o["Key"] for o in listed["Contents"]}
    assert f"{PIPELINE}/processing/{name}/input/code/prepare.py" in keys
    assert f"{PIPELINE}/processing/{name}/input/raw/iris.csv" in keys
    assert not stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]  # not yet

    # prepare Completed: training starts, its channel prepare's output on S3.
    second = report("job-2", continuation=token_of(first))
    state = json.loads(token_of(second))
    (summary,) = stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    job = stack("sagemaker").describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert state["job"] == job["TrainingJobName"]
    (channel,) = job["InputDataConfig"]
    assert channel["ChannelName"] == "training"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{MODELS_BUCKET}/{PIPELINE}/processing/{name}/output/train/"
    )

    # Training Completed: evaluate starts with the model and prepare's test output.
    training_writes(stack, job["TrainingJobName"], {"accuracy": 0.9})
    third = report("job-3", continuation=token_of(second))
    assert third[0] == "PutJobSuccessResult" and "continuationToken" in third[1]
    evaluate = evaluated(stack, 0.97)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["ProcessingInputs"]}
    assert inputs["model"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert inputs["test"] == f"s3://{MODELS_BUCKET}/{PIPELINE}/processing/{name}/output/test/"

    # evaluate Completed: the gate reads its report, the model is registered.
    done = report("job-4", continuation=token_of(third))
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    output = stack("s3").get_object(
        Bucket=ARTIFACTS_BUCKET, Key=OUTPUTS[0]["location"]["s3Location"]["objectKey"]
    )
    model = json.loads(read_zip(output["Body"].read())["model.json"])
    assert model["gate"] == ["evaluation.metrics.accuracy >= 0.85"]
    assert model["reports"]["evaluation"] == {"metrics": {"accuracy": {"value": 0.97}}}
    assert model["processing_jobs"] == {
        "prepare": name,
        "evaluate": evaluate["ProcessingJobName"],
    }
    package = stack("sagemaker").describe_model_package(ModelPackageName=model["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["processing_prepare"] == name


def test_an_unchanged_step_is_reused_by_the_next_run(stack: AwsClient) -> None:
    first = report("job-1")
    prepare = prepared(stack)
    report("job-2", continuation=token_of(first))  # prepare completes: remembered by its key

    # The next run of the same commit: prepare's key is unchanged, training starts at once.
    again = report("run-2")
    state = json.loads(token_of(again))
    assert state["steps"] == {"prepare": prepare["ProcessingJobName"]}
    assert state["cached"] == ["prepare"]
    assert "job" in state
    summaries = stack("sagemaker").list_processing_jobs()["ProcessingJobSummaries"]
    assert len(summaries) == 1  # no second prepare job


def test_a_failed_step_fails_the_action_with_its_name_and_reason(stack: AwsClient) -> None:
    first = report("job-1")
    name = processing_job(stack, "prepare")["ProcessingJobName"]
    described = dict(stack("sagemaker").describe_processing_job(ProcessingJobName=name))
    described.pop("ResponseMetadata")
    cluster = {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
    described.setdefault("ProcessingResources", {"ClusterConfig": cluster})  # moto drops it
    described.update(
        ProcessingJobStatus="Failed",
        FailureReason="AlgorithmError: prepare.py: no CSV under /opt/ml/processing/input/raw",
    )
    stub = OperationStubber(client("sagemaker"), "DescribeProcessingJob")
    for _ in ("the token's check (provenance)", "the step's progress"):
        stub.add_response("describe_processing_job", described)
    with stub:
        failed = report("job-2", continuation=token_of(first), fails=True)
    assert failed[0] == "PutJobFailureResult"
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith(f"step prepare: processing job {name} failed: AlgorithmError: ")
    assert "no CSV under /opt/ml/processing/input/raw" in message
    assert not stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]


def test_a_report_below_the_threshold_rejects_the_model(stack: AwsClient) -> None:
    first = report("job-1")
    prepared(stack)
    second = report("job-2", continuation=token_of(first))
    training_writes(stack, json.loads(token_of(second))["job"], {"accuracy": 0.99})
    third = report("job-3", continuation=token_of(second))
    evaluated(stack, 0.5)
    failed = report("job-4", continuation=token_of(third), fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert "quality gate failed: evaluation.metrics.accuracy = 0.5 does not meet" in message
    (package,) = stack("sagemaker").list_model_packages(ModelPackageGroupName=PIPELINE)[
        "ModelPackageSummaryList"
    ]
    assert package["ModelApprovalStatus"] == "Rejected"


def test_a_report_the_job_did_not_write_fails_naming_it(stack: AwsClient) -> None:
    first = report("job-1")
    prepared(stack)
    second = report("job-2", continuation=token_of(first))
    training_writes(stack, json.loads(token_of(second))["job"], {"accuracy": 0.99})
    third = report("job-3", continuation=token_of(second))
    failed = report("job-4", continuation=token_of(third), fails=True)  # evaluate wrote nothing
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith("step evaluate: report evaluation/evaluation.json (s3://")
    assert "the job wrote no such file" in message


def test_a_report_replaced_before_the_gate_reads_it_stops_the_pipeline(stack: AwsClient) -> None:
    """evaluate's report said 0.5; whoever can write the models bucket puts 0.99 in its place
    before the gate reads it. The gate reads only the version the job wrote, and a report
    written twice stops the action naming it: nothing is registered."""
    first = report("job-1")
    prepared(stack)
    second = report("job-2", continuation=token_of(first))
    training_writes(stack, json.loads(token_of(second))["job"], {"accuracy": 0.99})
    third = report("job-3", continuation=token_of(second))
    job = evaluated(stack, 0.5)["ProcessingJobName"]
    evaluated(stack, 0.99)  # theirs, over the job's
    failed = report("job-4", continuation=token_of(third), fails=True)
    message = failed[1]["failureDetails"]["message"]
    key = f"{PIPELINE}/processing/{job}/output/evaluation/evaluation.json"
    assert message.startswith(f"s3://{MODELS_BUCKET}/{key} was written or deleted after job {job}")
    assert not stack("sagemaker").list_model_packages(ModelPackageGroupName=PIPELINE)[
        "ModelPackageSummaryList"
    ]


@pytest.mark.parametrize("planted", ["written again", "added after the job ended"])
@pytest.mark.parametrize("when", ["before training reads it", "before a later run reuses it"])
def test_a_step_output_not_as_its_job_wrote_it_is_not_read_by_the_next_job(
    stack: AwsClient, monkeypatch: pytest.MonkeyPatch, when: str, planted: str
) -> None:
    """prepare's train output is the training channel, and a later run with the same inputs
    reuses it. Whoever can write the models bucket replaces train.csv after prepare wrote it,
    or adds a NEW object beside it (one version, as the job's own) after the job ended:
    neither this run's training job nor the next run is given the prefix; the action fails
    naming the object. (moto and this test share one clock: no slack for two services'.)"""
    monkeypatch.setattr(joboutputs, "CLOCK_SLACK", timedelta(0))
    first = report("job-1")
    job = prepared(stack)["ProcessingJobName"]
    if planted == "written again":
        key = f"{PIPELINE}/processing/{job}/output/train/train.csv"
        refused = f"s3://{MODELS_BUCKET}/{key} was written or deleted after job {job}"
    else:
        job_times.ended_now(job)
        key = f"{PIPELINE}/processing/{job}/output/train/more.csv"
        refused = f"s3://{MODELS_BUCKET}/{key} was written at "
    if when == "before a later run reuses it":
        second = report("job-2", continuation=token_of(first))  # the job's own outputs pass
        assert json.loads(token_of(second))["job"]  # training started on them
        started = len(stack("sagemaker").list_training_jobs()["TrainingJobSummaries"])
        stack("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=b"planted\n")
        failed = report("run-2", fails=True)
    else:
        started = 0
        stack("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=b"planted\n")
        failed = report("job-2", continuation=token_of(first), fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith(refused), message
    assert planted == "written again" or f"outside job {job}'s run" in message
    assert len(stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == started


@pytest.mark.parametrize("index", ["another job", "not JSON", "a name that is a path"])
def test_a_tampered_cache_index_runs_the_step_again(stack: AwsClient, index: str) -> None:
    """Whoever can write to the models bucket rewrites prepare's cache entry: at a Completed job
    of theirs whose "outputs" they planted under the pipeline's prefix, or at garbage. The step
    runs again; training never reads the planted data."""
    first = report("job-1")
    prepare = prepared(stack)
    report("job-2", continuation=token_of(first))
    s3, sagemaker = stack("s3"), stack("sagemaker")
    (entry,) = s3.list_objects_v2(Bucket=MODELS_BUCKET, Prefix=f"{PIPELINE}/processing/cache/")[
        "Contents"
    ]
    theirs = f"{PIPELINE}-prepare-planted"
    if index == "another job":  # the same request, under their name, without the key's tag
        cluster = {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
        sagemaker.create_processing_job(
            ProcessingJobName=theirs,
            ProcessingResources={"ClusterConfig": cluster},
            AppSpecification={"ImageUri": IMAGE},
            RoleArn=ROLE_ARN,
            Tags=[
                {"Key": "mlcicd:pipeline", "Value": PIPELINE},
                {"Key": "mlcicd:step", "Value": "prepare"},
            ],
        )
        for output in ("train", "test"):
            planted = f"{PIPELINE}/processing/{theirs}/output/{output}/{output}.csv"
            s3.put_object(Bucket=MODELS_BUCKET, Key=planted, Body=b"planted\n")
        body = json.dumps({"job": theirs, "step": "prepare"}).encode()
    elif index == "not JSON":
        body = b"[" * 100_000
    else:
        body = json.dumps({"job": f"../{prepare['ProcessingJobName']}"}).encode()
    s3.put_object(Bucket=MODELS_BUCKET, Key=entry["Key"], Body=body)

    state = json.loads(token_of(report("run-2")))
    assert "cached" not in state
    assert state["steps"]["prepare"] not in (theirs, prepare["ProcessingJobName"])
    assert state["steps"]["prepare"].startswith(f"{PIPELINE}-prepare-")


def test_a_reused_step_is_recorded_and_its_continuation_goes_on(stack: AwsClient) -> None:
    first = report("job-1")
    prepare = prepared(stack)["ProcessingJobName"]
    report("job-2", continuation=token_of(first))  # prepare completes: its cache index
    again = report("run-2")  # the same commit: prepare reused, recorded by the function
    reused = json.loads(token_of(again))
    assert (reused["steps"], reused["cached"]) == ({"prepare": prepare}, ["prepare"])
    training_writes(stack, reused["job"], {"accuracy": 0.9})
    assert report("run-2-2", continuation=token_of(again))[0] == "PutJobSuccessResult"


def test_a_continuation_token_claiming_a_step_reused_that_this_execution_ran_fails_it(
    stack: AwsClient,
) -> None:
    """An earlier run's job of the same step carries this pipeline's and this step's tags,
    whatever data it ran on. Whoever can call PutJobSuccessResult claims it reused for a
    commit whose data changed: the action fails, as this execution recorded no such reuse."""
    first = report("job-1")
    prepare = prepared(stack)["ProcessingJobName"]
    report("job-2", continuation=token_of(first))  # prepare completes: its cache index
    files = source_files()
    raw = next(name for name in files if name.startswith("data/raw/"))
    push_source(stack, {**files, raw: files[raw] + files[raw].splitlines(keepends=True)[-1]})
    changed = json.loads(token_of(report("run-3")))
    assert changed["steps"]["prepare"] != prepare and "cached" not in changed
    forged = {**changed, "steps": {"prepare": prepare}, "cached": ["prepare"]}

    failed = report("run-3-2", continuation=json.dumps(forged), fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith(
        f"the continuation token names processing job {prepare} as reused, which this "
        "pipeline's execution did not reuse"
    ), message
