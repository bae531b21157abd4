"""The register-time explanation as a SageMaker ProcessingJob: what the stack's training
Lambda runs in the commit's image, where the model's classes unpickle (the function has no
numpy)::

    python3 -m mlcicd.explain.job --channel NAME [--label COLUMN] --rows N \\
        --entry-point inference.py --prediction-key predictions --model-sha256 HEX \\
        [--baseline FILE]

Inputs under ``/opt/ml/processing/input/``: ``data/`` the training channel, ``model/`` the
model archive (model.tar.gz), ``inference/`` the commit's ``deploy.source_dir``, ``baseline/``
the ``explain.baseline`` CSV when it names one. Output: ``output/explain/report.json``.

The same code as ``mlcicd run``'s register stage: the rows and baseline read by
:func:`mlcicd.explain.report.read_inputs`, the model explained by
:func:`mlcicd.explain.compute.run` (here in this process: the image is the build
environment). The job exits 0 whenever it could write a report: a model that cannot be
explained gets a report holding its ``error``, and the Lambda decides what that means
(``explain.required``), as the data check's job leaves ``fail``/``warn`` to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcicd.archive import safe_extract
from mlcicd.config import ExplainConfig
from mlcicd.errors import ExplainError, MlcicdError
from mlcicd.explain import compute
from mlcicd.explain.report import read_inputs, write_spec
from mlcicd.processing.base import (
    EXPLAIN_BASELINE_INPUT,
    EXPLAIN_DATA_INPUT,
    EXPLAIN_INFERENCE_INPUT,
    EXPLAIN_MODEL_INPUT,
    EXPLAIN_OUTPUT,
    EXPLAIN_REPORT,
    ProcessingPaths,
)


def processing_job(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m mlcicd.explain.job")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--label")
    parser.add_argument("--rows", type=int, default=ExplainConfig.rows)
    parser.add_argument("--entry-point", default="inference.py")
    parser.add_argument("--prediction-key", default="predictions")
    parser.add_argument("--model-sha256", required=True)
    parser.add_argument("--baseline", help="the baseline CSV's path in the commit")
    args = parser.parse_args(argv)
    paths = ProcessingPaths(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")))
    out = paths.output(EXPLAIN_OUTPUT)
    out.mkdir(parents=True, exist_ok=True)
    try:
        report = _explain(args, paths)
    except MlcicdError as exc:
        report = {"error": exc.headline}
    except Exception as exc:  # the user's model_fn/predict_fn: say what it raised
        report = {"error": ExplainError(f"{type(exc).__name__}: {exc}").headline}
    (out / EXPLAIN_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _explain(args: argparse.Namespace, paths: ProcessingPaths) -> dict[str, Any]:
    baseline = None
    if args.baseline:
        baseline = (paths.input(EXPLAIN_BASELINE_INPUT) / Path(args.baseline).name, args.baseline)
    settings = ExplainConfig(rows=args.rows, baseline=args.baseline or "training")
    inputs = read_inputs(
        args.channel, paths.input(EXPLAIN_DATA_INPUT), args.label, settings, baseline=baseline
    )
    archives = sorted(p for p in paths.input(EXPLAIN_MODEL_INPUT).rglob("*") if p.is_file())
    if len(archives) != 1:
        raise ExplainError(
            f"input {EXPLAIN_MODEL_INPUT}/ holds {len(archives)} files, not the model archive",
            hint="the job's model input must be the training job's model.tar.gz",
        )
    with tempfile.TemporaryDirectory(prefix="explain-") as tmp:
        model_dir = Path(tmp, "model")
        safe_extract(archives[0], model_dir, expected_sha256=args.model_sha256)
        spec = write_spec(
            Path(tmp),
            inputs,
            code_dir=paths.input(EXPLAIN_INFERENCE_INPUT),
            entry_point=args.entry_point,
            model_dir=model_dir,
            prediction_key=args.prediction_key,
        )
        report = compute.run(spec)
    return {**report, "dataset": inputs.dataset}


if __name__ == "__main__":
    sys.exit(processing_job(sys.argv[1:]))
