"""The data capture writer: files in a directory, objects on S3 (moto's server on loopback),
and what a failed write costs (its records, counted; never the thread)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from mlcicd.serving.capture import FILE_RECORDS, CaptureWriter, Record
from mlcicd.serving.config import CaptureSpec, ServingConfig, VariantSpec
from tests.aws.conftest import AwsClient, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.helpers import free_port, wait_for

BUCKET = "mlcicd-capture-test"
WHEN = 1714568862.25  # 2024-05-01T13:07:42.250Z
KEY_RE = re.compile(r"^runs/data-capture/iris/A/2024/05/01/13/\d\d-\d\d-\d{3}-w1\.jsonl$")


class Drops:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def record(n: int, when: float = WHEN) -> Record:
    return (
        "A",
        f"id-{n}",
        when,
        "application/json",
        b"[[1, 2, 3, 4]]",
        "application/json",
        b"[0]",
        None,
    )


def writer(destination: str, drops: Drops) -> CaptureWriter:
    return CaptureWriter(CaptureSpec(destination=destination), "iris", "w1", drops)


def objects(aws: AwsClient) -> dict[str, bytes]:
    s3 = aws("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_a_file_is_never_overwritten_by_the_next_flush(tmp_path: Path) -> None:
    """A full file, then the rest at close within the same millisecond: two files, every record."""
    drops = Drops()
    capture = writer(str(tmp_path), drops)
    for n in range(FILE_RECORDS + 5):
        capture.offer(record(n))  # the queue holds 1000: give the thread time to take them
        if n % 500 == 499:
            wait_for("the capture queue to empty", lambda: capture.queue.qsize() == 0, timeout=10)
    capture.close()
    files = sorted((tmp_path / "iris" / "A" / "2024" / "05" / "01" / "13").glob("*.jsonl"))
    # Usually two files (a full one, then the rest); a slow machine may flush once more.
    assert len(files) >= 2
    assert [f.name for f in files] == [f"07-42-{250 + i:03d}-w1.jsonl" for i in range(len(files))]
    ids = [
        json.loads(line)["eventMetadata"]["inferenceId"]
        for f in files
        for line in f.read_text().splitlines()
    ]
    assert ids == [f"id-{n}" for n in range(FILE_RECORDS + 5)]
    assert (capture.written, capture.failed, drops.count) == (FILE_RECORDS + 5, 0, 0)


def test_a_directory_that_cannot_be_made_drops_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a directory")
    drops = Drops()
    capture = writer(str(tmp_path / "file"), drops)
    for n in range(3):
        capture.offer(record(n))
    capture.close()
    assert (capture.written, capture.failed, drops.count) == (0, 3, 3)
    assert "3 capture record(s) dropped" in caplog.text


@pytest.mark.integration
def test_records_become_objects_in_sagemakers_layout(aws_env: AwsClient) -> None:  # noqa: F811
    aws_env("s3").create_bucket(Bucket=BUCKET)
    drops = Drops()
    capture = writer(f"s3://{BUCKET}/runs/data-capture", drops)
    for n in range(3):
        capture.offer(record(n))
    capture.close()
    found = objects(aws_env)
    assert len(found) == 1
    ((key, body),) = found.items()
    assert KEY_RE.match(key), key
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [r["eventMetadata"]["inferenceId"] for r in lines] == ["id-0", "id-1", "id-2"]
    assert lines[0]["eventMetadata"]["inferenceTime"] == "2024-05-01T13:07:42.250Z"
    assert lines[0]["captureData"]["endpointInput"]["data"] == "[[1, 2, 3, 4]]"
    head = aws_env("s3").head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"] == {"sha256": hashlib.sha256(body).hexdigest()}  # the store's put
    assert (capture.written, drops.count) == (3, 0)


@pytest.mark.integration
def test_a_missing_bucket_drops_counts_warns_and_the_writer_goes_on(
    aws_env: AwsClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mlcicd.serving.capture")
    drops = Drops()
    capture = writer(f"s3://{BUCKET}/runs/data-capture", drops)
    for n in range(3):
        capture.offer(record(n))
    wait_for("3 capture drops", lambda: drops.count == 3, timeout=30)
    # the writer thread counts the drops, then warns: wait for the warning too
    wait_for("the warning", lambda: "capture record(s) dropped" in caplog.text, timeout=30)
    assert capture.failed == 3 and capture.written == 0
    assert "NoSuchBucket" in caplog.text and "3 capture record(s) dropped" in caplog.text

    aws_env("s3").create_bucket(Bucket=BUCKET)  # the same writer, once the bucket is there
    later = time.time()
    for n in range(3, 5):
        capture.offer(record(n, later))
    capture.close()
    found = objects(aws_env)
    ids = [
        json.loads(line)["eventMetadata"]["inferenceId"]
        for body in found.values()
        for line in body.splitlines()
    ]
    assert ids == ["id-3", "id-4"]
    assert (capture.written, capture.failed, drops.count) == (2, 3, 3)


def test_a_drop_is_counted_once_its_warning_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever waits on the drop count (the worker's metrics, a test) finds the warning that
    says why already in the log: the writer warns first, then counts."""
    caplog.set_level(logging.WARNING, "mlcicd.serving.capture")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    warned_when_counted: list[bool] = []
    capture = CaptureWriter(
        CaptureSpec(destination=str(blocked / "data-capture")),
        "iris",
        "w1",
        lambda: warned_when_counted.append("capture record(s) dropped" in caplog.text),
    )
    capture.offer(record(0))
    capture.close()
    assert warned_when_counted == [True]


@pytest.mark.integration
def test_an_unreachable_s3_fails_a_write_in_seconds_and_the_writer_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens where S3 should be (a closed port on loopback): each file fails after
    the capture client's two attempts, its records counted, and the next file is tried."""
    port = free_port()  # not bind(0)'s: another process could take that one meanwhile
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (
        ("MLCICD_AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials"),
    ):
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING, "mlcicd.serving.capture")
    drops = Drops()
    capture = writer(f"s3://{BUCKET}/runs/data-capture", drops)
    config = (
        capture.store.client.meta.config
    )  # capture's own client, not the usual 60 s and 6 attempts
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (
        2,
        10,
        2,
    )
    try:
        for n in range(3):
            capture.offer(record(n))
        wait_for(
            "3 capture drops", lambda: drops.count == 3, timeout=30
        )  # generous: a shared machine is slow at times
        assert (capture.written, capture.failed) == (0, 3)
        assert "Could not connect to the endpoint URL" in caplog.text
        assert "3 capture record(s) dropped" in caplog.text

        later = time.time()
        for n in range(3, 5):  # the writer goes on: the next file is tried, and fails the same way
            capture.offer(record(n, later))
        wait_for("5 capture drops", lambda: drops.count == 5, timeout=30)
        assert (capture.written, capture.failed) == (0, 5)
    finally:
        capture.close()


def test_the_serving_config_carries_an_s3_destination() -> None:
    variant = VariantSpec(name="A", model_dir="/m", code_dir="/c")
    capture = CaptureSpec(
        destination=f"s3://{BUCKET}/runs/ml-cicd-pipeline-artifacts/data-capture",
        sampling_percentage=20,
    )
    config = ServingConfig(name="cfg", variants=(variant,), capture=capture)
    assert ServingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="names no bucket"):
        ServingConfig(name="cfg", variants=(variant,), capture=CaptureSpec(destination="s3:///x"))


def test_a_config_json_of_an_earlier_version_still_loads() -> None:
    written: dict[str, Any] = {
        "format": 1,
        "name": "cfg",
        "endpoint_name": "iris",
        "variants": [{"name": "A", "model_dir": "/m", "code_dir": "/c"}],
        "capture": {"destination": "/srv/endpoints/iris/data-capture", "sampling_percentage": 50.0},
    }
    capture = ServingConfig.from_dict(written).capture
    assert capture == CaptureSpec(
        destination="/srv/endpoints/iris/data-capture", sampling_percentage=50.0
    )
