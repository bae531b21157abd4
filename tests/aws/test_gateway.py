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

from mlcicd.aws.gateway import ApiTarget
from mlcicd.errors import EndpointError
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

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = (200, b'{"predictions": [0]}')
        self.location: str | None = None  # set: the answer redirects there
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateway.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status, answer = gateway.answer
                self.send_response(status)
                if gateway.location:
                    self.send_header("Location", gateway.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST  # a followed 302 arrives as a GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/v1/invocations"
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


@pytest.fixture
def elsewhere() -> Iterator[Gateway]:
    """A server that is not the stack's API (nor the emulator's host): it must hear nothing."""
    stand_in = Gateway("127.0.0.2")
    yield stand_in
    stand_in.close()


def stack(
    aws: AwsClient, gateway: Gateway, auth: str, key_id: str | None = None, name: str = ""
) -> None:
    key = f"  ApiKeyId:\n    Value: {key_id}\n" if key_id else ""
    aws("cloudformation").create_stack(
        StackName=name or "ml-cicd-pipeline",
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


def test_credentials_go_only_to_api_gateway_or_the_emulator(
    aws_env: AwsClient, elsewhere: Gateway
) -> None:
    """A stack whose ApiUrl was changed to another host gets neither the key nor a signature."""
    stack(aws_env, elsewhere, "api_key", name="keyed")
    stack(aws_env, elsewhere, "iam", name="signed")
    for name, extra in (("keyed", ["--api-key", "the-key"]), ("signed", [])):
        args = ["--via-api", "--stack-name", name, *extra, "--body", "[]"]
        result = mlcicd(None, "invoke", ENDPOINT, *args)
        assert result.exit_code == 1, result.output
        assert f"stack {name}'s API URL {elsewhere.url} is not API Gateway's" in result.output
        assert "the-key" not in result.output
    assert elsewhere.requests == []


def test_a_redirect_from_the_api_is_an_answer_not_followed(
    aws_env: AwsClient, gateway: Gateway, elsewhere: Gateway
) -> None:
    """urllib follows a 302 to any host with every header but the body's: the key with it."""
    stack(aws_env, gateway, "api_key")
    gateway.answer = (302, b"{}")
    gateway.location = elsewhere.url
    result = mlcicd(None, "invoke", ENDPOINT, "--via-api", "--api-key", "the-key", "--body", "[]")
    assert result.exit_code == 1, result.output
    assert f"{ENDPOINT} answered 302" in result.output
    assert [headers["x-api-key"] for _, headers, _ in gateway.requests] == ["the-key"]
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/invocations", True),
        ("https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn/v1/invocations", True),
        ("http://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/invocations", False),
        ("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com:8443/v1/invocations", False),
        ("https://a1.execute-api.eu-west-1.amazonaws.com.evil.example/v1/invocations", False),
        ("https://evil.example/a1.execute-api.eu-west-1.amazonaws.com/v1/invocations", False),
    ],
)
def test_only_an_execute_api_url_over_https_is_a_target(
    monkeypatch: pytest.MonkeyPatch, url: str, ok: bool
) -> None:
    monkeypatch.delenv("MLCICD_AWS_ENDPOINT_URL", raising=False)
    outputs = {"ApiUrl": url, "ApiAuth": "iam", "ApiEndpointName": ENDPOINT}
    if ok:
        assert ApiTarget.from_outputs(outputs, stack="s", endpoint=ENDPOINT).url == url
    else:
        with pytest.raises(EndpointError, match="not sending credentials to it"):
            ApiTarget.from_outputs(outputs, stack="s", endpoint=ENDPOINT)
