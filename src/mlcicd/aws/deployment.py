"""What ``deploy:`` becomes on SageMaker, whichever way it gets there: ``mlcicd run`` with
``deploy.backend: sagemaker`` (:mod:`mlcicd.endpoints.sagemaker`) and the pipeline's deploy
Lambda (:mod:`mlcicd.aws.lambdas.deploy`, set up by the stack from the same mlcicd.yaml).
Each makes its SageMaker Models its own way — from files on this machine, or from what the
training Lambda registered — and from the Models on both go through this module:

- :func:`endpoint_config_request`: CreateEndpointConfig's ProductionVariants (weights,
  instances), the shadow (weighted as the production variant, so it sees every request) and
  the DataCaptureConfig (:func:`data_capture_config`); :func:`put_endpoint_config` creates it,
  or checks that the one of that name holds the same;
- :func:`traffic_routing` and :func:`rollback_thresholds`: ``deploy.strategy`` and
  ``deploy.alarms`` as plain data — the shapes of the Lambda's ``$MLCICD_TRAFFIC_ROUTING``
  and ``$MLCICD_ROLLBACK_THRESHOLDS``;
- :func:`prepare_deployment`: UpdateEndpoint's DeploymentConfig from those two, its rollback
  alarms (:mod:`mlcicd.aws.alarms`) put and pointed at the config being rolled out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlcicd.aws import hosting
from mlcicd.aws.alarms import put_alarms, rollback_alarms
from mlcicd.aws.clients import AwsClient
from mlcicd.config import ServerlessConfig
from mlcicd.errors import EndpointError
from mlcicd.shapes import DataCapture, DeploymentPolicy

# Under the store, in the artifacts bucket's place: where the deploy stage has a local
# endpoint write its capture.
CAPTURE_PREFIX = "data-capture"
THRESHOLDS = ("max_5xx_rate", "max_p99_latency_ms", "min_invocations")


@dataclass(frozen=True)
class VariantModel:
    """A variant of an EndpointConfig and the SageMaker Model it serves."""

    name: str
    model_name: str
    weight: float = 1.0


def endpoint_config_request(
    name: str,
    variants: Sequence[VariantModel],
    *,
    instance_type: str,
    instance_count: int,
    shadow: VariantModel | None = None,
    data_capture: Mapping[str, Any] | None = None,
    explainer: Mapping[str, Any] | None = None,
    serverless: ServerlessConfig | None = None,
) -> dict[str, Any]:
    """CreateEndpointConfig's parameters (without tags): every variant on ``instance_count``
    instances of ``instance_type`` — or, with ``serverless``, on SageMaker's ServerlessConfig
    instead (no instances); the shadow weighted as the first production variant —
    SageMaker copies to it the share of requests its weight says, and it should see all;
    ``explainer``, a ClarifyExplainerConfig, as its ExplainerConfig (see
    :func:`clarify_with_baseline_uri`)."""

    def production_variant(variant: VariantModel, weight: float) -> dict[str, Any]:
        capacity: dict[str, Any] = (
            {"InitialInstanceCount": instance_count, "InstanceType": instance_type}
            if serverless is None
            else {"ServerlessConfig": serverless_config(serverless)}
        )
        return {
            "VariantName": variant.name,
            "ModelName": variant.model_name,
            **capacity,
            "InitialVariantWeight": weight,
        }

    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [production_variant(v, v.weight) for v in variants],
    }
    if shadow is not None:
        request["ShadowProductionVariants"] = [production_variant(shadow, variants[0].weight)]
    if data_capture:
        request["DataCaptureConfig"] = dict(data_capture)
    if explainer:
        request["ExplainerConfig"] = {"ClarifyExplainerConfig": dict(explainer)}
    return request


def clarify_with_baseline_uri(explainer: Mapping[str, Any], uri: str) -> dict[str, Any]:
    """The ClarifyExplainerConfig with its inline ``ShapBaseline`` replaced by the S3 object
    holding the same CSV (``uri``): SageMaker caps the inline text at 4096 characters, and
    the baseline stays beside the models in the store."""
    shap = dict(explainer["ShapConfig"])
    shap["ShapBaselineConfig"] = {"MimeType": "text/csv", "ShapBaselineUri": uri}
    return {**explainer, "ShapConfig": shap}


def serverless_config(serverless: ServerlessConfig) -> dict[str, int]:
    """``deploy.serverless`` as a production variant's ServerlessConfig."""
    return {"MemorySizeInMB": serverless.memory_mb, "MaxConcurrency": serverless.max_concurrency}


# What data capture records as text rather than base64: the types the local endpoint's
# capture also writes as JSON or CSV (mlcicd.serving.capture).
CAPTURE_JSON_TYPES = ("application/json", "application/jsonlines")
CAPTURE_CSV_TYPES = ("text/csv",)


def data_capture_config(
    capture: DataCapture | None, *, default_destination: str, kms_key_id: str | None = None
) -> dict[str, Any] | None:
    """``deploy.data_capture`` as DataCaptureConfig, written to the capture's own s3://
    destination or else ``default_destination`` (SageMaker writes to S3 only: a directory on
    this machine means nothing to it). None when nothing is captured. SageMaker writes
    ``<endpoint>/<variant>/yyyy/mm/dd/hh/…jsonl`` under the destination — the local
    endpoint's own layout."""
    if capture is None:
        return None
    destination = capture.destination
    if not (isinstance(destination, str) and destination.startswith("s3://")):
        destination = default_destination
    modes = [
        mode
        for mode, on in (("Input", capture.capture_input), ("Output", capture.capture_output))
        if on
    ]
    config: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": int(capture.sampling_percentage),
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": mode} for mode in modes],
        "CaptureContentTypeHeader": {
            "JsonContentTypes": list(CAPTURE_JSON_TYPES),
            "CsvContentTypes": list(CAPTURE_CSV_TYPES),
        },
    }
    if kms_key_id:
        config["KmsKeyId"] = kms_key_id
    return config


def put_endpoint_config(
    sagemaker: AwsClient, request: Mapping[str, Any], *, tags: Mapping[str, str] | None = None
) -> bool:
    """Create the EndpointConfig ``request`` describes (:func:`endpoint_config_request`);
    return whether it was created now. One that exists under its name must hold the same
    variants, weights, shadow and capture — SageMaker's configs never change, so a name must
    mean one content — or EndpointError says which differ."""
    name = str(request["EndpointConfigName"])
    if hosting.ensure_endpoint_config(sagemaker, request, tags=tags):
        return True
    existing = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    differences = hosting.endpoint_config_differences(existing, request)
    if differences:
        raise EndpointError(
            f"endpoint config {name} exists on SageMaker with other {', '.join(differences)} "
            "than this deploy asks for",
            hint="delete it (aws sagemaker delete-endpoint-config) if nothing uses it, and "
            "deploy again",
        )
    return False


def traffic_routing(policy: DeploymentPolicy) -> dict[str, Any]:
    """``deploy.strategy`` as the traffic shifting of
    :func:`~mlcicd.aws.hosting.deployment_config` (the shape of ``$MLCICD_TRAFFIC_ROUTING``,
    which the deploy Lambda reads back with :func:`~mlcicd.aws.hosting.parse_traffic_routing`):
    the canary or the linear step is a percentage of the instances (SageMaker's
    CAPACITY_PERCENT), each step waits ``wait_seconds``."""
    routing: dict[str, Any] = {
        "type": policy.strategy.upper(),
        "wait_seconds": int(policy.wait_seconds),
    }
    if policy.strategy == "canary":
        routing["size_percent"] = int(policy.canary_percent)
    elif policy.strategy == "linear":
        routing["size_percent"] = int(policy.linear_step_percent)
    return routing


def rollback_thresholds(policy: DeploymentPolicy) -> dict[str, Any]:
    """``deploy.alarms`` as :func:`prepare_deployment`'s keyword arguments (the shape of
    ``$MLCICD_ROLLBACK_THRESHOLDS``): the thresholds set, with ``min_invocations``; empty
    when no threshold is set."""
    thresholds: dict[str, Any] = {
        key: value
        for key, value in (
            ("max_5xx_rate", policy.max_5xx_rate),
            ("max_p99_latency_ms", policy.max_p99_latency_ms),
        )
        if value is not None
    }
    if thresholds:
        thresholds["min_invocations"] = policy.min_invocations
    return thresholds


def prepare_deployment(
    cloudwatch: AwsClient,
    *,
    endpoint: str,
    config_name: str,
    variants: Sequence[str],
    routing: Mapping[str, Any] | None,
    max_5xx_rate: float | None = None,
    max_p99_latency_ms: float | None = None,
    min_invocations: int = 1,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """UpdateEndpoint's DeploymentConfig for rolling ``endpoint`` out to ``config_name``: the
    traffic shifting ``routing`` asks for and, with a threshold, the rollback alarms on the
    new fleet's production ``variants`` — put now (PutMetricAlarm), so call this just before
    the update. None, SageMaker's own update, when there is neither an alarm nor a wait."""
    alarms: list[str] = []
    if max_5xx_rate is not None or max_p99_latency_ms is not None:
        alarms = put_alarms(
            cloudwatch,
            rollback_alarms(
                endpoint=endpoint,
                config_name=config_name,
                variants=variants,
                max_5xx_rate=max_5xx_rate,
                max_p99_latency_ms=max_p99_latency_ms,
                min_invocations=min_invocations,
                tags=tags,
            ),
        )
    if not alarms and routing is not None and _plain(routing):
        return None  # blue/green, all at once, no baking: what UpdateEndpoint does anyway
    return hosting.deployment_config(alarms, routing)


def _plain(routing: Mapping[str, Any]) -> bool:
    return (
        routing.get("type", "ALL_AT_ONCE") == "ALL_AT_ONCE"
        and int(routing.get("wait_seconds", hosting.DEFAULT_WAIT_SECONDS)) == 0
        and not routing.get("termination_wait_seconds")
        and "max_execution_seconds" not in routing
    )


__all__ = [
    "CAPTURE_CSV_TYPES",
    "CAPTURE_JSON_TYPES",
    "CAPTURE_PREFIX",
    "THRESHOLDS",
    "VariantModel",
    "data_capture_config",
    "endpoint_config_request",
    "prepare_deployment",
    "put_endpoint_config",
    "rollback_thresholds",
    "serverless_config",
    "traffic_routing",
]
