"""A SageMaker job's log, as `mlcicd run` follows it: read from CloudWatch Logs as the job
writes it, and written to the job's local log file and the run's log at once.

SageMaker writes each job's output to the streams ``<job>/algo-N-<time>`` of its family's log
group (``/aws/sagemaker/TrainingJobs``, ``/aws/sagemaker/ProcessingJobs``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.errors import AwsError
from mlcicd.fsutil import open_private_log

OnLog = Callable[[str], None]


class JobLog:
    """The job's log: to the caller's ``on_log`` and to a file (``logs/training.log``)."""

    def __init__(self, path: Path, on_log: OnLog | None) -> None:
        self.path = path
        self.on_log = on_log
        self.file = open_private_log(path)

    def __call__(self, line: str) -> None:
        self.file.write(line + "\n")
        self.file.flush()
        if self.on_log is not None:
            self.on_log(line)

    def close(self) -> None:
        self.file.close()


class CloudWatchTail:
    """The job's log streams (``<job>/algo-N-…``) in ``log_group``, read from where the last
    call stopped."""

    def __init__(self, logs: AwsClient, log_group: str, job: str) -> None:
        self.logs = logs
        self.log_group = log_group
        self.job = job
        self.tokens: dict[str, str | None] = {}

    def lines(self) -> list[str]:
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=self.log_group, logStreamNamePrefix=f"{self.job}/"
            ).get("logStreams", [])
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":  # no job has logged in this region yet
                return []
            raise
        found: list[str] = []
        for stream in sorted(s["logStreamName"] for s in streams):
            token = self.tokens.get(stream)
            while True:
                params: dict[str, Any] = {
                    "logGroupName": self.log_group,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    params["nextToken"] = token
                page = self.logs.get_log_events(**params)
                found.extend(str(e["message"]).rstrip("\n") for e in page.get("events", []))
                if page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
            self.tokens[stream] = token
        return found


def epoch(value: Any) -> float:
    """A time from a Describe*Job answer (a datetime, or seconds) as Unix seconds; 0 if none."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return 0.0


__all__ = ["CloudWatchTail", "JobLog", "OnLog", "epoch"]
