"""What both orchestrator Lambdas share: their settings, one reader of a JSON report on S3,
and one way to end a job.

An expected failure (``MlcicdError``: AWS said no, the gate failed, a setting is wrong) ends
the CodePipeline job as failed with its one-line headline; so does a bug, with the
traceback in the function's log. Either way the pipeline hears of it at once instead of
waiting for the action's timeout. Only when reporting itself fails does the invocation
raise (and Lambda retries it).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from mlcicd.aws.clients import client
from mlcicd.aws.codepipeline import PipelineJob
from mlcicd.errors import AwsError, ConfigError, MlcicdError
from mlcicd.processing.base import MAX_REPORT_BYTES, parse_report

_WHERE = "the function's environment"


def log(message: str) -> None:
    """A line in the function's CloudWatch log."""
    print(message, flush=True)


def setting(environ: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = environ.get(name, default)
    if value is None:
        raise ConfigError(
            f"{name} is not set",
            path=_WHERE,
            hint="the stack sets it: redeploy with `mlcicd aws deploy`",
        )
    return value


def json_setting(environ: Mapping[str, str], name: str, default: Any) -> Any:
    raw = environ.get(name, "")
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is not JSON: {exc}", path=_WHERE) from exc
    if not isinstance(value, type(default)):
        raise ConfigError(f"{name} must be a JSON {type(default).__name__}", path=_WHERE)
    return value


def int_setting(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = setting(environ, name, None if default is None else str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}", path=_WHERE) from exc


def bool_setting(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    return default if not raw else raw == "true"


def read_object(bucket: str, key: str, *, version_id: str | None = None) -> bytes | None:
    """A report's bytes (no more than one can have) at ``s3://bucket/key``, or None."""
    extra = {"VersionId": version_id} if version_id else {}
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key, **extra)["Body"]
    except AwsError as exc:
        if exc.code in ("NoSuchKey", "NoSuchVersion", "404"):
            return None
        raise
    with body:
        data: bytes = body.read(MAX_REPORT_BYTES + 1)
    return data


def read_report(
    bucket: str, key: str, where: str, *, version_id: str | None = None
) -> dict[str, Any] | None:
    """:func:`read_object` parsed as data (``parse_report``, its errors naming ``where``)."""
    data = read_object(bucket, key, version_id=version_id)
    return None if data is None else parse_report(data, where)


def run_job(
    event: Mapping[str, Any], step: Callable[[PipelineJob], None], *, function: str
) -> dict[str, Any]:
    """Run ``step`` on the job in ``event``; report any failure to CodePipeline."""
    job = PipelineJob.from_event(event)
    try:
        step(job)
    except MlcicdError as exc:
        log(f"{function}: job {job.id} failed: {exc.headline}")
        job.fail(exc.headline)
        return {"jobId": job.id, "status": "failed", "reason": exc.headline}
    except Exception as exc:  # a bug: the pipeline must still hear of it now
        traceback.print_exc(file=sys.stdout)
        reason = (
            f"internal error in the {function} function ({type(exc).__name__}: {exc}); see its log"
        )
        job.fail(reason)
        return {"jobId": job.id, "status": "failed", "reason": reason}
    return {"jobId": job.id, "status": "reported"}
