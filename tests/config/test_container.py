"""The container backends' settings: build.image, and what one serving container can do."""

from __future__ import annotations

import pytest

from mlcicd.config import ImageConfig, parse_config
from mlcicd.errors import ConfigError
from mlcicd.stages.build import image_settings


def test_build_image_is_off_unless_asked_or_implied() -> None:
    assert image_settings(parse_config("pipeline: p")) is None
    assert image_settings(parse_config("pipeline: p\nbuild: {image: true}")) == ImageConfig()
    assert image_settings(parse_config("pipeline: p\ntrain: {backend: container}")) == ImageConfig()
    assert (
        image_settings(parse_config("pipeline: p\ndeploy: {backend: container}")) == ImageConfig()
    )


def test_build_image_takes_its_settings() -> None:
    config = parse_config(
        "pipeline: p\nbuild: {image: {base: localhost/py:3.11, dockerfile: docker/Dockerfile}}"
    )
    assert image_settings(config) == ImageConfig(
        base="localhost/py:3.11", dockerfile="docker/Dockerfile"
    )
    assert image_settings(parse_config("pipeline: p\nbuild: {image: {enabled: false}}")) is None


def test_a_wrong_build_image_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"build\.image: expected true or false or a mapping"):
        parse_config("pipeline: p\nbuild: {image: yes please}")


@pytest.mark.parametrize(
    ("deploy", "key"),
    [
        ("{backend: container, variants: [{name: A}, {name: B}]}", "deploy.variants"),
        ("{backend: container, shadow: {model: 1}}", "deploy.shadow"),
        ("{backend: container, strategy: canary}", "deploy.strategy"),
        ("{backend: container, data_capture: {enabled: true}}", "deploy.data_capture.enabled"),
        (
            "{backend: container, autoscaling: {max_instances: 2, "
            "target_invocations_per_instance: 9}}",
            "deploy.autoscaling",
        ),
    ],
)
def test_a_container_endpoint_refuses_what_one_container_cannot_serve(
    deploy: str, key: str
) -> None:
    with pytest.raises(
        ConfigError, match=rf"{key}: deploy.backend: container serves one model"
    ) as caught:
        parse_config(f"pipeline: p\ndeploy: {deploy}")
    assert "use backend: local" in caught.value.headline
