"""A local endpoint whose artifact store is on S3 writes its data capture there: real
supervisor and worker processes, moto's server on loopback, reached as the project reaches
AWS (``MLCICD_AWS_ENDPOINT_URL`` and the credentials in the environment the workers inherit)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from mlcicd.endpoints import DataCapture
from mlcicd.endpoints.local import LocalEndpointBackend
from tests.aws.conftest import AwsClient, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.endpoints.conftest import endpoint_config
from tests.endpoints.test_updates import ROWS, answer
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import NO_HANDLERS, request

pytestmark = pytest.mark.integration

BUCKET = "mlcicd-endpoint-capture"
PREFIX = "iris-runs/ml-cicd-pipeline-artifacts/data-capture"
KEY_RE = re.compile(
    rf"^{PREFIX}/iris/AllTraffic/(\d{{4}})/(\d\d)/(\d\d)/(\d\d)/\d\d-\d\d-\d{{3}}-g\d+-\d+\.jsonl$"
)
JSON = {"Content-Type": "application/json"}


def captured(aws: AwsClient) -> dict[str, list[dict]]:
    s3 = aws("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {
        key: [
            json.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
        ]
        for key in keys
    }


def test_capture_goes_to_the_s3_store_in_sagemakers_layout(
    tmp_path: Path,
    iris: IrisModel,
    backend: LocalEndpointBackend,
    aws_env: AwsClient,  # noqa: F811
) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    config = replace(
        endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2),
        data_capture=DataCapture(destination=f"s3://{BUCKET}/{PREFIX}"),
    )
    url = backend.deploy(config).url or ""
    for i in range(12):
        headers = {**JSON, "X-Amzn-SageMaker-Inference-Id": f"r{i}"}
        assert request(url, body=json.dumps(ROWS), headers=headers).status == 200

    objects = wait_for(
        "12 captured objects",
        lambda: sum(map(len, (o := captured(aws_env)).values())) == 12 and o,
        timeout=30,
    )
    records = [r for lines in objects.values() for r in lines]
    assert sorted(r["eventMetadata"]["inferenceId"] for r in records) == sorted(
        f"r{i}" for i in range(12)
    )
    for key, lines in objects.items():
        match = KEY_RE.match(key)
        assert match, key
        for r in lines:  # each record sits in the folder of its own hour
            when = datetime.fromisoformat(r["eventMetadata"]["inferenceTime"])
            assert match.groups() == (f"{when:%Y}", f"{when:%m}", f"{when:%d}", f"{when:%H}")
            assert r["eventMetadata"]["variant"] == "AllTraffic" and r["eventMetadata"]["eventId"]
            assert r["captureData"]["endpointInput"] == {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": json.dumps(ROWS),
                "encoding": "JSON",
            }
            assert r["captureData"]["endpointOutput"]["data"] == answer(iris)
    assert not (backend.endpoint_dir("iris") / "data-capture").exists()  # nothing went to disk


def test_a_missing_bucket_fails_no_request_and_is_counted_and_logged(
    tmp_path: Path,
    iris: IrisModel,
    backend: LocalEndpointBackend,
    aws_env: AwsClient,  # noqa: F811
) -> None:
    config = replace(
        endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2),
        data_capture=DataCapture(destination=f"s3://{BUCKET}/{PREFIX}"),
    )
    url = backend.deploy(config).url or ""
    for _ in range(10):
        response = request(url, body=json.dumps(ROWS), headers=JSON)
        assert (response.status, response.body.decode()) == (200, answer(iris))

    def dropped() -> str | None:
        text = request(url, "GET", "/metrics").body.decode()
        return text if 'CaptureDropped{endpoint="iris"} 10' in text else None

    wait_for("a capture drop", dropped, timeout=30)
    log = backend.log_path("iris").read_text()
    assert "NoSuchBucket" in log and "capture record(s) dropped" in log
    assert request(url, body=json.dumps(ROWS), headers=JSON).status == 200  # the workers live on
    assert "Traceback" not in log
