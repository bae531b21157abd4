"""SageMaker endpoints (``deploy.backend: sagemaker``), behind the same interface as local ones.

``deploy`` uploads each variant's model.tar.gz (content-addressed, so the same bytes go up
once) and its code as ``sourcedir.tar.gz`` to the S3 store, creates a SageMaker Model per
variant (the training image, ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` as the
SageMaker SDK sets them), the EndpointConfig named as the deploy stage names it, and creates
or updates the endpoint; then it polls until InService. SageMaker itself keeps the old
config serving when an update fails, as the interface asks. A ``Failed`` endpoint cannot be
updated on SageMaker: it is deleted and created again.

The rest of ``deploy:`` means on SageMaker what it means locally, in SageMaker's terms:

- variants and their weights: ProductionVariants with InitialVariantWeight;
- ``shadow``: a ShadowProductionVariant weighted as the production variant (every request
  copied; SageMaker allows one production variant beside it);
- ``data_capture``: DataCaptureConfig writing under the store (``data-capture/`` of the
  artifacts bucket, as the local endpoint lays it out: ``<endpoint>/<variant>/yyyy/mm/dd/hh``);
- ``explain.online``: ExplainerConfig.ClarifyExplainerConfig, its ShapBaseline uploaded to the
  store (``<pipeline>/explain/<sha256>/baseline.csv``) as ShapBaselineUri;
- ``strategy``: UpdateEndpoint's BlueGreenUpdatePolicy (ALL_AT_ONCE, CANARY, LINEAR);
- ``alarms``: CloudWatch alarms on the new fleet (:mod:`mlcicd.aws.alarms`) in its
  AutoRollbackConfiguration;
- ``serverless``: each variant's ServerlessConfig instead of instances;
- ``autoscaling``: each variant's ScalableTarget and target-tracking policy
  (:mod:`mlcicd.aws.autoscaling`), deregistered before an update and registered again once
  the endpoint is InService on the new config;
- ``mlcicd endpoints set-weights``: UpdateEndpointWeightsAndCapacities;
- ``mlcicd endpoints metrics``: CloudWatch's ``AWS/SageMaker`` metrics in one GetMetricData
  call (:mod:`mlcicd.aws.endpoint_metrics`), summarised as the local endpoint's.

From the Models on, :mod:`mlcicd.aws.deployment` builds it all, as it does for the pipeline's
deploy Lambda: the same mlcicd.yaml deploys the same way from a run and from a push.

Store layout (bucket ``store.models_bucket``, prefix the pipeline)::

    <pipeline>/models/<sha256>/model.tar.gz
    <pipeline>/code/<sha256>/sourcedir.tar.gz

SageMaker endpoints have no local URL, port or process: those fields are None.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from mlcicd.aws import autoscaling, endpoint_metrics, hosting
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.deployment import (
    CAPTURE_PREFIX,
    VariantModel,
    clarify_baseline_key,
    clarify_with_baseline_uri,
    data_capture_config,
    endpoint_config_request,
    prepare_deployment,
    put_endpoint_config,
    rollback_thresholds,
    traffic_routing,
)
from mlcicd.aws.names import poll_seconds
from mlcicd.aws.network import vpc_config
from mlcicd.config import AutoscalingConfig, Config, ServerlessConfig, StoreConfig
from mlcicd.endpoints.base import (
    EndpointConfig,
    EndpointDescription,
    ProductionVariant,
    checked_weights,
)
from mlcicd.errors import ConfigError, EndpointError, NotFoundError
from mlcicd.shapes import EndpointMetrics
from mlcicd.store.base import ArtifactStore
from mlcicd.store.s3 import S3ArtifactStore

DEFAULT_TIMEOUT = 3600.0  # an endpoint on new instances usually takes 5-10 minutes


class SageMakerEndpointBackend:
    TYPE: ClassVar[str] = "sagemaker"

    def __init__(
        self,
        *,
        store: S3ArtifactStore,
        bucket: str,
        pipeline: str,
        image: str,
        role_arn: str,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        capture_bucket: str = StoreConfig.artifacts_bucket,
        deployment: Mapping[str, Any] | None = None,
        poll_seconds: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        scaling: AutoscalingConfig | None = None,
        serverless: ServerlessConfig | None = None,
        vpc_config: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``deployment``, when given, is UpdateEndpoint's DeploymentConfig as is, instead of
        the one each EndpointConfig's policy makes."""
        self.store = store
        self.bucket = bucket
        self.capture_bucket = capture_bucket
        self.pipeline = pipeline
        self.image = image
        self.role_arn = role_arn
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self.timeout = timeout
        self.scaling = scaling
        self.serverless = serverless
        self.vpc_config = vpc_config

    @classmethod
    def from_config(cls, config: Config, store: ArtifactStore) -> SageMakerEndpointBackend:
        if not isinstance(store, S3ArtifactStore):
            raise ConfigError(
                "SageMaker endpoints need the artifact store on S3",
                key="store.uri",
                hint="set store.uri: s3://BUCKET or s3://BUCKET/PREFIX",
            )
        # One image trains and serves (SageMaker runs it with `train`, then with `serve`).
        if not config.train.image:
            raise ConfigError(
                "required with deploy.backend: sagemaker (the image that serves the model)",
                key="train.image",
            )
        # The endpoint's own role (read-only on models) when set; else the training job's.
        role = config.deploy.role or config.train.role
        if not role:
            raise ConfigError(
                "required with deploy.backend: sagemaker (the endpoint's execution role)",
                key="deploy.role",
                hint="or train.role, which the endpoint then shares",
            )
        return cls(
            store=store,
            bucket=config.store.models_bucket,
            pipeline=config.pipeline,
            image=config.train.image,
            role_arn=role,
            instance_type=config.deploy.instance_type,
            instance_count=config.deploy.instance_count,
            capture_bucket=config.store.artifacts_bucket,
            scaling=config.deploy.autoscaling,
            serverless=config.deploy.serverless,
            vpc_config=vpc_config(config.network),
        )

    @property
    def sagemaker(self) -> AwsClient:
        return client("sagemaker")

    # --- the interface ---------------------------------------------------------------------

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        sagemaker = self.sagemaker
        variants = [
            VariantModel(v.name, self._model(sagemaker, v), v.weight) for v in config.variants
        ]
        shadow = None
        if config.shadow is not None:
            shadow = VariantModel(config.shadow.name, self._model(sagemaker, config.shadow))
        request = endpoint_config_request(
            config.name,
            variants,
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            shadow=shadow,
            data_capture=self._data_capture(config),
            explainer=self._explainer(config),
            serverless=self.serverless,
        )
        put_endpoint_config(sagemaker, request, tags=self._tags())
        # Made (its alarms put) only when the update is: not while another one rolls out.
        deployment = functools.partial(self._deployment, config)
        self._clear_failed(sagemaker, config.endpoint_name)
        deadline = time.monotonic() + self.timeout
        while True:
            started = hosting.start_deployment(
                sagemaker,
                config.endpoint_name,
                config.name,
                deployment=deployment,
                tags=self._tags(),
            )
            if started != "busy":
                break
            self._sleep(deadline, config.endpoint_name, "to finish another change")
        while True:
            now = hosting.progress(
                hosting.describe_endpoint(sagemaker, config.endpoint_name), config.name
            )
            if now.state == "done":  # registered, or deregistered once autoscaling is removed
                autoscaling.settle(
                    client("application-autoscaling"),
                    config.endpoint_name,
                    [v.name for v in config.variants],
                    self.scaling,
                )
                return self.describe(config.endpoint_name)
            if now.state == "failed":
                raise EndpointError(
                    f"endpoint {config.endpoint_name} ({now.status}): {now.reason}",
                    hint="SageMaker's log: /aws/sagemaker/Endpoints/" + config.endpoint_name,
                )
            self._sleep(deadline, config.endpoint_name, f"to be InService with {config.name}")

    def describe(self, name: str) -> EndpointDescription:
        sagemaker = self.sagemaker
        described = hosting.describe_endpoint(sagemaker, name)
        if described is None:
            raise NotFoundError(
                f"endpoint {name} does not exist on SageMaker", hint="deploy it first"
            )
        config_name = described.get("EndpointConfigName")
        status = str(described["EndpointStatus"])
        reason = described.get("FailureReason")
        variants = _variants(sagemaker, described)
        return EndpointDescription(
            name=name,
            status=status,
            url=None,
            port=None,
            pid=None,
            config_name=config_name,
            model_sha256=variants[0]["model_sha256"] if variants else None,
            failure_reason=reason if status == hosting.FAILED else None,
            last_update_failure=reason if status != hosting.FAILED else None,
            created_at=_epoch(described.get("CreationTime")),
            updated_at=_epoch(described.get("LastModifiedTime")),
            variants=variants,
            arn=described.get("EndpointArn"),
        )

    def list(self) -> list[EndpointDescription]:
        found = []
        for page in self.sagemaker.paginate("list_endpoints", SortBy="Name", SortOrder="Ascending"):
            for summary in page.get("Endpoints", []):
                try:
                    found.append(self.describe(summary["EndpointName"]))
                except NotFoundError:  # deleted between the list and the look
                    continue
        return found

    def restart(self, name: str) -> EndpointDescription:
        """Nothing to start here: SageMaker replaces an endpoint's failed instances itself."""
        return self.describe(name)

    def delete(self, name: str) -> None:
        """Delete the endpoint; SageMaker drains it. Its configs and models stay (lineage)."""
        if hosting.describe_endpoint(self.sagemaker, name) is None:
            raise NotFoundError(f"endpoint {name} does not exist on SageMaker")
        self.sagemaker.delete_endpoint(EndpointName=name)

    def set_weights(self, name: str, weights: dict[str, float]) -> EndpointDescription:
        """New traffic weights for the endpoint's production variants, on the instances they
        have: SageMaker's UpdateEndpointWeightsAndCapacities. Returns once SageMaker serves
        them (the endpoint is Updating meanwhile, and keeps serving)."""
        sagemaker = self.sagemaker
        described = hosting.describe_endpoint(sagemaker, name)
        if described is None:
            raise NotFoundError(f"endpoint {name} does not exist on SageMaker")
        status = described["EndpointStatus"]
        if status != hosting.IN_SERVICE:
            raise EndpointError(
                f"endpoint {name} is {status}; SageMaker changes the weights of an InService "
                "endpoint only",
                hint="wait until `mlcicd endpoints describe` shows it InService",
            )
        current = {v["name"]: v["weight"] for v in _variants(sagemaker, described)}
        wanted = {v: w for v, w in checked_weights(name, weights, current).items() if v in weights}
        hosting.update_weights(sagemaker, name, wanted)
        old_reason = described.get("FailureReason")
        deadline = time.monotonic() + self.timeout
        while True:
            now = hosting.describe_endpoint(sagemaker, name)
            if now is None:
                raise EndpointError(f"endpoint {name} was deleted while its weights changed")
            if now["EndpointStatus"] == hosting.IN_SERVICE:
                live = {v["VariantName"]: _weight(v) for v in now.get("ProductionVariants", [])}
                if all(live.get(v) == w for v, w in wanted.items()):
                    return self.describe(name)
                reason = now.get("FailureReason")
                if reason and reason != old_reason:  # SageMaker refused them, kept the old ones
                    raise EndpointError(f"endpoint {name} kept its weights: {reason}")
            elif now["EndpointStatus"] not in hosting.MOVING:
                raise EndpointError(
                    f"endpoint {name} is {now['EndpointStatus']}: {now.get('FailureReason') or ''}"
                )
            self._sleep(deadline, name, "to serve its new weights")

    def metrics(self, name: str, window: float | None = None) -> EndpointMetrics:
        """Per variant DescribeEndpoint names: CloudWatch's counts and p50/p90/p99 latencies
        over ``window`` seconds (whole minutes), or since the endpoint was created. SageMaker's
        metrics arrive about a minute late; a short window's notes say so."""
        described = hosting.describe_endpoint(self.sagemaker, name)
        if described is None:
            raise NotFoundError(
                f"endpoint {name} does not exist on SageMaker", hint="deploy it first"
            )
        return endpoint_metrics.endpoint_metrics(client("cloudwatch"), described, window)

    # --- the pieces -------------------------------------------------------------------------

    def _tags(self) -> dict[str, str]:
        return {"mlcicd:pipeline": self.pipeline}

    def _model(self, sagemaker: AwsClient, variant: ProductionVariant) -> str:
        """The SageMaker Model serving ``variant`` (made unless it exists): its name."""
        return hosting.ensure_serving_model(
            sagemaker,
            self.store,
            hosting.ServingModel(
                model_file=variant.model_data,
                model_sha256=variant.model_sha256,
                code_dir=variant.code_dir,
                entry_point=variant.entry_point,
                environment=dict(variant.environment),
            ),
            bucket=self.bucket,
            pipeline=self.pipeline,
            image=self.image,
            role_arn=self.role_arn,
            tags=self._tags(),
            vpc_config=self.vpc_config,
        )

    def _data_capture(self, config: EndpointConfig) -> dict[str, Any] | None:
        return data_capture_config(
            config.data_capture,
            default_destination=self.store.uri(self.capture_bucket, CAPTURE_PREFIX),
            kms_key_id=self.store.kms_key_id,
        )

    def _explainer(self, config: EndpointConfig) -> dict[str, Any] | None:
        """``explain.online``: the ClarifyExplainerConfig, its baseline uploaded to the store
        (content-addressed: ``<pipeline>/explain/<sha256>/baseline.csv``)."""
        if config.explainer is None:
            return None
        key, data = clarify_baseline_key(self.pipeline, config.explainer)
        uri = self.store.put_bytes(data, self.bucket, key).uri
        return clarify_with_baseline_uri(config.explainer, uri)

    def _deployment(self, config: EndpointConfig) -> dict[str, Any] | None:
        """UpdateEndpoint's DeploymentConfig for ``config``: its traffic shifting and, with
        alarms, their CloudWatch alarms (put now, watching ``config``'s fleet). The variants
        registered for scaling are deregistered first (with autoscaling or without: an earlier
        deploy may have registered them): SageMaker refuses some updates of them."""
        autoscaling.deregister(client("application-autoscaling"), config.endpoint_name)
        if self.deployment is not None:
            return dict(self.deployment)
        policy = config.deployment
        return prepare_deployment(
            client("cloudwatch"),
            endpoint=config.endpoint_name,
            config_name=config.name,
            variants=[v.name for v in config.variants],
            routing=traffic_routing(policy),
            **rollback_thresholds(policy),
            tags=self._tags(),
        )

    def _clear_failed(self, sagemaker: AwsClient, endpoint: str) -> None:
        described = hosting.describe_endpoint(sagemaker, endpoint)
        if described is None or described["EndpointStatus"] != hosting.FAILED:
            return
        sagemaker.delete_endpoint(EndpointName=endpoint)
        deadline = time.monotonic() + self.timeout
        while hosting.describe_endpoint(sagemaker, endpoint) is not None:
            self._sleep(deadline, endpoint, "to be deleted (it had Failed)")

    def _sleep(self, deadline: float, endpoint: str, waiting_for: str) -> None:
        if time.monotonic() > deadline:
            raise EndpointError(
                f"gave up waiting {self.timeout:.0f}s for {endpoint} {waiting_for}",
                hint="it may still get there: `mlcicd endpoints` shows it",
            )
        time.sleep(poll_seconds(self.poll_seconds))


def runtime_url(name: str, arn: str) -> str:
    """The SageMaker Runtime URL invoking endpoint ``name`` (region and partition from its
    ``arn``); it takes SigV4-signed requests: boto3's ``sagemaker-runtime`` client,
    ``aws sagemaker-runtime invoke-endpoint``."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("endpoint/"):
        raise ValueError(f"not a SageMaker endpoint ARN: {arn!r}")
    partition, region = parts[1], parts[3]
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://runtime.sagemaker.{region}.{domain}/endpoints/{name}/invocations"


def _variants(sagemaker: AwsClient, described: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The production variants served: name, weight (now) and model sha256 (None when its
    Model is gone or was not made by mlcicd)."""
    config_name = described.get("EndpointConfigName")
    if not config_name:
        return []
    found = hosting.described_or_none
    config = found(sagemaker.describe_endpoint_config, EndpointConfigName=config_name) or {}
    live = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    variants = []
    for variant in config.get("ProductionVariants", []):
        model = found(sagemaker.describe_model, ModelName=variant["ModelName"]) or {}
        environment = model.get("PrimaryContainer", {}).get("Environment", {})
        name = variant["VariantName"]
        weight = _weight({**variant, **live.get(name, {})})  # now, else as configured
        variants.append(
            {
                "name": name,
                "weight": weight,
                "model_sha256": environment.get(hosting.MODEL_SHA256_ENV),
            }
        )
    return variants


def _weight(variant: Mapping[str, Any]) -> float:
    """A variant's weight: what the endpoint serves now, else what its config says."""
    for key in ("CurrentWeight", "DesiredWeight", "InitialVariantWeight"):
        if isinstance(variant.get(key), int | float):
            return float(variant[key])
    return 1.0


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


__all__ = ["SageMakerEndpointBackend", "runtime_url"]
