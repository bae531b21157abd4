"""The ASGI app in process: routes, codecs over HTTP semantics, SageMaker Runtime shapes."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mlcicd.serving.app import InferenceApp
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from mlcicd.serving.metrics import VariantMetrics
from tests.helpers import IrisModel
from tests.serving.helpers import (
    CONTEXT_HANDLERS,
    NO_HANDLERS,
    PREDICT_FN_RAISES,
    call_asgi,
    write_code,
)

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def make_app(
    code_dir: Path, iris: IrisModel, script: str = NO_HANDLERS, **kwargs: object
) -> InferenceApp:
    handlers = load_handlers(write_code(code_dir, script))
    variant = LoadedVariant("AllTraffic", handlers, handlers.load_model(iris.model_dir))
    return InferenceApp([variant], endpoint_name="iris", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def app(code_dir: Path, iris: IrisModel) -> InferenceApp:
    return make_app(code_dir, iris)


def totals(app: InferenceApp) -> VariantMetrics:
    """The app's counts of its one variant."""
    return app.fleet.metrics["AllTraffic"]


def expected(iris: IrisModel, rows: list[list[float]] = ROWS) -> list[int]:
    return [int(v) for v in iris.model.predict(np.array(rows))]


def test_ping(app: InferenceApp) -> None:
    assert call_asgi(app, "GET", "/ping").status == 200
    app.healthy = False
    response = call_asgi(app, "GET", "/ping")
    assert response.status == 503 and "not loaded" in response.json()["message"]


def test_execution_parameters_as_sagemaker_containers_answer_them(
    code_dir: Path, iris: IrisModel
) -> None:
    """A batch transform job with MaxConcurrentTransforms=0 asks the container: as many
    requests at once as there are workers, several records to a request, the payload limit."""
    app = make_app(code_dir, iris, workers=3, max_payload_bytes=20 * 1024 * 1024)
    response = call_asgi(app, "GET", "/execution-parameters")
    assert response.status == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 20,
    }
    small = make_app(code_dir / "small", iris, max_payload_bytes=4096)
    assert call_asgi(small, "GET", "/execution-parameters").json()["MaxPayloadInMB"] == 1
    response = call_asgi(app, "POST", "/execution-parameters", body="{}")
    assert response.status == 405 and response.headers["allow"] == "GET, HEAD"


def test_json_in_json_out(app: InferenceApp, iris: IrisModel) -> None:
    response = call_asgi(
        app, body=json.dumps(ROWS), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected(iris)


def test_csv_in_csv_out(app: InferenceApp, iris: IrisModel) -> None:
    body = "\n".join(",".join(map(str, r)) for r in ROWS)
    response = call_asgi(app, body=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert response.status == 200 and response.headers["content-type"] == "text/csv"
    assert [int(v) for v in response.body.decode().split()] == expected(iris)


def test_npy_in_npy_out(app: InferenceApp, iris: IrisModel) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array(ROWS))
    response = call_asgi(
        app,
        body=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    assert response.status == 200
    assert np.load(io.BytesIO(response.body)).tolist() == expected(iris)


def test_missing_or_any_accept_answers_json(app: InferenceApp) -> None:
    for accept in ({}, {"Accept": "*/*"}):
        response = call_asgi(app, body="1,2,3,4", headers={"Content-Type": "text/csv", **accept})
        assert response.headers["content-type"] == "application/json"


def test_default_accept_from_the_environment(
    code_dir: Path, iris: IrisModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    app = make_app(code_dir, iris)
    response = call_asgi(app, body="[[1, 2, 3, 4]]", headers={"Content-Type": "application/json"})
    assert response.headers["content-type"] == "text/csv"


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({"Content-Type": "text/plain"}, "hello", 415, "text/plain"),
        (
            {"Content-Type": "application/json", "Accept": "text/html"},
            "[[1,2,3,4]]",
            406,
            "text/html",
        ),
        ({"Content-Type": "application/json"}, "[[1,2,3,4], [1,2]]", 400, "same length"),
        ({"Content-Type": "application/json"}, "{not json", 400, "not valid JSON"),
        ({"Content-Type": "text/csv"}, "1,2,3,4\n1,2", 400, "number of columns"),
        ({"Content-Type": "application/json"}, "[[1, 2, 3]]", 400, "4 values"),
        ({"Content-Type": "application/x-npy"}, "[[1,2,3,4]]", 400, "npy"),
    ],
)
def test_client_errors(
    app: InferenceApp, headers: dict[str, str], body: str, status: int, message: str
) -> None:
    response = call_asgi(app, body=body, headers=headers)
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["message"]
    assert totals(app).errors_4xx == 1 and totals(app).errors_5xx == 0


def test_body_over_the_limit_is_413_before_reading(code_dir: Path, iris: IrisModel) -> None:
    app = make_app(code_dir, iris, max_payload_bytes=100)
    response = call_asgi(
        app, body="[" + "1," * 100 + "1]", headers={"Content-Type": "application/json"}
    )
    assert response.status == 413 and "limit of 100 bytes" in response.json()["message"]
    assert "connection" not in response.headers  # the rest is discarded, the connection kept
    huge = call_asgi(
        app, body="[]", headers={"Content-Type": "application/json", "Content-Length": str(1 << 30)}
    )
    assert huge.status == 413 and huge.headers["connection"] == "close"  # not worth discarding


def test_chunked_body_over_the_limit(code_dir: Path, iris: IrisModel) -> None:
    app = make_app(code_dir, iris, max_payload_bytes=100)
    response = call_asgi(
        app, headers={"Content-Type": "application/json"}, chunks=[b"[" + b"1," * 40] * 3 + [b"1]"]
    )
    assert response.status == 413 and "connection" not in response.headers


def test_unknown_path_and_wrong_method(app: InferenceApp) -> None:
    response = call_asgi(app, "GET", "/predict")
    assert response.status == 404 and "/predict" in response.json()["message"]
    response = call_asgi(app, "GET", "/invocations")
    assert response.status == 405 and response.headers["allow"] == "POST"
    response = call_asgi(app, "DELETE", "/ping")
    assert response.status == 405


def test_model_error_is_500_with_the_message(code_dir: Path, iris: IrisModel) -> None:
    app = make_app(code_dir, iris, PREDICT_FN_RAISES)
    response = call_asgi(app, body="[[-1, 2, 3, 4]]", headers={"Content-Type": "application/json"})
    assert response.status == 500
    assert response.json() == {
        "error": "ModelError",
        "message": "predict_fn raised ZeroDivisionError: negative sepals break the model "
        "(inference.py, line 9)",
    }
    assert (
        call_asgi(app, body="[[1, 2, 3, 4]]", headers={"Content-Type": "application/json"}).status
        == 200
    )
    assert (totals(app).invocations, totals(app).errors_5xx) == (2, 1)


def test_runtime_path_headers(app: InferenceApp, iris: IrisModel) -> None:
    response = call_asgi(
        app,
        path="/endpoints/iris/invocations",
        body=json.dumps(ROWS),
        headers={
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
        },
    )
    assert response.status == 200 and response.json() == expected(iris)
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert len(response.headers["x-amzn-requestid"]) == 36
    # As on SageMaker, the model's code decides what comes back; the default handlers send nothing.
    assert "x-amzn-sagemaker-custom-attributes" not in response.headers


def test_custom_attributes_set_by_the_handler(code_dir: Path, iris: IrisModel) -> None:
    app = make_app(code_dir, iris, CONTEXT_HANDLERS)
    response = call_asgi(
        app,
        path="/endpoints/iris/invocations",
        body="[[1, 2, 3, 4]]",
        headers={
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
        },
    )
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "seen=trace=1"


def test_runtime_path_unknown_endpoint(app: InferenceApp) -> None:
    response = call_asgi(app, path="/endpoints/other/invocations", body="[[1,2,3,4]]")
    assert response.status == 400
    assert response.headers["x-amzn-errortype"] == "ValidationError"
    assert response.json()["Message"] == "Endpoint other of account local not found."


def test_runtime_path_model_error_shape(code_dir: Path, iris: IrisModel) -> None:
    app = make_app(code_dir, iris, PREDICT_FN_RAISES)
    response = call_asgi(
        app,
        path="/endpoints/iris/invocations",
        body="[[-1, 2, 3, 4]]",
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 424
    assert response.headers["x-amzn-errortype"] == "ModelError"
    error = response.json()
    assert error["OriginalStatusCode"] == 500
    assert "negative sepals" in error["OriginalMessage"]
    assert error["Message"].startswith("Received server error (500) from primary with message")


def test_runtime_path_client_error_is_a_model_error_with_its_status(app: InferenceApp) -> None:
    response = call_asgi(
        app, path="/endpoints/iris/invocations", body="hi", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 424 and response.json()["OriginalStatusCode"] == 415
    assert totals(app).errors_4xx == 1


def test_draining_answers_with_connection_close(app: InferenceApp) -> None:
    app.draining = True
    response = call_asgi(app, body="[[1, 2, 3, 4]]", headers={"Content-Type": "application/json"})
    assert response.status == 200 and response.headers["connection"] == "close"


def test_counters(app: InferenceApp) -> None:
    for body in ("[[1, 2, 3, 4]]", "[[1, 2, 3, 4]]", "oops"):
        call_asgi(app, body=body, headers={"Content-Type": "application/json"})
    counts = app.metrics.snapshot()["series"]["|AllTraffic"]
    assert counts["Invocations"] == 3 and counts["Invocation4XXErrors"] == 1
    assert counts["ModelLatencySum"] > 0 and sum(counts["ModelLatency"].values()) == 2
    assert sum(counts["OverheadLatency"].values()) == 2


def test_metrics_in_prometheus_format(app: InferenceApp) -> None:
    for body in ("[[1, 2, 3, 4]]", "[[1, 2, 3, 4]]", "oops"):
        call_asgi(app, body=body, headers={"Content-Type": "application/json"})
    response = call_asgi(app, "GET", "/metrics")
    assert response.status == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.body.decode()
    assert 'Invocations{endpoint="iris",variant="AllTraffic"} 3' in text
    assert 'Invocation4XXErrors{endpoint="iris",variant="AllTraffic"} 1' in text
    assert 'Invocation5XXErrors{endpoint="iris",variant="AllTraffic"} 0' in text
    assert 'ModelLatency_count{endpoint="iris",variant="AllTraffic"} 2' in text
    assert 'OverheadLatency_bucket{endpoint="iris",variant="AllTraffic",le="+Inf"} 2' in text


def test_every_answer_names_its_variant(app: InferenceApp) -> None:
    response = call_asgi(app, body="[[1, 2, 3, 4]]", headers={"Content-Type": "application/json"})
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    response = call_asgi(app, body="[[1, 2]]", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"


def test_weights_change_in_place(tmp_path: Path, iris: IrisModel) -> None:
    variants = []
    for name in ("A", "B"):
        handlers = load_handlers(
            write_code(tmp_path / name, f"def predict_fn(data, model):\n    return '{name}'\n")
        )
        variants.append(LoadedVariant(name, handlers, None, 1.0))
    app = InferenceApp(variants, endpoint_name="ab", config_name="cfg")
    app.set_weights("cfg", {"A": 0.0, "B": 2.0})
    seen = Counter(
        call_asgi(app, body="[1]", headers={"Content-Type": "application/json"}).json()
        for _ in range(50)
    )
    assert seen == {"B": 50}
    app.set_weights("other-config", {"B": 0.0})  # another config's weights change nothing
    assert app.fleet.single is not None and app.fleet.single.name == "B"


def test_variants_by_weight_and_by_target(tmp_path: Path, iris: IrisModel) -> None:
    variants = []
    for name, weight in (("A", 3.0), ("B", 1.0)):
        handlers = load_handlers(
            write_code(tmp_path / name, f"def predict_fn(data, model):\n    return '{name}'\n")
        )
        variants.append(LoadedVariant(name, handlers, None, weight))
    app = InferenceApp(variants, endpoint_name="ab")
    seen = Counter(
        call_asgi(
            app,
            path="/endpoints/ab/invocations",
            body="[1]",
            headers={"Content-Type": "application/json"},
        ).headers["x-amzn-invoked-production-variant"]
        for _ in range(400)
    )
    assert seen.keys() == {"A", "B"} and 220 < seen["A"] < 380
    response = call_asgi(
        app,
        path="/endpoints/ab/invocations",
        body="[1]",
        headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Variant": "B"},
    )
    assert response.json() == "B"
    response = call_asgi(
        app,
        path="/endpoints/ab/invocations",
        body="[1]",
        headers={"X-Amzn-SageMaker-Target-Variant": "C"},
    )
    assert response.status == 400 and response.headers["x-amzn-errortype"] == "ValidationError"


def test_a_bug_in_the_app_is_still_an_answer(
    app: InferenceApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(app, "_invoke", broken)
    response = call_asgi(app, body="[[1, 2, 3, 4]]")
    assert response.status == 500 and "bug" in response.json()["message"]
