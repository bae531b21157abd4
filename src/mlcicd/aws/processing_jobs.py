"""SageMaker processing jobs as plain data: one CreateProcessingJob request, as the SageMaker
Python SDK's ScriptProcessor makes it, and one reading of how a job ended.

The script is ``python3 /opt/ml/processing/input/code/<entry_point> <arguments>``: its
``source_dir`` goes in as the input ``code`` (an S3 prefix, downloaded to
``/opt/ml/processing/input/code``), each input to ``/opt/ml/processing/input/<name>``, and
each output is uploaded from ``/opt/ml/processing/output/<name>`` when the job ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlcicd.aws.clients import AwsClient, is_not_found
from mlcicd.errors import AwsError, ProcessingError

PROCESSING_ROOT = "/opt/ml/processing"
PROCESSING_JOBS_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
CODE_INPUT = "code"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
VOLUME_SIZE_GB = 30


def create_processing_job_request(
    *,
    name: str,
    image: str,
    role_arn: str,
    code_uri: str,
    entry_point: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    arguments: Sequence[str],
    environment: Mapping[str, str],
    instance_type: str,
    instance_count: int,
    max_runtime: int,
    network_isolation: bool = True,
    kms_key_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    vpc_config: Mapping[str, Sequence[str]] | None = None,
    inter_container_encryption: bool = False,
) -> dict[str, Any]:
    """CreateProcessingJob's parameters. ``inputs`` and ``outputs`` map a name to an ``s3://``
    prefix; ``code_uri`` is the prefix holding the step's source_dir. ``vpc_config`` runs the
    job in the user's VPC (``network:``, as a training job), the traffic between its
    instances encrypted when ``inter_container_encryption``."""

    def s3_input(input_name: str, uri: str) -> dict[str, Any]:
        return {
            "InputName": input_name,
            "AppManaged": False,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": f"{PROCESSING_ROOT}/input/{input_name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None",
            },
        }

    output_config: dict[str, Any] = {
        "Outputs": [
            {
                "OutputName": output,
                "AppManaged": False,
                "S3Output": {
                    "S3Uri": uri,
                    "LocalPath": f"{PROCESSING_ROOT}/output/{output}",
                    "S3UploadMode": "EndOfJob",
                },
            }
            for output, uri in outputs.items()
        ]
    }
    cluster: dict[str, Any] = {
        "InstanceCount": instance_count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": VOLUME_SIZE_GB,
    }
    if kms_key_id:
        output_config["KmsKeyId"] = kms_key_id
        cluster["VolumeKmsKeyId"] = kms_key_id
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": [
                "python3",
                f"{PROCESSING_ROOT}/input/{CODE_INPUT}/{entry_point}",
            ],
            **({"ContainerArguments": list(arguments)} if arguments else {}),
        },
        "ProcessingInputs": [
            s3_input(CODE_INPUT, code_uri),
            *(s3_input(n, uri) for n, uri in inputs.items()),
        ],
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "NetworkConfig": {"EnableNetworkIsolation": network_isolation},
    }
    if vpc_config:
        request["NetworkConfig"]["VpcConfig"] = {k: list(v) for k, v in vpc_config.items()}
        request["NetworkConfig"]["EnableInterContainerTrafficEncryption"] = (
            inter_container_encryption
        )
    if environment:
        request["Environment"] = dict(environment)
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return request


def failure_reason(description: Mapping[str, Any]) -> str:
    """Why a job did not complete: SageMaker's FailureReason, else its ExitMessage."""
    status = description.get("ProcessingJobStatus", "?")
    for key in ("FailureReason", "ExitMessage"):
        reason = str(description.get(key) or "").strip()
        if reason:
            return reason
    return f"the processing job ended {status} without a reason from SageMaker"


def start_processing_job(
    sagemaker: AwsClient, request: Mapping[str, Any], *, where: str = ""
) -> None:
    """CreateProcessingJob; AWS's refusal as a ProcessingError (``where``: what the job is
    for, ``step prepare: `` — the start of the message)."""
    try:
        sagemaker.create_processing_job(**request)
    except AwsError as exc:
        raise ProcessingError(
            f"{where}SageMaker did not start processing job {request['ProcessingJobName']}: "
            f"{exc.message}",
            hint=exc.hint,
        ) from exc


def describe_processing_job(sagemaker: AwsClient, name: str) -> dict[str, Any] | None:
    """DescribeProcessingJob, or None if there is no job of that name."""
    try:
        described: dict[str, Any] = sagemaker.describe_processing_job(ProcessingJobName=name)
    except AwsError as exc:
        if is_not_found(exc):
            return None
        raise
    return described


def output_uris(description: Mapping[str, Any]) -> dict[str, str]:
    """Where SageMaker uploaded each output: ``{name: s3 prefix}``."""
    outputs = (description.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return {str(o["OutputName"]): str(o["S3Output"]["S3Uri"]) for o in outputs}


__all__ = [
    "CODE_INPUT",
    "PROCESSING_JOBS_LOG_GROUP",
    "TERMINAL_STATUSES",
    "create_processing_job_request",
    "describe_processing_job",
    "failure_reason",
    "output_uris",
    "start_processing_job",
]
