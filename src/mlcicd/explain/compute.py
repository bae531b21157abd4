"""Explain one model in its build environment, where its classes unpickle::

    python -m mlcicd.explain.compute SPEC_JSON

``SPEC_JSON`` names the inference code (``code_dir``, ``entry_point``), the extracted model
(``model_dir``), the rows to explain and the baseline as ``.npy`` files (``rows``,
``background``), the ``features``' names and the ``prediction_key`` of a JSON object answer.
The model comes from the script's ``model_fn``; a model shap cannot read exactly is explained
through the script's ``predict_fn``, given the rows as a float array (as the default
``input_fn`` decodes them). The report, or ``{"error": …}``, is one JSON object on the last
line of stdout.

Kept to the standard library, numpy, shap, :mod:`mlcicd.serving.handlers` and
:mod:`mlcicd.serving.explainers` (the explainer, chosen as the endpoint chooses it), as
:mod:`mlcicd.evaluation` is: it runs where the workers run, not where the CLI runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlcicd.errors import ExplainError, MlcicdError
from mlcicd.explain.shapley import explain
from mlcicd.serving.explainers import numeric_predict


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from mlcicd.serving.handlers import LoadedVariant, load_handlers

    started = time.perf_counter()
    handlers = load_handlers(Path(spec["code_dir"]), spec.get("entry_point", "inference.py"))
    variant = LoadedVariant("explained", handlers, handlers.load_model(spec["model_dir"]))
    rows = np.load(spec["rows"], allow_pickle=False)
    background = np.load(spec["background"], allow_pickle=False)
    loaded = time.perf_counter() - started
    fallback, output = numeric_predict(
        variant.predict, rows[:2], spec.get("prediction_key", "predictions")
    )
    report = explain(
        variant.model,
        rows,
        background,
        list(spec["features"]),
        fallback=fallback,
        fallback_output=output,
    )
    report["seconds"]["load"] = loaded
    return report


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        report = run(spec)
    except MlcicdError as exc:
        print(json.dumps({"error": exc.headline}))
        return 1
    except Exception as exc:
        error = ExplainError(f"{type(exc).__name__}: {exc}")
        print(json.dumps({"error": error.headline}))
        return 1
    print(json.dumps({"report": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
