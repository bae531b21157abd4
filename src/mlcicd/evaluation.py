"""Score models on held-out data through an inference.py, as the endpoint would call it.

Run in the model's build environment (where its inference code's imports resolve)::

    python -m mlcicd.evaluation SPEC_JSON

``SPEC_JSON`` names the code (``code_dir``, ``entry_point``), the held-out CSV (``data``,
a header row, the label in column ``label`` or the last), the ``prediction_key`` of a JSON
object answer, and ``models``: {name: extracted model directory}. Each model goes through
model_fn → input_fn → predict_fn → output_fn with ``application/json`` rows; the result, one
JSON object on the last line of stdout, holds every metric of every model.

Kept to the standard library, numpy and :mod:`mlcicd.serving.handlers`: it runs where the
workers run, not where the CLI runs.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

# Higher is better for these; lower for the rest.
GREATER_IS_BETTER = {
    "accuracy": True,
    "error_rate": False,
    "mae": False,
    "mse": False,
    "rmse": False,
}


def read_held_out(path: Path, label: str | None) -> tuple[list[list[Any]], list[Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if len(rows) < 2:
        raise ValueError(f"{path} has no data rows")
    header, body = rows[0], rows[1:]
    column = header.index(label) if label is not None else len(header) - 1
    features = [[_number(v) for i, v in enumerate(r) if i != column] for r in body]
    return features, [_number(r[column]) for r in body]


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def predictions_of(answer: Any, key: str) -> list[Any]:
    if isinstance(answer, dict):
        if key not in answer:
            raise ValueError(
                f"the answer has no {key!r} (keys: {', '.join(map(str, answer))}); set "
                "prediction_key"
            )
        answer = answer[key]
    if not isinstance(answer, list):
        raise ValueError(f"expected a list of predictions, got {type(answer).__name__}")
    return answer


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def metrics(predicted: list[Any], actual: list[Any]) -> dict[str, float]:
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} rows")
    n = len(actual)
    correct = sum(_same(p, a) for p, a in zip(predicted, actual, strict=True))
    result = {"accuracy": correct / n, "error_rate": 1 - correct / n}
    try:
        errors = [float(p) - float(a) for p, a in zip(predicted, actual, strict=True)]
    except (TypeError, ValueError):
        return result
    mse = sum(e * e for e in errors) / n
    result.update(mae=sum(abs(e) for e in errors) / n, mse=mse, rmse=math.sqrt(mse))
    return result


def evaluate(spec: dict[str, Any]) -> dict[str, dict[str, float]]:
    from mlcicd.serving.handlers import LoadedVariant, load_handlers

    features, labels = read_held_out(Path(spec["data"]), spec.get("label"))
    body = json.dumps(features).encode()
    scores = {}
    for name, model_dir in spec["models"].items():
        handlers = load_handlers(Path(spec["code_dir"]), spec.get("entry_point", "inference.py"))
        variant = LoadedVariant(name, handlers, handlers.load_model(model_dir))
        answer, _content_type = variant.invoke(body, "application/json", "application/json")
        scores[name] = metrics(
            predictions_of(json.loads(answer), spec.get("prediction_key", "predictions")), labels
        )
    return scores


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        scores = evaluate(spec)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"scores": scores}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
