"""Online explanations in Clarify's contract, in process: the response's shape, local accuracy
on every explained record, what cannot be explained, and the hot path left alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from mlcicd.serving import explainers, explanations
from mlcicd.serving.app import InferenceApp
from mlcicd.serving.clarify import ExplainerSettings, clarify_problems
from mlcicd.serving.explainers import EXACT_TOLERANCE, KERNEL_TOLERANCE
from mlcicd.serving.explanations import OnlineExplainer
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from mlcicd.shapes import baseline_csv
from tests.helpers import IrisModel
from tests.serving.helpers import FULL_HANDLERS, NO_HANDLERS, call_asgi, write_code

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]
EXPLAIN = {"X-Amzn-SageMaker-Enable-Explanations": "`true`"}

# A model shap cannot read exactly (wrapped): explained through predict_fn's numbers, if any.
OPAQUE = """
    import joblib, os

    class Opaque:
        def __init__(self, model):
            self.inner = model

    def model_fn(model_dir):
        return Opaque(joblib.load(os.path.join(model_dir, "model.joblib")))
"""
# predict_fn answers labels only: nothing numeric to explain through KernelSHAP
LABELS_ONLY = (
    OPAQUE
    + """
    def predict_fn(data, model):
        names = ["setosa", "versicolor", "virginica"]
        return [names[int(v)] for v in model.inner.predict(data)]
"""
)
# probabilities from predict_fn: KernelSHAP
OPAQUE_PROBABILITIES = (
    OPAQUE
    + """
    def predict_fn(data, model):
        return {"probabilities": model.inner.predict_proba(data).tolist()}
"""
)


def clarify(iris: IrisModel, **inference: Any) -> dict[str, Any]:
    """The ClarifyExplainerConfig a deploy gives: the k-means-free baseline of 5 rows."""
    return {
        "EnableExplanations": "`false`",
        "ShapConfig": {"ShapBaselineConfig": {"ShapBaseline": baseline_csv(iris.X[::30])}},
        "InferenceConfig": {"FeatureHeaders": FEATURES, **inference},
    }


def explained_app(
    code_dir: Path, model_dir: Path, config: dict[str, Any], script: str = NO_HANDLERS
) -> tuple[InferenceApp, OnlineExplainer]:
    handlers = load_handlers(write_code(code_dir, script))
    variant = LoadedVariant("AllTraffic", handlers, handlers.load_model(model_dir))
    explainer = OnlineExplainer(variant, ExplainerSettings.from_clarify(config))
    app = InferenceApp([variant], endpoint_name="iris", explainers={variant: explainer})
    return app, explainer


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory: pytest.TempPathFactory, iris: IrisModel) -> Path:
    directory = tmp_path_factory.mktemp("forest")
    model = RandomForestClassifier(n_estimators=100, random_state=0)
    joblib.dump(model.fit(iris.X, iris.model.predict(iris.X)), directory / "model.joblib")
    return directory


def attributions(answer: dict[str, Any]) -> list[np.ndarray | None]:
    """Each record's attributions as (features, labels), None where it was not explained."""
    out: list[np.ndarray | None] = []
    for record in answer["explanations"]["kernel_shap"]:
        if record is None:
            out.append(None)
            continue
        assert [f["feature_header"] for f in record] == FEATURES
        out.append(np.array([f["attributions"][0]["attribution"] for f in record]))
    return out


def assert_adds_up(values: list[np.ndarray | None], outputs: np.ndarray, tolerance: float) -> None:
    """Local accuracy without trusting the explainer's expected value: output minus the sum of
    the attributions is the same constant (the expected value) for every record."""
    sums = np.array([v.sum(axis=0) for v in values if v is not None])
    base = outputs - sums
    assert np.max(np.abs(base - base[0])) <= tolerance


def test_linear_model_answer_in_clarifys_shape_adds_up_exactly(
    code_dir: Path, iris: IrisModel
) -> None:
    app, explainer = explained_app(code_dir, iris.model_dir, clarify(iris))
    response = call_asgi(
        app,
        body="\n".join(",".join(map(str, r)) for r in ROWS),
        headers={"Content-Type": "text/csv", "Accept": "text/csv", **EXPLAIN},
    )
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-mlcicd-explainer"] == "linear; output=margin"
    answer = response.json()
    assert set(answer) == {"version", "predictions", "label_headers", "explanations"}
    assert answer["version"] == "1.0"
    assert answer["predictions"]["content_type"] == "text/csv"
    labels = [int(float(v)) for v in answer["predictions"]["data"].split()]
    assert labels == iris.model.predict(np.array(ROWS)).tolist()
    assert answer["label_headers"] == ["0", "1", "2"]
    values = attributions(answer)
    assert all(v is not None and v.shape == (4, 3) for v in values)
    assert_adds_up(values, iris.model.decision_function(np.array(ROWS)), EXACT_TOLERANCE)
    assert explainer.choice is not None and explainer.choice.explainer == "linear"


def test_forest_is_explained_exactly_on_its_probabilities(
    code_dir: Path, iris: IrisModel, forest_dir: Path
) -> None:
    app, _ = explained_app(code_dir, forest_dir, clarify(iris))
    response = call_asgi(
        app, body=json.dumps(ROWS), headers={"Content-Type": "application/json", **EXPLAIN}
    )
    assert response.status == 200, response.body
    assert response.headers["x-mlcicd-explainer"] == "tree; output=probability"
    forest = joblib.load(forest_dir / "model.joblib")
    assert_adds_up(
        attributions(response.json()), forest.predict_proba(np.array(ROWS)), EXACT_TOLERANCE
    )


def test_a_custom_predict_fn_goes_through_kernel_shap_within_its_tolerance(
    code_dir: Path, iris: IrisModel
) -> None:
    app, _ = explained_app(code_dir, iris.model_dir, clarify(iris), OPAQUE_PROBABILITIES)
    response = call_asgi(app, body=json.dumps(ROWS), headers=EXPLAIN)
    assert response.status == 200, response.body
    assert response.headers["x-mlcicd-explainer"] == "kernel; output=probability"
    assert_adds_up(
        attributions(response.json()), iris.model.predict_proba(np.array(ROWS)), KERNEL_TOLERANCE
    )


def test_enable_explanations_picks_records_by_the_models_answer(
    code_dir: Path, iris: IrisModel
) -> None:
    """As Clarify: the expression runs on each record of the answer (a CSV line as an array);
    the others are null, and none explained is an empty object."""
    app, _ = explained_app(code_dir, iris.model_dir, clarify(iris))
    body = "\n".join(",".join(map(str, r)) for r in ROWS)
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    picked = call_asgi(
        app, body=body, headers={**csv, "X-Amzn-SageMaker-Enable-Explanations": "[0] > `1.5`"}
    ).json()
    labels = iris.model.predict(np.array(ROWS))
    assert [v is not None for v in attributions(picked)] == [bool(x == 2) for x in labels]
    none = call_asgi(
        app, body=body, headers={**csv, "X-Amzn-SageMaker-Enable-Explanations": "[0] > `5`"}
    ).json()
    assert none["explanations"] == {}
    bad = call_asgi(
        app, body=body, headers={**csv, "X-Amzn-SageMaker-Enable-Explanations": "[0] >"}
    )
    assert bad.status == 400 and "not a JMESPath expression" in bad.json()["message"]


@pytest.mark.parametrize(
    ("script", "body", "headers", "message"),
    [
        (LABELS_ONLY, json.dumps(ROWS), {}, "predict_fn returns labels only"),
        (NO_HANDLERS, json.dumps([["5.1", "3.5", "1.4", "wide"]]), {}, "petal_width holds text"),
        (NO_HANDLERS, json.dumps(ROWS * 2), {}, "8 records to explain; an explained request"),
        (NO_HANDLERS, json.dumps([[5.1, 3.5, 1.4]]), {}, "must have 4 values"),
        (NO_HANDLERS, json.dumps(ROWS) + " " * 2**20, {}, "over the explainer's limit of 1048576"),
    ],
    ids=["labels-only", "text-feature", "too-many-records", "width", "payload"],
)
def test_what_cannot_be_explained_is_a_400_naming_what_is_missing(
    code_dir: Path,
    iris: IrisModel,
    script: str,
    body: str,
    headers: dict[str, str],
    message: str,
) -> None:
    settings = clarify(iris, MaxRecordCount=4, MaxPayloadInMB=1)
    app, _ = explained_app(code_dir, iris.model_dir, settings, script)
    response = call_asgi(app, body=body, headers={**EXPLAIN, **headers})
    assert response.status == 400, response.body
    assert message in response.json()["message"]
    # the Runtime API path: SageMaker's ModelError carrying the 400
    runtime = call_asgi(app, path="/endpoints/iris/invocations", body=body, headers=EXPLAIN)
    assert runtime.status == 424 and message in runtime.json()["OriginalMessage"]


def test_the_header_on_an_endpoint_without_an_explainer_says_how_to_get_one(
    code_dir: Path, iris: IrisModel
) -> None:
    handlers = load_handlers(write_code(code_dir, NO_HANDLERS))
    app = InferenceApp([LoadedVariant("AllTraffic", handlers, iris.model)], endpoint_name="iris")
    response = call_asgi(app, body=json.dumps(ROWS), headers=EXPLAIN)
    assert response.status == 400
    assert "explain.online is off" in response.json()["message"]


def test_requests_without_the_header_run_no_explainer_code(
    code_dir: Path, iris: IrisModel, forest_dir: Path
) -> None:
    """The hot path: not one call into the explainer modules or shap for a plain request to
    an endpoint that explains — while the same request with the header does call them (and
    not to build the explainer: that happened at load)."""
    app, _ = explained_app(code_dir, forest_dir, clarify(iris), FULL_HANDLERS)
    watched = (explanations.__file__, explainers.__file__, "/shap/")
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and any(w in frame.f_code.co_filename for w in watched):
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    body = json.dumps({"instances": ROWS})
    sys.setprofile(profile)
    try:
        plain = call_asgi(app, body=body, headers={"Content-Type": "application/json"})
    finally:
        sys.setprofile(None)
    assert plain.status == 200 and "x-mlcicd-explainer" not in plain.headers
    assert set(plain.json()) == {"labels", "probabilities"}
    assert calls == []
    sys.setprofile(profile)
    try:
        asked = call_asgi(app, body=body, headers={"Content-Type": "application/json", **EXPLAIN})
    finally:
        sys.setprofile(None)
    assert asked.status == 200, asked.body
    assert any("explanations.py:explain" in c for c in calls)
    assert any("/shap/" in c for c in calls)
    # built once, at load: the request only computes values with it
    assert not any(c.endswith(("explainers.py:build", "explainers.py:choose")) for c in calls)
    assert any(c.endswith("explainers.py:shap_values") for c in calls)


def test_a_clarify_config_that_cannot_work_is_refused_with_its_key(iris: IrisModel) -> None:
    good = clarify(iris)
    assert clarify_problems(good) == []
    no_baseline = {**good, "ShapConfig": {"ShapBaselineConfig": {"ShapBaselineUri": "s3://b/k"}}}
    assert "ShapBaseline" in clarify_problems(no_baseline)[0]
    wrong_headers = {**good, "InferenceConfig": {"FeatureHeaders": FEATURES[:3]}}
    assert "names 3 features" in clarify_problems(wrong_headers)[0]
    long = {**good, "EnableExplanations": "`true` && " * 10}
    assert "1 to 64 characters" in clarify_problems(long)[0]


def test_the_serving_config_carries_the_explainer_and_refuses_a_bad_one(
    iris: IrisModel,
) -> None:
    from mlcicd.serving.config import ServingConfig, VariantSpec

    variant = VariantSpec(name="AllTraffic", model_dir="/m", code_dir="/c")
    config = ServingConfig(name="c", variants=(variant,), explainer=clarify(iris))
    again = ServingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.explainer == clarify(iris)
    with pytest.raises(ValueError, match=r"explainer: InferenceConfig\.MaxRecordCount"):
        ServingConfig(name="c", variants=(variant,), explainer=clarify(iris, MaxRecordCount=0))
