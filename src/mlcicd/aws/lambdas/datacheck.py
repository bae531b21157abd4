"""The data check in the pipeline (``data_check: warn|fail``): after the steps that prepare
the data, before training, the training channel against the production model's baseline.

The check is ``mlcicd.monitor.datacheck`` — the code ``mlcicd run`` runs — run as a SageMaker
ProcessingJob ``<pipeline>-datacheck-<run>`` in the image this commit built (it has mlcicd and
numpy; the function has neither, and its time limit and memory would bound the data): its code
is a three-line script calling ``mlcicd.monitor.datacheck.processing_job``. Production's model is
the newest Approved version of the model package group ``<pipeline>``; its baseline is the
``ModelMetrics.ModelDataQuality`` the training Lambda registered it with — the statistics.json
and constraints.json the data check of its own run computed from its training channel. So each
model the pipeline registers carries the baseline the next run's check reads; a model without
one (registered before, or by other tools), or no approved model yet, skips the check.

``fail``: a violation fails the action before training, naming each column and check; ``warn``
logs them and trains. The job's output (``<pipeline>/processing/<job>/output/datacheck/``)
keeps the report, the violations and the channel's statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlcicd.aws import names as n
from mlcicd.aws.clients import AwsClient, client, is_not_found
from mlcicd.aws.joboutputs import written_once
from mlcicd.aws.lambdas.runtime import json_setting, log
from mlcicd.aws.lambdas.steps import (
    OWN_JOB_INSTANCE_TYPE,
    OWN_JOB_MAX_RUNTIME,
    ProcessingSettings,
    ended_job,
    input_prefix,
    job_report,
    own_job_resources,
    processing_run,
    start_own_job,
    started_already,
)
from mlcicd.errors import ArtifactError, AwsError, ConfigError, DataCheckError, ProcessingError
from mlcicd.processing.base import (
    DATA_CHECK_BASELINE_INPUT,
    DATA_CHECK_INPUT,
    DATA_CHECK_OUTPUT,
    DATA_CHECK_REPORT,
)

SCRIPT = "datacheck.py"  # the job's code: it calls this module's processing_job
MODULE = "mlcicd.monitor.datacheck"
_MODES = ("warn", "fail")
BASELINE_FILES = ("statistics.json", "constraints.json")  # what the check's output holds
# What mlcicd.monitor.datacheck.processing_job writes (the function has no numpy to import it)
_STATUSES = ("Passed", "CompletedWithViolations", "Skipped", "Unreadable")
_VIOLATION_KEYS = ("feature_name", "constraint_check_type", "description")


@dataclass(frozen=True)
class DataCheckSettings:
    """``data_check`` and ``monitor:`` as the stack passes them (``MLCICD_DATA_CHECK``)."""

    mode: str  # off | warn | fail
    channel: str = "training"
    label: str | None = None
    drift_threshold: float = 0.1
    method: str = "Robust"
    instance_type: str = OWN_JOB_INSTANCE_TYPE  # monitor.instance_type
    max_runtime: int = OWN_JOB_MAX_RUNTIME  # monitor.max_runtime

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DataCheckSettings:
        raw = json_setting(environ, n.ENV_DATA_CHECK, {})
        if not raw:
            return cls(mode="off")
        if raw.get("mode") not in _MODES or not isinstance(raw.get("channel"), str):
            raise ConfigError(
                f"{n.ENV_DATA_CHECK}: {raw!r} is not a data check",
                path="the function's environment",
            )
        instance_type, max_runtime = own_job_resources(raw, n.ENV_DATA_CHECK)
        return cls(
            instance_type=instance_type,
            max_runtime=max_runtime,
            mode=str(raw["mode"]),
            channel=str(raw["channel"]),
            label=raw.get("label"),
            drift_threshold=float(raw.get("drift_threshold", 0.1)),
            method=str(raw.get("method", "Robust")),
        )

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def arguments(self) -> list[str]:
        label = ["--label", self.label] if self.label else []
        return [
            "--channel",
            self.channel,
            *label,
            "--drift-threshold",
            f"{self.drift_threshold:g}",
            "--method",
            self.method,
        ]


def advance(
    settings: DataCheckSettings,
    processing: ProcessingSettings,
    state: dict[str, Any],
    *,
    channel_uri: Callable[[], str],
) -> bool:
    """Start the check, or look at it: True once it has passed (or warned, or was skipped).
    ``state["check"]`` is its job; ``state["checked"]`` its report's status once it is done.
    ``channel_uri`` gives the training channel's S3 prefix (called only to start the job)."""
    name = state.get("check")
    if name is None:
        state["check"] = _start(settings, processing, state, channel_uri())
        return False
    if ended_job(name, "data check") is None:
        return False
    report = _report(processing, name)
    _judge(settings, processing, name, report)
    state["checked"] = str(report.get("status"))
    return True


def _start(
    settings: DataCheckSettings,
    processing: ProcessingSettings,
    state: Mapping[str, Any],
    channel_uri: str,
) -> str:
    name = n.processing_job_name(processing.pipeline, f"datacheck-{state['run'][:12]}")
    if started_already(name, "data check"):
        return name
    inputs = {DATA_CHECK_INPUT: channel_uri}
    baseline = production_baseline(client("sagemaker"), processing.pipeline)
    if baseline is None:
        log("data check: no approved model has a baseline: the channel is profiled, not checked")
    else:
        arn, folder = baseline
        log(f"data check: channel {settings.channel} against model {arn}'s baseline {folder}")
        inputs[DATA_CHECK_BASELINE_INPUT] = _pin_baseline(processing, folder, name)
    start_own_job(
        processing,
        name,
        image=str(state["image"]),
        script=SCRIPT,
        module=MODULE,
        inputs=inputs,
        output=DATA_CHECK_OUTPUT,
        arguments=settings.arguments(),
        step="data_check",
        where="data check",
        instance_type=settings.instance_type,
        max_runtime=settings.max_runtime,
    )
    return name


def production_baseline(sagemaker: AwsClient, group: str) -> tuple[str, str] | None:
    """(model package ARN, the S3 folder of its baseline) of the newest Approved model of
    ``group`` — None when there is none, or it was registered without a baseline."""
    try:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except AwsError as exc:
        if is_not_found(exc):
            return None
        raise
    packages = listed.get("ModelPackageSummaryList") or []
    if not packages:
        return None
    arn = str(packages[0]["ModelPackageArn"])
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    quality = (described.get("ModelMetrics") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    constraints = (quality.get("Constraints") or {}).get("S3Uri")
    if not statistics or not constraints:
        log(f"data check: model {arn} was registered without a baseline")
        return None
    folder = str(statistics).rsplit("/", 1)[0]
    if str(constraints).rsplit("/", 1)[0] != folder:
        log(f"data check: model {arn}'s statistics and constraints are not side by side")
        return None
    return arn, folder + "/"


def _pin_baseline(processing: ProcessingSettings, folder: str, job: str) -> str:
    """Copy production's baseline — each file as the one version the check that computed it
    wrote (``joboutputs.written_once``) — to ``job``'s own input, and return that prefix.

    The registry names the files by URI, and SageMaker reads a URI as it is when the job
    starts: whoever can write the models bucket could have replaced constraints.json with one
    that passes anything. A file written twice fails the run naming it; the copy is of the
    version read, so nothing written after this check is what the job reads."""
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    if bucket != processing.models_bucket:
        raise ConfigError(
            f"data check: production's baseline {folder} is not in the models bucket "
            f"{processing.models_bucket}",
            hint="the pipeline registers each model with the baseline its own check computed; "
            "register the production model from this pipeline",
        )
    producer = prefix.removeprefix(f"{processing.pipeline}/processing/").split("/", 1)[0]
    s3, target = client("s3"), f"{input_prefix(processing, job)}/{DATA_CHECK_BASELINE_INPUT}"
    for file in BASELINE_FILES:
        key = f"{prefix}{file}"
        written = written_once(s3, bucket, key, job=processing_run(producer))
        if written is None:
            raise ArtifactError(f"data check: production's baseline s3://{bucket}/{key} is gone")
        s3.copy_object(
            Bucket=bucket,
            Key=f"{target}/{file}",
            CopySource={"Bucket": bucket, "Key": key, "VersionId": written.version_id},
        )
    return f"s3://{bucket}/{target}/"


def _report(processing: ProcessingSettings, job: str) -> dict[str, Any]:
    report: dict[str, Any] = job_report(
        processing,
        job,
        f"{DATA_CHECK_OUTPUT}/{DATA_CHECK_REPORT}",
        "data check",
        hint=f"the image's mlcicd must have {MODULE}.processing_job",
    )
    return report


def _judge(
    settings: DataCheckSettings, processing: ProcessingSettings, job: str, report: dict[str, Any]
) -> None:
    status = report.get("status")
    channel = f"channel {settings.channel}"
    violations = report.get("violations") or []
    # The report is the job's output, read as data: one that is not the check's (no status,
    # "{}", violations that are not objects) would have passed, or crashed the function.
    if status not in _STATUSES or not (
        isinstance(violations, list)
        and all(
            isinstance(v, dict) and all(isinstance(v.get(k), str) for k in _VIOLATION_KEYS)
            for v in violations
        )
    ):
        raise ProcessingError(
            f"data check: the report of {job} is not a data check's: status {status!r}, "
            f"violations {str(violations)[:200]}",
            hint="the image's mlcicd writes it (mlcicd.monitor.datacheck.processing_job); "
            "check the image, and the report under "
            f"{processing.output_uri(job, DATA_CHECK_OUTPUT)}/",
        )
    if status == "Unreadable":
        reason = (
            f"the training channel {settings.channel!r} cannot be checked: {report.get('reason')}"
        )
        if settings.mode == "fail":
            raise DataCheckError(reason, hint="the channel must hold CSV data with its label")
        log(f"data check (warn): {reason}")
        return
    if status == "Skipped":
        log(f"data check skipped: {report.get('reason')}")
        return
    for v in violations:
        log(f"violation: {v['feature_name']}: {v['constraint_check_type']}: {v['description']}")
    if not violations:
        log(f"data check passed: {channel} ({report.get('rows')} rows)")
        return
    summary = "; ".join(
        f"{v['feature_name']}: {v['constraint_check_type']} ({v['description']})"
        for v in violations
    )
    uri = processing.output_uri(job, DATA_CHECK_OUTPUT)
    if settings.mode == "fail":
        raise DataCheckError(
            f"data check failed: {channel} against production's baseline: {summary}",
            hint=f"the report: {uri}/; fix the data, or set data_check: warn",
        )
    log(f"data check (warn): {len(violations)} violations: {summary}")


def baseline_metrics(processing: ProcessingSettings, state: Mapping[str, Any]) -> dict[str, Any]:
    """``ModelMetrics.ModelDataQuality`` for the model this run registers: the channel's
    statistics and constraints its data check computed (the next run's baseline)."""
    job = state.get("check")
    if not job or state.get("checked") == "Unreadable":  # no statistics for an unread channel
        return {}
    folder = processing.output_uri(str(job), DATA_CHECK_OUTPUT)
    return {
        "ModelDataQuality": {
            kind: {"ContentType": "application/json", "S3Uri": f"{folder}/{file}"}
            for kind, file in zip(("Statistics", "Constraints"), BASELINE_FILES, strict=True)
        }
    }


__all__ = ["DataCheckSettings", "advance", "baseline_metrics", "production_baseline"]
