"""Transform jobs on SageMaker: a real CreateTransformJob from the registered model, followed
to its end.

The model and its code go to the S3 store and become a SageMaker Model exactly as an
endpoint's variant does (:func:`mlcicd.aws.hosting.ensure_serving_model`, so the two share
it); the job's fields are the local job's, under SageMaker's names
(:mod:`mlcicd.aws.transform_jobs`). Input and output must be ``s3://``: SageMaker reads and
writes nothing else. ``network:`` puts the Model in the user's VPC, as an endpoint's (one
Model serves both). The job is followed until Completed, Failed or Stopped; its
FailureReason becomes the :class:`TransformError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.aws import hosting, transform_jobs
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.aws.names import poll_seconds
from mlcicd.config import CONFIG_FILE, Config
from mlcicd.errors import ConfigError, TransformError
from mlcicd.store.base import ArtifactStore
from mlcicd.store.s3 import S3ArtifactStore
from mlcicd.transform import s3io
from mlcicd.transform.base import (
    COMPLETED,
    TransformJobResult,
    TransformJobSpec,
    TransformProgress,
    Where,
    check_settings,
    flag,
)

DEFAULT_TIMEOUT = 24 * 3600.0  # SageMaker's own cap on a transform job is days; ours, one


class SageMakerTransformBackend:
    TYPE: ClassVar[str] = "sagemaker"

    def __init__(
        self,
        settings: SageMakerJobSettings,
        *,
        jobs_root: Path,
        where: Where = flag,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.jobs_root = jobs_root
        self.where = where
        self.timeout = timeout

    @classmethod
    def from_config(
        cls, config: Config, store: ArtifactStore, jobs_root: Path, where: Where = flag
    ) -> SageMakerTransformBackend:
        if config.network.isolation:
            # As deploy.backend: sagemaker (config/infrastructure.py): the job's Model would be
            # outside the isolation the config asks for, not silently less isolated.
            raise ConfigError(
                "a SageMaker transform job serves the inference code from S3 "
                "(sourcedir.tar.gz), which an isolated container cannot fetch",
                path=CONFIG_FILE,
                key="network.isolation",
                hint="transform on this machine (transform.backend: local, or no --backend "
                "sagemaker), or drop network.isolation",
            )
        settings = SageMakerJobSettings.from_config(
            config,
            store,
            jobs="a transform job",
            bucket=config.store.models_bucket,
            prefix=config.pipeline,
            image=config.train.image,  # one image trains and serves
            role_arn=config.deploy.role or config.train.role,
            instance_type=config.deploy.instance_type,
            # The store's own key, as before: the job's role (deploy.role) may not use train's.
            kms_key_id=store.kms_key_id if isinstance(store, S3ArtifactStore) else None,
            role_key="deploy.role",
        )
        return cls(settings, jobs_root=jobs_root, where=where)

    def log_path(self, name: str) -> Path:
        """SageMaker keeps the log (CloudWatch, /aws/sagemaker/TransformJobs); nothing here."""
        return self.jobs_root / name / "job.log"

    def input_digest(self, source: str) -> str:
        self._check_s3(source, "input")
        return s3io.listing_digest(self.settings.store.client, source, self.where("input"))

    def run(
        self,
        spec: TransformJobSpec,
        on_progress: Callable[[TransformProgress], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> TransformJobResult:
        check_settings(spec.settings, self.where)
        self._check_s3(spec.input, "input")
        self._check_s3(spec.output, "output")
        sagemaker = client("sagemaker")
        model = spec.model
        model_name = hosting.ensure_serving_model(
            sagemaker,
            self.settings.store,
            hosting.ServingModel(
                model.model_file,
                model.model_sha256,
                model.code_dir,
                model.entry_point,
                model.environment,
            ),
            bucket=self.settings.bucket,
            pipeline=self.settings.prefix,
            image=self.settings.image,
            role_arn=self.settings.role_arn,
            tags={"mlcicd:pipeline": self.settings.prefix},
            vpc_config=self.settings.vpc_config,
        )
        request = transform_jobs.create_transform_job_request(
            name=spec.name,
            model_name=model_name,
            settings=spec.settings.to_dict(),
            input_uri=spec.input,
            output_uri=spec.output,
            instance_type=self.settings.instance_type,
            instance_count=self.settings.instance_count,
            kms_key_id=self.settings.kms_key_id,
            tags={"mlcicd:pipeline": self.settings.prefix},
        )
        if transform_jobs.describe_transform_job(sagemaker, spec.name) is None:
            sagemaker.create_transform_job(**request)
        if on_log is not None:
            on_log(f"SageMaker transform job {spec.name} of model {model_name} started")
        described = self._follow(sagemaker, spec.name)
        status = described["TransformJobStatus"]
        if status != COMPLETED:
            reason = described.get("FailureReason") or f"it is {status}"
            raise TransformError(
                f"SageMaker transform job {spec.name} is {status}: {reason}",
                hint="see its log in CloudWatch (/aws/sagemaker/TransformJobs)",
            )
        bucket, prefix = s3io.split(spec.input, "input")
        objects = s3io.keys(self.settings.store.client, bucket, prefix)
        base = spec.output.rstrip("/")
        outputs = [f"{base}/{key[len(prefix) :].lstrip('/')}.out" for key, _ in objects]
        return TransformJobResult(COMPLETED, None, len(objects), 0, 0, outputs)

    def _follow(self, sagemaker: AwsClient, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            described = transform_jobs.describe_transform_job(sagemaker, name)
            if described is None:
                raise TransformError(f"SageMaker has no transform job {name}")
            if described["TransformJobStatus"] in transform_jobs.TERMINAL_STATUSES:
                return described
            if time.monotonic() > deadline:
                raise TransformError(f"SageMaker transform job {name} did not end in time")
            time.sleep(poll_seconds(self.settings.poll_seconds))

    def _check_s3(self, uri: str, what: str) -> None:
        if not uri.startswith(s3io.S3):
            raise TransformError(
                f"{self.where(what)} {uri} is not on S3: SageMaker reads and writes s3:// only",
                hint="upload it, or use the local backend",
            )
