"""SageMaker hosting, as the deploy Lambda and ``deploy.backend: sagemaker`` both drive it:
Models and EndpointConfigs created idempotently (looked up before created, never changed
once made — their names say what they hold), an endpoint created or updated to a config,
and how far an endpoint has got towards serving it.

Updates use SageMaker's deployment guardrails when configured: blue/green with all-at-once,
canary or linear traffic shifting, rolled back automatically when one of the alarms fires.
The traffic shifting comes from ``deploy.strategy`` in this shape
(:func:`mlcicd.aws.deployment.traffic_routing`) — for the deploy Lambda through
``$MLCICD_TRAFFIC_ROUTING`` (JSON), which the stack sets::

    {"type": "CANARY" | "LINEAR" | "ALL_AT_ONCE",
     "size_percent": 10,               # canary size, or linear step (CANARY/LINEAR)
     "wait_seconds": 600,              # between steps; the baking time of ALL_AT_ONCE
     "termination_wait_seconds": 0,    # before the old fleet goes
     "max_execution_seconds": 3600}    # optional: SageMaker's own default otherwise
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlcicd.archive import pack_dir
from mlcicd.aws.clients import AwsClient, is_already_there, is_not_found
from mlcicd.aws.names import ENV_TRAFFIC_ROUTING, model_name
from mlcicd.errors import AwsError, ConfigError, EndpointError
from mlcicd.fsutil import sha256_file
from mlcicd.serving.model_check import MODEL_DATA_URL_ENV, MODEL_SHA256_ENV
from mlcicd.store.s3 import S3ArtifactStore

# MODEL_SHA256_ENV and MODEL_DATA_URL_ENV go in each Model's container environment: the model
# bytes it may serve (the container checks them before model_fn) and where they are;
# describe() reports the digest.
IN_SERVICE = "InService"
FAILED = "Failed"
MOVING = ("Creating", "Updating", "SystemUpdating", "RollingBack")  # SageMaker is at work
DEFAULT_WAIT_SECONDS = 600
_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")


def described_or_none(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    """What a Describe call answers, or None if AWS says the thing does not exist."""
    try:
        answer: dict[str, Any] = call(**kwargs)
    except AwsError as exc:
        if is_not_found(exc):
            return None
        raise
    return answer


def _create(call: Any, params: dict[str, Any], tags: Mapping[str, str] | None) -> bool:
    """``call(**params)`` with the tags; False when another caller created it first (SageMaker
    names never change content, so what exists is what was asked for)."""
    if tags:
        params["Tags"] = tag_list(tags)
    try:
        call(**params)
    except AwsError as exc:
        if is_already_there(exc):
            return False
        raise
    return True


def tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted((tags or {}).items())]


def ensure_model(
    sagemaker: AwsClient,
    *,
    name: str,
    image: str,
    model_data_url: str,
    role_arn: str,
    environment: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    vpc_config: Mapping[str, Sequence[str]] | None = None,
    network_isolation: bool = False,
) -> bool:
    """Create the Model unless it exists; return whether it was created now.

    ``vpc_config`` puts its containers in the user's VPC (``network:``). With
    ``network_isolation`` they reach no network at all, so the container could not fetch the
    archive it checks the model against (mlcicd.serving.model_check): SageMaker is asked to
    copy model.tar.gz as it is (an uncompressed S3Object) into /opt/ml/model, where the
    container finds, verifies and extracts it itself."""
    if described_or_none(sagemaker.describe_model, ModelName=name) is not None:
        return False
    data: dict[str, Any] = {"ModelDataUrl": model_data_url}
    if network_isolation:
        data = {
            "ModelDataSource": {
                "S3DataSource": {
                    "S3Uri": model_data_url,
                    "S3DataType": "S3Object",
                    "CompressionType": "None",
                }
            }
        }
    container: dict[str, Any] = {"Image": image, **data, "Mode": "SingleModel"}
    if environment:
        container["Environment"] = dict(environment)
    params: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": role_arn,
    }
    if vpc_config:
        params["VpcConfig"] = {k: list(v) for k, v in vpc_config.items()}
    if network_isolation:
        params["EnableNetworkIsolation"] = True
    return _create(sagemaker.create_model, params, tags)


def ensure_endpoint_config(
    sagemaker: AwsClient, request: Mapping[str, Any], *, tags: Mapping[str, str] | None = None
) -> bool:
    """Create the EndpointConfig ``request`` asks for
    (:func:`mlcicd.aws.deployment.endpoint_config_request`) unless one of its name exists;
    return whether it was created now."""
    name = request["EndpointConfigName"]
    if described_or_none(sagemaker.describe_endpoint_config, EndpointConfigName=name) is not None:
        return False
    return _create(sagemaker.create_endpoint_config, dict(request), tags)


def endpoint_config_differences(
    existing: Mapping[str, Any], wanted: Mapping[str, Any]
) -> list[str]:
    """The fields in which a described EndpointConfig does not hold what ``wanted``
    (:func:`mlcicd.aws.deployment.endpoint_config_request`) asks for; SageMaker's configs
    never change, so a name must mean one content."""
    return [
        key
        for key in ("ProductionVariants", "ShadowProductionVariants", "DataCaptureConfig")
        if _content(key, existing.get(key)) != _content(key, wanted.get(key))
    ]


def _content(key: str, value: Any) -> Any:
    """What matters of a config's field, in a form that compares equal however SageMaker
    orders or spells it."""
    if not value:
        return None
    if key == "DataCaptureConfig":
        types = value.get("CaptureContentTypeHeader") or {}
        return (
            bool(value.get("EnableCapture")),
            int(value.get("InitialSamplingPercentage", 0)),
            str(value.get("DestinationS3Uri", "")).rstrip("/"),
            value.get("KmsKeyId") or None,
            tuple(sorted(o.get("CaptureMode", "") for o in value.get("CaptureOptions", []))),
            tuple(sorted(types.get("JsonContentTypes", []))),
            tuple(sorted(types.get("CsvContentTypes", []))),
        )
    return sorted(
        (
            v["VariantName"],
            v.get("ModelName"),
            v.get("InstanceType"),
            v.get("InitialInstanceCount"),
            float(v.get("InitialVariantWeight", 1.0)),
            tuple(sorted((v.get("ServerlessConfig") or {}).items())),
        )
        for v in value
    )


def update_weights(sagemaker: AwsClient, endpoint: str, weights: Mapping[str, float]) -> None:
    """UpdateEndpointWeightsAndCapacities: new traffic weights for production variants, on
    the instances they have (no new config, no new instances)."""
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": v, "DesiredWeight": float(w)} for v, w in weights.items()
        ],
    )


def describe_endpoint(sagemaker: AwsClient, name: str) -> dict[str, Any] | None:
    return described_or_none(sagemaker.describe_endpoint, EndpointName=name)


def parse_traffic_routing(raw: str | None) -> dict[str, Any] | None:
    """``$MLCICD_TRAFFIC_ROUTING`` parsed and checked; None when unset."""
    if not raw:
        return None
    try:
        routing = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"not JSON: {exc}", path=ENV_TRAFFIC_ROUTING) from exc
    if not isinstance(routing, dict) or routing.get("type", "ALL_AT_ONCE") not in _ROUTING_TYPES:
        raise ConfigError(
            f"expected an object with type one of {', '.join(_ROUTING_TYPES)}",
            path=ENV_TRAFFIC_ROUTING,
        )
    unknown = set(routing) - {
        "type",
        "size_percent",
        "wait_seconds",
        "termination_wait_seconds",
        "max_execution_seconds",
    }
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", path=ENV_TRAFFIC_ROUTING)
    return routing


def deployment_config(
    alarms: Sequence[str], routing: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """UpdateEndpoint's DeploymentConfig: blue/green with the traffic shifting asked for, and
    automatic rollback on ``alarms``; None (SageMaker's default update) without either."""
    if not alarms and not routing:
        return None
    routing = routing or {}
    kind = routing.get("type", "ALL_AT_ONCE")
    shifting: dict[str, Any] = {
        "Type": kind,
        "WaitIntervalInSeconds": int(routing.get("wait_seconds", DEFAULT_WAIT_SECONDS)),
    }
    size = {"Type": "CAPACITY_PERCENT", "Value": int(routing.get("size_percent", 10))}
    if kind == "CANARY":
        shifting["CanarySize"] = size
    elif kind == "LINEAR":
        shifting["LinearStepSize"] = size
    policy: dict[str, Any] = {
        "TrafficRoutingConfiguration": shifting,
        "TerminationWaitInSeconds": int(routing.get("termination_wait_seconds", 0)),
    }
    if "max_execution_seconds" in routing:
        policy["MaximumExecutionTimeoutInSeconds"] = int(routing["max_execution_seconds"])
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


StartResult = Literal["created", "updating", "current", "busy"]


def start_deployment(
    sagemaker: AwsClient,
    endpoint: str,
    config_name: str,
    *,
    deployment: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None = None,
    tags: Mapping[str, str] | None = None,
) -> StartResult:
    """Make ``endpoint`` move to ``config_name``: create it, or update it when it is
    InService on another config. ``current``: it already serves (or is moving to) that
    config; ``busy``: SageMaker is changing it to another config — try again later.

    ``deployment`` is UpdateEndpoint's DeploymentConfig, or a function making it that is
    called only when the update is made: it may put the rollback alarms, which must not be
    pointed at this config while another update still rolls out under them."""
    described = describe_endpoint(sagemaker, endpoint)
    if described is None:
        params: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config_name}
        if tags:
            params["Tags"] = tag_list(tags)
        sagemaker.create_endpoint(**params)
        return "created"
    status = described["EndpointStatus"]
    if status == FAILED:
        raise EndpointError(
            f"endpoint {endpoint} is Failed: {described.get('FailureReason') or 'no reason given'}",
            hint="SageMaker cannot update a failed endpoint: delete it (aws sagemaker "
            "delete-endpoint "
            f"--endpoint-name {endpoint}) and deploy again",
        )
    if described.get("EndpointConfigName") == config_name:
        return "current"
    if status in MOVING:
        return "busy"
    if status != IN_SERVICE:
        raise EndpointError(f"endpoint {endpoint} is {status}: it cannot be updated now")
    update: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config_name}
    if callable(deployment):
        deployment = deployment()
    if deployment:
        update["DeploymentConfig"] = dict(deployment)
    sagemaker.update_endpoint(**update)
    return "updating"


@dataclass(frozen=True)
class Progress:
    """How far an endpoint has got towards serving a config."""

    state: Literal["waiting", "done", "failed"]
    status: str
    reason: str | None = None


def progress(described: Mapping[str, Any] | None, config_name: str) -> Progress:
    if described is None:
        return Progress(
            "failed", "Missing", "the endpoint no longer exists (deleted while deploying?)"
        )
    status = str(described["EndpointStatus"])
    reason = described.get("FailureReason")
    current = described.get("EndpointConfigName")
    if status in MOVING:
        return Progress("waiting", status)
    if status == IN_SERVICE and current == config_name:
        return Progress("done", status)
    if status == IN_SERVICE:
        # An update that failed or was rolled back leaves the old config serving.
        return Progress(
            "failed",
            status,
            f"the update to {config_name} did not complete and the endpoint "
            f"still serves {current}: {reason or 'SageMaker rolled it back'}",
        )
    return Progress("failed", status, reason or f"the endpoint is {status}")


__all__ = [
    "MODEL_DATA_URL_ENV",
    "MODEL_SHA256_ENV",
    "Progress",
    "deployment_config",
    "describe_endpoint",
    "described_or_none",
    "endpoint_config_differences",
    "ensure_endpoint_config",
    "ensure_model",
    "parse_traffic_routing",
    "progress",
    "start_deployment",
    "tag_list",
    "update_weights",
]


@dataclass(frozen=True)
class ServingModel:
    """What a SageMaker Model serves: the model file, its digest, the inference code."""

    model_file: Path
    model_sha256: str
    code_dir: Path
    entry_point: str = "inference.py"
    environment: Mapping[str, str] | None = None


def ensure_serving_model(
    sagemaker: AwsClient,
    store: S3ArtifactStore,
    model: ServingModel,
    *,
    bucket: str,
    pipeline: str,
    image: str,
    role_arn: str,
    tags: Mapping[str, str] | None = None,
    vpc_config: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The SageMaker Model serving ``model`` with ``image`` (made unless it exists): its name.

    model.tar.gz and the code (``sourcedir.tar.gz``) go to the store under ``pipeline``,
    each uploaded unless S3's own checksum says it is there; an endpoint's variant and a
    transform job of the same model and code share one Model.
    """
    model_url = _upload_model(store, model, bucket, pipeline)
    code_url = _upload_code(store, model.code_dir, bucket, pipeline)
    environment = {
        "SAGEMAKER_PROGRAM": model.entry_point,
        "SAGEMAKER_SUBMIT_DIRECTORY": code_url,
        "SAGEMAKER_REGION": str(sagemaker.meta.region_name or ""),
        MODEL_SHA256_ENV: model.model_sha256,  # checked by the container, fetched
        MODEL_DATA_URL_ENV: model_url,  # from here (mlcicd.serving.model_check)
        **(model.environment or {}),
    }
    digest = hashlib.sha256(
        json.dumps(
            {
                "image": image,
                "model": model_url,
                "environment": environment,
                **({"vpc": vpc_config} if vpc_config else {}),  # a Model without keeps its name
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    name = model_name(pipeline, f"{model.model_sha256[:12]}-{digest[:12]}")
    ensure_model(
        sagemaker,
        name=name,
        image=image,
        model_data_url=model_url,
        role_arn=role_arn,
        environment=environment,
        tags=tags,
        vpc_config=vpc_config,
    )
    return name


def _upload_model(store: S3ArtifactStore, model: ServingModel, bucket: str, pipeline: str) -> str:
    """model.tar.gz on S3, uploaded unless S3's own checksum says it is there already."""
    key = f"{pipeline}/models/{model.model_sha256}/model.tar.gz"
    sha256 = sha256_file(model.model_file)
    if sha256 != model.model_sha256:
        raise EndpointError(
            f"model {model.model_file} has sha256 {sha256[:12]}…, the endpoint config names "
            f"{model.model_sha256[:12]}…",
            hint="it changed after it was registered; retrain with --force",
        )
    uri = store.uri(bucket, key)
    if not store.holds(uri, model.model_file):
        store.put_file(model.model_file, bucket, key)
    return uri


def _upload_code(store: S3ArtifactStore, code_dir: Path, bucket: str, pipeline: str) -> str:
    with tempfile.TemporaryDirectory(prefix="mlcicd-sourcedir-") as tmp:
        archive = Path(tmp) / "sourcedir.tar.gz"
        sha256 = pack_dir(code_dir, archive)  # deterministic: same code, same digest
        key = f"{pipeline}/code/{sha256}/sourcedir.tar.gz"
        uri = store.uri(bucket, key)
        if not store.holds(uri, archive):
            store.put_file(archive, bucket, key)
    return uri
