"""A processing step's ``backend: sagemaker`` (mlcicd.processing.sagemaker) against moto's
server.

Real: the uploads of the code and inputs to S3, CreateProcessingJob and DescribeProcessingJob
as moto implements them, the CloudWatch log reading, the download of the outputs. Simulated:
what SageMaker uploads when a job completes — moto writes nothing — hooked on mlcicd's own
client's DescribeProcessingJob answer, and (botocore's Stubber on that operation only) a job
that fails: moto's jobs always complete.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.aws.processing_jobs import PROCESSING_JOBS_LOG_GROUP
from mlcicd.config import parse_config
from mlcicd.errors import ConfigError
from mlcicd.processing import ProcessingInput, ProcessingJobSpec
from mlcicd.processing.sagemaker import SageMakerProcessingBackend
from mlcicd.store import LocalArtifactStore, S3ArtifactStore
from mlcicd.store.s3 import parse_s3_uri
from tests.aws.conftest import AwsClient
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import write_log
from tests.aws.stubs import OperationStubber
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

STORE = "mlcicd-runs"
JOB = "iris-prepare-20260101000000-1"


@pytest.fixture
def backend(aws_env: AwsClient, tmp_path: Path) -> SageMakerProcessingBackend:
    aws_env("s3").create_bucket(Bucket=STORE)
    return SageMakerProcessingBackend(
        tmp_path / "jobs",
        SageMakerJobSettings(
            store=S3ArtifactStore(f"s3://{STORE}/runs"),
            bucket="ml-cicd-pipeline-artifacts",
            prefix="iris/processing",
            image=IMAGE,
            role_arn=ROLE_ARN,
            poll_seconds=0.01,
        ),
    )


def spec() -> ProcessingJobSpec:
    return ProcessingJobSpec(
        name=JOB,
        source_dir=IRIS / "src",
        entry_point="train.py",
        python=Path(sys.executable),
        inputs=(ProcessingInput("raw", IRIS / "data"),),
        outputs=("train",),
        arguments=("--test-size", "0.2"),
        environment={"STEP": "prepare"},
    )


@contextmanager
def sagemaker_uploads(
    aws: AwsClient, files: Mapping[str, bytes], log: list[str]
) -> Iterator[list[dict[str, Any]]]:
    """While active, a completed job's outputs get ``files`` (``{"train/x.csv": …}``, keyed by
    output name and path) and its log ``log``; yields the descriptions it served."""
    served: list[dict[str, Any]] = []

    def completed(parsed: dict[str, Any], **kwargs: Any) -> None:
        if parsed.get("ProcessingJobStatus") != "Completed" or served:
            return
        outputs = {
            o["OutputName"]: o["S3Output"]["S3Uri"]
            for o in parsed["ProcessingOutputConfig"]["Outputs"]
        }
        for path, data in files.items():
            output, _, rel = path.partition("/")
            bucket, key = parse_s3_uri(outputs[output])
            aws("s3").put_object(Bucket=bucket, Key=f"{key}/{rel}", Body=data)
        write_log(aws, parsed["ProcessingJobName"], log, PROCESSING_JOBS_LOG_GROUP)
        served.append(parsed)

    events = client("sagemaker").meta.events
    events.register("after-call.sagemaker.DescribeProcessingJob", completed, unique_id="sim")
    try:
        yield served
    finally:
        events.unregister("after-call.sagemaker.DescribeProcessingJob", completed, unique_id="sim")


def test_a_job_runs_on_sagemaker_and_its_outputs_come_back(
    backend: SageMakerProcessingBackend, aws_env: AwsClient
) -> None:
    lines: list[str] = []
    with sagemaker_uploads(aws_env, {"train/train.csv": b"a,b\n1,2\n"}, ["rows: 120"]) as served:
        result = backend.run(spec(), on_log=lines.append)
    assert result.status == "Completed", result.failure_reason
    (described,) = served
    assert described["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/train.py",
    ]
    assert described["AppSpecification"]["ContainerArguments"] == ["--test-size", "0.2"]
    local_paths = {i["InputName"]: i["S3Input"]["LocalPath"] for i in described["ProcessingInputs"]}
    assert local_paths == {
        "code": "/opt/ml/processing/input/code",
        "raw": "/opt/ml/processing/input/raw",
    }
    keys = [
        o["Key"]
        for o in aws_env("s3").list_objects_v2(Bucket=STORE)["Contents"]
        if "/input/" in o["Key"]
    ]
    assert any(k.endswith(f"{JOB}/input/raw/iris.csv") for k in keys)
    assert any(k.endswith(f"{JOB}/input/code/train.py") for k in keys)
    output = result.outputs["train"]
    assert (output.directory / "train.csv").read_bytes() == b"a,b\n1,2\n"
    assert output.archive.is_file() and len(output.sha256) == 64
    assert "rows: 120" in lines


def test_an_output_key_that_climbs_out_fails_the_job(
    backend: SageMakerProcessingBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    with sagemaker_uploads(aws_env, {"train/../../escaped.txt": b"x"}, []):
        result = backend.run(spec())
    assert result.status == "Failed" and result.outputs == {}
    assert result.failure_reason is not None and "not a file inside" in result.failure_reason
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


def test_a_failed_job_is_a_result_with_its_exit_message(
    backend: SageMakerProcessingBackend,
) -> None:
    failed = {
        "ProcessingJobName": JOB,
        "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{JOB}",
        "ProcessingJobStatus": "Failed",
        "ExitMessage": "the raw data has no species column",
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {"ImageUri": IMAGE},
        "RoleArn": ROLE_ARN,
        "CreationTime": 0,
    }
    with OperationStubber(client("sagemaker"), "DescribeProcessingJob") as sagemaker:
        sagemaker.add_response("describe_processing_job", failed)
        result = backend.run(spec())
    assert (result.status, result.failure_reason, result.exit_message) == (
        "Failed",
        "the raw data has no species column",
        "the raw data has no species column",
    )


def test_the_config_names_what_is_missing(tmp_path: Path) -> None:
    def step(config_text: str) -> tuple[Any, Any]:
        config = parse_config(config_text)
        return config, config.processing[0]

    base = (
        "pipeline: iris\nprocessing:\n  - {name: prepare, entry_point: p.py, backend: sagemaker}\n"
    )
    config, prepare = step(base)
    s3 = S3ArtifactStore("s3://bucket")
    with pytest.raises(ConfigError, match=r"store.uri: .* needs the artifact store on S3"):
        SageMakerProcessingBackend.from_config(
            config, prepare, LocalArtifactStore(tmp_path), tmp_path
        )
    with pytest.raises(ConfigError, match=r"processing.prepare.image: required"):
        SageMakerProcessingBackend.from_config(config, prepare, s3, tmp_path)
    config, prepare = step(base + "train:\n  image: x\n")
    with pytest.raises(ConfigError, match=r"train.role"):
        SageMakerProcessingBackend.from_config(config, prepare, s3, tmp_path)
    config, prepare = step(base + "train:\n  image: x\n  role: arn:aws:iam::1:role/r\n")
    backend = SageMakerProcessingBackend.from_config(config, prepare, s3, tmp_path)
    assert (backend.settings.image, backend.settings.bucket, backend.settings.prefix) == (
        "x",
        "ml-cicd-pipeline-artifacts",
        "iris/processing",
    )


NETWORK = (
    "network:\n  subnets: [subnet-0123456789abcdef0]\n  security_groups: [sg-0123abcd]\n"
    "  encrypt_inter_container: true\n"
)
VPC = {"SecurityGroupIds": ["sg-0123abcd"], "Subnets": ["subnet-0123456789abcdef0"]}


def test_a_job_runs_in_the_vpc_network_names(aws_env: AwsClient, tmp_path: Path) -> None:
    """network: reaches the processing job as it reaches a training job (moto keeps the
    NetworkConfig it was sent)."""
    aws_env("s3").create_bucket(Bucket=STORE)
    config = parse_config(
        "pipeline: iris\nprocessing:\n  - {name: prepare, entry_point: p.py, backend: sagemaker}\n"
        f"train:\n  image: {IMAGE}\n  role: {ROLE_ARN}\n" + NETWORK
    )
    backend = SageMakerProcessingBackend.from_config(
        config, config.processing[0], S3ArtifactStore(f"s3://{STORE}/runs"), tmp_path / "jobs"
    )
    backend.settings = dataclasses.replace(backend.settings, poll_seconds=0.01)
    with sagemaker_uploads(aws_env, {"train/train.csv": b"a\n"}, []) as served:
        assert backend.run(spec()).status == "Completed"
    (described,) = served
    assert described["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": VPC,
    }
