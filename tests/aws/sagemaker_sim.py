"""What SageMaker does when a training job completes — for moto's server, which does not.

moto reports a training job Completed the first time it is described, and writes nothing.
:func:`sagemaker_writes` hooks botocore's ``after-call`` event of DescribeTrainingJob on
mlcicd's own sagemaker client: the first time an answer says Completed for a job, the hook
writes what SageMaker would have written by then — ``model.tar.gz`` and ``output.tar.gz``
under the job's S3OutputPath, the job's log lines in ``/aws/sagemaker/TrainingJobs`` —
before mlcicd sees the answer. Nothing of mlcicd's is replaced; the files are the test's.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mlcicd.aws.clients import client
from mlcicd.store.s3 import parse_s3_uri
from mlcicd.training import (
    Channel,
    LocalTrainingBackend,
    MetricDefinition,
    TrainingJobSpec,
    TrainingPaths,
)
from tests.aws.conftest import AwsClient

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def tar_gz(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_log(aws: AwsClient, job: str, lines: Sequence[str], log_group: str = LOG_GROUP) -> None:
    logs = aws("logs")
    with suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=log_group)
    stream = f"{job}/algo-1-{int(time.time())}"
    logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
    now = int(time.time() * 1000)
    if lines:
        logs.put_log_events(
            logGroupName=log_group,
            logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
        )


@contextmanager
def sagemaker_writes(
    aws: AwsClient,
    *,
    model: bytes,
    output: Mapping[str, bytes] | None = None,
    log: Sequence[str] = (),
) -> Iterator[list[str]]:
    """While active, completed jobs get ``model`` (model.tar.gz bytes), ``output`` (the files of
    /opt/ml/output/data, packed as output.tar.gz) and ``log``; yields the jobs served."""
    served: list[str] = []

    def completed(parsed: dict[str, Any], **kwargs: Any) -> None:
        name = parsed.get("TrainingJobName")
        if parsed.get("TrainingJobStatus") != "Completed" or name in served:
            return
        bucket, key = parse_s3_uri(parsed["ModelArtifacts"]["S3ModelArtifacts"])
        aws("s3").put_object(Bucket=bucket, Key=key, Body=model)
        if output is not None:
            aws("s3").put_object(
                Bucket=bucket, Key=key.rsplit("/", 1)[0] + "/output.tar.gz", Body=tar_gz(output)
            )
        write_log(aws, str(name), log)
        served.append(str(name))

    events = client("sagemaker").meta.events
    events.register(
        "after-call.sagemaker.DescribeTrainingJob", completed, unique_id="sagemaker-sim"
    )
    try:
        yield served
    finally:
        events.unregister(
            "after-call.sagemaker.DescribeTrainingJob", completed, unique_id="sagemaker-sim"
        )


def run_processing_job(aws: AwsClient, name: str, base: Path) -> subprocess.CompletedProcess[str]:
    """Run processing job ``name`` as SageMaker would, for real, on this machine: each S3 input
    downloaded to ``<base>/processing/input/<name>/``, each output's directory made, the
    container's entrypoint run with ``SAGEMAKER_BASE_DIR=<base>`` (this Python for
    ``python3``), and each output directory uploaded to its S3Uri. moto only records the job;
    the script is the job's own."""
    s3 = aws("s3")
    job = aws("sagemaker").describe_processing_job(ProcessingJobName=name)
    for item in job["ProcessingInputs"]:
        bucket, prefix = parse_s3_uri(item["S3Input"]["S3Uri"])
        local = base / item["S3Input"]["LocalPath"].removeprefix("/opt/ml/")
        for found in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            rel = found["Key"][len(prefix) :].lstrip("/") or found["Key"].rsplit("/", 1)[-1]
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, found["Key"], str(local / rel))
    for output in job["ProcessingOutputConfig"]["Outputs"]:  # SageMaker makes them first
        (base / output["S3Output"]["LocalPath"].removeprefix("/opt/ml/")).mkdir(parents=True)
    command = [
        sys.executable if c == "python3" else c.replace("/opt/ml/", f"{base}/")
        for c in job["AppSpecification"]["ContainerEntrypoint"]
    ]
    done = subprocess.run(
        [*command, *job["AppSpecification"].get("ContainerArguments", [])],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for output in job["ProcessingOutputConfig"]["Outputs"]:
        bucket, prefix = parse_s3_uri(output["S3Output"]["S3Uri"])
        local = base / output["S3Output"]["LocalPath"].removeprefix("/opt/ml/")
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")
    return done


def train_here(
    tmp_path: Path, source_dir: Path, channel: Path
) -> tuple[bytes, dict[str, bytes], list[str]]:
    """What a SageMaker job running ``source_dir``'s train.py on ``channel`` (the training
    channel) produces, trained once on this machine: the model, output/data, the log."""
    result = LocalTrainingBackend(tmp_path / "local-jobs").run(
        TrainingJobSpec(
            name="trained-here",
            source_dir=source_dir,
            entry_point="train.py",
            python=Path(sys.executable),
            hyperparameters={"C": 1.0, "max_iter": 200},
            channels=[Channel("training", channel)],
            metric_definitions=[MetricDefinition("accuracy", r"accuracy=([0-9.]+)")],
        )
    )
    result.raise_for_status()
    assert result.model_artifact is not None
    output_data = TrainingPaths(result.job_dir).output_data
    output = {p.name: p.read_bytes() for p in output_data.iterdir() if p.is_file()}
    return result.model_artifact.read_bytes(), output, result.log_path.read_text().splitlines()
