"""Evaluate the trained model on the held-out rows — a SageMaker Processing script.

/opt/ml/processing/input/model/    the model (model.tar.gz, extracted): model.joblib
/opt/ml/processing/input/test/     test.csv from prepare.py
/opt/ml/processing/output/evaluation/evaluation.json
    {"metrics": {"accuracy": {"value": …}, "f1": {"value": …}}}: the report the quality
    gate reads (`gate: evaluation.metrics.accuracy: ">= 0.85"`), a PropertyFile on
    SageMaker Pipelines.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import tarfile
from pathlib import Path

import joblib
from sklearn.metrics import accuracy_score, f1_score

BASE = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"


def load_model(model_dir: Path) -> object:
    archive = model_dir / "model.tar.gz"
    if archive.is_file():  # SageMaker hands the archive as it is; mlcicd extracts it
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
    return joblib.load(model_dir / "model.joblib")


def main() -> int:
    processing = BASE / "processing"
    model = load_model(processing / "input" / "model")
    rows, labels = [], []
    for path in sorted(glob.glob(str(processing / "input" / "test" / "*.csv"))):
        with open(path, newline="") as f:
            for record in csv.DictReader(f):
                rows.append([float(record[name]) for name in FEATURES])
                labels.append(int(record[LABEL]))
    predicted = model.predict(rows)  # type: ignore[attr-defined]
    metrics = {
        "accuracy": {"value": round(float(accuracy_score(labels, predicted)), 4)},
        "f1": {"value": round(float(f1_score(labels, predicted, average="macro")), 4)},
    }
    report = processing / "output" / "evaluation" / "evaluation.json"
    report.write_text(json.dumps({"metrics": metrics}, indent=2))
    print(f"evaluation: accuracy={metrics['accuracy']['value']} on {len(rows)} held-out rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
