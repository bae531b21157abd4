"""DEPLOY: the pipeline's deploy Lambda (``mlcicd.aws.lambdas.deploy.handler``).

First invocation: read ``model.json`` from the Train action's output artifact; approve the
model package if it waited for the pipeline's manual approval (reaching this action means a
person approved it); create a Model ``<pipeline>-v<version>-<digest>`` per model served and
the EndpointConfig ``<endpoint>-v<version>-<digest>`` (the digests cover everything they
hold, so a changed setting makes new ones); create the endpoint, or update it. Then return
with a continuation token.

The endpoint is what ``mlcicd run --backend aws`` makes of the same mlcicd.yaml — the stack
passes ``deploy:`` on as ``MLCICD_*`` variables and both build the EndpointConfig, the
traffic shifting and the rollback alarms with :mod:`mlcicd.aws.deployment`: ``variants``
and ``shadow`` (``latest`` is the model just trained, a number that version of the model
package group), every Model on this commit's image; ``data_capture``; ``strategy``; and
``alarms``, put as CloudWatch alarms on the new fleet when the update starts;
``serverless``, a ServerlessConfig instead of instances; ``autoscaling``, each variant's
ScalableTarget and target-tracking policy (:mod:`mlcicd.aws.autoscaling`), deregistered
before an update and registered again once the endpoint is InService, as AWS documents —
or, once ``autoscaling`` is removed from mlcicd.yaml, deregistered for good.

Later invocations: while SageMaker works, return the token again; InService on the new
config succeeds; anything else (Failed, or an update SageMaker rolled back) fails the job
with SageMaker's FailureReason. A retried invocation finds what the first one created.

With ``staging:``, the Staging stage invokes it too (its UserParameters say so,
:mod:`mlcicd.aws.lambdas.staging`): the same models and EndpointConfig on the staging
endpoint — without traffic shifting, rollback alarms or data capture, which guard and watch
production — leaving a package that waits for approval waiting; and then to delete it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mlcicd.aws import autoscaling
from mlcicd.aws import names as n
from mlcicd.aws.clients import client
from mlcicd.aws.codepipeline import PipelineJob
from mlcicd.aws.deployment import (
    THRESHOLDS,
    VariantModel,
    clarify_baseline_key,
    clarify_with_baseline_uri,
    data_capture_config,
    endpoint_config_request,
    prepare_deployment,
    put_endpoint_config,
)
from mlcicd.aws.hosting import (
    MODEL_DATA_URL_ENV,
    MODEL_SHA256_ENV,
    describe_endpoint,
    described_or_none,
    ensure_model,
    parse_traffic_routing,
    progress,
    start_deployment,
)
from mlcicd.aws.lambdas.provenance import PACKAGE_TAG, PIPELINE_TAG, check_deploy_token
from mlcicd.aws.lambdas.runtime import (
    bool_setting,
    int_setting,
    json_setting,
    log,
    read_object,
    run_job,
    setting,
)
from mlcicd.aws.lambdas.staging import Target, clear_leftover, delete_step, staging_endpoint
from mlcicd.aws.network import vpc_from_json
from mlcicd.aws.template.pipeline import MODEL_OUTPUT
from mlcicd.config import AutoscalingConfig, ServerlessConfig, ShadowConfig, VariantConfig
from mlcicd.errors import ArtifactError, ConfigError, EndpointError, ExplainError
from mlcicd.processing.base import parse_report
from mlcicd.shapes import DataCapture, clarify_explainer_config
from mlcicd.store.s3 import parse_s3_uri

MODEL_JSON = "model.json"
_REQUIRED = ("model_data_url", "model_package_arn", "model_package_version", "image_uri")


@dataclass(frozen=True)
class DeploySettings:
    pipeline: str
    endpoint: str
    role_arn: str
    instance_type: str
    instance_count: int
    routing: dict[str, Any] | None  # None: all at once, baking 10 minutes when alarmed
    thresholds: dict[str, Any]  # mlcicd.aws.deployment.rollback_thresholds's; {}: no alarms
    capture: DataCapture | None = None
    variants: tuple[VariantConfig, ...] = ()  # (): AllTraffic, the model just trained
    shadow: ShadowConfig | None = None
    environment: Mapping[str, str] | None = None  # each Model's, beside MLCICD_MODEL_SHA256
    staging_endpoint: str | None = None  # staging:'s endpoint; None: the stack has no stage
    autoscaling: AutoscalingConfig | None = None  # None: a fixed instance count
    serverless: ServerlessConfig | None = None  # None: instances
    vpc_config: dict[str, list[str]] | None = None  # network: the Models' VpcConfig
    network_isolation: bool = False  # network.isolation: the Models reach no network
    explain_online: bool = False  # explain.online: the EndpointConfig's ExplainerConfig
    explain_required: bool = False  # explain.required: no report fails the deploy
    staging: bool = False  # this invocation deploys to the staging endpoint

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DeploySettings:
        return cls(
            pipeline=setting(environ, n.ENV_PIPELINE),
            endpoint=setting(environ, n.ENV_ENDPOINT_NAME),
            role_arn=setting(environ, n.ENV_SAGEMAKER_ROLE_ARN),
            instance_type=setting(environ, n.ENV_ENDPOINT_INSTANCE_TYPE, "ml.m5.large"),
            instance_count=int_setting(environ, n.ENV_ENDPOINT_INSTANCE_COUNT, 1),
            routing=parse_traffic_routing(environ.get(n.ENV_TRAFFIC_ROUTING)),
            thresholds=_thresholds(json_setting(environ, n.ENV_ROLLBACK_THRESHOLDS, {})),
            capture=_capture(json_setting(environ, n.ENV_DATA_CAPTURE, {})),
            variants=tuple(
                _parsed(VariantConfig, n.ENV_VARIANTS, v)
                for v in json_setting(environ, n.ENV_VARIANTS, [])
            ),
            shadow=_optional(ShadowConfig, n.ENV_SHADOW, json_setting(environ, n.ENV_SHADOW, {})),
            environment={
                str(k): str(v)
                for k, v in json_setting(environ, n.ENV_ENDPOINT_ENVIRONMENT, {}).items()
            },
            staging_endpoint=environ.get(n.ENV_STAGING_ENDPOINT_NAME) or None,
            autoscaling=_optional(
                AutoscalingConfig, n.ENV_AUTOSCALING, json_setting(environ, n.ENV_AUTOSCALING, {})
            ),
            serverless=_optional(
                ServerlessConfig, n.ENV_SERVERLESS, json_setting(environ, n.ENV_SERVERLESS, {})
            ),
            vpc_config=vpc_from_json(
                json_setting(environ, n.ENV_VPC_CONFIG, {}), where=n.ENV_VPC_CONFIG
            ),
            network_isolation=bool_setting(environ, n.ENV_MODEL_NETWORK_ISOLATION, False),
            explain_online=bool_setting(environ, n.ENV_EXPLAIN_ONLINE, False),
            explain_required=bool_setting(environ, n.ENV_EXPLAIN_REQUIRED, False),
        )

    def for_staging(self) -> DeploySettings:
        """Production's settings on the staging endpoint, all at once, unguarded, uncaptured,
        unscaled: the rollback alarms carry production's names, test traffic is no one's data,
        and the stack lets the Lambda scale production's endpoint only."""
        return dataclasses.replace(
            self,
            endpoint=staging_endpoint(self.staging_endpoint),
            routing={"type": "ALL_AT_ONCE", "wait_seconds": 0},
            thresholds={},
            capture=None,
            autoscaling=None,
            staging=True,
        )


_T = TypeVar("_T")


def _parsed(kind: type[_T], name: str, value: Any) -> _T:
    """``kind(**value)`` (a dataclass) for a JSON object, else a ConfigError naming the variable."""
    try:
        return kind(**value)
    except TypeError as exc:  # not an object, or other fields
        raise ConfigError(
            f"{name}: {value!r} is not a {kind.__name__} ({exc})", path="the function's environment"
        ) from exc


def _optional(kind: type[_T], name: str, value: dict[str, Any]) -> _T | None:
    """None for ``{}`` (the variable is ``""``: the key is not configured)."""
    return _parsed(kind, name, value) if value else None


def _thresholds(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - set(THRESHOLDS))
    if unknown:
        raise ConfigError(
            f"{n.ENV_ROLLBACK_THRESHOLDS}: unknown keys {unknown}",
            path="the function's environment",
        )
    return value


def _capture(value: dict[str, Any]) -> DataCapture | None:
    capture = _optional(DataCapture, n.ENV_DATA_CAPTURE, value)
    if capture is not None and not str(capture.destination or "").startswith("s3://"):
        raise ConfigError(
            f"{n.ENV_DATA_CAPTURE}: destination must be an s3:// URI, not {capture.destination!r}",
            path="the function's environment",
        )
    return capture


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one step of the Deploy action."""
    return run_job(
        event, lambda job: step(job, DeploySettings.from_environ(os.environ)), function="deploy"
    )


def step(job: PipelineJob, settings: DeploySettings) -> None:
    target = Target.from_job(job)
    if target.staging and target.action == "delete":
        delete_step(job, staging_endpoint(settings.staging_endpoint))
        return
    if target.staging:
        settings = settings.for_staging()
    if job.continuation is None:
        start(job, settings)
    else:
        # Before the token's endpoint and config are touched: it is the caller's to say.
        check_deploy_token(settings.pipeline, settings.endpoint, read_model(job), job.continuation)
        follow(job, settings, job.continuation)


def read_model(job: PipelineJob) -> dict[str, Any]:
    artifact = job.inputs[0] if len(job.inputs) == 1 else job.input(MODEL_OUTPUT)
    model = job.read_json(artifact, MODEL_JSON)
    missing = [k for k in _REQUIRED if not isinstance(model, dict) or not model.get(k)]
    if missing:
        raise ArtifactError(
            f"{MODEL_JSON} in artifact {artifact.name} lacks {', '.join(missing)}",
            hint="it is written by the Train action's Lambda",
        )
    return dict(model)


def start(job: PipelineJob, settings: DeploySettings) -> None:
    model = read_model(job)
    sagemaker = client("sagemaker")
    _approve(sagemaker, model, job.id, approve=not settings.staging)
    version = int(model["model_package_version"])
    tags = {
        PIPELINE_TAG: settings.pipeline,
        PACKAGE_TAG: str(model["model_package_arn"])[:256],  # a continuation checks it
    }
    models: dict[int | str, str] = {}

    def serving(ref: int | str) -> str:
        """The Model of ``ref`` (``latest``, or a version in the registry) on this commit's
        image."""
        if ref not in models:
            models[ref] = _model(sagemaker, settings, model, ref, tags)
        return models[ref]

    variants = [VariantModel(v.name, serving(v.model), v.weight) for v in settings.variants] or [
        VariantModel(n.VARIANT_NAME, serving("latest"))
    ]
    shadow = (
        VariantModel(settings.shadow.name, serving(settings.shadow.model))
        if settings.shadow
        else None
    )
    capture = None
    if settings.capture is not None:
        capture = data_capture_config(
            settings.capture, default_destination=str(settings.capture.destination)
        )
    request = endpoint_config_request(
        "",
        variants,
        instance_type=settings.instance_type,
        instance_count=settings.instance_count,
        shadow=shadow,
        data_capture=capture,
        explainer=_explainer(settings, model) if settings.explain_online else None,
        serverless=settings.serverless,
    )
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    config_name = n.versioned_endpoint_config_name(settings.endpoint, version, digest)
    if put_endpoint_config(sagemaker, {**request, "EndpointConfigName": config_name}, tags=tags):
        log(f"endpoint config {config_name} created")
    state = {
        "endpoint": settings.endpoint,
        "config": config_name,
        "package": model["model_package_arn"],
        "variants": [v.name for v in variants],
    }
    _start(job, settings, state)


def _explainer(settings: DeploySettings, model: Mapping[str, Any]) -> dict[str, Any] | None:
    """``explain.online``: the ClarifyExplainerConfig of the model just trained, from the
    report the training Lambda stored beside it, as ``mlcicd run``'s SageMaker backend builds
    it — its baseline CSV put beside the models (content-addressed) as ShapBaselineUri. A
    model without a report (its explainer failed), or whose report's sha256 model.json does
    not carry (an older Train action's), is served without explanations, said in the log,
    unless ``explain.required`` — as ``mlcicd run``'s deploy stage does."""
    try:
        return _clarify(settings, model)
    except ExplainError as exc:
        if settings.explain_required:
            raise
        log(f"{exc.headline}: the endpoint serves it without explanations")
        return None


def _clarify(settings: DeploySettings, model: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(model["model_package_arn"])
    uri = model.get("explanation")
    if not uri:  # not explained: the builder says why (the error, or none at all)
        failed = model.get("explanation_error")
        clarify_explainer_config({"error": failed} if failed else None, arn)
    bucket, key = parse_s3_uri(str(uri))
    data = read_object(bucket, key)
    if data is None:
        raise ExplainError(
            f"explain.online: the report of model {arn} is gone from {uri}",
            hint="run the pipeline again: the Train action explains the model anew",
        )
    expected = model.get("explanation_sha256")
    if not expected:  # model.json of an older Train action: the report cannot be verified
        raise ExplainError(
            f"explain.online: model {arn} was registered without the sha256 of its report "
            f"{uri} (by an older Train action), so the report cannot be told from a "
            "replacement: the endpoint is not given it",
            hint="rerun the Train action (release the change again): it explains the model "
            "anew and records the report's sha256",
        )
    if hashlib.sha256(data).hexdigest() != expected:
        raise ArtifactError(
            f"explain.online: the report of model {arn} at {uri} is not the one the Train "
            f"action stored (sha256 {hashlib.sha256(data).hexdigest()[:12]}…, stored "
            f"{str(expected)[:12]}…): the endpoint is not given its baseline",
            hint="whoever can write the models bucket replaced it: find who in its access log "
            "or CloudTrail; run the pipeline again to explain the model anew",
        )
    report = parse_report(data, f"explain.online: {uri}")
    clarify = clarify_explainer_config(report, arn)
    baseline_key, data = clarify_baseline_key(settings.pipeline, clarify)
    client("s3").put_object(Bucket=bucket, Key=baseline_key, Body=data, ContentType="text/csv")
    log(f"explain.online: the endpoint explains against s3://{bucket}/{baseline_key}")
    return clarify_with_baseline_uri(clarify, f"s3://{bucket}/{baseline_key}")


def _model(
    sagemaker: Any,
    settings: DeploySettings,
    model: Mapping[str, Any],
    ref: int | str,
    tags: Mapping[str, str],
) -> str:
    """Create (unless it exists) the Model serving ``ref`` — the model just trained, or
    version ``ref`` of its package group — on this commit's image, as ``mlcicd run`` runs
    every variant on this commit's code; return its name."""
    package = str(model["model_package_arn"])
    version, data_url, sha256 = (
        int(model["model_package_version"]),
        str(model["model_data_url"]),
        model.get("model_sha256"),
    )
    if ref != "latest":
        version = int(ref)
        package = f"{package.rsplit('/', 1)[0]}/{version}"
        data_url, sha256 = _registered(sagemaker, package)
    # The container serves only the bytes of that digest, fetched from that URL (model_check).
    checked = {MODEL_SHA256_ENV: str(sha256), MODEL_DATA_URL_ENV: data_url} if sha256 else {}
    environment = {**(settings.environment or {}), **checked}
    digest = hashlib.sha256(
        json.dumps(
            {
                "image": model["image_uri"],
                "model": data_url,
                "sha256": sha256,
                "environment": environment,
                # Only when set: a Model without them keeps the name it had before them.
                **({"vpc": settings.vpc_config} if settings.vpc_config else {}),
                **({"isolated": True} if settings.network_isolation else {}),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    name = n.model_name(settings.pipeline, f"v{version}-{digest[:8]}")
    tags = {**tags, "mlcicd:model-package": package[:256]}
    if ensure_model(
        sagemaker,
        name=name,
        image=model["image_uri"],
        model_data_url=data_url,
        role_arn=settings.role_arn,
        environment=environment,
        tags=tags,
        vpc_config=settings.vpc_config,
        network_isolation=settings.network_isolation,
    ):
        log(f"model {name} created ({data_url})")
    return name


def _registered(sagemaker: Any, package_arn: str) -> tuple[str, str | None]:
    """The model data and sha256 of a version in the registry
    (``…:model-package/<group>/<version>``)."""
    described = described_or_none(sagemaker.describe_model_package, ModelPackageName=package_arn)
    if described is None:
        group, version = package_arn.split(":model-package/", 1)[-1].rsplit("/", 1)
        raise EndpointError(
            f"deploy.variants or deploy.shadow names model version {version}, and the model "
            f"registry has no {group}/{version}",
            hint="name a registered version, or latest (the model this run trained)",
        )
    (container, *_) = described["InferenceSpecification"]["Containers"]
    sha256 = (described.get("CustomerMetadataProperties") or {}).get("model_sha256")
    return str(container["ModelDataUrl"]), sha256


def _start(job: PipelineJob, settings: DeploySettings, state: dict[str, Any]) -> None:
    sagemaker = client("sagemaker")
    endpoint, config = str(state["endpoint"]), str(state["config"])
    if settings.staging and not clear_leftover(sagemaker, endpoint):
        summary = f"{endpoint}: waiting for the earlier staging endpoint to be deleted"
        job.continue_later({**state, "started": False}, summary=summary, external_id=endpoint)
        return

    def deployment() -> dict[str, Any] | None:  # only for an update: it puts the rollback alarms
        # SageMaker refuses some updates of a variant registered for scaling — also when
        # deploy.autoscaling has just been removed from the config.
        gone = autoscaling.deregister(client("application-autoscaling"), endpoint)
        if gone:
            log(f"deregistered from autoscaling until the update is done: {', '.join(gone)}")
        made = prepare_deployment(
            client("cloudwatch"),
            endpoint=endpoint,
            config_name=config,
            variants=state.get("variants") or [n.VARIANT_NAME],
            routing=settings.routing,
            **settings.thresholds,
            tags={"mlcicd:pipeline": settings.pipeline},
        )
        shown = (
            json.dumps(made, sort_keys=True)
            if made
            else "SageMaker default (blue/green, all at once)"
        )
        log(f"deployment: {shown}")
        return made

    result = start_deployment(
        sagemaker,
        endpoint,
        config,
        deployment=deployment,
        tags={"mlcicd:pipeline": settings.pipeline},
    )
    messages = {
        "created": f"creating endpoint {endpoint} with {config}",
        "updating": f"updating endpoint {endpoint} to {config}",
        "current": f"endpoint {endpoint} is already on {config}",
        "busy": f"endpoint {endpoint} is being changed by another deployment; waiting to update it",
    }
    log(messages[result])
    state = {**state, "started": result != "busy"}
    job.continue_later(state, summary=messages[result], external_id=endpoint)


def follow(job: PipelineJob, settings: DeploySettings, state: dict[str, Any]) -> None:
    if not state.get("started"):
        _start(job, settings, state)
        return
    endpoint, config = str(state["endpoint"]), str(state["config"])
    described = describe_endpoint(client("sagemaker"), endpoint)
    now = progress(described, config)
    if now.state == "waiting":
        log(f"endpoint {endpoint}: {now.status}")
        job.continue_later(
            state, summary=f"{endpoint}: {now.status} ({config})", external_id=endpoint
        )
        return
    if now.state == "failed":
        raise EndpointError(f"endpoint {endpoint} ({now.status}): {now.reason}")
    log(f"endpoint {endpoint} is InService with {config}")
    scaled, released = autoscaling.settle(
        client("application-autoscaling"),
        endpoint,
        state.get("variants") or [n.VARIANT_NAME],
        settings.autoscaling,
    )
    if scaled:
        log(f"autoscaling {', '.join(scaled)} on {autoscaling.METRIC}")
    if released:
        log(
            f"deploy.autoscaling is not set: deregistered {', '.join(released)} (the endpoint "
            "keeps the instances it has until the next update)"
        )
    job.succeed(
        summary=f"{endpoint} InService with {config}",
        external_id=endpoint,
        variables={"EndpointName": endpoint, "EndpointConfigName": config},
    )


def _approve(sagemaker: Any, model: Mapping[str, Any], job_id: str, *, approve: bool) -> None:
    """A package waiting for approval has had it: the pipeline's approval stage precedes the
    production deploy (``approve``); the staging deploy precedes the approval."""
    arn = str(model["model_package_arn"])
    status = sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if status == "Rejected":
        raise EndpointError(
            f"model package {arn} is Rejected: it is not deployed",
            hint="approve it in the model registry, or push a better model",
        )
    if status == "PendingManualApproval" and approve:
        sagemaker.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus="Approved",
            ApprovalDescription=f"approved in CodePipeline before the deploy action (job {job_id})"[
                :1024
            ],
        )
        log(f"model package {arn} approved")
