"""``python -m mlcicd.aws.load_check``, the staging load check on SageMaker's runtime API:
against moto's server (which answers every InvokeEndpoint with a canned body), and with
botocore's Stubber for the errors and throttling moto never returns."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.response import StreamingBody

from mlcicd.aws import load_check
from mlcicd.endpoints.sagemaker_runtime import runtime_client
from tests.aws.conftest import AwsClient
from tests.aws.stubs import OperationStubber

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint-staging"
BODY = "[[5.1, 3.5, 1.4, 0.2]]"


def test_sends_every_request_signed_through_the_runtime_and_reports_its_figures(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    payload = tmp_path / "row.json"
    payload.write_text(BODY)
    command = [
        sys.executable,
        "-m",
        "mlcicd.aws.load_check",
        "--endpoint-name",
        ENDPOINT,
        "--requests",
        "40",
        "--concurrency",
        "4",
        "--payload",
        str(payload),
        "--p99-ms",
        "60000",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["endpoint"], figures["requests"], figures["errors"]) == (ENDPOINT, 40, 0)
    assert figures["error_rate"] == 0.0 and figures["first_error"] is None
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]


def test_a_missed_latency_bound_fails_with_the_figure_against_it(
    aws_env: AwsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code = load_check.main(
        ["--endpoint-name", ENDPOINT, "--requests", "5", "--body", BODY, "--p99-ms", "0.0001"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["requests"] == 5  # the figures are printed all the same
    assert "> staging.load.p99_ms 0.0001 ms" in captured.err


def test_errors_count_against_the_error_rate(
    aws_env: AwsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """Throttling and a model error (moto never returns them): each request is tried once
    and counted, the first error named."""
    # main()'s own client (cached): the stub answers its calls.
    with OperationStubber(runtime_client(), "InvokeEndpoint") as runtime:
        runtime.add_client_error("invoke_endpoint", "ThrottlingException", http_status_code=400)
        runtime.add_client_error("invoke_endpoint", "ModelError", http_status_code=424)
        for _ in range(2):
            answer = StreamingBody(io.BytesIO(b"[0]"), 3)
            runtime.add_response(
                "invoke_endpoint", {"Body": answer, "ContentType": "application/json"}
            )
        code = load_check.main(
            [
                "--endpoint-name",
                ENDPOINT,
                "--requests",
                "4",
                "--concurrency",
                "1",
                "--body",
                BODY,
                "--max-error-rate",
                "0.25",
            ]
        )
    captured = capsys.readouterr()
    assert code == 1
    figures = json.loads(captured.out)
    assert (figures["requests"], figures["errors"], figures["error_rate"]) == (4, 2, 0.5)
    assert figures["first_error"] == "ThrottlingException"
    assert (
        "error rate 50.00% (2 of 4) > staging.load.max_error_rate 25.00% "
        "(first: ThrottlingException)" in captured.err
    )
    assert len(runtime.calls) == 4  # no retries


def test_a_payload_file_that_is_missing_is_named(
    aws_env: AwsClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "tests" / "row.json"
    code = load_check.main(["--endpoint-name", ENDPOINT, "--payload", str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot read the load check's payload {missing}" in err
    assert "staging.load.payload" in err
