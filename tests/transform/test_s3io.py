"""s3:// input and output against moto's server: objects in, ``.out`` objects out, the output
prefix claimed like a directory, nothing half-written uploaded."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import TransformError
from mlcicd.transform import TransformJobSpec, TransformModel, TransformSettings
from mlcicd.transform.local import LocalTransformBackend
from tests.helpers import IrisModel
from tests.transform.conftest import rows

pytestmark = pytest.mark.integration  # moto's server, worker processes


def test_s3_objects_in_and_out_objects_out(
    tmp_path: Path,
    iris: IrisModel,
    model: TransformModel,
    aws_env: Any,
) -> None:
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="batch")
    data = rows(iris, 120)
    body = "".join(",".join(f"{v:.1f}" for v in row) + "\n" for row in data).encode()
    s3.put_object(Bucket="batch", Key="in/day=1/a.csv", Body=body)
    s3.put_object(Bucket="batch", Key="in/b.csv", Body=body[:16])
    s3.put_object(Bucket="batch", Key="input-not-mine.csv", Body=b"1,2,3,4\n")
    backend = LocalTransformBackend(tmp_path / "jobs")

    def run(name: str, output: str) -> None:
        spec = TransformJobSpec(name, model, "s3://batch/in", output, TransformSettings())
        backend.run(spec)

    run("first", "s3://batch/out/")

    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="batch", Prefix="out/")["Contents"])
    assert listed == ["out/.mlcicd-transform.json", "out/b.csv.out", "out/day=1/a.csv.out"]
    answer = s3.get_object(Bucket="batch", Key="out/day=1/a.csv.out")["Body"].read().decode()
    assert answer.splitlines() == [str(v) for v in iris.model.predict(_decoded(body))]
    assert not (tmp_path / "jobs" / "first" / "staged").exists()

    run("again", "s3://batch/out")  # the same job may take its prefix over
    s3.put_object(Bucket="batch", Key="taken/report.pdf", Body=b"mine")
    with pytest.raises(TransformError, match=r"--output s3://batch/taken holds objects .*report"):
        run("refused", "s3://batch/taken")
    with pytest.raises(TransformError, match="--input s3://batch/nothing holds no objects"):
        backend.run(TransformJobSpec("none", model, "s3://batch/nothing", "s3://batch/o2"))


def _decoded(body: bytes) -> list[list[float]]:
    return [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]


def test_a_key_that_would_climb_out_of_the_job_directory_is_refused(
    tmp_path: Path, model: TransformModel, aws_env: Any
) -> None:
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="batch")
    s3.put_object(Bucket="batch", Key="in/../../../escaped.csv", Body=b"5.1,3.5,1.4,0.2\n")
    backend = LocalTransformBackend(tmp_path / "jobs")
    spec = TransformJobSpec("climb", model, "s3://batch/in", str(tmp_path / "out"))
    with pytest.raises(TransformError, match="is not a clean path"):
        backend.run(spec)
    assert not list(tmp_path.rglob("escaped.csv"))


def test_an_input_of_hidden_or_empty_objects_is_refused_from_its_listing(
    tmp_path: Path, model: TransformModel, aws_env: Any
) -> None:
    """As a local directory of them is, and before anything is downloaded: the objects are
    archived (GLACIER), so a download would fail with S3's InvalidObjectState instead."""
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="batch")
    for key, body in (("in/.hidden.csv", b"5.1,3.5,1.4,0.2\n"), ("in/empty.csv", b"")):
        s3.put_object(Bucket="batch", Key=key, Body=body, StorageClass="GLACIER")
    backend = LocalTransformBackend(tmp_path / "jobs")
    spec = TransformJobSpec("hidden", model, "s3://batch/in", str(tmp_path / "out"))
    with pytest.raises(TransformError) as refused:
        backend.run(spec)
    assert str(refused.value) == (
        "--input s3://batch/in is empty: no file with records in it"
        " (point it at the files to transform)"
    )
    assert not (tmp_path / "out").exists()


def test_a_one_object_input_starts_one_worker(
    tmp_path: Path, iris: IrisModel, model: TransformModel, aws_env: Any
) -> None:
    """The workers start before the download, as many as the listing gives tasks: not
    max_concurrent, of which all but one would load the model's libraries for nothing.
    (They are counted by the interpreter they run: the model's ``python``, a wrapper here.)"""
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="batch")
    s3.put_object(Bucket="batch", Key="in/one.csv", Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    started = tmp_path / "started"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$$" >> {started}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    counted = dataclasses.replace(model, python=python)
    settings = TransformSettings(max_concurrent=4)
    spec = TransformJobSpec("one", counted, "s3://batch/in", str(tmp_path / "out"), settings)
    LocalTransformBackend(tmp_path / "jobs").run(spec)
    answer = (tmp_path / "out" / "one.csv.out").read_text().splitlines()
    assert answer == [
        str(v) for v in iris.model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    ]
    assert len(started.read_text().split()) == 1
