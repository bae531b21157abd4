"""A CodePipeline job as a Lambda invoke action receives it, and its three ways to end.

The event (AWS's "Example JSON event" of the Lambda invoke action)::

    {"CodePipeline.job": {
        "id": "<job id>", "accountId": "<account>",
        "data": {
            "actionConfiguration": {"configuration": {"FunctionName": ..., "UserParameters": ...}},
            "inputArtifacts": [{"name": ..., "revision": ..., "location": {"type": "S3",
                                "s3Location": {"bucketName": ..., "objectKey": ...}}}],
            "outputArtifacts": [ same shape ],
            "artifactCredentials": {"accessKeyId": ..., "secretAccessKey": ...,
                                    "sessionToken": ...},
            "continuationToken": "<only when re-invoked after a continuation>",
            "encryptionKey": {"id": "<KMS key ARN>", "type": "KMS"}}}}

Artifacts are zip files in the pipeline's artifact bucket, read and written with the
temporary ``artifactCredentials`` (and the pipeline's KMS key) as CodePipeline intends.
A job ends with :meth:`PipelineJob.succeed`, :meth:`~PipelineJob.continue_later` (success
with a continuation token: CodePipeline invokes the function again, as a new job carrying
the token, so no Lambda waits for SageMaker) or :meth:`~PipelineJob.fail`.

Never log the event: it holds the credentials.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mlcicd.aws.clients import AwsClient, Credentials, client
from mlcicd.errors import ArtifactError, MlcicdError

MAX_TOKEN = 2048  # PutJobSuccessResult's continuationToken
MAX_MESSAGE = 5000  # PutJobFailureResult's failureDetails.message
MAX_SUMMARY = 2048  # executionDetails.summary
MAX_EXTERNAL_ID = 1500  # executionDetails.externalExecutionId


@dataclass(frozen=True)
class Artifact:
    name: str
    bucket: str
    key: str
    revision: str | None


@dataclass(frozen=True)
class PipelineJob:
    id: str
    account_id: str | None
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    credentials: Credentials | None
    continuation: dict[str, Any] | None
    user_parameters: str | None
    encryption_key: str | None
    codepipeline: AwsClient = field(repr=False, compare=False)

    @classmethod
    def from_event(
        cls, event: Mapping[str, Any], *, codepipeline: AwsClient | None = None
    ) -> PipelineJob:
        try:
            job = event["CodePipeline.job"]
            data = job["data"]
            job_id = str(job["id"])
        except (KeyError, TypeError) as exc:
            raise MlcicdError(
                "the event is not a CodePipeline job (no CodePipeline.job.id and .data)",
                hint="this function is invoked by the pipeline's Train and Deploy actions",
            ) from exc
        creds = data.get("artifactCredentials") or None
        token = data.get("continuationToken")
        key = data.get("encryptionKey") or {}
        return cls(
            id=job_id,
            account_id=job.get("accountId"),
            inputs=tuple(_artifact(a) for a in data.get("inputArtifacts", [])),
            outputs=tuple(_artifact(a) for a in data.get("outputArtifacts", [])),
            credentials=Credentials(
                creds["accessKeyId"], creds["secretAccessKey"], creds.get("sessionToken")
            )
            if creds
            else None,
            continuation=_decode_token(token) if token else None,
            user_parameters=(
                data.get("actionConfiguration", {}).get("configuration", {}).get("UserParameters")
            ),
            encryption_key=key.get("id") if key.get("type", "KMS") == "KMS" else None,
            codepipeline=codepipeline or client("codepipeline"),
        )

    # --- artifacts --------------------------------------------------------------------------

    def _s3(self) -> AwsClient:
        return client("s3", credentials=self.credentials)

    def input(self, name: str | None = None) -> Artifact:
        """The input artifact called ``name`` (the only one when ``name`` is None)."""
        if name is None and len(self.inputs) == 1:
            return self.inputs[0]
        for artifact in self.inputs:
            if artifact.name == name:
                return artifact
        names = ", ".join(a.name for a in self.inputs) or "none"
        raise ArtifactError(
            f"the job has no input artifact {name!r} (it has: {names})",
            hint="check the pipeline's InputArtifacts for this action",
        )

    @contextmanager
    def open_zip(self, artifact: Artifact) -> Iterator[zipfile.ZipFile]:
        """The artifact's zip, spooled to a temporary file (a source artifact may be large)."""
        with tempfile.TemporaryFile() as spool:
            self._s3().download_fileobj(artifact.bucket, artifact.key, spool)
            spool.seek(0)
            try:
                archive = zipfile.ZipFile(spool)
            except zipfile.BadZipFile as exc:
                raise ArtifactError(
                    f"artifact {artifact.name} (s3://{artifact.bucket}/{artifact.key}) is not a zip"
                ) from exc
            with archive:
                yield archive

    def read_json(self, artifact: Artifact, member: str) -> Any:
        with self.open_zip(artifact) as archive:
            try:
                raw = archive.read(member)
            except KeyError as exc:
                held = ", ".join(archive.namelist()[:10]) or "nothing"
                raise ArtifactError(
                    f"artifact {artifact.name} holds no {member} (it holds: {held})"
                ) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ArtifactError(f"{member} in artifact {artifact.name} is not JSON: {exc}") from exc

    def write_zip(self, artifact: Artifact, files: Mapping[str, bytes]) -> None:
        """Write the output artifact: a zip holding ``files`` (written whole: S3 PUTs are
        atomic)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in sorted(files.items()):
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
        extra: dict[str, Any] = {}
        if self.encryption_key:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.encryption_key}
        self._s3().put_object(
            Bucket=artifact.bucket, Key=artifact.key, Body=buffer.getvalue(), **extra
        )

    # --- results -----------------------------------------------------------------------------

    def continue_later(
        self,
        state: Mapping[str, Any],
        *,
        summary: str,
        external_id: str | None = None,
        percent: int | None = None,
    ) -> None:
        """Report progress: CodePipeline will invoke the function again with ``state``."""
        token = json.dumps(dict(state), sort_keys=True, separators=(",", ":"))
        if len(token) > MAX_TOKEN:  # a bug: the state must stay small
            raise ValueError(
                f"continuation state is {len(token)} characters; CodePipeline keeps {MAX_TOKEN}"
            )
        self.codepipeline.put_job_success_result(
            jobId=self.id,
            continuationToken=token,
            executionDetails=_details(summary, external_id, percent),
        )

    def succeed(
        self,
        *,
        summary: str,
        external_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        params: dict[str, Any] = {
            "jobId": self.id,
            "executionDetails": _details(summary, external_id, 100),
        }
        if variables:
            params["outputVariables"] = dict(variables)
        self.codepipeline.put_job_success_result(**params)

    def fail(self, message: str, *, external_id: str | None = None) -> None:
        details: dict[str, Any] = {"type": "JobFailed", "message": message[:MAX_MESSAGE]}
        if external_id:
            details["externalExecutionId"] = external_id[:MAX_EXTERNAL_ID]
        self.codepipeline.put_job_failure_result(jobId=self.id, failureDetails=details)


def _details(summary: str, external_id: str | None, percent: int | None) -> dict[str, Any]:
    details: dict[str, Any] = {"summary": summary[:MAX_SUMMARY]}
    if external_id:
        details["externalExecutionId"] = external_id[:MAX_EXTERNAL_ID]
    if percent is not None:
        details["percentComplete"] = max(0, min(100, percent))
    return details


def _artifact(raw: Mapping[str, Any]) -> Artifact:
    location = raw.get("location", {})
    if location.get("type", "S3") != "S3":
        raise ArtifactError(f"artifact {raw.get('name')} is not in S3 ({location.get('type')})")
    s3 = location.get("s3Location", {})
    return Artifact(
        name=str(raw.get("name", "")),
        bucket=str(s3.get("bucketName", "")),
        key=str(s3.get("objectKey", "")),
        revision=raw.get("revision"),
    )


def _decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(token)
    except ValueError as exc:
        raise MlcicdError(
            f"the continuation token is not one this function wrote: {token[:80]!r}"
        ) from exc
    if not isinstance(state, dict):
        raise MlcicdError(f"the continuation token is not one this function wrote: {token[:80]!r}")
    return state


__all__ = ["Artifact", "PipelineJob"]
