"""The register-time explanation in the pipeline (``explain:``): after the gate has passed,
before the model is registered, what drives it as mean |SHAP| per feature (docs/explain.md).

The explainer is ``mlcicd.explain.job`` — the code ``mlcicd run``'s register stage runs —
run as a SageMaker ProcessingJob ``<pipeline>-explain-<12 hex digits>`` in the image this
commit built (it has mlcicd, numpy, shap and the model's classes; the function has none): its
code is a three-line script calling ``mlcicd.explain.job.processing_job``, its inputs the
training channel, the training job's model.tar.gz, the commit's ``deploy.source_dir`` (the
inference script whose ``model_fn`` loads the model) and the ``explain.baseline`` CSV when it
names one.

The report is stored beside the model, where ``mlcicd explain`` finds a registered model's:
``<pipeline>/<training job>/explain/<model sha256[:16]>.json`` in the models bucket; the model
package refers to it (``ModelMetrics.Explainability.Report`` and the ``explanation``
metadata property), and ``model.json`` carries it to the deploy Lambda (``explain.online``:
the endpoint's Clarify baseline). An explainer that fails — the job, or the model — is stored
as a report with its ``error`` and logged; it fails the action only with
``explain.required: true``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from mlcicd.aws import names as n
from mlcicd.aws.clients import client
from mlcicd.aws.lambdas.runtime import json_setting, log
from mlcicd.aws.lambdas.steps import (
    OWN_JOB_INSTANCE_TYPE,
    OWN_JOB_MAX_RUNTIME,
    ProcessingSettings,
    SourceTree,
    ended_job,
    input_prefix,
    job_failure,
    job_report,
    own_job_resources,
    start_own_job,
    started_already,
)
from mlcicd.errors import ConfigError, ExplainError, ProcessingError
from mlcicd.processing.base import (
    EXPLAIN_BASELINE_INPUT,
    EXPLAIN_DATA_INPUT,
    EXPLAIN_INFERENCE_INPUT,
    EXPLAIN_MODEL_INPUT,
    EXPLAIN_OUTPUT,
    EXPLAIN_REPORT,
)

SCRIPT = "explain.py"  # the job's code: it calls this module's processing_job
MODULE = "mlcicd.explain.job"
ERROR_LIMIT = 300  # of an explainer's error kept in the continuation token (2,048 characters)


@dataclass(frozen=True)
class ExplainSettings:
    """``explain:`` as the stack passes it (``MLCICD_EXPLAIN``), with what the job needs of
    ``deploy:`` (the inference script) and the channel the data check would read."""

    enabled: bool
    channel: str = "training"
    label: str | None = None
    rows: int = 500
    baseline: str | None = None  # a CSV in the commit (relative to the project); None: channel
    source_dir: str = "src"
    entry_point: str = "inference.py"
    prediction_key: str = "predictions"
    required: bool = False
    online: bool = False
    instance_type: str = OWN_JOB_INSTANCE_TYPE  # explain.instance_type
    max_runtime: int = OWN_JOB_MAX_RUNTIME  # explain.max_runtime

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExplainSettings:
        raw = json_setting(environ, n.ENV_EXPLAIN, {})
        if not raw:
            return cls(enabled=False)
        fields = ("channel", "source_dir", "entry_point", "prediction_key")
        if not all(isinstance(raw.get(f), str) for f in fields) or not isinstance(
            raw.get("rows"), int
        ):
            raise ConfigError(
                f"{n.ENV_EXPLAIN}: {raw!r} is not an explain setting",
                path="the function's environment",
            )
        instance_type, max_runtime = own_job_resources(raw, n.ENV_EXPLAIN)
        return cls(
            instance_type=instance_type,
            max_runtime=max_runtime,
            enabled=True,
            channel=str(raw["channel"]),
            label=raw.get("label"),
            rows=int(raw["rows"]),
            baseline=raw.get("baseline"),
            source_dir=str(raw["source_dir"]),
            entry_point=str(raw["entry_point"]),
            prediction_key=str(raw["prediction_key"]),
            required=bool(raw.get("required", False)),
            online=bool(raw.get("online", False)),
        )

    def arguments(self, sha256: str) -> list[str]:
        label = ["--label", self.label] if self.label else []
        baseline = ["--baseline", self.baseline] if self.baseline else []
        return [
            *("--channel", self.channel, *label, "--rows", str(self.rows)),
            *("--entry-point", self.entry_point, "--prediction-key", self.prediction_key),
            *("--model-sha256", sha256, *baseline),
        ]


def report_key(pipeline: str, training_job: str, sha256: str) -> str:
    """Where a model's report is, as :func:`mlcicd.explain.report.report_key` has it for a
    model package of group ``pipeline`` trained by ``training_job``."""
    return f"{pipeline}/{training_job}/explain/{sha256[:16]}.json"


def advance(
    settings: ExplainSettings,
    processing: ProcessingSettings,
    state: dict[str, Any],
    *,
    model_data_url: str,
    sha256: str,
    channel_uri: Callable[[], str],
    source: Callable[[], AbstractContextManager[SourceTree]],
) -> bool:
    """Start the explainer, or look at it: True once its report is stored (or its failure,
    unless ``explain.required``). ``state["explain"]`` is its job; ``state["explained"]`` the
    report's S3 URI once it is done, ``state["explain_error"]`` why there is none."""
    if "explained" in state:
        return True
    name = state.get("explain")
    if name is None:
        try:
            state["explain"] = _start(
                settings, processing, state, model_data_url, sha256, channel_uri, source
            )
        except ExplainError as exc:  # what the job needs is not in the commit: recorded
            _store(settings, processing, state, sha256, {"error": exc.headline})
            return True
        return False
    described = ended_job(name, "explain", failed=True)
    if described is None:
        return False
    failure = job_failure(described)
    report = _report(processing, name) if failure is None else {"error": failure.headline}
    _store(settings, processing, state, sha256, report)
    return True


def _start(
    settings: ExplainSettings,
    processing: ProcessingSettings,
    state: Mapping[str, Any],
    model_data_url: str,
    sha256: str,
    channel_uri: Callable[[], str],
    source: Callable[[], AbstractContextManager[SourceTree]],
) -> str:
    training_job = str(state["job"])
    name = n.processing_job_name(processing.pipeline, f"explain-{_run_of(training_job)}")
    if started_already(name, "explain"):
        return name
    s3, bucket, prefix = client("s3"), processing.models_bucket, input_prefix(processing, name)
    inputs = {
        EXPLAIN_DATA_INPUT: channel_uri(),
        EXPLAIN_MODEL_INPUT: model_data_url,
        EXPLAIN_INFERENCE_INPUT: f"s3://{bucket}/{prefix}/{EXPLAIN_INFERENCE_INPUT}/",
    }
    with source() as tree:
        code = processing.in_project(settings.source_dir)
        if not tree.upload(s3, bucket, code, f"{prefix}/{EXPLAIN_INFERENCE_INPUT}/"):
            raise ExplainError(
                f"deploy.source_dir {code} is not in the source artifact",
                hint="the explainer loads the model with its inference script: commit it",
            )
        if settings.baseline:
            where = processing.in_project(settings.baseline)
            key = f"{prefix}/{EXPLAIN_BASELINE_INPUT}/"
            if not tree.upload(s3, bucket, where, key):
                raise ExplainError(
                    f"explain.baseline {where} is not in the source artifact",
                    hint="commit the baseline CSV, or set explain.baseline: training",
                )
            inputs[EXPLAIN_BASELINE_INPUT] = f"s3://{bucket}/{key}"
    start_own_job(
        processing,
        name,
        image=str(state["image"]),
        script=SCRIPT,
        module=MODULE,
        inputs=inputs,
        output=EXPLAIN_OUTPUT,
        arguments=settings.arguments(sha256),
        step="explain",
        where="explain",
        instance_type=settings.instance_type,
        max_runtime=settings.max_runtime,
    )
    log(f"explain: {name} explains {training_job}'s model")
    return name


def _run_of(training_job: str) -> str:
    """The explain job's suffix: the same training job always names the same explain job."""
    return hashlib.sha256(training_job.encode()).hexdigest()[:12]


def _report(processing: ProcessingSettings, job: str) -> dict[str, Any]:
    """The job's report; one it did not write, or that is not one, is its ``error``."""
    try:
        report: dict[str, Any] = job_report(
            processing,
            job,
            f"{EXPLAIN_OUTPUT}/{EXPLAIN_REPORT}",
            "explain",
            hint=f"the image's mlcicd must have {MODULE}: build it with this mlcicd",
        )
    except ProcessingError as exc:
        return {"error": exc.headline}
    return report


def _store(
    settings: ExplainSettings,
    processing: ProcessingSettings,
    state: dict[str, Any],
    sha256: str,
    report: dict[str, Any],
) -> None:
    """The report (or its error) beside the model; a failure raises only when required."""
    training_job = str(state["job"])
    key = report_key(processing.pipeline, training_job, sha256)
    uri = f"s3://{processing.models_bucket}/{key}"
    stored = (json.dumps({**report, "training_job": training_job}, indent=2) + "\n").encode()
    client("s3").put_object(
        Bucket=processing.models_bucket, Key=key, Body=stored, ContentType="application/json"
    )
    error = report.get("error")
    if error is None and not report.get("baseline") and settings.online:
        error = "the report has no baseline for the endpoint's online explanations"
    if error is not None:
        log(f"explain: no explanation for {training_job}'s model: {error} ({uri})")
        if settings.required:
            raise ExplainError(
                f"explain.required: {training_job}'s model could not be explained: {error}",
                hint="fix the cause, or set explain.required: false to register it without one; "
                f"the model was not registered; the report: {uri}",
            )
        state["explained"], state["explain_error"] = "", str(error)[:ERROR_LIMIT]
        return
    top = sorted(report.get("importance", {}).items(), key=lambda kv: -kv[1])[:3]
    log(
        f"explain: {report.get('explainer')} explainer on the {report.get('output')}; top: "
        + ", ".join(f"{k} {v:.3g}" for k, v in top)
        + f" ({uri})"
    )
    # model.json carries its digest: the deploy Lambda reads the report (its Clarify baseline)
    # perhaps days later, after the approval, from a bucket others can write.
    state["explained"], state["explained_sha256"] = uri, hashlib.sha256(stored).hexdigest()


def metadata(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The model package's ``ModelMetrics`` entry and ``CustomerMetadataProperties`` for the
    explanation this run computed (both empty without ``explain:``)."""
    uri, error = state.get("explained"), state.get("explain_error")
    if uri:
        report = {"Report": {"ContentType": "application/json", "S3Uri": str(uri)}}
        return {"Explainability": report}, {"explanation": str(uri)}
    if error:
        return {}, {"explanation_error": str(error)}
    return {}, {}


__all__ = ["ExplainSettings", "advance", "metadata", "report_key"]
