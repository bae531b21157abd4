"""Shared by the serving and endpoint tests: a tiny iris model, inference scripts, a client."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# All four handlers, written the way a user would (and a context-free signature).
FULL_HANDLERS = """
    import json
    import os

    import joblib
    import numpy as np


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ValueError(f"this model only reads application/json, not {content_type}")
        data = json.loads(body)
        return np.asarray(data["instances"], dtype=float)


    def predict_fn(data, model):
        return {
            "labels": model.predict(data).tolist(),
            "probabilities": model.predict_proba(data).tolist(),
        }


    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
"""

NO_HANDLERS = """
    # SageMaker's defaults: model.joblib, JSON/CSV/NPY in and out, model.predict.
"""

MODEL_FN_RAISES = """
    def model_fn(model_dir):
        raise RuntimeError("the weights are corrupt")
"""

PREDICT_FN_RAISES = """
    import joblib, os

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        if data[0][0] < 0:
            raise ZeroDivisionError("negative sepals break the model")
        return model.predict(data)
"""

CONTEXT_HANDLERS = """
    def predict_fn(data, model, context):
        context.response_custom_attributes = "seen=" + (context.custom_attributes or "")
        return model.predict(data)
"""

TRANSFORM_FN = """
    import json, os, joblib

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def transform_fn(model, body, content_type, accept):
        rows = json.loads(body)
        return json.dumps({"predictions": model.predict(rows).tolist()}), "application/json"
"""


def write_code(directory: Path, script: str, name: str = "inference.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(script))
    return directory


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str = "POST",
    path: str = "/invocations",
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(
            method,
            path,
            body=body.encode() if isinstance(body, str) else body,
            headers=headers or {},
        )
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def call_asgi(
    app: Any,
    method: str = "POST",
    path: str = "/invocations",
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    chunks: Iterable[bytes] | None = None,
) -> Response:
    """One request through an ASGI app, in process (no server)."""
    raw = body.encode() if isinstance(body, str) else body
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if chunks is None and not any(k == b"content-length" for k, _ in hdrs):
        hdrs.append((b"content-length", str(len(raw)).encode()))
    parts = list(chunks) if chunks is not None else [raw]
    scope = {"type": "http", "method": method, "path": path, "headers": hdrs, "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            chunk = parts.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body_msg = sent[0], sent[1]
    assert start["type"] == "http.response.start" and len(sent) == 2
    return Response(
        start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body_msg["body"]
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# A user's predict_fn calling every prediction method itself, and saying what model it got.
# {"instances": [...], "dtype": "float32"} makes input the compiled code does not cover.
INTROSPECTING_HANDLERS = """
    import json
    import os

    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(body, content_type):
        data = json.loads(body)
        return np.asarray(data["instances"], dtype=data.get("dtype", "float64"))


    def predict_fn(data, model):
        return {
            "labels": model.predict(data).tolist(),
            "probabilities": model.predict_proba(data).tolist(),
            "log_probabilities": model.predict_log_proba(data).tolist(),
            "decision": model.decision_function(data).tolist(),
            "isinstance": isinstance(model, LogisticRegression),
            "bound": sorted(k for k in vars(model) if k.startswith(("predict", "decision"))),
        }


    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
"""
