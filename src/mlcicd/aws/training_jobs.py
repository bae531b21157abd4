"""SageMaker training jobs, as both the training Lambda and ``train.backend: sagemaker``
start and read them: one CreateTrainingJob request, one reading of how a job ended.

The final metrics of a job are SageMaker's ``FinalMetricDataList`` (the MetricDefinitions
applied to its log), overridden for the names it holds by ``metrics.json`` in the job's
``output.tar.gz`` (``/opt/ml/output/data``) when the script wrote one — the same rule the
local runner applies to ``output/data/metrics.json``, so a script reports the same metrics
wherever it runs.
"""

from __future__ import annotations

import json
import math
import re
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

from mlcicd.aws.clients import AwsClient, is_already_there, is_not_found
from mlcicd.aws.joboutputs import JobRun, job_run, written_once
from mlcicd.errors import AwsError, ConfigError
from mlcicd.shapes import encode_hyperparameters
from mlcicd.store.s3 import parse_s3_uri

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
METRICS_FILE = "metrics.json"
VOLUME_SIZE_GB = 30
CHECKPOINT_DIR = "/opt/ml/checkpoints"  # SageMaker syncs it with CheckpointConfig's S3Uri
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
PROGRAM = "sagemaker_program"
# With network isolation the container cannot fetch its code from S3: SageMaker puts it in
# the "code" channel, where the SageMaker SDK's framework estimators name it too.
CODE_CHANNEL = "code"
CODE_CHANNEL_SOURCEDIR = "/opt/ml/input/data/code/sourcedir.tar.gz"
# Instance families whose only storage is local NVMe, encrypted by the instance's hardware:
# SageMaker refuses a VolumeKmsKeyId for them. (Families with a "d" after the generation —
# m5d, c5d, g4dn, p3dn, p4d — and these.)
_LOCAL_STORAGE_FAMILIES = frozenset(
    {"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"}
)
_LOCAL_STORAGE_FAMILY_RE = re.compile(r"^[a-z]+\d+[a-z]*d[a-z]*$")


def has_local_storage(instance_type: str) -> bool:
    """Whether ``instance_type`` (``ml.g4dn.xlarge``) trains on local NVMe storage only."""
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    return family in _LOCAL_STORAGE_FAMILIES or bool(_LOCAL_STORAGE_FAMILY_RE.match(family))


def create_training_job_request(
    *,
    name: str,
    image: str,
    role_arn: str,
    channels: Mapping[str, str],
    output_path: str,
    instance_type: str,
    instance_count: int,
    max_runtime: int,
    use_spot: bool = False,
    max_wait: int | None = None,
    checkpoint_uri: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    metric_definitions: Sequence[Mapping[str, str]] = (),
    tags: Mapping[str, str] | None = None,
    kms_key_id: str | None = None,
    network_isolation: bool = False,
    vpc_config: Mapping[str, Sequence[str]] | None = None,
    inter_container_encryption: bool = False,
    checkpoints: bool = False,
) -> dict[str, Any]:
    """CreateTrainingJob's parameters, as plain data.

    ``channels`` maps a channel name to an ``s3://`` prefix; ``hyperparameters`` are
    JSON-encoded into strings as the SageMaker SDK does (the toolkit decodes them).
    Managed spot training needs ``MaxWaitTimeInSeconds`` (``max_wait``, default
    ``max_runtime``) and gets checkpointing to ``checkpoint_uri``, so an interrupted job
    resumes where it was instead of starting over; ``checkpoints`` asks for it without spot
    (``train.checkpoints``: the script finds what it saved in /opt/ml/checkpoints).

    ``vpc_config`` runs the job in the user's VPC (``network:``), with the traffic between
    its instances encrypted when ``inter_container_encryption``.

    ``kms_key_id`` encrypts the model and output SageMaker writes to S3 (``KmsKeyId``) and
    the instances' storage volume (``VolumeKmsKeyId``, except on instance types with only
    local NVMe storage, which their hardware encrypts). ``network_isolation`` runs the
    container with no network at all: SageMaker still downloads the channels and uploads
    the model, the script reaches nothing (``EnableNetworkIsolation``).
    """
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime}
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": d["Name"], "Regex": d["Regex"]} for d in metric_definitions
            ],
        },
        "RoleArn": role_arn,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in sorted(channels.items())
        ],
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": VOLUME_SIZE_GB,
        },
        "StoppingCondition": stopping,
        "HyperParameters": encode_hyperparameters(hyperparameters or {}),
        "EnableManagedSpotTraining": use_spot,
        "EnableNetworkIsolation": network_isolation,
    }
    if kms_key_id:
        request["OutputDataConfig"]["KmsKeyId"] = kms_key_id
        if not has_local_storage(instance_type):
            request["ResourceConfig"]["VolumeKmsKeyId"] = kms_key_id
    if use_spot:
        wait = max_runtime if max_wait is None else max_wait
        if wait < max_runtime:
            raise ConfigError(
                f"max_wait ({wait}s) must be at least max_runtime ({max_runtime}s) for spot "
                "training",
                key="train.max_wait",
                hint="it is the runtime plus the time to wait for spot capacity",
            )
        stopping["MaxWaitTimeInSeconds"] = wait
    if checkpoint_uri and (use_spot or checkpoints):
        request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_DIR}
    if vpc_config:
        request["VpcConfig"] = {k: list(v) for k, v in vpc_config.items()}
        request["EnableInterContainerTrafficEncryption"] = inter_container_encryption
    if environment:
        request["Environment"] = dict(environment)
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return request


def describe_training_job(sagemaker: AwsClient, name: str) -> dict[str, Any] | None:
    """DescribeTrainingJob, or None if there is no job of that name."""
    try:
        described: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=name)
    except AwsError as exc:
        if is_not_found(exc):
            return None
        raise
    return described


def start_training_job(sagemaker: AwsClient, request: Mapping[str, Any]) -> bool:
    """Create the job unless one of its name exists (a retried start creates nothing twice);
    return whether it was created now."""
    name = request["TrainingJobName"]
    if describe_training_job(sagemaker, name) is not None:
        return False
    try:
        sagemaker.create_training_job(**request)
    except AwsError as exc:
        # Another invocation created it between our look and our create.
        if is_already_there(exc):
            return False
        raise
    return True


def failure_reason(description: Mapping[str, Any]) -> str:
    status = description.get("TrainingJobStatus", "?")
    secondary = description.get("SecondaryStatus", "?")
    reason = str(description.get("FailureReason") or "").strip()
    return (
        reason or f"the training job ended {status} ({secondary}) without a reason from SageMaker"
    )


def metric_list(description: Mapping[str, Any]) -> dict[str, float]:
    """``FinalMetricDataList`` as ``{name: value}``."""
    return {
        str(m["MetricName"]): float(m["Value"])
        for m in description.get("FinalMetricDataList", [])
        if "MetricName" in m and "Value" in m and math.isfinite(float(m["Value"]))
    }


def output_uri(description: Mapping[str, Any]) -> str:
    """Where SageMaker put ``/opt/ml/output/data``:
    ``<S3OutputPath>/<job>/output/output.tar.gz``."""
    base = str(description["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    return f"{base}/{description['TrainingJobName']}/output/output.tar.gz"


def model_uri(description: Mapping[str, Any]) -> str:
    artifacts = description.get("ModelArtifacts") or {}
    if artifacts.get("S3ModelArtifacts"):
        return str(artifacts["S3ModelArtifacts"])
    base = str(description["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    return f"{base}/{description['TrainingJobName']}/output/model.tar.gz"


def output_metrics(
    s3: AwsClient, uri: str, *, job: JobRun | None = None
) -> dict[str, float] | None:
    """``metrics.json`` from the job's ``output.tar.gz``, streamed (nothing else is read);
    None when there is no output.tar.gz or no metrics.json in it. With ``job``, only the
    version that job wrote is read (:func:`mlcicd.aws.joboutputs.written_once`).

    Raises ValueError saying what is wrong with a malformed metrics.json.
    """
    bucket, key = parse_s3_uri(uri)
    pinned: dict[str, str] = {}
    if job is not None:
        written = written_once(s3, bucket, key, job=job)
        if written is None:
            return None
        pinned = {"VersionId": written.version_id}
    try:
        body = s3.get_object(Bucket=bucket, Key=key, **pinned)["Body"]
    except AwsError as exc:
        if exc.code in ("NoSuchKey", "404"):
            return None
        raise
    try:
        with tarfile.open(fileobj=body, mode="r|gz") as tar:
            for member in tar:
                if member.isfile() and member.name.removeprefix("./") == METRICS_FILE:
                    extracted = tar.extractfile(member)
                    if extracted is None:  # pragma: no cover - a regular file always extracts
                        return None
                    return parse_metrics_file(extracted.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{uri} is not a readable tar.gz: {exc}") from exc
    finally:
        body.close()
    return None


def parse_metrics_file(data: bytes) -> dict[str, float]:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" nested too deep
        raise ValueError(f"{METRICS_FILE} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"{METRICS_FILE} must hold an object of name: number")
    metrics: dict[str, float] = {}
    for name, value in parsed.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{METRICS_FILE}: {name!r} is {value!r}, not a finite number")
        metrics[str(name)] = float(value)
    return metrics


def final_metrics(
    s3: AwsClient, description: Mapping[str, Any], *, pinned: bool = False
) -> dict[str, float]:
    """SageMaker's final metrics, with ``metrics.json`` from output.tar.gz taking precedence
    (``pinned``: the output.tar.gz the job wrote, refusing one written again since)."""
    metrics = metric_list(description)
    job = job_run(description) if pinned else None
    from_file = output_metrics(s3, output_uri(description), job=job)
    if from_file:
        metrics.update(from_file)
    return metrics


def status_transitions(description: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(status, message)`` for each of SageMaker's secondary status transitions so far."""
    return [
        (str(t.get("Status", "")), str(t.get("StatusMessage", "")))
        for t in description.get("SecondaryStatusTransitions", [])
    ]
