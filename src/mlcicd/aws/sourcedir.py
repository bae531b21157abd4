"""The code of a SageMaker job or model, from ``sourcedir.tar.gz`` on S3, as SageMaker's
toolkits fetch it (sagemaker-training-toolkit's ``files.download_and_extract``).

The SageMaker SDK — and ``train.backend: sagemaker`` / ``deploy.backend: sagemaker`` —
uploads the code as ``sourcedir.tar.gz`` and names it to the container by an ``s3://`` URI
(the ``sagemaker_submit_directory`` hyperparameter of a training job, the
``SAGEMAKER_SUBMIT_DIRECTORY`` variable of a Model). Inside the container the toolkit
downloads it and extracts it into the code directory (``/opt/ml/code``) — **only when that
directory is missing or empty**: code baked into the image there is kept. The one
difference: the archive is extracted by :func:`mlcicd.archive.safe_extract`, which refuses
members that would land outside the directory (absolute names, ``..``, links pointing out,
devices).

A network-isolated training job cannot reach S3: its code comes as a local archive in the
``code`` channel instead, extracted the same way.

boto3 is imported only here, when a URI is actually on S3.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlcicd.archive import safe_extract
from mlcicd.errors import ArtifactError


def is_s3_uri(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith("s3://")


def is_archive_path(uri: str | None) -> bool:
    """A local ``sourcedir.tar.gz``: where a network-isolated job's code is, in its ``code``
    channel (``/opt/ml/input/data/code/sourcedir.tar.gz``, as the SageMaker SDK names it)."""
    return (
        bool(uri)
        and not is_s3_uri(uri)
        and str(uri).endswith(".tar.gz")
        and Path(str(uri)).is_file()
    )


def download_and_extract(uri: str, code_dir: Path, *, region: str | None = None) -> bool:
    """Put the code at ``uri`` (``s3://…/sourcedir.tar.gz``, or such an archive on this
    machine, as the toolkit also takes) into ``code_dir``.

    Returns False, doing nothing, when ``code_dir`` already holds files (the toolkit's rule),
    True when the code was downloaded and extracted.
    """
    if code_dir.is_dir() and any(code_dir.iterdir()):
        return False
    if is_archive_path(uri):
        safe_extract(Path(uri), code_dir)
        return True
    from mlcicd.aws.clients import client
    from mlcicd.store.s3 import parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    if not key:
        raise ArtifactError(f"{uri} names no object: expected s3://bucket/…/sourcedir.tar.gz")
    code_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sourcedir-", dir=code_dir.parent) as tmp:
        archive = Path(tmp) / "sourcedir.tar.gz"
        client("s3", region=region).download_file(bucket, key, str(archive))
        safe_extract(archive, code_dir)
    return True


__all__ = ["download_and_extract", "is_archive_path", "is_s3_uri"]
