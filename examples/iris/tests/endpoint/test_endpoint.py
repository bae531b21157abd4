"""The served model's contract, run by the staging stage against the staging endpoint.

`mlcicd run` deploys the new model to a staging endpoint and runs these tests with its
address in MLCICD_ENDPOINT_URL (`staging.test` in mlcicd.yaml). They call the endpoint as an
application would — over HTTP, through the real server and inference.py — so they catch what
the unit tests cannot: a model that loads but answers wrong, a handler the server cannot
reach, an error that becomes a 500 instead of a 4xx. Without MLCICD_ENDPOINT_URL they skip.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

URL = os.environ.get("MLCICD_ENDPOINT_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="MLCICD_ENDPOINT_URL is not set (no endpoint)")

# Rows of the training data whose species any decent model gets right.
KNOWN = [
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([5.9, 3.0, 4.2, 1.5], "versicolor"),
    ([6.7, 3.0, 5.2, 2.3], "virginica"),
]


def invoke(body: bytes, content_type: str, accept: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{URL}/invocations",
        data=body,
        headers={"Content-Type": content_type, "Accept": accept},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_ping() -> None:
    with urllib.request.urlopen(f"{URL}/ping", timeout=10) as answer:
        assert answer.status == 200


def test_known_rows_get_their_species_json() -> None:
    status, body = invoke(json.dumps([row for row, _ in KNOWN]).encode(), "application/json")
    assert status == 200, body
    result = json.loads(body)
    assert result["labels"] == [species for _, species in KNOWN]
    assert result["predictions"] == [0, 1, 2]
    for probabilities in result["probabilities"]:
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1.0) < 1e-6


def test_known_rows_get_their_species_csv() -> None:
    body = "".join(",".join(map(str, row)) + "\n" for row, _ in KNOWN).encode()
    status, answer = invoke(body, "text/csv", accept="text/csv")
    assert status == 200, answer
    assert answer.decode().split() == [species for _, species in KNOWN]


def test_one_row_and_instances_are_accepted() -> None:
    for payload in (KNOWN[0][0], {"instances": [KNOWN[0][0]]}):
        status, body = invoke(json.dumps(payload).encode(), "application/json")
        assert status == 200, body
        assert json.loads(body)["labels"] == ["setosa"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[[1, 2, 3]]", "application/json"),  # 3 features, not 4
        (b"{not json", "application/json"),
        (b"a,b,c,d\n", "text/csv"),
        (b"<rows/>", "application/xml"),
    ],
    ids=["wrong-width", "bad-json", "not-numbers", "unsupported-type"],
)
def test_bad_input_is_a_client_error(body: bytes, content_type: str) -> None:
    status, answer = invoke(body, content_type)
    assert 400 <= status < 500, (status, answer)
