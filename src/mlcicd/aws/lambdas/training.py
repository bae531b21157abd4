"""TRAIN: the pipeline's training Lambda (``mlcicd.aws.lambdas.training.handler``).

With ``processing:``, the steps before training run first and those after it before the gate,
as SageMaker ProcessingJobs (:mod:`mlcicd.aws.lambdas.steps`); the outline below is then the
middle of the action.

First invocation (no continuation token): read the image URI from the build's
``imageDetail.json``, upload the training channels from the source artifact to the models
bucket, start the SageMaker training job ``<pipeline>-<suffix of the job id>`` — unless a
retried invocation already did — and return with a continuation token.

Later invocations (CodePipeline re-invokes with the token, as a new job): while the job runs,
return the token again. When it has Completed: the final metrics (``FinalMetricDataList``,
and ``metrics.json`` from output.tar.gz) go through the same gate as the local pipeline; the
model is registered as a model package (``PendingManualApproval`` when the pipeline has a
manual approval, else ``Approved``; ``Rejected`` with the reason when it missed the gate);
``model.json`` goes into the output artifact for the deploy action. Failed or Stopped:
the job fails with the reason SageMaker gave.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from mlcicd.aws import names as n
from mlcicd.aws.clients import AwsClient, client, is_not_found
from mlcicd.aws.codepipeline import Artifact, PipelineJob
from mlcicd.aws.joboutputs import JobRun, job_run, written_once
from mlcicd.aws.lambdas import datacheck as dc
from mlcicd.aws.lambdas import explain as ex
from mlcicd.aws.lambdas import steps as st
from mlcicd.aws.lambdas.provenance import check_event_values, check_token, execution_id
from mlcicd.aws.lambdas.runtime import (
    bool_setting,
    int_setting,
    json_setting,
    log,
    read_report,
    run_job,
    setting,
)
from mlcicd.aws.network import vpc_from_json
from mlcicd.aws.template.pipeline import BUILD_OUTPUT, MODEL_OUTPUT, SOURCE_OUTPUT
from mlcicd.aws.training_jobs import (
    create_training_job_request,
    describe_training_job,
    failure_reason,
    final_metrics,
    model_uri,
    start_training_job,
    status_transitions,
)
from mlcicd.config import Threshold
from mlcicd.errors import ArtifactError, AwsError, ConfigError, GateError, TrainingError
from mlcicd.store.s3 import parse_s3_uri
from mlcicd.thresholds import evaluate_thresholds, shown_value

IMAGE_DETAIL = "imageDetail.json"  # written by buildspec.yml
MODEL_JSON = "model.json"  # read by the deploy Lambda
REGISTRATION = "model-package.json"  # beside the job's output: makes registering idempotent
CONTENT_TYPES = ["application/json", "text/csv", "application/x-npy"]
RESPONSE_TYPES = ["application/json", "text/csv", "application/x-npy"]
_OPS = (">=", ">", "<=", "<", "==")


@dataclass(frozen=True)
class TrainingSettings:
    """The function's environment (set by the stack from mlcicd.yaml)."""

    pipeline: str
    role_arn: str
    models_bucket: str
    thresholds: tuple[Threshold, ...]
    instance_type: str
    instance_count: int
    use_spot: bool
    max_runtime: int
    max_wait: int | None
    kms_key_id: str | None
    network_isolation: bool
    channels: dict[str, str]
    environment: dict[str, str]
    hyperparameters: dict[str, Any]
    metric_definitions: list[dict[str, str]]
    require_approval: bool
    project_dir: str
    processing: st.ProcessingSettings
    data_check: dc.DataCheckSettings
    explain: ex.ExplainSettings = dataclasses.field(
        default_factory=lambda: ex.ExplainSettings(enabled=False)
    )
    vpc_config: dict[str, list[str]] | None = None  # network: subnets and security groups
    inter_container_encryption: bool = False
    checkpoints: bool = False  # train.checkpoints (spot checkpoints whatever it says)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TrainingSettings:
        thresholds = []
        for raw in json_setting(environ, n.ENV_GATE_THRESHOLDS, []):
            if (
                not isinstance(raw, dict)
                or raw.get("op") not in _OPS
                or not isinstance(raw.get("value"), int | float)
            ):
                raise ConfigError(
                    f"{n.ENV_GATE_THRESHOLDS}: {raw!r} is not a threshold",
                    path="the function's environment",
                )
            thresholds.append(
                Threshold(metric=str(raw["metric"]), op=raw["op"], value=float(raw["value"]))
            )
        max_wait = setting(environ, n.ENV_TRAINING_MAX_WAIT, "")
        pipeline = setting(environ, n.ENV_PIPELINE)
        role_arn = setting(environ, n.ENV_SAGEMAKER_ROLE_ARN)
        models_bucket = setting(environ, n.ENV_MODELS_BUCKET)
        kms_key_id = setting(environ, n.ENV_TRAINING_KMS_KEY, "") or None
        channels = json_setting(environ, n.ENV_TRAINING_CHANNELS, {})
        project_dir = setting(environ, n.ENV_PROJECT_DIR, "").strip("/")
        vpc = vpc_from_json(json_setting(environ, n.ENV_VPC_CONFIG, {}), where=n.ENV_VPC_CONFIG)
        encrypt = bool_setting(environ, n.ENV_INTER_CONTAINER_ENCRYPTION, False)
        return cls(
            pipeline=pipeline,
            role_arn=role_arn,
            models_bucket=models_bucket,
            thresholds=tuple(thresholds),
            instance_type=setting(environ, n.ENV_TRAINING_INSTANCE_TYPE, "ml.m5.large"),
            instance_count=int_setting(environ, n.ENV_TRAINING_INSTANCE_COUNT, 1),
            use_spot=bool_setting(environ, n.ENV_TRAINING_USE_SPOT, False),
            max_runtime=int_setting(environ, n.ENV_TRAINING_MAX_RUNTIME, 86400),
            max_wait=int_setting(environ, n.ENV_TRAINING_MAX_WAIT) if max_wait else None,
            kms_key_id=kms_key_id,
            # The code is in the image: a job reaches no network unless mlcicd.yaml says it must.
            network_isolation=bool_setting(environ, n.ENV_TRAINING_NETWORK_ISOLATION, True),
            channels=channels,
            environment=json_setting(environ, n.ENV_TRAINING_ENVIRONMENT, {}),
            hyperparameters=json_setting(environ, n.ENV_HYPERPARAMETERS, {}),
            metric_definitions=json_setting(environ, n.ENV_METRIC_DEFINITIONS, []),
            require_approval=bool_setting(environ, n.ENV_REQUIRE_APPROVAL, False),
            project_dir=project_dir,
            processing=st.ProcessingSettings.parse(
                json_setting(environ, n.ENV_PROCESSING, {}),
                pipeline=pipeline,
                models_bucket=models_bucket,
                role_arn=role_arn,
                kms_key_id=kms_key_id,
                project_dir=project_dir,
                channels=channels,
                vpc_config=vpc,
                inter_container_encryption=encrypt,
            ),
            data_check=dc.DataCheckSettings.from_environ(environ),
            explain=ex.ExplainSettings.from_environ(environ),
            vpc_config=vpc,
            inter_container_encryption=encrypt,
            checkpoints=bool_setting(environ, n.ENV_TRAINING_CHECKPOINTS, False),
        )

    @property
    def output_path(self) -> str:
        return f"s3://{self.models_bucket}/{self.pipeline}"

    def job_prefix(self, job_name: str) -> str:
        """Where the job's own files go in the models bucket (beside SageMaker's output)."""
        return f"{self.pipeline}/{job_name}"


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one step of the Train action."""
    return run_job(
        event, lambda job: step(job, TrainingSettings.from_environ(os.environ)), function="training"
    )


def step(job: PipelineJob, settings: TrainingSettings) -> None:
    execution = execution_id(job)
    settings = dataclasses.replace(
        settings, processing=dataclasses.replace(settings.processing, execution=execution)
    )
    if job.continuation is None:
        start(job, settings)
    else:
        # Before anything the token names is read: it is the caller's to say (provenance).
        check_token(settings.pipeline, execution, job.continuation, settings.models_bucket)
        check_event_values(
            job.continuation,
            {"image": lambda: _image_uri(job), "revision": lambda: _source(job).revision},
        )
        follow(job, settings, job.continuation)


def run_id(pipeline_job_id: str) -> str:
    """The run's id: the first CodePipeline job's, hashed (continuations are new jobs)."""
    return hashlib.sha256(pipeline_job_id.encode()).hexdigest()[:16]


def job_name_for(settings: TrainingSettings, pipeline_job_id: str) -> str:
    """The same CodePipeline job always names the same training job (retries find it)."""
    return n.training_job_name(settings.pipeline, run_id(pipeline_job_id))


# --- start -----------------------------------------------------------------------------------


def start(job: PipelineJob, settings: TrainingSettings) -> None:
    if not settings.processing.steps and not settings.data_check.enabled:
        start_training(job, settings, {"run": run_id(job.id)})
        return
    source = _source(job)
    state = {"run": run_id(job.id), "image": _image_uri(job), "revision": source.revision}
    run_steps(job, settings, state)


def run_steps(job: PipelineJob, settings: TrainingSettings, state: dict[str, Any]) -> None:
    """The steps before training: start those that are ready; train once they have all
    completed."""
    if not st.advance(settings.processing, state, "before", lambda: _source_tree(job)):
        _continue_steps(job, state, "before")
        return
    checking = settings.data_check.enabled and not state.get("checked")
    if checking and not dc.advance(
        settings.data_check,
        settings.processing,
        state,
        channel_uri=lambda: _channel_uri(job, settings, state, settings.data_check.channel),
    ):
        check = str(state["check"])
        job.continue_later(state, summary=f"data check: job {check}", external_id=check)
        return
    start_training(job, settings, state)


def _channel_uri(
    job: PipelineJob, settings: TrainingSettings, state: Mapping[str, Any], channel: str
) -> str:
    """Where the training job will read ``channel``: a step's output, or the files uploaded
    from the commit (to the training job's input, where it finds them again)."""
    from_steps = st.channel_uris(settings.processing, state)
    if channel in from_steps:
        return from_steps[channel]
    name = n.training_job_name(settings.pipeline, str(state["run"]))
    return _upload_channels(job, settings, _source(job), name, only=channel)[channel]


def _trained_on(described: Mapping[str, Any], channel: str) -> str:
    """Where the completed training job read ``channel`` (its InputDataConfig)."""
    for item in described.get("InputDataConfig") or []:
        if item.get("ChannelName") == channel:
            return str(item["DataSource"]["S3DataSource"]["S3Uri"])
    raise ConfigError(
        f"training job {described.get('TrainingJobName')} had no channel {channel!r} to "
        "explain the model on",
        key="monitor.channel",
        hint="name the training channel to explain with monitor.channel",
    )


@contextmanager
def _source_tree(job: PipelineJob, source: Artifact | None = None) -> Iterator[st.SourceTree]:
    with job.open_zip(source or _source(job)) as archive:
        yield st.SourceTree(archive)


def _continue_steps(job: PipelineJob, state: dict[str, Any], when: str) -> None:
    steps, done = state.get("steps", {}), set(state.get("done", []))
    running = ", ".join(f"{s} ({j})" for s, j in steps.items() if s not in done)
    stage = "process" if when == "before" else "evaluate"
    job.continue_later(
        state,
        summary=f"{stage}: {len(done)} of the steps completed; running {running}",
        external_id=next(iter(j for s, j in steps.items() if s not in done), None),
    )


def start_training(job: PipelineJob, settings: TrainingSettings, state: dict[str, Any]) -> None:
    name = n.training_job_name(settings.pipeline, str(state["run"]))
    sagemaker = client("sagemaker")
    source = _source(job)
    described = describe_training_job(sagemaker, name)
    if described is not None:
        log(
            f"training job {name} exists already ({described['TrainingJobStatus']}): not "
            "starting it again"
        )
        image = str(described["AlgorithmSpecification"]["TrainingImage"])
    else:
        image = str(state.get("image") or _image_uri(job))
        channels = _upload_channels(job, settings, source, name)
        channels.update(st.channel_uris(settings.processing, state))
        request = create_training_job_request(
            name=name,
            image=image,
            role_arn=settings.role_arn,
            channels=channels,
            output_path=settings.output_path,
            instance_type=settings.instance_type,
            instance_count=settings.instance_count,
            max_runtime=settings.max_runtime,
            use_spot=settings.use_spot,
            max_wait=settings.max_wait,
            checkpoint_uri=f"s3://{settings.models_bucket}/{settings.job_prefix(name)}/checkpoints",
            hyperparameters=settings.hyperparameters,
            environment=settings.environment,
            metric_definitions=settings.metric_definitions,
            tags={
                "mlcicd:pipeline": settings.pipeline,
                "mlcicd:commit": (source.revision or "")[:256],
                **settings.processing.execution_tag,
            },
            kms_key_id=settings.kms_key_id,
            network_isolation=settings.network_isolation,
            vpc_config=settings.vpc_config,
            inter_container_encryption=settings.inter_container_encryption,
            checkpoints=settings.checkpoints,
        )
        created = start_training_job(sagemaker, request)
        log(
            f"training job {name} "
            f"{'started' if created else 'was started by an earlier invocation'} with {image}"
        )
    if settings.processing.steps:
        state = {**state, "job": name, "image": image}
    else:  # the state of an action without steps, as it was before them
        state = {"job": name, "image": image, "revision": source.revision}
    job.continue_later(state, summary=f"training job {name} started", external_id=name, percent=0)


def _source(job: PipelineJob) -> Artifact:
    if len(job.inputs) == 1:
        return job.inputs[0]
    return job.input(SOURCE_OUTPUT)


def _image_uri(job: PipelineJob) -> str:
    build = job.inputs[0] if len(job.inputs) == 1 else job.input(BUILD_OUTPUT)
    detail = job.read_json(build, IMAGE_DETAIL)
    image = detail.get("ImageURI") if isinstance(detail, dict) else None
    if not isinstance(image, str) or not image:
        raise ArtifactError(
            f"{IMAGE_DETAIL} in artifact {build.name} has no ImageURI",
            hint="buildspec.yml writes it after pushing the image",
        )
    return image


def _upload_channels(
    job: PipelineJob,
    settings: TrainingSettings,
    source: Artifact,
    name: str,
    *,
    only: str | None = None,
) -> dict[str, str]:
    """Each channel's files from the source artifact to ``<job>/input/data/<channel>/``."""
    paths = {
        channel: location
        for channel, location in sorted(settings.channels.items())
        if settings.processing.reference(location) is None and only in (None, channel)
    }
    if not paths:
        return {}
    s3 = client("s3")
    uris: dict[str, str] = {}
    with _source_tree(job, source) as tree:
        for channel, location in paths.items():
            if PurePosixPath(location).is_absolute():
                raise ConfigError(
                    f"channel {channel!r} is the absolute path {location}; on AWS channels come "
                    "from the repository",
                    key=f"train.channels.{channel}",
                )
            root = settings.processing.in_project(location)
            prefix = f"{settings.job_prefix(name)}/input/data/{channel}/"
            found = tree.upload(s3, settings.models_bucket, root, prefix)
            if not found:
                raise TrainingError(
                    f"channel {channel!r}: {root} is not in the source artifact (commit "
                    f"{(source.revision or '?')[:12]})",
                    hint="commit the data, or fix train.channels",
                )
            log(f"channel {channel}: {found} file(s) from {root}")
            uris[channel] = f"s3://{settings.models_bucket}/{prefix}"
    return uris


# --- follow ----------------------------------------------------------------------------------


def follow(job: PipelineJob, settings: TrainingSettings, state: dict[str, Any]) -> None:
    if "job" not in state:  # the steps before training
        run_steps(job, settings, state)
        return
    if "model" in state:  # the steps after it
        evaluate_steps(job, settings, state)
        return
    name = str(state["job"])
    described = describe_training_job(client("sagemaker"), name)
    if described is None:
        raise TrainingError(
            f"training job {name} does not exist (deleted while the pipeline waited?)"
        )
    status = described["TrainingJobStatus"]
    secondary = described.get("SecondaryStatus", "")
    if status in ("InProgress", "Stopping"):
        transitions = status_transitions(described)
        latest = transitions[-1][1] if transitions else ""
        log(f"training job {name}: {status} ({secondary}) {latest}")
        job.continue_later(
            state, summary=f"{name}: {status} ({secondary}) {latest}".strip(), external_id=name
        )
        return
    if status != "Completed":
        raise TrainingError(
            f"training job {name} {status.lower()} ({secondary}): {failure_reason(described)}"
        )
    # The model's digest, once: the steps after training, the gate, the explainer's
    # continuations and the registry all take it from the token.
    url = model_uri(described)
    state["model"] = {"uri": url, "sha256": _sha256_of(client("s3"), url, job_run(described))}
    evaluate_steps(job, settings, state)


def evaluate_steps(job: PipelineJob, settings: TrainingSettings, state: dict[str, Any]) -> None:
    """The steps after training (they may read ``train.model``); the gate once they have
    completed."""
    after = settings.processing.phase_steps("after")
    if after and not st.advance(settings.processing, state, "after", lambda: _source_tree(job)):
        _continue_steps(job, state, "after")
        return
    name = str(state["job"])
    described = describe_training_job(client("sagemaker"), name)
    if described is None:
        raise TrainingError(f"training job {name} does not exist (deleted after it completed?)")
    complete(job, settings, state, described)


def complete(
    job: PipelineJob, settings: TrainingSettings, state: dict[str, Any], described: dict[str, Any]
) -> None:
    name = str(state["job"])
    s3 = client("s3")
    try:
        metrics = final_metrics(s3, described, pinned=True)
    except ValueError as exc:
        raise TrainingError(f"training job {name}: {exc}") from exc
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())) or "none"
    log(f"training job {name} completed; metrics: {shown}")
    reports = st.reports(settings.processing, state) if settings.processing.steps else {}
    for threshold in settings.thresholds:
        log(f"check {threshold}: {shown_value(threshold.metric, metrics, reports)}")
    failures = evaluate_thresholds(settings.thresholds, metrics, reports)
    model_data_url = model_uri(described)
    sha256 = str(state["model"]["sha256"])  # taken once, when the job had completed
    if failures:
        reason = "; ".join(failures)
        package = register(
            settings,
            state,
            model_data_url,
            sha256,
            metrics,
            status="Rejected",
            reason=f"quality gate: {reason}",
        )
        raise GateError(
            f"quality gate failed: {reason}",
            hint=f"model {package['arn']} was registered as Rejected; the endpoint keeps its model",
        )
    if settings.explain.enabled and not ex.advance(
        settings.explain,
        settings.processing,
        state,
        model_data_url=model_data_url,
        sha256=sha256,
        channel_uri=lambda: _trained_on(described, settings.explain.channel),
        source=lambda: _source_tree(job),
    ):
        explaining = str(state["explain"])
        job.continue_later(state, summary=f"explain: job {explaining}", external_id=explaining)
        return
    status = "PendingManualApproval" if settings.require_approval else "Approved"
    package = register(settings, state, model_data_url, sha256, metrics, status=status, reason=None)
    model = {
        "model_data_url": model_data_url,
        "model_sha256": sha256,
        "model_package_arn": package["arn"],
        "model_package_group": settings.pipeline,
        "model_package_version": package["version"],
        "approval_status": package["status"],
        "metrics": metrics,
        "gate": [str(t) for t in settings.thresholds],
        "training_job": name,
        "image_uri": state.get("image"),
        "source_revision": state.get("revision"),
    }
    if state.get("explained"):  # the deploy Lambda's Clarify baseline (explain.online)
        model["explanation"] = state["explained"]
        model["explanation_sha256"] = state.get("explained_sha256")
    elif state.get("explain_error"):
        model["explanation_error"] = state["explain_error"]
    if settings.processing.steps:
        model["processing_jobs"] = dict(st.iter_jobs(state))
        model["reports"] = reports
    output = job.outputs[0] if len(job.outputs) == 1 else _named(job.outputs, MODEL_OUTPUT)
    job.write_zip(
        output, {MODEL_JSON: (json.dumps(model, indent=2, sort_keys=True) + "\n").encode()}
    )
    log(
        f"model package {package['arn']} ({package['status']}); {MODEL_JSON} written to "
        f"{output.name}"
    )
    job.succeed(
        summary=(
            f"{name}: {shown}; model package version {package['version']} ({package['status']})"
        ),
        external_id=name,
        variables={
            "TrainingJobName": name,
            "ModelPackageArn": package["arn"],
            "ModelDataUrl": model_data_url,
        },
    )


def _named(artifacts: tuple[Artifact, ...], name: str) -> Artifact:
    for artifact in artifacts:
        if artifact.name == name:
            return artifact
    raise ArtifactError(
        f"the Train action has no output artifact {name!r}",
        hint="the pipeline's Train action must output ModelOutput",
    )


def _sha256_of(s3: AwsClient, uri: str, job: JobRun) -> str:
    """The model's digest, streamed from S3 (never held whole in the function's memory), of
    the one version the job wrote: every later reader (the explainer, the endpoint's
    container) checks the model against it."""
    bucket, key = parse_s3_uri(uri)
    written = written_once(s3, bucket, key, job=job)
    if written is None:
        raise ArtifactError(f"training job {job.name} completed but {uri} does not exist")
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=written.version_id)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in body.iter_chunks(1 << 20):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


# --- the model registry ----------------------------------------------------------------------


def register(
    settings: TrainingSettings,
    state: Mapping[str, Any],
    model_data_url: str,
    sha256: str,
    metrics: Mapping[str, float],
    *,
    status: str,
    reason: str | None,
) -> dict[str, Any]:
    """The job's model package: created once, remembered beside the job's output so a
    retried invocation finds it instead of registering a second version."""
    name = str(state["job"])
    s3, sagemaker = client("s3"), client("sagemaker")
    marker_key = f"{settings.job_prefix(name)}/{REGISTRATION}"
    where = f"{name}'s registration (s3://{settings.models_bucket}/{marker_key})"
    known = read_report(settings.models_bucket, marker_key, where)
    if known is not None:
        _check_registered(sagemaker, settings.pipeline, known, name, sha256, where)
        log(f"{name} was registered already as {known['arn']}")
        return known
    _ensure_group(sagemaker, settings.pipeline)
    metrics_key = f"{settings.job_prefix(name)}/metrics.json"
    s3.put_object(
        Bucket=settings.models_bucket,
        Key=metrics_key,
        Body=json.dumps(dict(metrics), sort_keys=True).encode(),
        ContentType="application/json",
    )
    explainability, explained = ex.metadata(state)
    properties = {
        **explained,
        "training_job": name,
        "model_sha256": sha256,
        "image": str(state.get("image") or ""),
        "commit": str(state.get("revision") or ""),
        **{f"processing_{step}"[:128]: job for step, job in st.iter_jobs(state)},
        **{f"metric_{k}"[:128]: f"{v:g}" for k, v in sorted(metrics.items())},
    }
    params: dict[str, Any] = {
        "ModelPackageGroupName": settings.pipeline,
        "ModelPackageDescription": (reason or f"trained by {name}")[:1024],
        "InferenceSpecification": {
            "Containers": [{"Image": str(state.get("image")), "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": RESPONSE_TYPES,
        },
        "ModelApprovalStatus": status,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{settings.models_bucket}/{metrics_key}",
                }
            },
            # The training channel's baseline, from this run's data check: the next one's.
            **dc.baseline_metrics(settings.processing, state),
            **explainability,  # explain: the report stored beside the model
        },
        "CustomerMetadataProperties": {k: v[:256] for k, v in properties.items() if v},
        # Within SageMaker's idempotency window, a second create with this token is the first.
        "ClientToken": hashlib.sha256(name.encode()).hexdigest()[:32],
    }
    arn = str(sagemaker.create_model_package(**params)["ModelPackageArn"])
    known = {
        "arn": arn,
        "version": int(arn.rsplit("/", 1)[-1]),
        "status": status,
        "training_job": name,
    }
    s3.put_object(
        Bucket=settings.models_bucket,
        Key=marker_key,
        Body=json.dumps(known).encode(),
        ContentType="application/json",
    )
    return known


def _check_registered(
    sagemaker: AwsClient,
    group: str,
    known: Mapping[str, Any],
    name: str,
    sha256: str,
    where: str,
) -> None:
    """A marker is believed only for a package of this pipeline registered for this job's
    model: whoever can write the models bucket could plant one naming another package, which
    the deploy would then serve."""
    arn = known.get("arn")
    hint = (
        "the marker beside the job's output was not written by this pipeline; remove it and "
        "release the change again to register this job's model"
    )
    if not isinstance(arn, str) or not arn:
        raise ArtifactError(f"{where} names no model package", hint=hint)
    try:
        package = sagemaker.describe_model_package(ModelPackageName=arn)
    except AwsError as exc:
        raise ArtifactError(
            f"{where} names {arn}, which SageMaker cannot describe: {exc}", hint=hint
        ) from exc
    properties = package.get("CustomerMetadataProperties") or {}
    found = (
        package.get("ModelPackageGroupName"),
        properties.get("training_job"),
        properties.get("model_sha256"),
    )
    if found != (group, name, sha256):
        raise ArtifactError(
            f"{where} names {arn}, which is not this job's model (group, training job, "
            f"model sha256: {found}; expected {(group, name, sha256)})",
            hint=hint,
        )


def _ensure_group(sagemaker: AwsClient, group: str) -> None:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except AwsError as exc:
        if not is_not_found(exc):
            raise
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"models trained by the {group} pipeline (mlcicd)",
        )
    except AwsError as exc:
        if "already exist" not in exc.aws_message.lower():
            raise
