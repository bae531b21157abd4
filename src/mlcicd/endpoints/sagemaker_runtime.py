"""Calling a SageMaker endpoint as its clients do: through the runtime API, SigV4-signed.

The staging stage on a SageMaker endpoint (``mlcicd run --backend aws``) and the pipeline's
TestStaging action (``python -m mlcicd.aws.load_check``) both use it: the variables the
project's endpoint tests get, and the load check — ``concurrency`` threads sharing one
``sagemaker-runtime`` client, one request in flight each, each request tried once (a
throttled or failed call is an error of the endpoint, as a refused connection is locally),
its latency counted whether it succeeded or not. The figures are :class:`LoadResult`'s, the
same as the local load check's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from mlcicd.aws.clients import AwsClient, Timeouts, client, resolve_endpoint_url
from mlcicd.endpoints.load import LoadResult
from mlcicd.errors import AwsError

# One try per request, and no minute-long waits behind a stuck one.
LOAD_TIMEOUTS = Timeouts(connect_seconds=10, read_seconds=60, total_max_attempts=1)


def runtime_client() -> AwsClient:
    """The client the load check calls the endpoint with (boto3's resolution of the region
    and credentials; ``MLCICD_AWS_ENDPOINT_URL`` as every mlcicd client)."""
    return client("sagemaker-runtime", timeouts=LOAD_TIMEOUTS)


def client_environment(arn: str) -> dict[str, str]:
    """What a test process needs, besides credentials, to call the SageMaker endpoint ``arn``
    with boto3's ``sagemaker-runtime``: its region, and the AWS endpoint mlcicd itself talks
    to (moto's, LocalStack's) when ``MLCICD_AWS_ENDPOINT_URL`` says so. No credentials: the
    project's test code is not trusted with this process's keys; it signs with its own (a
    profile, an instance or CodeBuild role — docs/security.md)."""
    parts = arn.split(":", 5)
    if len(parts) != 6:
        raise ValueError(f"not a SageMaker endpoint ARN: {arn!r}")
    env = {"AWS_REGION": parts[3], "AWS_DEFAULT_REGION": parts[3]}
    url = resolve_endpoint_url()
    if url:
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url
    return env


def invoke_load(
    endpoint: str,
    body: bytes,
    *,
    requests: int,
    concurrency: int,
    content_type: str = "application/json",
    runtime: AwsClient | None = None,
) -> LoadResult:
    """``requests`` InvokeEndpoint calls on ``endpoint`` over ``concurrency`` threads
    (``runtime``: :func:`runtime_client` unless given)."""
    runtime = runtime or runtime_client()
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
    workers = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()  # a bug in a worker is raised here, not lost
    return LoadResult(
        requests=len(latencies),
        errors=len(errors),
        seconds=time.perf_counter() - started,
        latencies_ms=tuple(sorted(latencies)),
        first_error=errors[0] if errors else None,
    )
