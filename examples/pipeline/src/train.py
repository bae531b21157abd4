"""Train the iris classifier — a SageMaker script-mode training script.

It runs unchanged on SageMaker (SKLearn estimator or the project's own image) and
under `mlcicd`'s local runner: both lay out /opt/ml, set the SM_* environment and pass
hyperparameters as `--name value` arguments.

    SM_CHANNEL_TRAINING   the `training` channel: every *.csv in it is read
    SM_MODEL_DIR          model.joblib is written here (packed as model.tar.gz)
    SM_OUTPUT_DATA_DIR    metrics.json is written here, when set
    SM_OUTPUT_DIR         on failure, the reason goes to its `failure` file

Metrics are printed one per line, `accuracy=0.9667` and `f1=0.9665`, for the
MetricDefinitions regexes in mlcicd.yaml. Exit status: 0 done; 1 accuracy below
--min_accuracy (the quality gate: no model is saved); 2 bad arguments; 255 any other
error. On failure the reason is also in $SM_OUTPUT_DIR/failure, as SageMaker expects.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import traceback
from typing import NoReturn

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"


def write_failure(reason: str) -> None:
    """Leave the reason where SageMaker reports it (DescribeTrainingJob FailureReason)."""
    output_dir = os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")
    if os.path.isdir(output_dir):  # outside a job (e.g. a manual run) there is none
        with open(os.path.join(output_dir, "failure"), "w") as f:
            f.write(reason + "\n")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A bad or unknown hyperparameter fails the job like any other error.
        write_failure(f"invalid arguments: {message}")
        super().error(message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _ArgumentParser(description="Train the iris classifier (SageMaker script mode).")
    # Hyperparameters (mlcicd.yaml `train.hyperparameters`).
    # SageMaker passes one-letter hyperparameters as `-C 1.0`, longer ones as `--max_iter 200`.
    parser.add_argument(
        "-C", "--C", type=float, default=1.0, help="inverse regularisation strength"
    )
    parser.add_argument("--max_iter", type=int, default=200)
    parser.add_argument("--min_accuracy", type=float, default=0.85, help="quality gate")
    # Where SageMaker puts things; the flags let you run the script by hand.
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("SM_MODEL_DIR"),
        required="SM_MODEL_DIR" not in os.environ,
    )
    parser.add_argument(
        "--train",
        default=os.environ.get("SM_CHANNEL_TRAINING"),
        required="SM_CHANNEL_TRAINING" not in os.environ,
    )
    parser.add_argument("--output-data-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR"))
    return parser.parse_args(argv)


def load_dataset(channel_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every CSV in the channel (header row, FEATURES and LABEL columns)."""
    paths = sorted(glob.glob(os.path.join(channel_dir, "**", "*.csv"), recursive=True))
    if not paths:
        raise FileNotFoundError(f"no .csv files in the training channel {channel_dir}")
    rows: list[list[float]] = []
    labels: list[int] = []
    for path in paths:
        with open(path, newline="") as f:
            for record in csv.DictReader(f):
                rows.append([float(record[name]) for name in FEATURES])
                labels.append(int(record[LABEL]))
    return np.asarray(rows, dtype=float), np.asarray(labels, dtype=int)


def train(args: argparse.Namespace) -> tuple[Pipeline, dict[str, float]]:
    """Fit on a stratified 80 % split; score on the other 20 %."""
    x, y = load_dataset(args.train)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y
    )
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=args.C, max_iter=args.max_iter)),
        ]
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
    }
    return model, metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model, metrics = train(args)
        for name, value in metrics.items():
            print(f"{name}={value:.4f}", flush=True)
        if args.output_data_dir:
            os.makedirs(args.output_data_dir, exist_ok=True)
            with open(os.path.join(args.output_data_dir, "metrics.json"), "w") as f:
                json.dump(metrics, f)
        if metrics["accuracy"] < args.min_accuracy:
            # Checked before saving, so a rejected model never becomes an artifact.
            # No "accuracy=" in the text: the metric regex must match the metric line only.
            reason = (
                f"quality gate: accuracy {metrics['accuracy']:.4f}"
                f" is below min_accuracy {args.min_accuracy}"
            )
            print(reason, file=sys.stderr)
            write_failure(reason)
            return 1
        os.makedirs(args.model_dir, exist_ok=True)
        joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    except Exception as exc:
        traceback.print_exc()
        write_failure(f"{type(exc).__name__}: {exc}")
        return 255  # what SageMaker's own example scripts exit with on an error
    return 0


if __name__ == "__main__":
    sys.exit(main())
