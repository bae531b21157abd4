"""What every SageMaker job ``mlcicd run`` starts is made with, read from the config in one
place: the S3 store its files go through, where in it, the image and role, the instances,
the KMS key, and ``network:``.

The processing, training and transform backends each take one :class:`SageMakerJobSettings`
(and only what is their own besides: spot and checkpoints, a transform's timeout), so a
setting that reaches one job reaches all of them — ``network:`` in particular, which puts
every job's instances in the user's VPC, not only the training job's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlcicd.aws.network import vpc_config
from mlcicd.config import Config
from mlcicd.errors import ConfigError
from mlcicd.store.base import ArtifactStore
from mlcicd.store.s3 import S3ArtifactStore


@dataclass(frozen=True)
class SageMakerJobSettings:
    """One SageMaker job's settings. ``bucket`` and ``prefix`` say where its files go in
    ``store``; ``vpc_config`` and ``inter_container_encryption`` are ``network:``'s."""

    store: S3ArtifactStore
    bucket: str
    prefix: str
    image: str
    role_arn: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    network_isolation: bool = True
    kms_key_id: str | None = None
    vpc_config: Mapping[str, Sequence[str]] | None = None
    inter_container_encryption: bool = False
    poll_seconds: float | None = None

    def uri(self, key: str) -> str:
        """The ``s3://`` URI of ``key`` in the job's bucket of the store."""
        return self.store.uri(self.bucket, key)

    @classmethod
    def from_config(
        cls,
        config: Config,
        store: ArtifactStore,
        *,
        jobs: str,
        bucket: str,
        prefix: str,
        image: str | None,
        role_arn: str | None,
        instance_type: str,
        instance_count: int = 1,
        network_isolation: bool = True,
        kms_key_id: str | None = None,
        image_key: str = "train.image",
        role_key: str = "train.role",
    ) -> SageMakerJobSettings:
        """The settings of ``jobs`` (``training``, ``a processing job``: the start of the
        error messages) from ``config``. ``image_key`` and ``role_key`` are the keys a missing
        ``image`` or ``role_arn`` is reported under."""
        if not isinstance(store, S3ArtifactStore):
            raise ConfigError(
                f"{jobs} on SageMaker needs the artifact store on S3",
                key="store.uri",
                hint="set store.uri: s3://BUCKET or s3://BUCKET/PREFIX",
            )
        if not image:
            raise ConfigError(
                f"required with backend: sagemaker ({jobs} runs in this image)",
                key=image_key,
                hint="the ECR URI of the image built from the project's Dockerfile "
                "(train.image, which every job shares unless it names its own)",
            )
        if not role_arn:
            raise ConfigError(
                f"required with backend: sagemaker ({jobs} runs with this role)",
                key=role_key,
                hint="an IAM role SageMaker may assume, e.g. the stack's SageMakerRoleArn output",
            )
        return cls(
            store=store,
            bucket=bucket,
            prefix=prefix,
            image=image,
            role_arn=role_arn,
            instance_type=instance_type,
            instance_count=instance_count,
            network_isolation=network_isolation,
            kms_key_id=kms_key_id,
            vpc_config=vpc_config(config.network),
            inter_container_encryption=config.network.encrypt_inter_container,
        )


__all__ = ["SageMakerJobSettings"]
