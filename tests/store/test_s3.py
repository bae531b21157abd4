"""The artifact stores: one contract, run against the local store and against the S3 store
on moto's server (real boto3 clients over loopback); then what only S3 has."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import ArtifactError, AwsError, ConfigError
from mlcicd.store import LocalArtifactStore, S3ArtifactStore, open_store
from mlcicd.store.base import ArtifactStore
from mlcicd.store.s3 import parse_s3_uri
from tests.aws.conftest import AwsClient

BUCKET = "mlcicd-store-test"

Tamper = Callable[[str, bytes], None]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ArtifactStore, Tamper]]:
    """A store, and a way to change an artifact's bytes behind its back."""
    if request.param == "local":
        local = LocalArtifactStore(tmp_path / "artifacts")

        def tamper_file(uri: str, data: bytes) -> None:
            path = local.local_path(uri)
            assert path is not None
            path.write_bytes(data)

        yield local, tamper_file
        return
    aws: AwsClient = request.getfixturevalue("aws_env")
    aws("s3").create_bucket(Bucket=BUCKET)

    def tamper_object(uri: str, data: bytes) -> None:
        bucket, key = parse_s3_uri(uri)
        aws("s3").put_object(Bucket=bucket, Key=key, Body=data)

    yield S3ArtifactStore(f"s3://{BUCKET}/runs"), tamper_object


def _file(tmp_path: Path, data: bytes = b"model bytes\n", name: str = "model.tar.gz") -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_put_then_get_round_trips_with_the_digest(
    store: tuple[ArtifactStore, Tamper], tmp_path: Path
) -> None:
    artifacts, _ = store
    source = _file(tmp_path)
    ref = artifacts.put_file(source, "ml-models", "iris/job-1/output/model.tar.gz")
    assert ref.uri == artifacts.uri("ml-models", "iris/job-1/output/model.tar.gz")
    assert ref.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert ref.size == source.stat().st_size
    assert artifacts.exists(ref.uri)
    dest = tmp_path / "out" / "model.tar.gz"
    assert artifacts.get_file(ref.uri, dest, expected_sha256=ref.sha256) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert not artifacts.exists(artifacts.uri("ml-models", "iris/job-2/output/model.tar.gz"))


def test_a_changed_artifact_is_refused_and_the_destination_untouched(
    store: tuple[ArtifactStore, Tamper], tmp_path: Path
) -> None:
    artifacts, tamper = store
    ref = artifacts.put_file(_file(tmp_path), "ml-models", "iris/model.tar.gz")
    tamper(ref.uri, b"something else")
    dest = tmp_path / "out" / "model.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"what was here")
    with pytest.raises(ArtifactError, match=r"has sha256 .*, recorded"):
        artifacts.get_file(ref.uri, dest, expected_sha256=ref.sha256)
    assert dest.read_bytes() == b"what was here"
    assert os.listdir(dest.parent) == ["model.tar.gz"]  # no temp file left behind


def test_a_missing_artifact_says_so(store: tuple[ArtifactStore, Tamper], tmp_path: Path) -> None:
    artifacts, _ = store
    with pytest.raises(ArtifactError, match="is missing"):
        artifacts.get_file(
            artifacts.uri("ml-models", "nothing/here.tar.gz"),
            tmp_path / "x",
            expected_sha256="0" * 64,
        )
    assert not (tmp_path / "x").exists()


def test_keys_cannot_escape(store: tuple[ArtifactStore, Tamper], tmp_path: Path) -> None:
    artifacts, _ = store
    with pytest.raises(ArtifactError):
        artifacts.put_file(_file(tmp_path), "ml-models", "../../elsewhere/model.tar.gz")
    with pytest.raises(ArtifactError):
        artifacts.put_bytes(b"{}\n", "data-capture", "../../elsewhere/x.jsonl")


def test_put_bytes_writes_a_whole_new_artifact_each_time(
    store: tuple[ArtifactStore, Tamper], tmp_path: Path
) -> None:
    artifacts, _ = store
    key = "iris/AllTraffic/2024/05/01/13/07-42-001-g1-7.jsonl"
    first = artifacts.put_bytes(b'{"n": 1}\n', "data-capture", key)
    assert first.uri == artifacts.uri("data-capture", key)
    assert (first.sha256, first.size) == (hashlib.sha256(b'{"n": 1}\n').hexdigest(), 9)
    second = artifacts.put_bytes(b'{"n": 2}\n', "data-capture", key)  # replaces, never appends
    back = artifacts.get_file(second.uri, tmp_path / "back.jsonl", expected_sha256=second.sha256)
    assert back.read_bytes() == b'{"n": 2}\n'


def test_a_folder_is_listed_and_read_back_whatever_wrote_it(
    store: tuple[ArtifactStore, Tamper],
) -> None:
    artifacts, _ = store
    keys = [
        "iris/B/2024/05/01/13/00-00-000-w1.jsonl",
        "iris/A/2024/05/01/14/00-00-000-w1.jsonl",
        "iris/A/2024/05/01/13/59-59-999-w2.jsonl",
        "iris-2/A/2024/05/01/13/00-00-000-w1.jsonl",
    ]
    for key in keys:
        artifacts.put_bytes(key.encode(), "data-capture", key)
    listed = artifacts.list_uris("data-capture", "iris")
    assert listed == [artifacts.uri("data-capture", k) for k in sorted(keys[:3])]  # not iris-2's
    assert artifacts.list_uris("data-capture", "iris/A/2024/05/01/14") == [
        artifacts.uri("data-capture", keys[1])
    ]
    assert artifacts.list_uris("data-capture", "nobody") == []
    assert artifacts.read_bytes(listed[0]) == keys[2].encode()
    with pytest.raises(ArtifactError, match="is missing"):
        artifacts.read_bytes(artifacts.uri("data-capture", "iris/none.jsonl"))


# --- S3 only ---------------------------------------------------------------------------------


@pytest.fixture
def s3(aws_env: AwsClient) -> AwsClient:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    return aws_env


@pytest.mark.integration
def test_the_layout_metadata_and_checksum(s3: AwsClient, tmp_path: Path) -> None:
    store = S3ArtifactStore(f"s3://{BUCKET}/runs/")
    ref = store.put_file(_file(tmp_path), "ml-models", "iris/job-1/output/model.tar.gz")
    assert ref.uri == f"s3://{BUCKET}/runs/ml-models/iris/job-1/output/model.tar.gz"
    head = s3("s3").head_object(
        Bucket=BUCKET, Key="runs/ml-models/iris/job-1/output/model.tar.gz", ChecksumMode="ENABLED"
    )
    assert head["Metadata"] == {"sha256": ref.sha256}
    assert head["ChecksumSHA256"]  # S3 checked the upload against SHA256 itself
    assert store.holds(ref.uri, _file(tmp_path))
    assert store.local_path(ref.uri) is None
    assert S3ArtifactStore(f"s3://{BUCKET}").uri("ml-models", "k") == f"s3://{BUCKET}/ml-models/k"


@pytest.mark.integration
def test_multipart_uploads_keep_the_whole_files_digest(s3: AwsClient, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024)  # over boto3's 8 MiB multipart threshold
    store = S3ArtifactStore(f"s3://{BUCKET}")
    ref = store.put_file(_file(tmp_path, data), "ml-models", "big/model.tar.gz")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (
        store.get_file(ref.uri, tmp_path / "big", expected_sha256=ref.sha256).read_bytes() == data
    )


@pytest.mark.integration
@pytest.mark.parametrize("size", [1000, 9 * 1024 * 1024], ids=["whole", "multipart"])
def test_an_object_overwritten_under_the_old_metadata_is_not_trusted(
    s3: AwsClient, tmp_path: Path, size: int
) -> None:
    """Whoever may PutObject writes the metadata too: other bytes of the same size, with the
    old sha256 in x-amz-meta-sha256 and a correct checksum of their own, must not pass."""
    data = os.urandom(size)
    store = S3ArtifactStore(f"s3://{BUCKET}")
    source = _file(tmp_path, data)
    ref = store.put_file(source, "ml-models", "iris/model.tar.gz")
    assert store.holds(ref.uri, source)
    evil = bytes([data[0] ^ 1]) + data[1:]
    s3("s3").put_object(
        Bucket=BUCKET,
        Key="ml-models/iris/model.tar.gz",
        Body=evil,
        Metadata={"sha256": ref.sha256},
        ChecksumAlgorithm="SHA256",
    )
    assert not store.holds(ref.uri, source)  # an upload is not skipped
    with pytest.raises(ArtifactError, match=r"has sha256 .*, recorded " + ref.sha256[:12]):
        store.get_file(ref.uri, tmp_path / "back", expected_sha256=ref.sha256)
    assert not (tmp_path / "back").exists()


@pytest.mark.integration
def test_an_object_without_a_checksum_is_not_held(s3: AwsClient, tmp_path: Path) -> None:
    source = _file(tmp_path)
    s3("s3").put_object(
        Bucket=BUCKET,
        Key="plain",
        Body=source.read_bytes(),
        Metadata={"sha256": hashlib.sha256(source.read_bytes()).hexdigest()},
    )
    store = S3ArtifactStore(f"s3://{BUCKET}")
    assert not store.holds(f"s3://{BUCKET}/plain", source)
    assert not store.holds(f"s3://{BUCKET}/nothing", source)


@pytest.mark.integration
def test_encryption_by_the_buckets_default_or_a_kms_key(s3: AwsClient, tmp_path: Path) -> None:
    s3("s3").put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    plain = S3ArtifactStore(f"s3://{BUCKET}").put_file(_file(tmp_path), "b", "default.tar.gz")
    assert _head(s3, plain.uri)["ServerSideEncryption"] == "AES256"
    key = s3("kms").create_key()["KeyMetadata"]["Arn"]
    ref = S3ArtifactStore(f"s3://{BUCKET}", kms_key_id=key).put_file(
        _file(tmp_path), "b", "kms.tar.gz"
    )
    head = _head(s3, ref.uri)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)


@pytest.mark.integration
def test_download_reports_the_digest_of_what_nobody_recorded(s3: AwsClient, tmp_path: Path) -> None:
    s3("s3").put_object(
        Bucket=BUCKET, Key="sagemaker/output/model.tar.gz", Body=b"written by SageMaker"
    )
    ref = S3ArtifactStore(f"s3://{BUCKET}").download(
        f"s3://{BUCKET}/sagemaker/output/model.tar.gz", tmp_path / "m"
    )
    assert ref.sha256 == hashlib.sha256(b"written by SageMaker").hexdigest()
    assert (tmp_path / "m").read_bytes() == b"written by SageMaker"


@pytest.mark.integration
def test_aws_errors_come_back_as_ours(aws_env: AwsClient, tmp_path: Path) -> None:
    store = S3ArtifactStore("s3://no-such-bucket-here")
    with pytest.raises(AwsError) as raised:
        store.put_file(_file(tmp_path), "b", "k")
    assert raised.value.code == "NoSuchBucket"
    assert "s3:UploadFile" in raised.value.headline
    with pytest.raises(AwsError) as raised:
        store.put_bytes(b"{}\n", "b", "k.jsonl")
    assert (raised.value.code, raised.value.operation) == ("NoSuchBucket", "s3:PutObject")


def test_open_store_picks_the_implementation(tmp_path: Path) -> None:
    s3_store = open_store("s3://bucket/prefix", default_root=tmp_path)
    assert isinstance(s3_store, S3ArtifactStore)
    assert (s3_store.TYPE, s3_store.bucket, s3_store.prefix) == ("s3", "bucket", "prefix")
    assert open_store(None, default_root=tmp_path).TYPE == "local"
    with pytest.raises(ConfigError, match=r"store.uri: s3:// names no bucket"):
        open_store("s3://", default_root=tmp_path)


def _head(aws: AwsClient, uri: str) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    head: dict[str, Any] = aws("s3").head_object(Bucket=bucket, Key=key)
    return head
