"""`mlcicd invoke NAME --via-api`: the stack's outputs (in moto's CloudFormation) say where
the API is and how to authenticate; the request goes over a real socket to a stand-in for
API Gateway on loopback, which records what it got — the usage plan's key read from moto's
API Gateway, or a SigV4 signature for execute-api."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.aws.conftest import AwsClient
from tests.helpers import mlcicd

pytestmark = pytest.mark.integration

ENDPOINT = "iris-classifier-endpoint"
STACK_TEMPLATE = """
Resources:
  Topic:
    Type: AWS::SNS::Topic
Outputs:
  ApiUrl:
    Value: {url}
  ApiAuth:
    Value: {auth}
  ApiEndpointName:
    Value: {endpoint}
{key}
"""


class Gateway:
    """An HTTP server standing in for the API's stage: answers every POST with ``answer``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = (200, b'{"predictions": [0]}')
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateway.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status, answer = gateway.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/invocations"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    stand_in = Gateway()
    yield stand_in
    stand_in.close()


def stack(aws: AwsClient, gateway: Gateway, auth: str, key_id: str | None = None) -> None:
    key = f"  ApiKeyId:\n    Value: {key_id}\n" if key_id else ""
    aws("cloudformation").create_stack(
        StackName="ml-cicd-pipeline",
        TemplateBody=STACK_TEMPLATE.format(url=gateway.url, auth=auth, endpoint=ENDPOINT, key=key),
    )


def test_an_api_key_is_read_from_api_gateway_and_sent(aws_env: AwsClient, gateway: Gateway) -> None:
    key = aws_env("apigateway").create_api_key(name="ml-cicd-pipeline-api-key", enabled=True)
    stack(aws_env, gateway, "api_key", key["id"])
    result = mlcicd(None, "invoke", ENDPOINT, "--via-api", "--body", "[[5.1, 3.5, 1.4, 0.2]]")
    assert result.exit_code == 0, result.output
    assert result.output == '{"predictions": [0]}\n'
    ((path, headers, body),) = gateway.requests
    assert (path, body) == ("/v1/invocations", b"[[5.1, 3.5, 1.4, 0.2]]")
    assert headers["x-api-key"] == key["value"]
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers


def test_iam_auth_signs_for_execute_api(aws_env: AwsClient, gateway: Gateway) -> None:
    stack(aws_env, gateway, "iam")
    result = mlcicd(None, "invoke", ENDPOINT, "--via-api", "--body", "[[1, 2, 3, 4]]")
    assert result.exit_code == 0, result.output
    ((_, headers, _),) = gateway.requests
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/execute-api/aws4_request" in headers["authorization"]
    assert "x-api-key" not in headers


def test_what_the_api_refuses_is_one_line(aws_env: AwsClient, gateway: Gateway) -> None:
    stack(aws_env, gateway, "api_key")
    gateway.answer = (403, b'{"message": "Forbidden"}')
    result = mlcicd(None, "invoke", ENDPOINT, "--via-api", "--api-key", "k", "--body", "[]")
    assert result.exit_code == 1
    assert result.output == f"error: {ENDPOINT} answered 403: Forbidden\n"
    assert gateway.requests[0][1]["x-api-key"] == "k"


def test_another_endpoint_or_no_api_is_refused_before_sending(
    aws_env: AwsClient, gateway: Gateway
) -> None:
    stack(aws_env, gateway, "iam")
    other = mlcicd(None, "invoke", "fraud-endpoint", "--via-api", "--body", "[]")
    assert other.exit_code != 0
    assert f"stack ml-cicd-pipeline's API calls endpoint {ENDPOINT}, not fraud-endpoint" in (
        other.output
    )
    aws_env("cloudformation").create_stack(
        StackName="no-api", TemplateBody="Resources:\n  T:\n    Type: AWS::SNS::Topic\n"
    )
    none = mlcicd(None, "invoke", ENDPOINT, "--via-api", "--stack-name", "no-api", "--body", "[]")
    assert none.exit_code == 2, none.output
    assert "stack no-api has no API in front of its endpoint" in none.output
    assert gateway.requests == []
