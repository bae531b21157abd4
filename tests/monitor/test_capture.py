"""Captured records, read from a directory or from S3 (moto's server on loopback): the
window, and lines that are skipped — counted, by reason, never a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlcicd.monitor.capture import read_capture
from mlcicd.store import LocalArtifactStore
from tests.aws.conftest import AwsClient, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.monitor.helpers import capture_key, capture_line

NOW = time.time()
GOOD = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
MALFORMED = [
    b"this is not JSON\n",
    b'["a list, not a record"]\n',
    b'{"captureData": {}, "eventMetadata": {"variant": "AllTraffic"}}\n',  # no inferenceTime
    capture_line([[1.0]]).replace(b'"endpointInput"', b'"endpointOutput"'),
    capture_line(b"\x00not npy", content_type="application/x-npy"),
    capture_line([[1, 2]], content_type="application/json").replace(b"[[1, 2]]", b"[[1, 2"),
]


def lines() -> bytes:
    return b"".join(
        [
            capture_line(GOOD),
            capture_line(GOOD, content_type="application/json"),
            *MALFORMED,
            capture_line(GOOD, variant="Shadow", extra={"shadowOf": "AllTraffic"}),
            capture_line(GOOD, at=NOW - 600),  # before the window
        ]
    )


def expect_scan(scan: object) -> None:
    from mlcicd.monitor.capture import CaptureScan

    assert isinstance(scan, CaptureScan)
    assert [(r.variant, r.rows) for r in scan.records] == [
        ("AllTraffic", GOOD),
        ("AllTraffic", GOOD),
    ]
    assert scan.shadow_copies == 1
    assert dict(scan.skipped) == {
        "not a JSON line": 1,
        "not a capture record": 1,
        "no inferenceTime": 1,
        "no endpointInput (output only)": 1,
        "application/x-npy body is not a .npy array": 1,
        "application/json body is not valid JSON": 1,
    }
    assert scan.files == 1  # the file two hours back was not even read


def test_a_directory_is_read_within_the_window(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "capture")
    store.put_bytes(lines(), "iris", capture_key("iris", name="00-00-001-w1").removeprefix("iris/"))
    store.put_bytes(
        capture_line(GOOD, at=NOW - 7200),
        "iris",
        capture_key("iris", at=NOW - 7200).removeprefix("iris/"),
    )
    store.put_bytes(
        capture_line(GOOD), "iris-2", capture_key("iris-2").removeprefix("iris-2/")
    )  # another endpoint
    expect_scan(read_capture(str(tmp_path / "capture"), "iris", since=NOW - 300))


def test_nothing_captured_is_an_empty_scan(tmp_path: Path) -> None:
    scan = read_capture(str(tmp_path / "capture"), "iris", since=NOW - 300)
    assert (scan.files, scan.records, dict(scan.skipped)) == (0, [], {})


@pytest.mark.integration
def test_s3_capture_objects_are_read_through_the_store(aws_env: AwsClient) -> None:  # noqa: F811
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="capture-bucket")
    prefix = "runs/ml-cicd-pipeline-artifacts/data-capture"
    s3.put_object(Bucket="capture-bucket", Key=f"{prefix}/{capture_key('iris')}", Body=lines())
    s3.put_object(
        Bucket="capture-bucket",
        Key=f"{prefix}/{capture_key('iris', at=NOW - 7200)}",
        Body=capture_line(GOOD, at=NOW - 7200),
    )
    s3.put_object(
        Bucket="capture-bucket", Key=f"{prefix}/{capture_key('iris-2')}", Body=capture_line(GOOD)
    )
    expect_scan(read_capture(f"s3://capture-bucket/{prefix}", "iris", since=NOW - 300))
