"""One SageMakerJobSettings for the three job backends of ``mlcicd run``: what the config says
reaches each of them alike, and what is missing is named once, under its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.config import parse_config
from mlcicd.errors import ConfigError
from mlcicd.processing.sagemaker import SageMakerProcessingBackend
from mlcicd.store import LocalArtifactStore, S3ArtifactStore
from mlcicd.training.sagemaker import SageMakerTrainingBackend
from mlcicd.transform.sagemaker import SageMakerTransformBackend

CONFIG = """\
pipeline: iris
processing:
  - {name: prepare, entry_point: p.py, backend: sagemaker, instance_type: ml.c5.xlarge}
train: {image: img, role: arn:aws:iam::1:role/train, kms_key: key}
deploy: {role: arn:aws:iam::1:role/serve}
network: {subnets: [subnet-0123456789abcdef0], security_groups: [sg-0123abcd]}
"""


def test_every_job_gets_the_network_and_its_own_bucket_role_and_instances(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    store = S3ArtifactStore("s3://bucket")
    processing = SageMakerProcessingBackend.from_config(
        config, config.processing[0], store, tmp_path
    ).settings
    training = SageMakerTrainingBackend.from_config(config, store, tmp_path).settings
    transform = SageMakerTransformBackend.from_config(config, store, tmp_path).settings
    vpc = {"SecurityGroupIds": ["sg-0123abcd"], "Subnets": ["subnet-0123456789abcdef0"]}
    for settings in (processing, training, transform):
        assert (settings.vpc_config, settings.inter_container_encryption) == (vpc, True)
        assert settings.image == "img" and settings.store is store
    assert (processing.bucket, processing.prefix, processing.instance_type) == (
        "ml-cicd-pipeline-artifacts",
        "iris/processing",
        "ml.c5.xlarge",
    )
    assert (training.bucket, training.prefix, training.kms_key_id) == (
        "ml-cicd-pipeline-models",
        "iris",
        "key",
    )
    # A transform job runs with the endpoint's role, its output under the store's own key.
    assert (transform.role_arn, transform.kms_key_id) == ("arn:aws:iam::1:role/serve", None)


def test_a_store_not_on_s3_is_refused_for_each_kind_of_job(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    local = LocalArtifactStore(tmp_path)
    for jobs, make in (
        (
            "a processing job",
            lambda: SageMakerProcessingBackend.from_config(
                config, config.processing[0], local, tmp_path
            ),
        ),
        ("training", lambda: SageMakerTrainingBackend.from_config(config, local, tmp_path)),
        ("a transform job", lambda: SageMakerTransformBackend.from_config(config, local, tmp_path)),
    ):
        with pytest.raises(
            ConfigError, match=rf"mlcicd.yaml: store.uri: {jobs} on SageMaker needs"
        ) as err:
            make()
        assert "s3://BUCKET" in str(err.value.hint)
