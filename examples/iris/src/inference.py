"""Serve the iris classifier — SageMaker inference handlers.

The serving container (SageMaker's, or `mlcicd`'s local endpoint) calls, per request:

    model = model_fn(model_dir)                          # once, at start-up
    data = input_fn(request_body, request_content_type)  # -> (n, 4) float array
    prediction = predict_fn(data, model)                 # -> dict, see predict_fn
    body = output_fn(prediction, accept)                 # -> str; its type is `accept`

Bad input raises ValueError with a message for the client (the container answers 4xx).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import joblib
import numpy as np

SPECIES = ("setosa", "versicolor", "virginica")
N_FEATURES = 4  # sepal_length, sepal_width, petal_length, petal_width
INPUT_TYPES = ("application/json", "text/csv", "application/x-npy")
OUTPUT_TYPES = ("application/json", "text/csv")


def model_fn(model_dir: str) -> Any:
    """Load the Pipeline that train.py saved."""
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def _media_type(value: str | None) -> str:
    # "application/json; charset=utf-8" -> "application/json"
    return (value or "").split(";")[0].strip().lower()


def _npy_rows(request_body: str | bytes) -> np.ndarray:
    raw = request_body.encode("latin-1") if isinstance(request_body, str) else request_body
    try:
        data = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"invalid NPY body: {exc}") from exc
    data = np.atleast_2d(np.asarray(data, dtype=float))
    if data.ndim != 2 or data.shape[1] != N_FEATURES:
        raise ValueError(
            f"expected rows of {N_FEATURES} features, got an array of shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ValueError("features must be finite numbers")
    return data


def input_fn(request_body: str | bytes, request_content_type: str) -> np.ndarray:
    """Decode rows of 4 features into an (n, 4) float array.

    application/json: `[[5.1, 3.5, 1.4, 0.2], ...]`, one row `[5.1, 3.5, 1.4, 0.2]`
    or `{"instances": [...]}`. text/csv: one row per line, no header.
    application/x-npy: a NumPy array of shape (n, 4) or (4,).
    """
    content_type = _media_type(request_content_type)
    if content_type not in INPUT_TYPES:
        raise ValueError(
            f"unsupported content type {request_content_type!r}; "
            f"supported: {', '.join(INPUT_TYPES)}"
        )
    if content_type == "application/x-npy":
        return _npy_rows(request_body)
    try:
        text = request_body.decode() if isinstance(request_body, bytes) else request_body
    except UnicodeDecodeError as exc:
        raise ValueError(f"the {content_type} body is not UTF-8: {exc}") from exc

    if content_type == "application/json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc}") from exc
        if isinstance(rows, dict):
            if "instances" not in rows:
                raise ValueError('a JSON object must have an "instances" key')
            rows = rows["instances"]
        if isinstance(rows, list) and rows and not isinstance(rows[0], list):
            rows = [rows]  # a single row
    else:  # text/csv
        rows = [line.split(",") for line in text.splitlines() if line.strip()]

    if not isinstance(rows, list) or not rows:
        raise ValueError(f"expected a non-empty list of rows of {N_FEATURES} features")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != N_FEATURES:
            got = len(row) if isinstance(row, list) else f"a non-list ({type(row).__name__})"
            raise ValueError(f"expected {N_FEATURES} features per row, got {got} in row {i}")
    try:
        data = np.asarray(rows, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"features must be numbers: {exc}") from exc
    if not np.isfinite(data).all():
        raise ValueError("features must be finite numbers")
    return data


def predict_fn(input_data: np.ndarray, model: Any) -> dict[str, list[Any]]:
    """Classify each row.

    Returns plain lists, one entry per row: `predictions` (int class 0-2),
    `probabilities` (the 3 class probabilities) and `labels` (species names).
    """
    predictions = [int(p) for p in model.predict(input_data)]
    return {
        "predictions": predictions,
        "probabilities": model.predict_proba(input_data).tolist(),
        "labels": [SPECIES[p] for p in predictions],
    }


# Each row's answer depends on that row alone, and every list above has one entry per row:
# so requests arriving together may share one call (the endpoint's micro-batching), each
# getting its own rows back. The endpoint checks this at load on a sample batch.
predict_fn.supports_batching = True  # type: ignore[attr-defined]


def output_fn(prediction: dict[str, list[Any]], accept: str | None) -> str:
    """Encode the prediction as the Accept type asks; the response has that type.

    application/json (also for `*/*` or no Accept): the predict_fn dict as JSON.
    text/csv: one species label per line.
    """
    # The first supported type in the Accept list wins; no Accept means "*/*".
    for media_type in (_media_type(part) for part in ((accept or "").strip() or "*/*").split(",")):
        if media_type in ("application/json", "*/*"):
            return json.dumps(prediction)
        if media_type == "text/csv":
            return "".join(f"{label}\n" for label in prediction["labels"])
    raise ValueError(f"unsupported accept type {accept!r}; supported: {', '.join(OUTPUT_TYPES)}")
