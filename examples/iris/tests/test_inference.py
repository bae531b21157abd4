from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import inference
import numpy as np
import pytest

if TYPE_CHECKING:
    from conftest import TrainingRun

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


@pytest.fixture(scope="module")
def model(trained: TrainingRun) -> Any:
    return inference.model_fn(str(trained.model_dir))


def invoke(model: Any, body: str | bytes, content_type: str, accept: str) -> str:
    data = inference.input_fn(body, content_type)
    return inference.output_fn(inference.predict_fn(data, model), accept)


def test_json_round_trip(model: Any) -> None:
    body = invoke(model, json.dumps([SETOSA, VIRGINICA]), "application/json", "application/json")
    result = json.loads(body)
    assert result["predictions"] == [0, 2]
    assert result["labels"] == ["setosa", "virginica"]
    assert np.allclose(np.sum(result["probabilities"], axis=1), 1.0)
    assert len(result["probabilities"][0]) == 3


@pytest.mark.parametrize(
    "payload",
    [SETOSA, [SETOSA], {"instances": [SETOSA]}],
    ids=["single-row", "rows", "instances"],
)
def test_json_shapes(model: Any, payload: Any) -> None:
    body = json.dumps(payload).encode()
    data = inference.input_fn(body, "application/json; charset=utf-8")
    assert data.shape == (1, 4) and data.dtype == np.float64
    assert inference.predict_fn(data, model)["labels"] == ["setosa"]


def test_csv_round_trip(model: Any) -> None:
    body = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    assert invoke(model, body.encode(), "text/csv", "text/csv") == "setosa\nvirginica\n"


def test_accept_any_means_json(model: Any) -> None:
    for accept in ("*/*", "", None):
        result = json.loads(invoke(model, json.dumps(SETOSA), "application/json", accept))
        assert result["labels"] == ["setosa"]


def test_bad_content_type_is_named() -> None:
    with pytest.raises(ValueError, match=r"'application/xml'.*application/json, text/csv"):
        inference.input_fn(b"<rows/>", "application/xml")


def test_npy_rows(model: Any) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array(SETOSA, dtype=float))
    assert inference.input_fn(buffer.getvalue(), "application/x-npy").shape == (1, 4)
    with pytest.raises(ValueError, match="invalid NPY body"):
        inference.input_fn(b"\x93NUMPY garbage", "application/x-npy")


def test_bad_accept_is_named() -> None:
    prediction = {"predictions": [0], "probabilities": [[1.0, 0.0, 0.0]], "labels": ["setosa"]}
    with pytest.raises(ValueError, match=r"'text/html'"):
        inference.output_fn(prediction, "text/html")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[[1, 2, 3]]", "application/json"),
        ("1,2,3,4,5\n", "text/csv"),
        ("[1, 2]", "application/json"),
    ],
)
def test_wrong_width_says_4_features(body: str, content_type: str) -> None:
    with pytest.raises(ValueError, match="expected 4 features"):
        inference.input_fn(body, content_type)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{not json", "application/json", "invalid JSON"),
        ('{"rows": []}', "application/json", '"instances"'),
        ("[]", "application/json", "non-empty"),
        ('[["a", 1, 2, 3]]', "application/json", "must be numbers"),
        ("a,b,c,d\n", "text/csv", "must be numbers"),
        ("[NaN, 1, 2, 3]", "application/json", "finite"),
    ],
)
def test_bad_input_is_a_value_error(body: str, content_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inference.input_fn(body, content_type)
