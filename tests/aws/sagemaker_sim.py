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
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from mlcicd.aws.clients import client
from mlcicd.store.s3 import parse_s3_uri
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
