"""Benchmark: explanations (issue 12), online and at register, in one run.

Online: our endpoint (supervisor + 2 workers, SageMaker's default handlers) on iris, a
LogisticRegression and a 100-tree RandomForest, with the ClarifyExplainerConfig a deploy
gives it (the k-means baseline of the training data); a single-row CSV POST /invocations at
8 connections:
  plain      no explainer in the endpoint config, this work tree's code
  before     the same, on main's code (``git archive main src``): the hot path before issue 12
  unasked    the explainer configured, requests without X-Amzn-SageMaker-Enable-Explanations
  explained  the explainer configured, every request with the header (`true`)
Register: the report (mlcicd.explain.shapley.explain, the register step's computation) of a
100-tree RandomForest over 500 rows x 30 features, its baseline the k-means summary of 2000.

Run:  flock /tmp/mlcicd-bench.lock .venv/bin/python bench/explain.py [--duration 5] [--runs 3]
      [--record]   (--record appends the tables to docs/benchmarks.md with the machine's load)
Targets (issue 12): explained p99 ≤ 20 ms for both models at 8 connections; unasked
throughput within 5 % of plain/before; the register-time report ≤ 10 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parents[1]
# bench/serving.py's server helpers (start, free_port, wait_in_service, stop): one copy.
_spec = importlib.util.spec_from_file_location("bench_serving", REPO / "bench" / "serving.py")
assert _spec is not None and _spec.loader is not None
BENCH = importlib.util.module_from_spec(_spec)
sys.modules["bench_serving"] = BENCH  # its dataclasses look their module up
_spec.loader.exec_module(BENCH)
ROW = b"5.1,3.5,1.4,0.2"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EXPLAIN = {"X-Amzn-SageMaker-Enable-Explanations": "`true`"}


def clarify(X: np.ndarray) -> dict[str, Any]:
    from mlcicd.serving.explainers import summary
    from mlcicd.shapes import baseline_csv

    return {
        "EnableExplanations": "`false`",
        "ShapConfig": {"ShapBaselineConfig": {"ShapBaseline": baseline_csv(summary(X))}},
        "InferenceConfig": {"FeatureHeaders": FEATURES},
    }


def serve(
    model_dir: Path, work: Path, explainer: dict[str, Any] | None, src: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A supervisor with 2 workers on ``model_dir``, mlcicd imported from ``src``."""
    port = BENCH.free_port()
    edir = work / f"endpoint-{port}"
    code = edir / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text("# SageMaker's default handlers\n")
    config = {
        "format": 1,
        "name": "bench",
        "port": port,
        "workers": 2,
        "variants": [{"name": "AllTraffic", "model_dir": str(model_dir), "code_dir": str(code)}],
    }
    if explainer is not None:
        config["explainer"] = explainer
    (edir / "config.json").write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=src)
    command = [sys.executable, "-m", "mlcicd.serving.supervisor", str(edir)]
    proc = BENCH.start(command, env, work, work / "mlcicd.log")
    return proc, f"http://127.0.0.1:{port}", edir


def load(url: str, duration: float, headers: dict[str, str]) -> Any:
    """One run of single-row CSV requests at 8 connections."""
    from mlcicd.endpoints.load import run_load

    result = run_load(
        url, ROW, concurrency=8, duration=duration, content_type="text/csv", headers=headers
    )
    if result.errors:
        raise RuntimeError(f"{result.errors} errors, the first: {result.first_error}")
    return result


def medians(results: list[Any]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.rps for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
    }


def main_src(work: Path) -> str:
    """main's src/, exported: the code before this branch."""
    target = work / "main"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "main", "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return str(target / "src")


def online(duration: float, runs: int, work: Path) -> list[tuple[str, str, dict[str, float]]]:
    X, y = load_iris(return_X_y=True)
    models = {
        "LR": LogisticRegression(max_iter=500).fit(X, y),
        "RF-100": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
    }
    here = str(REPO / "src")
    before = main_src(work)
    explainer = clarify(X)
    rows = []
    for name, model in models.items():
        model_dir = work / name
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        cells = [
            ("before", None, before, {}),
            ("plain", None, here, {}),
            ("unasked", explainer, here, {}),
            ("explained", explainer, here, EXPLAIN),
        ]
        # All four served at once (idle but for the one measured), measured in turn, run by
        # run: a shared machine's load drifts, and then it drifts for every cell alike.
        served = [
            (label, *serve(model_dir, work, config, src), h) for label, config, src, h in cells
        ]
        try:
            for _, proc, url, edir, headers in served:
                BENCH.wait_in_service(edir, proc)
                load(url, 1.0, headers)  # warm
            results: dict[str, list[Any]] = {label: [] for label, *_ in served}
            for _ in range(runs):
                for label, _, url, _, headers in served:
                    results[label].append(load(url, duration, headers))
        finally:
            for _, proc, *_ in served:
                BENCH.stop(proc)
        for label, runs_of_cell in results.items():
            rows.append((name, label, medians(runs_of_cell)))
            print(name, label, rows[-1][2], flush=True)
    return rows


def register_time() -> dict[str, float]:
    from mlcicd.explain.shapley import explain

    X, y = make_classification(n_samples=2000, n_features=30, n_informative=10, random_state=0)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    rows = X[np.random.default_rng(0).choice(len(X), 500, replace=False)]
    started, cpu = time.perf_counter(), time.process_time()
    report = explain(model, rows, X, [f"x{i}" for i in range(30)])
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    print("register", report["explainer"], f"{total:.2f} s ({cpu:.2f} s CPU)", flush=True)
    return {
        "seconds": total,
        "cpu_seconds": cpu,
        "explain_seconds": report["seconds"]["explain"],
        "max_error": report["local_accuracy"]["max_error"],
    }


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="mlcicd-bench-explain-") as tmp:
        rows = online(args.duration, args.runs, Path(tmp))
    register = register_time()
    load_after = load_average()
    lines = [
        "| model | requests | req/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
        *(
            f"| {m} | {label} | {f['rps']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} |"
            for m, label, f in rows
        ),
        "",
        f"Register-time report, 100-tree RandomForest, 500 rows x 30 features: "
        f"{register['seconds']:.2f} s ({register['cpu_seconds']:.2f} s of CPU; local accuracy "
        f"{register['max_error']:.1e}).",
    ]
    ratios = []
    for model in ("LR", "RF-100"):
        cell = {label: f for m, label, f in rows if m == model}
        ratios.append(
            f"{model}: unasked/plain {cell['unasked']['rps'] / cell['plain']['rps']:.3f}, "
            f"unasked/before {cell['unasked']['rps'] / cell['before']['rps']:.3f}"
        )
    lines += ["", "Unexplained throughput, side by side: " + "; ".join(ratios) + "."]
    text = "\n".join(lines)
    print(text)
    if args.record:
        header = (
            f"\n### Explanations, {dt.date.today()} ({platform.machine()}, {os.cpu_count()} "
            f"cores; load {load_before} before, {load_after} after; {args.runs} x "
            f"{args.duration:g} s at 8 connections, medians)\n\n"
        )
        with open(REPO / "docs" / "benchmarks.md", "a") as out:
            out.write(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
