"""One run's backends (`mlcicd run --backend aws|local`): ``with_backend``, and the outputs
of the stack (`mlcicd aws deploy`) that fill what ``--backend aws`` needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from mlcicd.config.checks import _check_semantics
from mlcicd.config.schema import CONFIG_FILE, Config, ProcessingStepConfig
from mlcicd.errors import ConfigError

RunBackend = Literal["aws", "local"]
# The outputs of the stack (`mlcicd aws deploy`) that fill what --backend aws needs.
STACK_ROLE_OUTPUT = "SageMakerRoleArn"
STACK_MODELS_BUCKET_OUTPUT = "ModelsBucketName"
STACK_REPOSITORY_OUTPUT = "RepositoryUri"
STACK_ENDPOINT_ROLE_OUTPUT = "EndpointRoleArn"
STACK_KEY_OUTPUT = "EncryptionKeyArn"
IMAGE_TAG_LENGTH = 12  # buildspec.yml tags the image with the commit's first 12 digits


def with_backend(
    config: Config,
    backend: RunBackend,
    *,
    stack_outputs: Mapping[str, str] | None = None,
    commit: str | None = None,
    source: str = CONFIG_FILE,
) -> Config:
    """``config`` with every stage on ``backend`` — a new Config; ``config`` is unchanged.

    ``local`` runs training, the processing steps and the endpoint on this machine. ``aws``
    sets ``train.backend``, ``deploy.backend`` and each step's ``backend`` to ``sagemaker``,
    which needs ``train.image``, ``train.role`` and ``store.uri`` on S3: what the config
    leaves unset is taken from ``stack_outputs`` (the outputs of the stack ``mlcicd aws
    deploy`` made) — ``SageMakerRoleArn`` → ``train.role``,
    ``ModelsBucketName`` → ``store.uri`` (``s3://<bucket>``), ``RepositoryUri`` and the
    ``commit`` being run → ``train.image`` (``<uri>:<commit[:12]>``, the tag buildspec.yml
    gives the image it builds). Whatever is still missing is one ConfigError naming every
    missing key. Optional, when the config leaves them unset: ``EndpointRoleArn`` →
    ``deploy.role``, ``EncryptionKeyArn`` → ``train.kms_key``. The result is validated as a
    loaded config is.
    """
    if backend == "local":
        result = dataclasses.replace(
            config,
            train=dataclasses.replace(config.train, backend="local"),
            deploy=dataclasses.replace(config.deploy, backend="local"),
            processing=_steps_on(config, "local"),
        )
        _check_semantics(result, source)
        return result
    outputs = stack_outputs or {}
    train, store = config.train, config.store
    role = train.role or outputs.get(STACK_ROLE_OUTPUT) or None
    uri = store.uri
    if uri is None and outputs.get(STACK_MODELS_BUCKET_OUTPUT):
        uri = f"s3://{outputs[STACK_MODELS_BUCKET_OUTPUT]}"
    image = train.image
    if not image and outputs.get(STACK_REPOSITORY_OUTPUT) and commit:
        image = f"{outputs[STACK_REPOSITORY_OUTPUT]}:{commit[:IMAGE_TAG_LENGTH]}"
    missing = [
        key
        for key, value in (("train.image", image), ("train.role", role), ("store.uri", uri))
        if not value
    ]
    if missing:
        hint = (
            f"the stack's outputs hold none of them ({STACK_REPOSITORY_OUTPUT}, "
            f"{STACK_ROLE_OUTPUT}, "
            f"{STACK_MODELS_BUCKET_OUTPUT}): is it the stack `mlcicd aws deploy` made?"
            if stack_outputs is not None
            else "set them in mlcicd.yaml, or pass --stack-name NAME to take them from the stack "
            "`mlcicd aws deploy` made"
        )
        raise ConfigError(
            f"--backend aws (SageMaker) needs {', '.join(missing)}, not set", path=source, hint=hint
        )
    if uri is None or not uri.startswith("s3://"):
        raise ConfigError(
            f"--backend aws keeps artifacts on S3; this is not an s3:// URI: {uri!r}",
            path=source,
            key="store.uri",
            hint=(
                "set store.uri: s3://BUCKET[/PREFIX], or leave it unset and pass --stack-name NAME"
            ),
        )
    result = dataclasses.replace(
        config,
        train=dataclasses.replace(
            train,
            backend="sagemaker",
            image=image,
            role=role,
            kms_key=train.kms_key or outputs.get(STACK_KEY_OUTPUT) or None,
        ),
        deploy=dataclasses.replace(
            config.deploy,
            backend="sagemaker",
            role=config.deploy.role or outputs.get(STACK_ENDPOINT_ROLE_OUTPUT) or None,
        ),
        store=dataclasses.replace(store, uri=uri),
        processing=_steps_on(config, "sagemaker"),
    )
    _check_semantics(result, source)
    return result


def _steps_on(
    config: Config, backend: Literal["local", "sagemaker"]
) -> tuple[ProcessingStepConfig, ...]:
    """Every processing step on ``backend``: a run on AWS runs its steps as ProcessingJobs, as
    the stack's pipeline does (with train.image, train.role and the store above)."""
    return tuple(dataclasses.replace(step, backend=backend) for step in config.processing)
