"""Artifacts on S3: ``s3://<bucket>/<prefix>/<store bucket>/<key>``.

The store's root is ``store.uri`` (``s3://bucket`` or ``s3://bucket/prefix``); the logical
buckets the pipeline writes to (``store.models_bucket``…) become the first part of the key,
as they are directories under the local store's root — so a pipeline writes the same names
locally and on S3.

Each object carries its sha256 twice: as user metadata (``x-amz-meta-sha256``, the digest of
the whole file, for people) and as S3's own SHA256 checksum, which S3 computes from the bytes
it receives (per part for multipart uploads). Only the checksum is trusted: metadata is
written by whoever writes the object, so an object overwritten with other bytes can claim
the old digest there. :meth:`S3ArtifactStore.holds` (may an upload be skipped?) compares the
checksum S3 computed with the same checksum of the local file; reads verify the bytes
received against the digest mlcicd recorded before the file appears at its destination.
Encryption: with ``kms_key_id`` objects are written SSE-KMS under that key; without, the
bucket's default encryption applies (S3 encrypts every new object, SSE-S3 at least; the
stack's buckets default to SSE-KMS under the stack's key, which an explicit ``AES256`` would
override).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlcicd.errors import ArtifactError, AwsError
from mlcicd.fsutil import atomic_open, sha256_file
from mlcicd.store.base import ArtifactRef

if TYPE_CHECKING:  # importing mlcicd.aws here would load it into every serving worker
    from mlcicd.aws.clients import Timeouts

SHA256_METADATA = "sha256"  # x-amz-meta-sha256


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``("bucket", "key")`` (the key may be empty)."""
    if not uri.startswith("s3://"):
        raise ArtifactError(f"{uri} is not an S3 URI (expected s3://bucket/key)")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ArtifactError(f"{uri} names no bucket")
    return bucket, key


class _HashingWriter:
    """Writes through to ``out`` and hashes what passes; not seekable, so S3 transfers write
    it in order."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        written: int = self.out.write(data)
        return written


class S3ArtifactStore:
    TYPE: ClassVar[str] = "s3"

    def __init__(
        self,
        root: str,
        *,
        kms_key_id: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.bucket, prefix = parse_s3_uri(root)
        self.prefix = prefix.strip("/")
        self.kms_key_id = kms_key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeouts = timeouts  # None: the clients' defaults (mlcicd.aws.clients)

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        from mlcicd.aws.clients import client

        return client(
            "s3", region=self.region, endpoint_url=self.endpoint_url, timeouts=self.timeouts
        )

    def key(self, bucket: str, key: str) -> str:
        """The object key of ``bucket``/``key`` under this store's root."""
        parts = [p for p in (self.prefix, bucket.strip("/"), key.strip("/")) if p]
        joined = "/".join(parts)
        if any(part in ("", ".", "..") for part in joined.split("/")):
            raise ArtifactError(f"artifact key {key!r} in bucket {bucket!r} is not a clean path")
        return joined

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{self.bucket}/{self.key(bucket, key)}"

    def put_file(self, source: Path, bucket: str, key: str) -> ArtifactRef:
        sha256 = sha256_file(source)
        size = source.stat().st_size
        object_key = self.key(bucket, key)
        self.client.upload_file(
            str(source), self.bucket, object_key, ExtraArgs=self._put_args(sha256)
        )
        return ArtifactRef(uri=f"s3://{self.bucket}/{object_key}", sha256=sha256, size=size)

    def put_bytes(self, data: bytes, bucket: str, key: str) -> ArtifactRef:
        """One PutObject: S3 makes the object visible whole, or not at all."""
        sha256 = hashlib.sha256(data).hexdigest()
        object_key = self.key(bucket, key)
        self.client.put_object(
            Bucket=self.bucket, Key=object_key, Body=data, **self._put_args(sha256)
        )
        return ArtifactRef(uri=f"s3://{self.bucket}/{object_key}", sha256=sha256, size=len(data))

    def _put_args(self, sha256: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Metadata": {SHA256_METADATA: sha256},
            "ChecksumAlgorithm": "SHA256",
        }
        if self.kms_key_id:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id)
        return args

    def get_file(self, uri: str, dest: Path, *, expected_sha256: str) -> Path:
        bucket, key = parse_s3_uri(uri)
        with atomic_open(dest, "wb") as out:
            writer = self._download(bucket, key, out, uri)
            actual = writer.digest.hexdigest()
            if actual != expected_sha256:  # raising here leaves dest as it was
                raise ArtifactError(
                    f"artifact {uri} has sha256 {actual[:12]}…, recorded {expected_sha256[:12]}…",
                    hint="it was changed after it was written; rerun the pipeline with --force",
                )
        return dest

    def download(self, uri: str, dest: Path) -> ArtifactRef:
        """Fetch an object nobody recorded a digest of (e.g. what SageMaker wrote) to
        ``dest``, atomically; return its digest."""
        bucket, key = parse_s3_uri(uri)
        with atomic_open(dest, "wb") as out:
            writer = self._download(bucket, key, out, uri)
        return ArtifactRef(uri=uri, sha256=writer.digest.hexdigest(), size=writer.size)

    def _download(self, bucket: str, key: str, out: Any, uri: str) -> _HashingWriter:
        writer = _HashingWriter(out)
        try:
            self.client.download_fileobj(bucket, key, writer)
        except AwsError as exc:
            if _missing(exc):
                raise ArtifactError(
                    f"artifact {uri} is missing", hint="rerun the pipeline with --force"
                ) from exc
            raise
        return writer

    def head(self, uri: str, **params: Any) -> dict[str, Any] | None:
        """The object's HeadObject answer, or None if there is no such object."""
        bucket, key = parse_s3_uri(uri)
        try:
            answer: dict[str, Any] = self.client.head_object(Bucket=bucket, Key=key, **params)
        except AwsError as exc:
            if _missing(exc):
                return None
            raise
        return answer

    def holds(self, uri: str, source: Path) -> bool:
        """Whether the object at ``uri`` has the bytes of ``source`` (so an upload may be skipped).

        Decided by S3's SHA256 checksum — computed by S3 from the bytes it stored, whole or per
        part — against the same checksum of ``source``; never by the object's metadata. An
        object without a checksum (written by something else) does not count.
        """
        answer = self.head(uri, ChecksumMode="ENABLED")
        if answer is None or answer.get("ContentLength") != source.stat().st_size:
            return False
        stored = answer.get("ChecksumSHA256")
        if not stored:
            return False
        # A multipart object's checksum is the sha256 of its parts' sha256s ("…-<parts>" on
        # S3); the first part's size says how the file was cut.
        first = self.head(uri, ChecksumMode="ENABLED", PartNumber=1) or {}
        parts = int(first.get("PartsCount") or 0)
        part_size = int(first.get("ContentLength") or 0) if parts else 0
        return bool(stored.split("-")[0] == _checksum_sha256(source, part_size))

    def local_path(self, uri: str) -> Path | None:
        return None

    def exists(self, uri: str) -> bool:
        return self.head(uri) is not None

    def list_uris(self, bucket: str, prefix: str = "") -> list[str]:
        folder = self.key(bucket, prefix) + "/"  # a folder: "iris/" never lists "iris-2/…"
        keys = [
            item["Key"]
            for page in self.client.paginate("list_objects_v2", Bucket=self.bucket, Prefix=folder)
            for item in page.get("Contents", [])
        ]
        return [f"s3://{self.bucket}/{key}" for key in sorted(keys)]

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except AwsError as exc:
            if _missing(exc):
                raise ArtifactError(f"artifact {uri} is missing") from exc
            raise
        return body


def _checksum_sha256(path: Path, part_size: int) -> str:
    """S3's ChecksumSHA256 of ``path``'s bytes (base64): of the whole file, or with
    ``part_size`` of a multipart upload cut into parts of that size."""
    if not part_size:
        return base64.b64encode(bytes.fromhex(sha256_file(path))).decode()
    parts = hashlib.sha256()
    with open(path, "rb") as fh:
        while part := fh.read(part_size):
            parts.update(hashlib.sha256(part).digest())
    return base64.b64encode(parts.digest()).decode()


def _missing(error: AwsError) -> bool:
    return error.code in ("404", "NoSuchKey", "NotFound")


__all__ = ["SHA256_METADATA", "S3ArtifactStore", "parse_s3_uri"]
