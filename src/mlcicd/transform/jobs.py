"""A transform job from start to end, recorded: InProgress first, then how it ended.

Whatever the backend raises, the record says so: a :class:`TransformError` (a bad record, a
model that would not load) is the job's FailureReason; Ctrl-C stops it (Stopped); anything
else fails it with its type and message and is raised on, as a bug.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlcicd.errors import MlcicdError
from mlcicd.state import State, TransformJobRecord
from mlcicd.transform.base import (
    COMPLETED,
    FAILED,
    STOPPED,
    TransformBackend,
    TransformJobSpec,
    TransformProgress,
)


def job_name(group: str, version: int | str, now: float | None = None) -> str:
    """``<group>-<version>-<yyyymmdd-hhmmss>``: SageMaker's name rule (63 characters)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"{group[:40]}-{version}-{stamp}".strip("-")


def run_job(
    state: State,
    backend: TransformBackend,
    spec: TransformJobSpec,
    *,
    model_group: str | None,
    model_version: int | None,
    log_path: str | None = None,
    on_progress: Callable[[TransformProgress], None] | None = None,
    on_log: Callable[[str], None] | None = None,
) -> TransformJobRecord:
    """Run ``spec`` on ``backend``; the finished record (Completed), or raise after recording."""
    state.create_transform_job(
        TransformJobRecord(
            name=spec.name,
            backend=backend.TYPE,
            status="InProgress",
            failure_reason=None,
            model_group=model_group,
            model_version=model_version,
            model_sha256=spec.model.model_sha256,
            input_uri=spec.input,
            output_uri=spec.output,
            settings=spec.settings.to_dict(),
            run_id=spec.run_id,
            log_path=log_path,
        )
    )
    try:
        result = backend.run(spec, on_progress, on_log)
    except MlcicdError as exc:
        state.finish_transform_job(spec.name, FAILED, failure_reason=exc.headline)
        raise
    except KeyboardInterrupt:
        state.finish_transform_job(spec.name, STOPPED, failure_reason="stopped (interrupted)")
        raise
    except Exception as exc:
        state.finish_transform_job(spec.name, FAILED, failure_reason=f"{type(exc).__name__}: {exc}")
        raise
    return state.finish_transform_job(
        spec.name,
        COMPLETED,
        objects=result.objects,
        rows_in=result.rows_in,
        rows_out=result.rows_out,
    )
