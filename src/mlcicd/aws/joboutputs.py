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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.errors import ArtifactError

_UNVERSIONED = "null"  # the VersionId of an object written while the bucket kept no versions


@dataclass(frozen=True)
class Written:
    """The one version of a job's output: read it with ``VersionId=version_id``."""

    version_id: str
    size: int


def written_once(s3: AwsClient, bucket: str, key: str, *, job: str) -> Written | None:
    """The version of ``s3://bucket/key`` that ``job`` wrote, or None when there is no object.

    Raises ArtifactError naming the object when it was written more than once (or deleted) —
    the job writes it once, so something else did — or when the bucket keeps no versions.
    """
    found = _versions(s3, bucket, key, job=job)
    if key not in found:
        return None
    return found[key]


def all_written_once(s3: AwsClient, bucket: str, prefix: str, *, job: str) -> int:
    """How many objects there are under ``prefix`` (a job's output directory), each checked to
    be the one version ``job`` wrote — before another job (a later step, the training job) is
    given the prefix to read, or a cached job's outputs are reused by a later run.

    Raises ArtifactError naming the first object written again, or deleted, since."""
    return len(_versions(s3, bucket, prefix, job=job, exact=False))


def _versions(
    s3: AwsClient, bucket: str, prefix: str, *, job: str, exact: bool = True
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
                f"{uri} was written or deleted after job {job} wrote it ({len(kept)} versions, "
                f"{deleted} delete markers): it is not the job's output, the pipeline stops here",
                hint="whoever can write the models bucket replaced it: find who in its access "
                "log or CloudTrail; then release the change again to run the pipeline anew",
            )
        version_id = str(kept[0].get("VersionId") or _UNVERSIONED)
        if version_id == _UNVERSIONED:
            raise ArtifactError(
                f"the models bucket {bucket} keeps no versions, so {uri} cannot be told from a "
                f"replacement of job {job}'s output",
                hint=f"turn versioning on (aws s3api put-bucket-versioning --bucket {bucket} "
                "--versioning-configuration Status=Enabled): the stack creates the bucket so",
            )
        found[key] = Written(version_id=version_id, size=int(kept[0].get("Size", 0)))
    return found


__all__ = ["Written", "all_written_once", "written_once"]
