"""The model a container serves is the archive of MLCICD_MODEL_SHA256, or nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlcicd.archive import MARKER, extracted_sha256
from mlcicd.errors import ArtifactError
from mlcicd.serving.model_check import verified_model_dir
from tests.aws.conftest import AwsClient, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.helpers import IrisModel

BUCKET = "mlcicd-models"
KEY = "iris/models/model.tar.gz"


@pytest.fixture
def s3(request: pytest.FixtureRequest) -> AwsClient:
    """moto's S3 (through the AWS tests' fixtures), with the models bucket."""
    aws: AwsClient = request.getfixturevalue("aws_env")
    aws("s3").create_bucket(Bucket=BUCKET)
    return aws


def _model_dir(tmp_path: Path, archive: Path | None = None) -> Path:
    """/opt/ml/model as SageMaker leaves it: an extracted tree (here: a stranger's file)."""
    model_dir = tmp_path / "opt-ml-model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(b"whatever SageMaker extracted")
    if archive is not None:
        shutil.copy(archive, model_dir / "model.tar.gz")
    return model_dir


def test_without_a_digest_the_model_dir_is_served_as_it_is(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path)
    assert verified_model_dir({}, model_dir, tmp_path / "scratch") == model_dir


def test_the_archive_of_that_digest_is_extracted_and_served(
    tmp_path: Path, iris: IrisModel
) -> None:
    model_dir = _model_dir(tmp_path, iris.archive)
    env = {"MLCICD_MODEL_SHA256": iris.sha256}
    tree = verified_model_dir(env, model_dir, tmp_path / "scratch")
    assert tree == tmp_path / "scratch" / "model"
    assert (tree / "model.joblib").read_bytes() == (iris.model_dir / "model.joblib").read_bytes()
    assert extracted_sha256(tree) == iris.sha256


def test_another_archive_is_refused(tmp_path: Path, iris: IrisModel) -> None:
    other = tmp_path / "other.tar.gz"
    other.write_bytes(iris.archive.read_bytes() + b"\0")
    env = {"MLCICD_MODEL_SHA256": iris.sha256}
    with pytest.raises(ArtifactError, match=f"expected {iris.sha256[:12]}"):
        verified_model_dir(env, _model_dir(tmp_path, other), tmp_path / "scratch")
    assert not (tmp_path / "scratch" / "model").exists()


def test_a_tree_a_crash_cut_short_is_not_served(tmp_path: Path, iris: IrisModel) -> None:
    partial = tmp_path / "scratch" / "model"
    partial.mkdir(parents=True)
    (partial / "model.joblib").write_bytes(b"cut")
    tree = verified_model_dir(
        {"MLCICD_MODEL_SHA256": iris.sha256},
        _model_dir(tmp_path, iris.archive),
        tmp_path / "scratch",
    )
    assert (tree / MARKER).is_file()
    assert (tree / "model.joblib").read_bytes() == (iris.model_dir / "model.joblib").read_bytes()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLCICD_MODEL_SHA256": "abc"}, "is not a sha256 digest"),
        ({"MLCICD_MODEL_SHA256": "0" * 64}, "no model archive to check it against"),
        (
            {"MLCICD_MODEL_SHA256": "0" * 64, "MLCICD_MODEL_DATA_URL": "/opt/ml/m.tgz"},
            "no s3:// URI",
        ),
    ],
)
def test_a_digest_that_cannot_be_checked_is_an_error(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        verified_model_dir(env, _model_dir(tmp_path), tmp_path / "scratch")


@pytest.mark.integration
def test_the_archive_is_fetched_from_s3_and_checked(
    s3: AwsClient, tmp_path: Path, iris: IrisModel
) -> None:
    s3("s3").put_object(Bucket=BUCKET, Key=KEY, Body=iris.archive.read_bytes())
    env = {"MLCICD_MODEL_SHA256": iris.sha256, "MLCICD_MODEL_DATA_URL": f"s3://{BUCKET}/{KEY}"}
    tree = verified_model_dir(env, _model_dir(tmp_path), tmp_path / "scratch")
    assert (tree / "model.joblib").read_bytes() == (iris.model_dir / "model.joblib").read_bytes()


@pytest.mark.integration
def test_an_object_overwritten_on_s3_is_refused(
    s3: AwsClient, tmp_path: Path, iris: IrisModel
) -> None:
    s3("s3").put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=iris.archive.read_bytes() + b"\0",
        Metadata={"sha256": iris.sha256},
    )
    env = {"MLCICD_MODEL_SHA256": iris.sha256, "MLCICD_MODEL_DATA_URL": f"s3://{BUCKET}/{KEY}"}
    with pytest.raises(ArtifactError, match="was changed after it was written"):
        verified_model_dir(env, _model_dir(tmp_path), tmp_path / "scratch")
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == []
