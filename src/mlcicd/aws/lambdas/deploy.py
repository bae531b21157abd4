"""DEPLOY: the pipeline's deploy Lambda (``mlcicd.aws.lambdas.deploy.handler``).

First invocation: read ``model.json`` from the Train action's output artifact; approve the
model package if it waited for the pipeline's manual approval (reaching this action means a
person approved it); create the Model ``<pipeline>-v<version>-<digest>`` and the
EndpointConfig ``<endpoint>-v<version>-<digest>`` (the digest covers the image, the model
data and the instances, so a changed setting makes new ones); create the endpoint, or
update it — blue/green with traffic shifting and automatic rollback on the stack's alarms
when configured. Then return with a continuation token.

Later invocations: while SageMaker works, return the token again; InService on the new
config succeeds; anything else (Failed, or an update SageMaker rolled back) fails the job
with SageMaker's FailureReason. A retried invocation finds what the first one created.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlcicd.aws import names as n
from mlcicd.aws.clients import client
from mlcicd.aws.codepipeline import PipelineJob
from mlcicd.aws.hosting import (
    MODEL_SHA256_ENV,
    deployment_config,
    describe_endpoint,
    ensure_endpoint_config,
    ensure_model,
    production_variant,
    progress,
    start_deployment,
    traffic_routing,
)
from mlcicd.aws.lambdas.runtime import int_setting, json_setting, log, run_job, setting
from mlcicd.aws.template.pipeline import MODEL_OUTPUT
from mlcicd.errors import ArtifactError, EndpointError

MODEL_JSON = "model.json"
_REQUIRED = ("model_data_url", "model_package_arn", "model_package_version", "image_uri")


@dataclass(frozen=True)
class DeploySettings:
    pipeline: str
    endpoint: str
    role_arn: str
    instance_type: str
    instance_count: int
    alarms: tuple[str, ...]
    routing: dict[str, Any] | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DeploySettings:
        return cls(
            pipeline=setting(environ, n.ENV_PIPELINE),
            endpoint=setting(environ, n.ENV_ENDPOINT_NAME),
            role_arn=setting(environ, n.ENV_SAGEMAKER_ROLE_ARN),
            instance_type=setting(environ, n.ENV_ENDPOINT_INSTANCE_TYPE, "ml.m5.large"),
            instance_count=int_setting(environ, n.ENV_ENDPOINT_INSTANCE_COUNT, 1),
            alarms=tuple(str(a) for a in json_setting(environ, n.ENV_ROLLBACK_ALARMS, [])),
            routing=traffic_routing(environ.get(n.ENV_TRAFFIC_ROUTING)),
        )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one step of the Deploy action."""
    return run_job(event, lambda job: step(job, DeploySettings.from_environ(os.environ)), function="deploy")


def step(job: PipelineJob, settings: DeploySettings) -> None:
    if job.continuation is None:
        start(job, settings)
    else:
        follow(job, settings, job.continuation)


def read_model(job: PipelineJob) -> dict[str, Any]:
    artifact = job.inputs[0] if len(job.inputs) == 1 else job.input(MODEL_OUTPUT)
    model = job.read_json(artifact, MODEL_JSON)
    missing = [k for k in _REQUIRED if not isinstance(model, dict) or not model.get(k)]
    if missing:
        raise ArtifactError(f"{MODEL_JSON} in artifact {artifact.name} lacks {', '.join(missing)}",
                            hint="it is written by the Train action's Lambda")  # fmt: skip
    return dict(model)


def start(job: PipelineJob, settings: DeploySettings) -> None:
    model = read_model(job)
    sagemaker = client("sagemaker")
    _approve(sagemaker, model, job.id)
    version = int(model["model_package_version"])
    digest = hashlib.sha256(json.dumps({
        "image": model["image_uri"], "model": model["model_data_url"], "sha256": model.get("model_sha256"),
        "instance_type": settings.instance_type, "instance_count": settings.instance_count,
    }, sort_keys=True).encode()).hexdigest()  # fmt: skip
    model_name = n.model_name(settings.pipeline, f"v{version}-{digest[:8]}")
    config_name = n.versioned_endpoint_config_name(settings.endpoint, version, digest)
    tags = {"mlcicd:pipeline": settings.pipeline, "mlcicd:model-package": str(model["model_package_arn"])[:256]}
    environment = {MODEL_SHA256_ENV: str(model["model_sha256"])} if model.get("model_sha256") else {}
    if ensure_model(sagemaker, name=model_name, image=model["image_uri"], model_data_url=model["model_data_url"],
                    role_arn=settings.role_arn, environment=environment, tags=tags):  # fmt: skip
        log(f"model {model_name} created ({model['model_data_url']})")
    variant = production_variant(name=n.VARIANT_NAME, model_name=model_name,
                                 instance_type=settings.instance_type, instance_count=settings.instance_count)  # fmt: skip
    if ensure_endpoint_config(sagemaker, name=config_name, variants=[variant], tags=tags):
        log(f"endpoint config {config_name} created")
    state = {"endpoint": settings.endpoint, "config": config_name, "package": model["model_package_arn"]}
    _start(job, settings, state)


def _start(job: PipelineJob, settings: DeploySettings, state: dict[str, Any]) -> None:
    sagemaker = client("sagemaker")
    result = start_deployment(
        sagemaker, state["endpoint"], state["config"],
        deployment=deployment_config(settings.alarms, settings.routing), tags={"mlcicd:pipeline": settings.pipeline},
    )  # fmt: skip
    messages = {
        "created": f"creating endpoint {state['endpoint']} with {state['config']}",
        "updating": f"updating endpoint {state['endpoint']} to {state['config']}",
        "current": f"endpoint {state['endpoint']} is already on {state['config']}",
        "busy": f"endpoint {state['endpoint']} is being changed by another deployment; waiting to update it",
    }
    log(messages[result])
    state = {**state, "started": result != "busy"}
    job.continue_later(state, summary=messages[result], external_id=state["endpoint"])


def follow(job: PipelineJob, settings: DeploySettings, state: dict[str, Any]) -> None:
    if not state.get("started"):
        _start(job, settings, state)
        return
    endpoint, config = str(state["endpoint"]), str(state["config"])
    described = describe_endpoint(client("sagemaker"), endpoint)
    now = progress(described, config)
    if now.state == "waiting":
        log(f"endpoint {endpoint}: {now.status}")
        job.continue_later(state, summary=f"{endpoint}: {now.status} ({config})", external_id=endpoint)
        return
    if now.state == "failed":
        raise EndpointError(f"endpoint {endpoint} ({now.status}): {now.reason}")
    log(f"endpoint {endpoint} is InService with {config}")
    job.succeed(summary=f"{endpoint} InService with {config}", external_id=endpoint,
                variables={"EndpointName": endpoint, "EndpointConfigName": config})  # fmt: skip


def _approve(sagemaker: Any, model: Mapping[str, Any], job_id: str) -> None:
    """A package waiting for approval has had it: the pipeline's approval stage precedes this."""
    arn = str(model["model_package_arn"])
    status = sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if status == "Rejected":
        raise EndpointError(f"model package {arn} is Rejected: it is not deployed",
                            hint="approve it in the model registry, or push a better model")  # fmt: skip
    if status == "PendingManualApproval":
        sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Approved",
            ApprovalDescription=f"approved in CodePipeline before the deploy action (job {job_id})"[:1024],
        )  # fmt: skip
        log(f"model package {arn} approved")
