"""`mlcicd image build`: the real Dockerfile, built with podman, carrying this mlcicd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlcicd
from mlcicd.cli import cli
from mlcicd.errors import BuildError
from mlcicd.images.build import CONTEXT_LABEL, build_image
from tests.conftest import make_repo
from tests.containers.conftest import TEST_SUITE, write

pytestmark = pytest.mark.integration


def podman_run(image: str, *cmd: str) -> str:
    return subprocess.run(
        ["podman", "run", "--rm", "--network", "none", image, *cmd],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_image_has_train_serve_and_this_mlcicd(iris_image: str) -> None:
    out = podman_run(
        iris_image,
        "sh",
        "-c",
        "command -v train; command -v serve; python -c 'import mlcicd; print(mlcicd.__version__)'",
    )
    assert out.split() == ["/usr/local/bin/train", "/usr/local/bin/serve", mlcicd.__version__]
    label = subprocess.run(
        [
            "podman",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Labels "{CONTEXT_LABEL}"}}}}',
            iris_image,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(label) == 64


def test_a_second_build_of_the_same_commit_reuses_the_image(
    iris_image: str, base_image: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "iris")
    result = CliRunner().invoke(
        cli, ["-C", str(repo), "image", "build", "--base", base_image, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"built": false' in result.output
    assert iris_image.rsplit(":", 1)[0] in result.output


def test_a_failing_step_is_named_with_its_output(base_image: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(
        context / "Dockerfile",
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG MLCICD_SPEC\n"
        "RUN echo preparing && echo 'no such package: bogus' >&2 && exit 3\n",
    )
    with pytest.raises(BuildError) as caught:
        build_image(
            context,
            tag="localhost/mlcicd/broken:test",
            tree="t" * 40,
            commit="c" * 40,
            base=base_image,
        )
    message = caught.value.headline
    assert "failed at STEP 3/5: RUN echo preparing" in message
    assert "no such package: bogus" in message


def test_an_unpullable_base_says_how_to_make_one(tmp_path: Path, base_image: str) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", "FROM registry.invalid/none/python:3.11\n")
    with pytest.raises(BuildError, match=r"cannot be pulled here.*mlcicd image base"):
        build_image(context, tag="localhost/mlcicd/unpullable:test", tree="u" * 40, commit="c" * 40)


def test_image_base_prints_the_tag_to_pass_as_base(base_image: str) -> None:
    result = CliRunner().invoke(cli, ["image", "base", "--suite", TEST_SUITE])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == base_image
