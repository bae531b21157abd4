"""A completed SageMaker job's output, read as the job wrote it: the one version of the object
in the (versioned) models bucket.

Whoever can write the models bucket — a leaked key, a too-broad role, a compromised job (every
processing job's role can) — could replace a job's output after the job has ended: the
data-check report between the job ending and the Lambda reading it, a step's report before the
gate reads it, model.tar.gz before its digest is taken. A digest recorded at the first read
would come too late for those; what S3 gives instead is the version history. The stack's models
bucket is versioned (``template/storage.py``), and every job writes under a prefix of its own
unique name, once: SageMaker's upload is the key's first and only version. So an output is read
only when it has exactly one version and no delete marker, and *that* version is read (by its
VersionId, which S3 never reuses for other bytes): an object written a second time — before the
job's upload or after it — stops the pipeline, naming it. No role of the stack may delete an
object version (``s3:DeleteObjectVersion``), so the job's version cannot be removed to leave a
planted one alone; a bucket that keeps no versions is refused rather than trusted.

One version is not enough for a key the job never wrote: a NEW object added under a step's
output prefix, or a report a Completed job did not write, has one version too, and the next
job would read it. So each version must also have been written while the job ran — its
LastModified inside the job's [start, end] as SageMaker describes it (:func:`job_run`). S3
gives LastModified in whole seconds, and for a multipart upload the time the upload *began*:
both still fall inside the run, since the job starts an upload only while it runs. The window
is widened by ``CLOCK_SLACK`` on each side for the two services' clocks and the rounding; an
object planted within that minute after the job ended is not caught here (nor one planted
while the job ran — the role of a job can write its own prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.errors import ArtifactError

_UNVERSIONED = "null"  # the VersionId of an object written while the bucket kept no versions
# How far outside a job's run an output's LastModified may be: S3's and SageMaker's clocks
# differ a little, and LastModified is truncated to the second.
CLOCK_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class JobRun:
    """A SageMaker job as its outputs are checked against: its name, and when it ran."""

    name: str
    started: datetime
    ended: datetime


def job_run(described: Mapping[str, Any]) -> JobRun:
    """The run of an ended training or processing job, from its Describe*Job answer.

    The start is ``TrainingStartTime``/``ProcessingStartTime`` (else ``CreationTime``, which
    is earlier); the end the later of ``…EndTime`` and ``LastModifiedTime`` — the status turns
    Completed only once the outputs are uploaded, and the end time may mark the instances'
    end, before the upload. Raises ArtifactError for a job that has not ended."""
    kind = "Training" if "TrainingJobName" in described else "Processing"
    name = str(described[f"{kind}JobName"])
    started = described.get(f"{kind}StartTime") or described.get("CreationTime")
    ends = [t for t in (described.get(f"{kind}EndTime"), described.get("LastModifiedTime")) if t]
    if not isinstance(started, datetime) or not ends:
        raise ArtifactError(
            f"{kind.lower()} job {name} has no start and end time: its outputs cannot be told "
            "from objects written before or after it ran",
            hint="read a job's outputs only once SageMaker reports it ended",
        )
    return JobRun(name=name, started=started, ended=max(ends))


@dataclass(frozen=True)
class Written:
    """The one version of a job's output: read it with ``VersionId=version_id``."""

    version_id: str
    size: int


def written_once(s3: AwsClient, bucket: str, key: str, *, job: JobRun) -> Written | None:
    """The version of ``s3://bucket/key`` that ``job`` wrote, or None when there is no object.

    Raises ArtifactError naming the object when it was written more than once (or deleted) —
    the job writes it once, so something else did —, when it was written outside the job's
    run, or when the bucket keeps no versions.
    """
    found = _versions(s3, bucket, key, job=job)
    if key not in found:
        return None
    return found[key]


def all_written_once(s3: AwsClient, bucket: str, prefix: str, *, job: JobRun) -> int:
    """How many objects there are under ``prefix`` (a job's output directory), each checked to
    be the one version ``job`` wrote — before another job (a later step, the training job) is
    given the prefix to read, or a cached job's outputs are reused by a later run.

    Raises ArtifactError naming the first object written again, or deleted, since, or added
    outside the job's run."""
    return len(_versions(s3, bucket, prefix, job=job, exact=False))


def _versions(
    s3: AwsClient, bucket: str, prefix: str, *, job: JobRun, exact: bool = True
) -> dict[str, Written]:
    """Each object at ``prefix`` (only that key when ``exact``) as the one version ``job``
    wrote; ArtifactError for the first that is not."""
    versions: dict[str, list[dict[str, Any]]] = {}
    markers: dict[str, int] = {}
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = s3.list_object_versions(**params)
        for version in page.get("Versions") or []:
            if not exact or version.get("Key") == prefix:
                versions.setdefault(str(version["Key"]), []).append(version)
        for marker in page.get("DeleteMarkers") or []:
            if not exact or marker.get("Key") == prefix:
                markers[str(marker["Key"])] = markers.get(str(marker["Key"]), 0) + 1
        if not page.get("IsTruncated"):
            break
        params["KeyMarker"] = page["NextKeyMarker"]
        params["VersionIdMarker"] = page["NextVersionIdMarker"]
    found: dict[str, Written] = {}
    for key in sorted({*versions, *markers}):
        kept, deleted = versions.get(key, []), markers.get(key, 0)
        uri = f"s3://{bucket}/{key}"
        if len(kept) + deleted > 1 or not kept:
            raise ArtifactError(
                f"{uri} was written or deleted after job {job.name} wrote it ({len(kept)} "
                f"versions, {deleted} delete markers): it is not the job's output, the pipeline "
                "stops here",
                hint="whoever can write the models bucket replaced it: find who in its access "
                "log or CloudTrail; then release the change again to run the pipeline anew",
            )
        version_id = str(kept[0].get("VersionId") or _UNVERSIONED)
        if version_id == _UNVERSIONED:
            raise ArtifactError(
                f"the models bucket {bucket} keeps no versions, so {uri} cannot be told from a "
                f"replacement of job {job.name}'s output",
                hint=f"turn versioning on (aws s3api put-bucket-versioning --bucket {bucket} "
                "--versioning-configuration Status=Enabled): the stack creates the bucket so",
            )
        _check_written_during(uri, kept[0].get("LastModified"), job)
        found[key] = Written(version_id=version_id, size=int(kept[0].get("Size", 0)))
    return found


def _check_written_during(uri: str, modified: Any, job: JobRun) -> None:
    # LastModified is whole seconds: the start is taken down to its second too.
    earliest = job.started.replace(microsecond=0) - CLOCK_SLACK
    if isinstance(modified, datetime) and earliest <= modified <= job.ended + CLOCK_SLACK:
        return
    raise ArtifactError(
        f"{uri} was written at {_utc(modified)}, outside job {job.name}'s run "
        f"({_utc(job.started)} to {_utc(job.ended)}): it is not the job's output, the pipeline "
        "stops here",
        hint="whoever can write the models bucket added it: find who in its access log or "
        "CloudTrail, delete it; then release the change again to run the pipeline anew",
    )


def _utc(when: Any) -> str:
    if not isinstance(when, datetime):
        return "an unknown time"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


__all__ = ["CLOCK_SLACK", "JobRun", "Written", "all_written_once", "job_run", "written_once"]
