"""The code from S3 inside the containers (``sagemaker_submit_directory`` /
``SAGEMAKER_SUBMIT_DIRECTORY`` as an s3:// sourcedir.tar.gz), against moto's server.

The training container runs on a fake /opt/ml tree in tmp_path, in process; the serving
container's code step is called as ``main`` calls it before the server starts.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from mlcicd.archive import pack_dir
from mlcicd.serving.container import config_from_env, fetch_code
from mlcicd.shapes import encode_hyperparameters
from mlcicd.training.container import main as train_main
from tests.aws.conftest import REGION, AwsClient
from tests.training.conftest import DUMP_SCRIPT
from tests.training.test_container import environ, fake_opt_ml

pytestmark = pytest.mark.integration

BUCKET = "mlcicd-code"
KEY = "iris-classifier/job-c/source/sourcedir.tar.gz"
URI = f"s3://{BUCKET}/{KEY}"


def upload_code(aws: AwsClient, tmp_path: Path, files: dict[str, str], key: str = KEY) -> str:
    source = tmp_path / "upload-src"
    source.mkdir()
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    archive = tmp_path / "sourcedir.tar.gz"
    pack_dir(source, archive)
    aws("s3").put_object(Bucket=BUCKET, Key=key, Body=archive.read_bytes())
    return f"s3://{BUCKET}/{key}"


def job_from_s3(tmp_path: Path, uri: str) -> Path:
    """/opt/ml for a job whose code is only on S3: code/ is empty, the hyperparameter names it."""
    base = fake_opt_ml(
        tmp_path,
        "raise SystemExit('the image code ran')\n",
        {"sagemaker_submit_directory": uri, "sagemaker_region": REGION},
    )
    (base / "code" / "train.py").unlink()
    return base


def test_training_code_comes_from_s3(aws_env: AwsClient, tmp_path: Path) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    upload_code(
        aws_env, tmp_path, {"train.py": "import helper\n" + DUMP_SCRIPT, "helper.py": "X = 1\n"}
    )
    base = job_from_s3(tmp_path, URI)

    assert train_main(["train", "--base-dir", str(base)], environ()) == 0
    assert sorted(p.name for p in (base / "code").iterdir()) == ["helper.py", "train.py"]
    seen = json.loads((base / "model" / "seen.json").read_text())
    assert Path(seen["cwd"]).resolve() == (base / "code").resolve()
    assert seen["argv"] == ["train.py", "--epochs", "2"]
    assert seen["env"]["SM_MODULE_DIR"] == URI  # the toolkit's module_dir: the hyperparameter
    assert (base / "output" / "success").exists()


def test_an_isolated_jobs_code_comes_from_its_code_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network: the archive SageMaker put in the ``code`` channel is extracted; S3 is never
    asked (its endpoint here is a closed port, which any attempt would fail on)."""
    monkeypatch.setenv("MLCICD_AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    source = tmp_path / "upload-src"
    source.mkdir()
    (source / "train.py").write_text("import helper\n" + DUMP_SCRIPT)
    (source / "helper.py").write_text("X = 1\n")
    base = job_from_s3(tmp_path, "/opt/ml/input/data/code/sourcedir.tar.gz")
    archive = base / "input" / "data" / "code" / "sourcedir.tar.gz"
    archive.parent.mkdir(parents=True)
    pack_dir(source, archive)
    hyperparameters = base / "input" / "config" / "hyperparameters.json"
    values = json.loads(hyperparameters.read_text())
    values["sagemaker_submit_directory"] = json.dumps(str(archive))  # /opt/ml is tmp_path's here
    hyperparameters.write_text(json.dumps(values))

    assert train_main(["train", "--base-dir", str(base)], environ()) == 0
    assert sorted(p.name for p in (base / "code").iterdir()) == ["helper.py", "train.py"]
    assert (base / "model" / "seen.json").is_file() and (base / "output" / "success").exists()


def test_uploaded_code_beats_the_images_submit_directory(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    upload_code(aws_env, tmp_path, {"train.py": DUMP_SCRIPT})
    base = job_from_s3(tmp_path, URI)
    baked = tmp_path / "image-code"  # ENV SAGEMAKER_SUBMIT_DIRECTORY in the image
    baked.mkdir()
    (baked / "train.py").write_text("raise SystemExit('the image code ran')\n")

    assert (
        train_main(
            ["train", "--base-dir", str(base)], environ(SAGEMAKER_SUBMIT_DIRECTORY=str(baked))
        )
        == 0
    )
    assert (base / "model" / "seen.json").is_file()


def test_code_already_in_code_dir_is_kept(aws_env: AwsClient, tmp_path: Path) -> None:
    """The toolkit's rule: a non-empty /opt/ml/code is not replaced (nothing is downloaded —
    the bucket does not even exist)."""
    base = fake_opt_ml(tmp_path, DUMP_SCRIPT, {"sagemaker_submit_directory": URI})
    assert train_main(["train", "--base-dir", str(base)], environ()) == 0
    assert (base / "model" / "seen.json").is_file()


def test_missing_code_fails_the_job_with_the_reason(aws_env: AwsClient, tmp_path: Path) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    base = job_from_s3(tmp_path, f"s3://{BUCKET}/nothing/sourcedir.tar.gz")
    assert train_main(["train", "--base-dir", str(base)], environ()) == 1
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ") and "404" in failure, failure
    assert not (base / "model" / "seen.json").exists()


def test_an_archive_escaping_the_code_dir_is_refused(aws_env: AwsClient, tmp_path: Path) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("train.py", DUMP_SCRIPT.encode()),
            ("../escaped.py", b"print('out')\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    aws_env("s3").put_object(Bucket=BUCKET, Key=KEY, Body=buffer.getvalue())
    base = job_from_s3(tmp_path, URI)

    assert train_main(["train", "--base-dir", str(base)], environ()) == 1
    assert "escapes" in (base / "output" / "failure").read_text()
    assert not (base / "escaped.py").exists()
    assert not (base / "code").exists() or not any((base / "code").iterdir())


def test_serving_code_comes_from_s3(aws_env: AwsClient, tmp_path: Path) -> None:
    aws_env("s3").create_bucket(Bucket=BUCKET)
    uri = upload_code(
        aws_env,
        tmp_path,
        {"inference.py": "def model_fn(d):\n    return d\n"},
        key="iris-classifier/code/abc/sourcedir.tar.gz",
    )
    base = tmp_path / "opt" / "ml"
    (base / "model").mkdir(parents=True)
    env = {
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_SUBMIT_DIRECTORY": uri,
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_REGION": REGION,
    }

    fetched = fetch_code(env)
    assert fetched["SAGEMAKER_SUBMIT_DIRECTORY"] == str(base / "code")
    assert (base / "code" / "inference.py").is_file()
    variant = config_from_env(fetched).variants[0]
    assert (variant.code_dir, variant.entry_point) == (str(base / "code"), "inference.py")
    # A restarted container finds the code in place and does not fetch it again.
    aws_env("s3").delete_object(Bucket=BUCKET, Key="iris-classifier/code/abc/sourcedir.tar.gz")
    assert fetch_code(env)["SAGEMAKER_SUBMIT_DIRECTORY"] == str(base / "code")


def test_serving_with_local_code_is_unchanged(tmp_path: Path) -> None:
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
    assert fetch_code(env) == env
    assert encode_hyperparameters({}) == {}  # (the toolkit's helpers are importable without boto3)
