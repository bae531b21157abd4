"""``train.backend: sagemaker`` (mlcicd.training.sagemaker) against moto's server.

Real: the uploads to S3 (channels, sourcedir.tar.gz), CreateTrainingJob and
DescribeTrainingJob as moto implements them, the CloudWatch log reading, the download of
the model. Simulated (see tests/aws/sagemaker_sim.py): what SageMaker writes when a job
completes — moto writes nothing — and, with botocore's Stubber on those operations only, a
job that fails (moto's jobs always complete) and StopTrainingJob (not in moto).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.config import parse_config
from mlcicd.errors import ConfigError
from mlcicd.store import LocalArtifactStore, S3ArtifactStore
from mlcicd.training import Channel, MetricDefinition, TrainingJobSpec
from mlcicd.training.sagemaker import SageMakerTrainingBackend
from tests.aws.conftest import AwsClient
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import sagemaker_writes, tar_gz
from tests.aws.stubs import OperationStubber
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

STORE = "mlcicd-runs"
JOB = "iris-classifier-2026-01-01-00-00-00-1"


@pytest.fixture
def backend(aws_env: AwsClient, tmp_path: Path) -> SageMakerTrainingBackend:
    aws_env("s3").create_bucket(Bucket=STORE)
    return SageMakerTrainingBackend(
        tmp_path / "jobs",
        SageMakerJobSettings(
            store=S3ArtifactStore(f"s3://{STORE}/runs"),
            bucket="ml-cicd-pipeline-models",
            prefix="iris-classifier",
            image=IMAGE,
            role_arn=ROLE_ARN,
            instance_type="ml.c5.xlarge",
            poll_seconds=0.01,
        ),
    )


def spec(name: str = JOB) -> TrainingJobSpec:
    return TrainingJobSpec(
        name=name,
        source_dir=IRIS / "src",
        entry_point="train.py",
        python=Path(sys.executable),
        hyperparameters={"C": 1.0, "max_iter": 200},
        channels=[Channel("training", IRIS / "data")],
        metric_definitions=[MetricDefinition("accuracy", r"accuracy=([0-9.]+)")],
        max_runtime_seconds=600,
        environment={"OMP_NUM_THREADS": "1"},
    )


def test_a_job_runs_on_sagemaker_and_its_model_comes_back(
    backend: SageMakerTrainingBackend, aws_env: AwsClient
) -> None:
    model = tar_gz({"model.joblib": b"fitted"})
    lines: list[str] = []
    with sagemaker_writes(
        aws_env,
        model=model,
        output={"metrics.json": json.dumps({"accuracy": 0.9667, "f1": 0.96}).encode()},
        log=["loading 150 rows", "accuracy=0.9667", "f1=0.9665"],
    ) as served:
        result = backend.run(spec(), on_log=lines.append)
    assert served == [JOB]
    assert (result.status, result.secondary_status, result.failure_reason) == (
        "Completed",
        "Completed",
        None,
    )
    assert result.metrics == {"accuracy": 0.9667, "f1": 0.96, "train:progress": 100.0}
    assert [(n, v) for n, v, _ in result.metric_series] == [("accuracy", 0.9667)]
    assert result.model_artifact is not None and result.model_artifact.read_bytes() == model
    assert result.model_sha256 == hashlib.sha256(model).hexdigest()
    assert f"[{JOB}] Starting: Preparing the instances for training" in lines
    assert "accuracy=0.9667" in lines  # the job's CloudWatch log, passed on
    assert result.log_path.read_text().splitlines() == lines

    job = aws_env("sagemaker").describe_training_job(TrainingJobName=JOB)
    base = f"s3://{STORE}/runs/ml-cicd-pipeline-models/iris-classifier/{JOB}"
    assert job["HyperParameters"] == {
        "C": "1.0",
        "max_iter": "200",
        "sagemaker_program": '"train.py"',
        # Network-isolated (the default): SageMaker brings the code in as the "code" channel.
        "sagemaker_submit_directory": json.dumps("/opt/ml/input/data/code/sourcedir.tar.gz"),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(JOB),
        "sagemaker_region": '"us-east-1"',
    }
    assert job["EnableNetworkIsolation"] is True
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
    } == {"code": f"{base}/source/", "training": f"{base}/input/data/training/"}
    assert (
        job["OutputDataConfig"]["S3OutputPath"]
        == f"s3://{STORE}/runs/ml-cicd-pipeline-models/iris-classifier"
    )
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    keys = {o["Key"] for o in aws_env("s3").list_objects_v2(Bucket=STORE)["Contents"]}
    prefix = f"runs/ml-cicd-pipeline-models/iris-classifier/{JOB}"
    assert {f"{prefix}/input/data/training/iris.csv", f"{prefix}/source/sourcedir.tar.gz"} <= keys


def test_the_job_is_encrypted_with_the_key_and_may_be_let_onto_the_network(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    aws_env("s3").create_bucket(Bucket=STORE)
    key = "arn:aws:kms:us-east-1:123456789012:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    config = parse_config(
        f"pipeline: iris-classifier\ntrain:\n  backend: sagemaker\n  image: {IMAGE}\n"
        f"  role: {ROLE_ARN}\n  kms_key: {key}\n  network_isolation: false\n"
    )
    backend = SageMakerTrainingBackend.from_config(
        config, S3ArtifactStore(f"s3://{STORE}"), tmp_path / "jobs"
    )
    backend.settings = dataclasses.replace(backend.settings, poll_seconds=0.01)
    with sagemaker_writes(aws_env, model=tar_gz({"model.joblib": b"fitted"})):
        assert backend.run(spec()).status == "Completed"
    job = aws_env("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["OutputDataConfig"]["KmsKeyId"] == key
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == key
    # On the network, the container fetches its code from S3 itself, as before.
    assert job["EnableNetworkIsolation"] is False
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["training"]
    assert json.loads(job["HyperParameters"]["sagemaker_submit_directory"]).startswith(
        f"s3://{STORE}/"
    )


def test_a_channel_named_code_is_refused_when_the_job_is_isolated(
    backend: SageMakerTrainingBackend,
) -> None:
    taken = dataclasses.replace(spec(), channels=[Channel("code", IRIS / "data")])
    with pytest.raises(ConfigError, match=r"train.channels.code: the channel name 'code' is taken"):
        backend.run(taken)
    assert aws_jobs() == []


def aws_jobs() -> list[str]:
    return [
        j["TrainingJobName"]
        for j in client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    ]


def test_a_failed_job_is_a_result_with_sagemakers_reason(backend: SageMakerTrainingBackend) -> None:
    failed = _answer(
        JOB, "Failed", FailureReason="AlgorithmError: ExecuteUserScriptError: exit code 1"
    )
    with OperationStubber(client("sagemaker"), "DescribeTrainingJob") as sagemaker:
        sagemaker.add_response("describe_training_job", failed)
        result = backend.run(spec())
    assert (result.status, result.failure_reason) == (
        "Failed",
        "AlgorithmError: ExecuteUserScriptError: exit code 1",
    )
    assert result.model_artifact is None and result.model_sha256 is None


def test_ctrl_c_stops_the_job_and_propagates(backend: SageMakerTrainingBackend) -> None:
    def interrupt(line: str) -> None:
        if "Starting" in line:
            raise KeyboardInterrupt

    with OperationStubber(client("sagemaker"), "StopTrainingJob") as sagemaker:
        sagemaker.add_response("stop_training_job", {}, {"TrainingJobName": JOB})
        with pytest.raises(KeyboardInterrupt):
            backend.run(spec(), on_log=interrupt)


def test_the_config_names_what_is_missing(tmp_path: Path) -> None:
    config = parse_config("pipeline: iris\ntrain:\n  backend: sagemaker\n")
    s3 = S3ArtifactStore("s3://bucket")
    with pytest.raises(ConfigError, match=r"train.image: required with backend: sagemaker"):
        SageMakerTrainingBackend.from_config(config, s3, tmp_path)
    with_image = parse_config("pipeline: iris\ntrain:\n  backend: sagemaker\n  image: x\n")
    with pytest.raises(ConfigError, match=r"train.role: required"):
        SageMakerTrainingBackend.from_config(with_image, s3, tmp_path)
    complete = parse_config("pipeline: iris\ntrain:\n  backend: sagemaker\n  image: x\n  role: r\n")
    with pytest.raises(
        ConfigError, match=r"store.uri: training on SageMaker needs the artifact store on S3"
    ):
        SageMakerTrainingBackend.from_config(complete, LocalArtifactStore(tmp_path), tmp_path)


def _answer(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://x/y/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.c5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "CreationTime": 0,
        **extra,
    }
