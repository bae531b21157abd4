"""A job's output read as the one version the job wrote, against moto's server (versioned
buckets as S3 keeps them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlcicd.aws.clients import client
from mlcicd.aws.joboutputs import JobRun, written_once
from mlcicd.errors import ArtifactError
from tests.aws.conftest import AwsClient
from tests.aws.events import MODELS_BUCKET, create_models_bucket

pytestmark = pytest.mark.integration

KEY = "pipeline/processing/job-1/output/report/report.json"
URI = f"s3://{MODELS_BUCKET}/{KEY}"


def running() -> JobRun:
    """job-1, running since a minute ago and (as far as these tests go) ending an hour hence."""
    now = datetime.now(UTC)
    return JobRun("job-1", started=now - timedelta(minutes=1), ended=now + timedelta(hours=1))


def test_the_one_version_is_found_and_read_by_its_id(aws_env: AwsClient) -> None:
    s3 = aws_env("s3")
    create_models_bucket(s3)
    assert written_once(client("s3"), MODELS_BUCKET, KEY, job=running()) is None
    put = s3.put_object(Bucket=MODELS_BUCKET, Key=KEY, Body=b'{"status": "Passed"}')
    s3.put_object(Bucket=MODELS_BUCKET, Key=KEY + ".bak", Body=b"another key, same prefix")
    written = written_once(client("s3"), MODELS_BUCKET, KEY, job=running())
    assert written is not None
    assert (written.version_id, written.size) == (put["VersionId"], 20)


@pytest.mark.parametrize("after", ["written again", "deleted", "deleted and written again"])
def test_an_output_written_or_deleted_since_the_job_is_refused_naming_it(
    aws_env: AwsClient, after: str
) -> None:
    s3 = aws_env("s3")
    create_models_bucket(s3)
    s3.put_object(Bucket=MODELS_BUCKET, Key=KEY, Body=b"the job's")
    if after.startswith("deleted"):
        s3.delete_object(Bucket=MODELS_BUCKET, Key=KEY)
    if after.endswith("written again"):
        s3.put_object(Bucket=MODELS_BUCKET, Key=KEY, Body=b"theirs")
    with pytest.raises(ArtifactError, match=f"^{URI} was written or deleted after job job-1"):
        written_once(client("s3"), MODELS_BUCKET, KEY, job=running())


def test_a_bucket_without_versions_is_refused(aws_env: AwsClient) -> None:
    s3 = aws_env("s3")
    s3.create_bucket(Bucket=MODELS_BUCKET)
    s3.put_object(Bucket=MODELS_BUCKET, Key=KEY, Body=b"the job's, or theirs")
    with pytest.raises(ArtifactError, match=f"{MODELS_BUCKET} keeps no versions") as caught:
        written_once(client("s3"), MODELS_BUCKET, KEY, job=running())
    assert "put-bucket-versioning" in str(caught.value.hint)


@pytest.mark.parametrize("when", ["before the job started", "after the job ended"])
def test_an_object_written_once_outside_the_job_run_is_refused_naming_it(
    aws_env: AwsClient, when: str
) -> None:
    s3 = aws_env("s3")
    create_models_bucket(s3)
    s3.put_object(Bucket=MODELS_BUCKET, Key=KEY, Body=b"not the job's: one version all the same")
    now = datetime.now(UTC)
    if when.startswith("before"):  # the job started (and ended) an hour after the write
        run = JobRun("job-1", started=now + timedelta(hours=1), ended=now + timedelta(hours=2))
    else:  # the job ended an hour before it
        run = JobRun("job-1", started=now - timedelta(hours=2), ended=now - timedelta(hours=1))
    with pytest.raises(ArtifactError, match=f"^{URI} was written at .* outside job job-1's run"):
        written_once(client("s3"), MODELS_BUCKET, KEY, job=run)
    # within the clocks' slack of the run, it is the job's
    near = timedelta(seconds=30)
    if when.startswith("before"):
        run = JobRun("job-1", started=now + near, ended=now + timedelta(hours=1))
    else:
        run = JobRun("job-1", started=now - timedelta(hours=1), ended=now - near)
    assert written_once(client("s3"), MODELS_BUCKET, KEY, job=run) is not None
