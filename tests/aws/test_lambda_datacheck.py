"""The data check in the pipeline (``data_check: fail``): examples/pipeline pushed twice to
the stack's training Lambda, against moto's server. The second commit's data has a text column
where numbers were, and is stopped before training, naming the column.

Real: the Lambda's calls (S3, the processing and training jobs and the model registry as moto
implements them), and the jobs' scripts — prepare.py and the data check's own script, run as
SageMaker would run them by ``sagemaker_sim.run_processing_job`` (inputs downloaded from S3,
the entrypoint run with SAGEMAKER_BASE_DIR, outputs uploaded), since moto only records a job.
Simulated: the training job's model and evaluate's report (their scripts need scikit-learn),
and CodePipeline's results (the Stubber, as in test_lambda_training).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.lambdas.datacheck import SCRIPT, DataCheckSettings, advance
from mlcicd.aws.lambdas.steps import ProcessingSettings
from mlcicd.errors import ArtifactError, ConfigError, ProcessingError
from tests.aws.conftest import AwsClient, pipeline_with
from tests.aws.events import IMAGE, MODELS_BUCKET, ROLE_ARN, create_models_bucket, token_of
from tests.aws.sagemaker_sim import run_processing_job
from tests.aws.stubs import SentParams
from tests.aws.test_lambda_steps import (
    PIPELINE,
    evaluated,
    prepared,
    push_source,
    report,
    set_up_stack,
    source_files,
    training_writes,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch) -> AwsClient:
    """examples/pipeline's stack, data_check: fail as its mlcicd.yaml says."""
    set_up_stack(aws_env, monkeypatch, pipeline_with(), source_files())
    return aws_env


def through_the_check(
    aws: AwsClient, run: str, tmp: Path, *, fails: bool = False
) -> tuple[str, tuple[str, dict[str, Any]]]:
    """Push ``run``: prepare (run for real), then the data check's job (run for real); return
    the check's job and the result of the invocation that read its report."""
    trained = len(aws("sagemaker").list_training_jobs()["TrainingJobSummaries"])
    first = report(run)
    run_processing_job(aws, json.loads(token_of(first))["steps"]["prepare"], tmp / "prepare")
    started = report(f"{run}-2", continuation=token_of(first))
    check = json.loads(token_of(started))["check"]
    assert check.startswith(f"{PIPELINE}-datacheck-")
    # No training job before the check has ended.
    assert len(aws("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == trained
    run_processing_job(aws, check, tmp / "check")
    return check, report(f"{run}-3", continuation=token_of(started), fails=fails)


def test_the_first_model_carries_the_baseline_the_second_commits_data_is_checked_against(
    stack: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first push: no approved model yet, so the channel is profiled, not checked.
    check, trained = through_the_check(stack, "job-1", tmp_path / "one")
    assert trained[0] == "PutJobSuccessResult"
    described = stack("sagemaker").describe_processing_job(ProcessingJobName=check)
    assert described["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        f"/opt/ml/processing/input/code/{SCRIPT}",
    ]
    assert described["AppSpecification"]["ContainerArguments"] == [
        *("--channel", "training", "--label", "species"),
        *("--drift-threshold", "0.1", "--method", "Robust"),
    ]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in described["ProcessingInputs"]}
    (prepare,) = stack("sagemaker").list_processing_jobs(NameContains="-prepare-")[
        "ProcessingJobSummaries"
    ]
    assert inputs["data"] == (
        f"s3://{MODELS_BUCKET}/{PIPELINE}/processing/{prepare['ProcessingJobName']}/output/train/"
    )
    assert "baseline" not in inputs
    state = json.loads(token_of(trained))
    training_writes(stack, state["job"], {"accuracy": 0.9})
    evaluating = report("job-1-4", continuation=token_of(trained))
    evaluated(stack, 0.97)
    done = report("job-1-5", continuation=token_of(evaluating))
    assert done[0] == "PutJobSuccessResult" and "continuationToken" not in done[1]
    (summary,) = stack("sagemaker").list_model_packages(ModelPackageGroupName=PIPELINE)[
        "ModelPackageSummaryList"
    ]
    package = stack("sagemaker").describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    quality = package["ModelMetrics"]["ModelDataQuality"]
    folder = f"s3://{MODELS_BUCKET}/{PIPELINE}/processing/{check}/output/datacheck"
    assert quality["Statistics"]["S3Uri"] == f"{folder}/statistics.json"
    assert quality["Constraints"]["S3Uri"] == f"{folder}/constraints.json"
    key = f"{PIPELINE}/processing/{check}/output/datacheck/constraints.json"
    constraints = json.loads(stack("s3").get_object(Bucket=MODELS_BUCKET, Key=key)["Body"].read())
    assert [f["name"] for f in constraints["features"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]

    # The second push: petal_length holds text. The check reads the first model's baseline
    # and stops the run before training, naming the column.
    files = source_files()
    raw = files["data/raw/iris.csv"].decode().splitlines()
    raw[1:] = [",".join(["5.0", "3.4", "long", "0.2", "0"]) for _ in raw[1:]]
    files["data/raw/iris.csv"] = ("\n".join(raw) + "\n").encode()
    push_source(stack, files)
    jobs_before = len(stack("sagemaker").list_training_jobs()["TrainingJobSummaries"])
    check, failed = through_the_check(stack, "run-2", tmp_path / "two", fails=True)
    assert failed[0] == "PutJobFailureResult"
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith("data check failed: channel training against production's ")
    assert "petal_length: data_type_check" in message
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"]
        for i in stack("sagemaker").describe_processing_job(ProcessingJobName=check)[
            "ProcessingInputs"
        ]
    }
    # The first model's baseline, as its check wrote it, copied to this check's own input.
    pinned = f"{PIPELINE}/processing/{check}/input/baseline"
    assert inputs["baseline"] == f"s3://{MODELS_BUCKET}/{pinned}/"
    copied = stack("s3").get_object(Bucket=MODELS_BUCKET, Key=f"{pinned}/constraints.json")
    assert json.loads(copied["Body"].read()) == constraints
    assert len(stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == jobs_before

    # The same commit with data_check: warn: prepare is reused, the check finds the same
    # violations, and training starts all the same.
    setting = json.loads(os.environ["MLCICD_DATA_CHECK"])
    monkeypatch.setenv("MLCICD_DATA_CHECK", json.dumps({**setting, "mode": "warn"}))
    first = report("run-3")
    state = json.loads(token_of(first))
    assert state["cached"] == ["prepare"] and "job" not in state
    run_processing_job(stack, state["check"], tmp_path / "three")
    warned = json.loads(token_of(report("run-3-2", continuation=token_of(first))))
    assert warned["checked"] == "CompletedWithViolations"
    assert warned["job"].startswith(f"{PIPELINE}-")  # the training job, started


def completed_check(aws: AwsClient, job: str) -> str:
    """A data check's job ``job`` that has completed (as moto's are at once), in a stack's
    models bucket; return the key of the report it writes."""
    cluster = {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
    aws("sagemaker").create_processing_job(
        ProcessingJobName=job,
        ProcessingResources={"ClusterConfig": cluster},
        AppSpecification={"ImageUri": IMAGE},
        RoleArn=ROLE_ARN,
    )
    create_models_bucket(aws("s3"))
    return f"{PIPELINE}/processing/{job}/output/datacheck/report.json"


@pytest.mark.parametrize(
    "written",
    [
        {},  # no status: was "passed"
        {"status": "Fine"},
        {"status": "CompletedWithViolations", "violations": ["petal_length"]},
        {"status": "CompletedWithViolations", "violations": [{"feature_name": 1}]},
        {"status": "Passed", "violations": {"a": "b"}},
    ],
)
def test_a_report_that_is_not_the_checks_fails_the_check_naming_it(
    aws_env: AwsClient, written: dict[str, Any]
) -> None:
    """The report is the job's output, and whoever writes the bucket (or a broken image) writes
    it: one the check did not write neither passes nor crashes the function."""
    job = f"{PIPELINE}-datacheck-written"
    key = completed_check(aws_env, job)
    aws_env("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=json.dumps(written).encode())
    processing = ProcessingSettings(PIPELINE, MODELS_BUCKET, ROLE_ARN, None, ".", {})
    for mode in ("warn", "fail"):
        with pytest.raises(ProcessingError, match=f"the report of {job} is not a data check's"):
            advance(DataCheckSettings(mode=mode), processing, {"check": job}, channel_uri=str)


def test_the_steps_and_the_check_run_in_the_vpc_network_names(
    aws_env: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """network: reaches the stack's processing jobs (each step's, the data check's) as it
    reaches its training job: through the function's environment (moto keeps NetworkConfig)."""
    network = {"subnets": ["subnet-0123456789abcdef0"], "security_groups": ["sg-0123abcd"]}
    set_up_stack(aws_env, monkeypatch, pipeline_with(network=network), source_files())
    first = report("job-1")
    prepare = json.loads(token_of(first))["steps"]["prepare"]
    run_processing_job(aws_env, prepare, tmp_path / "prepare")
    check = json.loads(token_of(report("job-1-2", continuation=token_of(first))))["check"]
    for job in (prepare, check):
        described = aws_env("sagemaker").describe_processing_job(ProcessingJobName=job)
        assert described["NetworkConfig"]["VpcConfig"] == {
            "SecurityGroupIds": ["sg-0123abcd"],
            "Subnets": ["subnet-0123456789abcdef0"],
        }, job
        assert described["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True


def test_a_report_replaced_after_the_check_ended_stops_the_pipeline_naming_it(
    aws_env: AwsClient,
) -> None:
    """The check found violations; between the job's end and the Lambda's read, whoever can
    write the models bucket puts a passing report in its place. The report's versions show
    the second write: the check fails naming the object, not passes on the planted report."""
    job = f"{PIPELINE}-datacheck-replaced"
    key = completed_check(aws_env, job)
    violation = {
        "feature_name": "petal_length",
        "constraint_check_type": "data_type_check",
        "description": "text where numbers were",
    }
    for written in (
        {"status": "CompletedWithViolations", "violations": [violation]},  # the job's
        {"status": "Passed", "violations": []},  # theirs
    ):
        aws_env("s3").put_object(Bucket=MODELS_BUCKET, Key=key, Body=json.dumps(written).encode())
    processing = ProcessingSettings(PIPELINE, MODELS_BUCKET, ROLE_ARN, None, ".", {})
    state: dict[str, Any] = {"check": job}
    with pytest.raises(ArtifactError, match=f"s3://{MODELS_BUCKET}/{key} was written or deleted"):
        advance(DataCheckSettings(mode="fail"), processing, state, channel_uri=str)
    assert "checked" not in state


def test_the_check_runs_on_the_instance_mlcicd_yaml_names(
    aws_env: AwsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """monitor.instance_type and monitor.max_runtime reach the check's job through the stack
    (they were fixed at ml.m5.large for an hour)."""
    monitor = {"label": "species", "instance_type": "ml.c5.2xlarge", "max_runtime": 1800}
    set_up_stack(aws_env, monkeypatch, pipeline_with(monitor=monitor), source_files())
    first = report("job-1")
    prepared(aws_env)
    with SentParams(client("sagemaker"), "CreateProcessingJob") as sent:
        check = json.loads(token_of(report("job-1-2", continuation=token_of(first))))["check"]
    ((_, request),) = sent.calls  # moto keeps no ProcessingResources
    assert request["ProcessingJobName"] == check
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.2xlarge"
    described = aws_env("sagemaker").describe_processing_job(ProcessingJobName=check)
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}


@pytest.mark.parametrize(
    "resources",
    [{"instance_type": "m5.large"}, {"max_runtime": "1h"}, {"max_runtime": 0}],
)
def test_a_data_check_setting_with_resources_no_job_has_names_the_variable(
    resources: dict[str, Any],
) -> None:
    raw = {"mode": "fail", "channel": "training", **resources}
    with pytest.raises(ConfigError, match=r"MLCICD_DATA_CHECK: instance_type .* are not a"):
        DataCheckSettings.from_environ({"MLCICD_DATA_CHECK": json.dumps(raw)})


def test_a_production_baseline_written_again_stops_the_next_check_naming_it(
    aws_env: AwsClient,
) -> None:
    """The registry names production's baseline by URI, and SageMaker would read whatever is
    there: a constraints.json replaced with one that passes anything would silence the check.
    The check's job gets a copy of the version the earlier check wrote; one written twice
    fails the run, naming it."""
    s3, sagemaker = aws_env("s3"), aws_env("sagemaker")
    earlier = f"{PIPELINE}-datacheck-earlier"
    folder = completed_check(aws_env, earlier).rsplit("/", 1)[0]
    for file in ("statistics.json", "constraints.json"):
        s3.put_object(Bucket=MODELS_BUCKET, Key=f"{folder}/{file}", Body=b'{"the": "check\'s"}')
    sagemaker.create_model_package_group(ModelPackageGroupName=PIPELINE)
    sagemaker.create_model_package(
        ModelPackageGroupName=PIPELINE,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{MODELS_BUCKET}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelMetrics={
            "ModelDataQuality": {
                kind: {"ContentType": "application/json", "S3Uri": f"s3://{MODELS_BUCKET}/{key}"}
                for kind, key in (
                    ("Statistics", f"{folder}/statistics.json"),
                    ("Constraints", f"{folder}/constraints.json"),
                )
            }
        },
    )
    processing = ProcessingSettings(PIPELINE, MODELS_BUCKET, ROLE_ARN, None, ".", {})
    channel = f"s3://{MODELS_BUCKET}/{PIPELINE}/channel/"
    state: dict[str, Any] = {"run": "0123456789abcdef", "image": IMAGE}
    assert not advance(
        DataCheckSettings(mode="fail"), processing, state, channel_uri=lambda: channel
    )
    check = state["check"]
    described = sagemaker.describe_processing_job(ProcessingJobName=check)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in described["ProcessingInputs"]}
    pinned = f"{PIPELINE}/processing/{check}/input/baseline"
    assert inputs["baseline"] == f"s3://{MODELS_BUCKET}/{pinned}/"

    # Theirs, over the earlier check's: the next run's check does not start on it.
    theirs = b'{"features": []}'
    s3.put_object(Bucket=MODELS_BUCKET, Key=f"{folder}/constraints.json", Body=theirs)
    copied = s3.get_object(Bucket=MODELS_BUCKET, Key=f"{pinned}/constraints.json")
    assert copied["Body"].read() == b'{"the": "check\'s"}'  # the copy is the version read
    again: dict[str, Any] = {"run": "fedcba9876543210", "image": IMAGE}
    with pytest.raises(
        ArtifactError,
        match=f"^s3://{MODELS_BUCKET}/{folder}/constraints.json was written or deleted after "
        f"job {earlier} wrote it",
    ):
        advance(DataCheckSettings(mode="fail"), processing, again, channel_uri=lambda: channel)
    assert "check" not in again


def test_a_continuation_token_saying_the_check_passed_does_not_skip_it(
    stack: AwsClient, tmp_path: Path
) -> None:
    """Whoever can call codepipeline:PutJobSuccessResult hands back the token of the running
    check with ``checked`` added: the function would take it as passed and train on the
    data. ``checked`` is only ever handed over with the training job it let start: the
    action fails, and no training job is started."""
    first = report("job-1")
    run_processing_job(stack, json.loads(token_of(first))["steps"]["prepare"], tmp_path)
    started = json.loads(token_of(report("job-1-2", continuation=token_of(first))))
    assert "check" in started

    failed = report("job-1-3", continuation=json.dumps({**started, "checked": "OK"}), fails=True)
    message = failed[1]["failureDetails"]["message"]
    assert message.startswith(
        "the continuation token says checked, which the action decides itself"
    ), message
    assert not stack("sagemaker").list_training_jobs()["TrainingJobSummaries"]
