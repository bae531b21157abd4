"""SageMaker endpoints (``deploy.backend: sagemaker``), behind the same interface as local ones.

``deploy`` uploads each variant's model.tar.gz (content-addressed, so the same bytes go up
once) and its code as ``sourcedir.tar.gz`` to the S3 store, creates a SageMaker Model per
variant (the training image, ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` as the
SageMaker SDK sets them), the EndpointConfig named as the deploy stage names it, and creates
or updates the endpoint; then it polls until InService. SageMaker itself keeps the old
config serving when an update fails, as the interface asks. A ``Failed`` endpoint cannot be
updated on SageMaker: it is deleted and created again.

Store layout (bucket ``store.models_bucket``, prefix the pipeline)::

    <pipeline>/models/<sha256>/model.tar.gz
    <pipeline>/code/<sha256>/sourcedir.tar.gz

SageMaker endpoints have no local URL, port or process: those fields are None.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.archive import pack_dir
from mlcicd.aws import hosting
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.names import model_name
from mlcicd.config import Config
from mlcicd.endpoints.base import EndpointConfig, EndpointDescription, ProductionVariant
from mlcicd.errors import ConfigError, EndpointError, NotFoundError
from mlcicd.store.base import ArtifactStore
from mlcicd.store.s3 import S3ArtifactStore
from mlcicd.training.sagemaker import poll_seconds

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
        deployment: Mapping[str, Any] | None = None,
        poll_seconds: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.pipeline = pipeline
        self.image = image
        self.role_arn = role_arn
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: Config, store: ArtifactStore) -> SageMakerEndpointBackend:
        if not isinstance(store, S3ArtifactStore):
            raise ConfigError("SageMaker endpoints need the artifact store on S3", key="store.uri",
                              hint="set store.uri: s3://BUCKET or s3://BUCKET/PREFIX")  # fmt: skip
        # One image trains and serves (SageMaker runs it with `train`, then with `serve`).
        if not config.train.image:
            raise ConfigError("required with deploy.backend: sagemaker (the image that serves the model)",
                              key="train.image")  # fmt: skip
        if not config.train.role:
            raise ConfigError("required with deploy.backend: sagemaker (the endpoint's execution role)",
                              key="train.role")  # fmt: skip
        return cls(
            store=store, bucket=config.store.models_bucket, pipeline=config.pipeline, image=config.train.image,
            role_arn=config.train.role, instance_type=config.deploy.instance_type,
            instance_count=config.deploy.instance_count,
        )  # fmt: skip

    @property
    def sagemaker(self) -> AwsClient:
        return client("sagemaker")

    # --- the interface ---------------------------------------------------------------------

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        sagemaker = self.sagemaker
        variants = [self._model(sagemaker, variant) for variant in config.variants]
        self._endpoint_config(sagemaker, config.name, variants)
        self._clear_failed(sagemaker, config.endpoint_name)
        deadline = time.monotonic() + self.timeout
        while True:
            started = hosting.start_deployment(sagemaker, config.endpoint_name, config.name,
                                               deployment=self.deployment, tags=self._tags())  # fmt: skip
            if started != "busy":
                break
            self._sleep(deadline, config.endpoint_name, "to finish another change")
        while True:
            now = hosting.progress(
                hosting.describe_endpoint(sagemaker, config.endpoint_name), config.name
            )
            if now.state == "done":
                return self.describe(config.endpoint_name)
            if now.state == "failed":
                raise EndpointError(f"endpoint {config.endpoint_name} ({now.status}): {now.reason}",
                                    hint="SageMaker's log: /aws/sagemaker/Endpoints/" + config.endpoint_name)  # fmt: skip
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
        return EndpointDescription(
            name=name, status=status, url=None, port=None, pid=None, config_name=config_name,
            model_sha256=self._served_sha256(sagemaker, config_name),
            failure_reason=reason if status == hosting.FAILED else None,
            last_update_failure=reason if status != hosting.FAILED else None,
            created_at=_epoch(described.get("CreationTime")), updated_at=_epoch(described.get("LastModifiedTime")),
            arn=described.get("EndpointArn"),
        )  # fmt: skip

    def list(self) -> list[EndpointDescription]:
        found = []
        for page in self.sagemaker.paginate("list_endpoints", SortBy="Name", SortOrder="Ascending"):
            for summary in page.get("Endpoints", []):
                try:
                    found.append(self.describe(summary["EndpointName"]))
                except NotFoundError:  # deleted between the list and the look
                    continue
        return found

    def delete(self, name: str) -> None:
        """Delete the endpoint; SageMaker drains it. Its configs and models stay (lineage)."""
        if hosting.describe_endpoint(self.sagemaker, name) is None:
            raise NotFoundError(f"endpoint {name} does not exist on SageMaker")
        self.sagemaker.delete_endpoint(EndpointName=name)

    # --- the pieces -------------------------------------------------------------------------

    def _tags(self) -> dict[str, str]:
        return {"mlcicd:pipeline": self.pipeline}

    def _model(self, sagemaker: AwsClient, variant: ProductionVariant) -> dict[str, Any]:
        model_url = self._upload_model(variant)
        code_url = self._upload_code(variant)
        environment = {
            "SAGEMAKER_PROGRAM": variant.entry_point,
            "SAGEMAKER_SUBMIT_DIRECTORY": code_url,
            "SAGEMAKER_REGION": str(sagemaker.meta.region_name or ""),
            hosting.MODEL_SHA256_ENV: variant.model_sha256,
            **variant.environment,
        }
        digest = hashlib.sha256(
            json.dumps(
                {"image": self.image, "model": model_url, "environment": environment},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        name = model_name(self.pipeline, f"{variant.model_sha256[:12]}-{digest[:12]}")
        hosting.ensure_model(sagemaker, name=name, image=self.image, model_data_url=model_url,
                             role_arn=self.role_arn, environment=environment, tags=self._tags())  # fmt: skip
        return hosting.production_variant(name=variant.name, model_name=name, instance_type=self.instance_type,
                                          instance_count=self.instance_count, weight=variant.weight)  # fmt: skip

    def _upload_model(self, variant: ProductionVariant) -> str:
        uri = self.store.uri(
            self.bucket, f"{self.pipeline}/models/{variant.model_sha256}/model.tar.gz"
        )
        if self.store.recorded_sha256(uri) == variant.model_sha256:
            return uri
        ref = self.store.put_file(
            variant.model_data,
            self.bucket,
            f"{self.pipeline}/models/{variant.model_sha256}/model.tar.gz",
        )
        if ref.sha256 != variant.model_sha256:
            raise EndpointError(
                f"model {variant.model_data} has sha256 {ref.sha256[:12]}…, the endpoint config names "
                f"{variant.model_sha256[:12]}…", hint="it changed after it was registered; retrain with --force"
            )  # fmt: skip
        return ref.uri

    def _upload_code(self, variant: ProductionVariant) -> str:
        with tempfile.TemporaryDirectory(prefix="mlcicd-sourcedir-") as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            sha256 = pack_dir(variant.code_dir, archive)  # deterministic: same code, same digest
            key = f"{self.pipeline}/code/{sha256}/sourcedir.tar.gz"
            uri = self.store.uri(self.bucket, key)
            if self.store.recorded_sha256(uri) != sha256:
                self.store.put_file(archive, self.bucket, key)
        return uri

    def _endpoint_config(
        self, sagemaker: AwsClient, name: str, variants: Sequence[Mapping[str, Any]]
    ) -> None:
        if hosting.ensure_endpoint_config(
            sagemaker, name=name, variants=variants, tags=self._tags()
        ):
            return
        existing = sagemaker.describe_endpoint_config(EndpointConfigName=name)
        wanted = {
            (v["VariantName"], v["ModelName"], v["InstanceType"], v["InitialInstanceCount"])
            for v in variants
        }
        have = {(v["VariantName"], v["ModelName"], v.get("InstanceType"), v.get("InitialInstanceCount"))
                for v in existing["ProductionVariants"]}  # fmt: skip
        if wanted != have:  # SageMaker's configs never change: a name must mean one content
            raise EndpointError(
                f"endpoint config {name} exists on SageMaker with other variants than this deploy asks for",
                hint="delete it (aws sagemaker delete-endpoint-config) if nothing uses it, and deploy again",
            )

    def _clear_failed(self, sagemaker: AwsClient, endpoint: str) -> None:
        described = hosting.describe_endpoint(sagemaker, endpoint)
        if described is None or described["EndpointStatus"] != hosting.FAILED:
            return
        sagemaker.delete_endpoint(EndpointName=endpoint)
        deadline = time.monotonic() + self.timeout
        while hosting.describe_endpoint(sagemaker, endpoint) is not None:
            self._sleep(deadline, endpoint, "to be deleted (it had Failed)")

    def _served_sha256(self, sagemaker: AwsClient, config_name: str | None) -> str | None:
        if not config_name:
            return None
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variants = config.get("ProductionVariants", [])
        if not variants:
            return None
        model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
        environment = model.get("PrimaryContainer", {}).get("Environment", {})
        sha: str | None = environment.get(hosting.MODEL_SHA256_ENV)
        return sha

    def _sleep(self, deadline: float, endpoint: str, waiting_for: str) -> None:
        if time.monotonic() > deadline:
            raise EndpointError(f"gave up waiting {self.timeout:.0f}s for {endpoint} {waiting_for}",
                                hint="it may still get there: `mlcicd endpoints` shows it")  # fmt: skip
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


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


__all__ = ["SageMakerEndpointBackend", "runtime_url"]
