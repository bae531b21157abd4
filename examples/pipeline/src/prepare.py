"""Prepare the iris data — a SageMaker Processing script (ScriptProcessor / SKLearnProcessor).

It runs unchanged as a SageMaker ProcessingJob and under `mlcicd`'s local runner: both lay
out /opt/ml/processing (locally under $SAGEMAKER_BASE_DIR) and pass the step's arguments.

    /opt/ml/processing/input/raw/      every *.csv is read (header row, `species` label)
    /opt/ml/processing/output/train/   train.csv: the rows to train on
    /opt/ml/processing/output/test/    test.csv: the held-out rows evaluate.py scores

On failure the reason goes to /opt/ml/output/message (the job's ExitMessage).
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import random
import sys
from pathlib import Path

BASE = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
LABEL = "species"


def main() -> int:
    parser = argparse.ArgumentParser(description="Split the raw data into train and test.")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    processing = BASE / "processing"
    paths = sorted(glob.glob(str(processing / "input" / "raw" / "**" / "*.csv"), recursive=True))
    if not paths:
        return fail("no .csv file in the raw input")
    header: list[str] = []
    rows: list[list[str]] = []
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows.extend(row for row in reader if row)
    if LABEL not in header:
        return fail(f"the raw data has no {LABEL} column")
    # Stratified: each class keeps its share in both halves.
    by_class: dict[str, list[list[str]]] = {}
    for row in rows:
        by_class.setdefault(row[header.index(LABEL)], []).append(row)
    draw = random.Random(args.seed)
    train, test = [], []
    for members in by_class.values():
        draw.shuffle(members)
        cut = round(len(members) * args.test_size)
        test.extend(members[:cut])
        train.extend(members[cut:])
    for name, part in (("train", train), ("test", test)):
        with open(processing / "output" / name / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(part)
    print(f"rows: train={len(train)} test={len(test)}")
    return 0


def fail(reason: str) -> int:
    message = BASE / "output" / "message"
    message.parent.mkdir(parents=True, exist_ok=True)
    message.write_text(reason)
    print(reason, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
