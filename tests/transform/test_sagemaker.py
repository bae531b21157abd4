"""`--backend sagemaker` against moto's server: the registered model becomes a SageMaker Model
(as an endpoint's variant does), CreateTransformJob carries the job's fields under SageMaker's
names, and the job is followed to its end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.aws.transform_jobs import create_transform_job_request
from mlcicd.config import parse_config
from mlcicd.errors import ConfigError, TransformError
from mlcicd.store import S3ArtifactStore
from mlcicd.transform import TransformJobSpec, TransformModel, TransformSettings
from mlcicd.transform.sagemaker import SageMakerTransformBackend
from tests.aws.events import IMAGE, ROLE_ARN

SETTINGS = TransformSettings(
    max_payload_mb=2.5, max_concurrent=4, input_filter="$[1:]", join_source="Input"
)


def test_the_request_names_every_field_as_sagemaker_does() -> None:
    request = create_transform_job_request(
        name="nightly",
        model_name="m",
        settings=SETTINGS.to_dict(),
        input_uri="s3://batch/in",
        output_uri="s3://batch/out",
        instance_type="ml.m5.large",
    )
    assert request["MaxPayloadInMB"] == 3 and request["MaxConcurrentTransforms"] == 4
    assert request["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://batch/in"}},
        "ContentType": "text/csv",
        "CompressionType": "None",
        "SplitType": "Line",
    }
    assert request["TransformOutput"] == {
        "S3OutputPath": "s3://batch/out",
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    plain = create_transform_job_request(
        name="n",
        model_name="m",
        settings=TransformSettings().to_dict(),
        input_uri="s3://b/i",
        output_uri="s3://b/o",
        instance_type="ml.m5.large",
    )
    assert "DataProcessing" not in plain


def batch_input(aws_env: Any) -> Any:
    """The store's bucket and s3://batch/in/a.csv (one row); SageMaker's client."""
    s3 = aws_env("s3")
    for bucket in ("store", "batch"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="batch", Key="in/a.csv", Body=b"5.1,3.5,1.4,0.2\n")
    return aws_env("sagemaker")


@pytest.mark.integration
def test_a_transform_job_on_sagemaker_from_the_registered_model(
    tmp_path: Path, model: TransformModel, aws_env: Any
) -> None:
    sagemaker = batch_input(aws_env)
    backend = SageMakerTransformBackend(
        SageMakerJobSettings(
            store=S3ArtifactStore("s3://store"),
            bucket="models",
            prefix="iris-classifier",
            image=IMAGE,
            role_arn=ROLE_ARN,
            instance_type="ml.m5.large",
        ),
        jobs_root=tmp_path,
    )
    spec = TransformJobSpec("nightly", model, "s3://batch/in", "s3://batch/out", SETTINGS)

    result = backend.run(spec)

    assert (result.status, result.objects, result.outputs) == (
        "Completed",
        1,
        ["s3://batch/out/a.csv.out"],
    )
    job = sagemaker.describe_transform_job(TransformJobName="nightly")
    assert job["TransformJobStatus"] == "Completed"
    assert job["TransformInput"]["SplitType"] == "Line" and job["MaxPayloadInMB"] == 3
    container = sagemaker.describe_model(ModelName=job["ModelName"])["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["ModelDataUrl"].endswith(f"/{model.model_sha256}/model.tar.gz")

    with pytest.raises(TransformError, match="--input data/ is not on S3"):
        backend.run(TransformJobSpec("local-input", model, "data/", "s3://batch/o"))


@pytest.mark.integration
def test_the_model_of_a_transform_job_is_in_the_vpc_network_names(
    tmp_path: Path, model: TransformModel, aws_env: Any
) -> None:
    """network: puts the job's Model in the user's VPC, as it does an endpoint's."""
    sagemaker = batch_input(aws_env)
    config = parse_config(
        f"pipeline: iris-classifier\ntrain:\n  image: {IMAGE}\n  role: {ROLE_ARN}\n"
        "network:\n  subnets: [subnet-0123456789abcdef0]\n  security_groups: [sg-0123abcd]\n"
    )
    backend = SageMakerTransformBackend.from_config(config, S3ArtifactStore("s3://store"), tmp_path)

    backend.run(TransformJobSpec("in-vpc", model, "s3://batch/in", "s3://batch/out", SETTINGS))

    job = sagemaker.describe_transform_job(TransformJobName="in-vpc")
    assert sagemaker.describe_model(ModelName=job["ModelName"])["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123abcd"],
        "Subnets": ["subnet-0123456789abcdef0"],
    }


def test_an_isolated_network_refuses_a_sagemaker_transform(tmp_path: Path) -> None:
    """Its Model would fetch the code from S3: refused, as deploy.backend: sagemaker is, rather
    than run less isolated than the config says."""
    config = parse_config(
        f"pipeline: iris-classifier\ntrain:\n  image: {IMAGE}\n  role: {ROLE_ARN}\n"
        "network:\n  subnets: [subnet-0123456789abcdef0]\n  security_groups: [sg-0123abcd]\n"
        "  isolation: true\n"
    )
    with pytest.raises(ConfigError, match="isolated container cannot fetch") as raised:
        SageMakerTransformBackend.from_config(config, S3ArtifactStore("s3://store"), tmp_path)
    assert raised.value.key == "network.isolation"
