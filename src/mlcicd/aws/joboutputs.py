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
    versions: list[dict[str, Any]] = []
    markers = 0
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
    while True:
        page = s3.list_object_versions(**params)
        versions += [v for v in page.get("Versions") or [] if v.get("Key") == key]
        markers += sum(1 for m in page.get("DeleteMarkers") or [] if m.get("Key") == key)
        if not page.get("IsTruncated"):
            break
        params["KeyMarker"] = page["NextKeyMarker"]
        params["VersionIdMarker"] = page["NextVersionIdMarker"]
    uri = f"s3://{bucket}/{key}"
    if not versions and not markers:
        return None
    if len(versions) + markers > 1:
        raise ArtifactError(
            f"{uri} was written or deleted after job {job} wrote it ({len(versions)} versions, "
            f"{markers} delete markers): it is not the job's output, the pipeline stops here",
            hint="whoever can write the models bucket replaced it: find who in its access log "
            "or CloudTrail; then release the change again to run the pipeline anew",
        )
    if not versions:
        raise ArtifactError(f"{uri}, written by job {job}, was deleted")
    version_id = str(versions[0].get("VersionId") or _UNVERSIONED)
    if version_id == _UNVERSIONED:
        raise ArtifactError(
            f"the models bucket {bucket} keeps no versions, so {uri} cannot be told from a "
            f"replacement of job {job}'s output",
            hint=f"turn versioning on (aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled): the stack creates the bucket so",
        )
    return Written(version_id=version_id, size=int(versions[0].get("Size", 0)))


__all__ = ["Written", "written_once"]
