"""``python -m mlcicd.aws.load_check``: the staging load check against a SageMaker endpoint.

The pipeline's TestStaging action runs it (mlcicd/aws/template/staging.py writes the command
from ``staging.load``). A SageMaker endpoint takes only SigV4-signed requests through the
runtime API: the load goes through boto3's ``sagemaker-runtime``
(:func:`mlcicd.endpoints.sagemaker_runtime.invoke_load`, as the staging stage of ``mlcicd run
--backend aws`` sends it), and the bounds are the local stage's
(:func:`mlcicd.endpoints.acceptance.missed_bounds`).

It prints the figures as one JSON line and exits 0, or 1 with each missed bound on stderr
(the figures still printed), or 2 when it cannot start (no payload, no credentials).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mlcicd.endpoints.acceptance import missed_bounds
from mlcicd.endpoints.sagemaker_runtime import invoke_load
from mlcicd.errors import ConfigError, MlcicdError


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
        load = {"requests": args.requests, "concurrency": args.concurrency}
        result = invoke_load(args.endpoint_name, body, content_type=args.content_type, **load)
    except MlcicdError as exc:
        print(f"load check: {exc.headline}", file=sys.stderr)
        return 2
    figures = result.figures()
    print(json.dumps({"endpoint": args.endpoint_name, **figures}), flush=True)
    missed = missed_bounds(figures, {"p99_ms": args.p99_ms, "max_error_rate": args.max_error_rate})
    for line in missed:
        print(f"load check failed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
