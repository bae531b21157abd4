"""Serve the ridge regression: a JSON list of rows in, {"prices": [...]} out."""

import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "ridge.joblib"))


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"send application/json, not {content_type}")
    return np.asarray(json.loads(body), dtype=float)


def predict_fn(data, model):
    return model.predict(data)


def output_fn(prediction, accept):
    return json.dumps({"prices": prediction.tolist()})
