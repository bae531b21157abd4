"""When a SageMaker job ran — for moto's server, which says a job Completed the moment it is
created, and gives it that moment as its end.

mlcicd reads a job's outputs only if S3 wrote them while the job ran
(``mlcicd.aws.joboutputs``); the tests write them, as SageMaker would, before mlcicd is told
the job ended. :func:`follow` hooks botocore's ``after-call`` event of DescribeTrainingJob and
DescribeProcessingJob on mlcicd's own sagemaker client: the first answer that says a job ended
fixes its end at that moment, and every answer gives it as ``…EndTime`` and
``LastModifiedTime`` — as SageMaker's status turns Completed once the outputs are uploaded.
The start is moto's (the job's creation).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from mlcicd.aws.clients import client

ENDED = ("Completed", "Failed", "Stopped")
# Each job's end as the answers give it; a test may set one (the job "ended" earlier).
ends: dict[str, datetime] = {}


def _ended(parsed: dict[str, Any], **kwargs: Any) -> None:
    kind = "Training" if "TrainingJobName" in parsed else "Processing"
    name = parsed.get(f"{kind}JobName")
    if not name or parsed.get(f"{kind}JobStatus") not in ENDED:
        return
    end = ends.setdefault(str(name), datetime.now(UTC))
    parsed[f"{kind}EndTime"] = end
    parsed["LastModifiedTime"] = end


def follow() -> None:
    """Give the answers of mlcicd's sagemaker client (for the environment's endpoint) each
    job's end; forget the ends of the jobs of earlier tests (moto was reset)."""
    ends.clear()
    events = client("sagemaker").meta.events
    for operation in ("DescribeTrainingJob", "DescribeProcessingJob"):
        # Last: after sagemaker_sim's hook has written what the job writes when it completes.
        events.register_last(
            f"after-call.sagemaker.{operation}", _ended, unique_id=f"job-times-{operation}"
        )


def ended_now(name: str) -> None:
    """Job ``name`` ended now (its outputs are written), and the clock has since passed the
    next whole second — S3's LastModified is whole seconds, so what is written next is dated
    after the job's end. A bounded wait on the clock, not on anything of the code's."""
    end = ends[name] = datetime.now(UTC)
    deadline = time.monotonic() + 5
    while datetime.now(UTC).replace(microsecond=0) <= end and time.monotonic() < deadline:
        time.sleep(0.05)
