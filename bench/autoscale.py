"""Benchmark: how fast a local endpoint's workers follow the load (deploy.autoscaling).

One endpoint (supervisor + workers, the iris LogisticRegression, default handlers) starts
with min_instances workers. A load of --concurrency keep-alive connections
(mlcicd.endpoints.load, the staging check's client) runs for --duration seconds, far above the
target; then nothing. Measured from status.json, polled every 50 ms:

  scale-out decided   load start → the supervisor decides to add workers (the rate over
                      --window must be known first: about one window)
  scale-out serving   load start → every added worker has loaded the model and accepts
  scale-in done       load end → back at min_instances: the rate must first fall over a
                      window, then one worker goes at a time, each --in-cooldown after the
                      last change (the first one's counts from the scale-out, long before)

and the load's failed requests (must be 0: workers join only once ready and leave draining).
The floor of each figure is set by the policy, printed beside it: what is left is the
supervisor's sampling (1 s), a worker's start (the model's load) and the drain.

Run:  .venv/bin/python bench/autoscale.py [--max 3] [--target 600] [--window 5]
                                          [--in-cooldown 5] [--duration 20] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mlcicd.endpoints.load import LoadResult, run_load
from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import AutoscalingSpec, ServingConfig, VariantSpec

ROW = b"[[5.1, 3.5, 1.4, 0.2]]"
POLL = 0.05


def train_model(directory: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    directory.mkdir(parents=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(x, y), directory / "model.joblib")
    return directory


def status(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def wait_until(what: str, check: Any, timeout: float = 300.0) -> tuple[float, dict[str, Any]]:
    """Poll status until ``check(status)``: the monotonic time it first held, and the status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return time.monotonic(), found
        time.sleep(POLL)
    raise SystemExit(f"gave up after {timeout:g}s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=int, default=1, dest="min_instances")
    parser.add_argument("--max", type=int, default=3, dest="max_instances")
    parser.add_argument("--target", type=float, default=600.0, help="invocations/worker/minute")
    parser.add_argument("--window", type=float, default=5.0, help="seconds the rate is over")
    parser.add_argument("--out-cooldown", type=float, default=0.0)
    parser.add_argument("--in-cooldown", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlcicd-bench-autoscale-") as tmp:
        root = Path(tmp)
        model = train_model(root / "model")
        code = root / "code"
        code.mkdir()
        (code / "inference.py").write_text("# SageMaker's default handlers\n")
        state_dir = root / "endpoint"
        state_dir.mkdir()
        policy = AutoscalingSpec(
            min_instances=args.min_instances,
            max_instances=args.max_instances,
            target_invocations_per_instance=args.target,
            scale_in_cooldown=args.in_cooldown,
            scale_out_cooldown=args.out_cooldown,
            window_seconds=args.window,
        )
        config = ServingConfig(
            name="bench",
            variants=(VariantSpec(name="AllTraffic", model_dir=str(model), code_dir=str(code)),),
            workers=args.min_instances,
            drain_timeout=10.0,
            autoscaling=policy,
        )
        atomic_write_json(state_dir / "config.json", config.to_dict())
        with open(state_dir / "endpoint.log", "ab") as log:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "mlcicd.serving.supervisor", str(state_dir)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        try:
            return measure(args, state_dir)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(60)


def measure(args: argparse.Namespace, state_dir: Path) -> int:
    _, first = wait_until(
        "InService", lambda: (s := status(state_dir)).get("status") == "InService" and s
    )
    url = first["url"]
    loads: list[LoadResult] = []
    load = threading.Thread(
        target=lambda: loads.append(
            run_load(url, ROW, concurrency=args.concurrency, duration=args.duration)
        )
    )
    started = time.monotonic()
    load.start()

    def scaled(count: int, *, ready: bool) -> Any:
        s = status(state_dir)
        scaling = s.get("autoscaling") or {}
        if scaling.get("current_instances") != count:
            return None
        if ready and [w.get("state") for w in s.get("workers", [])] != ["ready"] * count:
            return None
        return s

    decided, _ = wait_until("the scale-out", lambda: scaled(args.max_instances, ready=False))
    serving, out = wait_until("the added workers", lambda: scaled(args.max_instances, ready=True))
    load.join()
    ended = time.monotonic()
    back, after = wait_until("the scale-in", lambda: scaled(args.min_instances, ready=True))
    result = loads[0]
    steps = args.max_instances - args.min_instances
    rows = [
        ("scale-out decided", decided - started, args.window, ""),
        ("scale-out serving", serving - started, args.window, "+ a worker's model load"),
        (
            "scale-in done",
            back - ended,
            args.window + (steps - 1) * args.in_cooldown,
            f"window + {steps - 1} x in-cooldown",
        ),
    ]
    print(f"policy: {args.min_instances}..{args.max_instances} workers, target {args.target:g}")
    print(f"        /worker/min over {args.window:g}s, cooldowns out {args.out_cooldown:g}s")
    print(f"        in {args.in_cooldown:g}s; load {args.concurrency} connections")
    print(f"{'':<20}{'seconds':>9}{'floor':>9}")
    for name, seconds, floor, note in rows:
        print(f"{name:<20}{seconds:>9.2f}{floor:>9.2f}  {note}")
    print(f"last change out: {out['autoscaling']['last_change']['reason']}")
    print(f"last change in:  {after['autoscaling']['last_change']['reason']}")
    print(
        f"load: {result.requests} requests, {result.errors} failed, "
        f"{result.rps:.0f}/s, p99 {result.p99_ms:.2f} ms"
    )
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
