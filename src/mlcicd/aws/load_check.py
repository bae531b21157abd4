"""``python -m mlcicd.aws.load_check``: the staging load check against a SageMaker endpoint.

The pipeline's TestStaging action runs it (mlcicd/aws/template/staging.py writes the command
from ``staging.load``). A SageMaker endpoint takes only SigV4-signed requests through the
runtime API, so the requests go through boto3's ``sagemaker-runtime`` ``invoke_endpoint``, one
client shared by ``--concurrency`` threads, each with one request in flight. A request is
tried once (no retries: a throttled or failed call is an error of the endpoint, as locally),
and its latency counts whether it succeeded or not.

It prints the figures as one JSON line and exits 0, or 1 with each missed bound on stderr
(the figures still printed), or 2 when it cannot start (no payload, no credentials).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd.aws.clients import AwsClient, Timeouts, client
from mlcicd.errors import AwsError, ConfigError, MlcicdError

# One try per request, and no minute-long waits behind a stuck one.
_TIMEOUTS = Timeouts(connect_seconds=10, read_seconds=60, total_max_attempts=1)


@dataclass(frozen=True)
class LoadFigures:
    """What the load measured: counts, wall time, latencies in milliseconds (sorted)."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]
    first_error: str | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float:
        """The nearest-rank ``q`` percentile of the latencies, in ms."""
        if not self.latencies_ms:
            return math.nan
        return self.latencies_ms[max(1, math.ceil(q / 100 * len(self.latencies_ms))) - 1]

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "seconds": round(self.seconds, 3),
            "rps": round(self.requests / self.seconds, 1) if self.seconds > 0 else 0.0,
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "first_error": self.first_error,
        }


def invoke_load(
    runtime: AwsClient,
    endpoint: str,
    body: bytes,
    *,
    requests: int,
    concurrency: int,
    content_type: str = "application/json",
) -> LoadFigures:
    """``requests`` InvokeEndpoint calls on ``endpoint`` over ``concurrency`` threads."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    remaining = [requests]

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def worker() -> None:
        while take():
            sent = time.perf_counter()
            error = None
            try:
                answer = runtime.invoke_endpoint(
                    EndpointName=endpoint, Body=body, ContentType=content_type
                )
                answer["Body"].read()
            except AwsError as exc:
                error = exc.code or str(exc)
            elapsed = (time.perf_counter() - sent) * 1e3
            with lock:
                latencies.append(elapsed)
                if error is not None:
                    errors.append(error)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for future in [pool.submit(worker) for _ in range(max(1, concurrency))]:
            future.result()  # a bug in a worker is raised here, not lost
    return LoadFigures(
        requests=len(latencies),
        errors=len(errors),
        seconds=time.perf_counter() - started,
        latencies_ms=tuple(sorted(latencies)),
        first_error=errors[0] if errors else None,
    )


def missed_bounds(
    figures: LoadFigures, *, p99_ms: float | None, max_error_rate: float
) -> list[str]:
    """Each bound of ``staging.load`` the figures miss, as a sentence (empty: all met)."""
    missed = []
    if figures.error_rate > max_error_rate:
        missed.append(
            f"error rate {figures.error_rate:.4f} ({figures.errors} of {figures.requests}, first: "
            f"{figures.first_error}) is above staging.load.max_error_rate {max_error_rate}"
        )
    p99 = figures.percentile(99)
    if p99_ms is not None and not p99 <= p99_ms:
        missed.append(f"p99 {p99:.1f} ms is above staging.load.p99_ms {p99_ms:g}")
    return missed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlcicd.aws.load_check",
        description="Send a short load to a SageMaker endpoint and check it against bounds.",
    )
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--p99-ms", type=float, default=None)
    parser.add_argument("--max-error-rate", type=float, default=0.0)
    parser.add_argument("--content-type", default="application/json")
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--payload", type=Path, help="a file holding the request body")
    body.add_argument("--body", help="the request body itself")
    return parser


def _body(args: argparse.Namespace) -> bytes:
    if args.body is not None:
        return str(args.body).encode()
    try:
        return Path(args.payload).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the load check's payload {args.payload}: {exc.strerror or exc}",
            key="staging.load.payload",
            hint="the path is relative to the project's directory in the repository",
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        print("load check: --requests and --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        body = _body(args)
        figures = invoke_load(
            client("sagemaker-runtime", timeouts=_TIMEOUTS),
            args.endpoint_name,
            body,
            requests=args.requests,
            concurrency=args.concurrency,
            content_type=args.content_type,
        )
    except MlcicdError as exc:
        print(f"load check: {exc.headline}", file=sys.stderr)
        return 2
    print(json.dumps({"endpoint": args.endpoint_name, **figures.figures()}), flush=True)
    missed = missed_bounds(figures, p99_ms=args.p99_ms, max_error_rate=args.max_error_rate)
    for line in missed:
        print(f"load check failed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
