"""The model a serving container loads: the bytes mlcicd registered, or nothing.

SageMaker downloads ``ModelDataUrl`` and extracts it into ``/opt/ml/model`` itself, with no
way to pin its digest: whoever can overwrite that object (or the extracted tree) decides
what ``model_fn`` deserialises. So when the Model's environment names the digest
(``MLCICD_MODEL_SHA256``, which mlcicd always sets), the container does not load
``/opt/ml/model`` as it is. It takes the archive — ``<model dir>/model.tar.gz`` when it is
there, else the object ``MLCICD_MODEL_DATA_URL`` names (mlcicd sets that too; the endpoint's
role may already read it, as SageMaker does with it) — and extracts it with
:func:`mlcicd.archive.ensure_extracted` into the container's scratch directory: one pass
that hashes what it extracts, refused whole on a mismatch. The container serves that tree,
and does not start at all when the check fails (``/ping`` never answers).

A container without ``MLCICD_MODEL_SHA256`` (a model made by other tools) serves the model
directory as it is, and says so on stderr.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from mlcicd.archive import Limits, ensure_extracted, extracted_sha256
from mlcicd.errors import ArtifactError

MODEL_SHA256_ENV = "MLCICD_MODEL_SHA256"
MODEL_DATA_URL_ENV = "MLCICD_MODEL_DATA_URL"
ARCHIVE_NAME = "model.tar.gz"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def verified_model_dir(env: Mapping[str, str], model_dir: Path, scratch: Path) -> Path:
    """The directory to serve: ``model_dir`` when no digest is named, else a tree under
    ``scratch`` extracted from the archive of that digest. Raises ArtifactError otherwise."""
    expected = (env.get(MODEL_SHA256_ENV) or "").strip()
    if not expected:
        print(
            f"serve: {MODEL_SHA256_ENV} is not set: serving {model_dir} unchecked", file=sys.stderr
        )
        return model_dir
    if not _SHA256_RE.match(expected):
        raise ArtifactError(
            f"{MODEL_SHA256_ENV}={expected!r} is not a sha256 digest (64 lowercase hex digits)",
            hint="set it to the model.tar.gz digest mlcicd registered, or unset it",
        )
    limits = Limits.from_env(env)
    tree = scratch / "model"
    if extracted_sha256(tree) != expected:  # a restart in the same scratch reuses a whole tree
        archive = model_dir / ARCHIVE_NAME
        if not archive.is_file():
            archive = _download(env, expected, scratch)
        ensure_extracted(archive, tree, expected_sha256=expected, limits=limits)
    print(f"serve: model sha256 {expected[:12]}… verified, extracted into {tree}", file=sys.stderr)
    return tree


def _download(env: Mapping[str, str], expected: str, scratch: Path) -> Path:
    uri = (env.get(MODEL_DATA_URL_ENV) or "").strip()
    if not uri.startswith("s3://"):
        raise ArtifactError(
            f"{MODEL_SHA256_ENV} is set, but there is no model archive to check it against: "
            f"no {ARCHIVE_NAME} in the model directory and no s3:// URI in {MODEL_DATA_URL_ENV}",
            hint=f"set {MODEL_DATA_URL_ENV} to the model's S3 URI (mlcicd deployments do)",
        )
    # Only a container whose model is on S3 imports the AWS side (and boto3).
    from mlcicd.store.s3 import S3ArtifactStore, parse_s3_uri

    bucket, _ = parse_s3_uri(uri)
    store = S3ArtifactStore(f"s3://{bucket}", region=env.get("SAGEMAKER_REGION") or None)
    # get_file hashes while it writes and keeps nothing that does not match.
    return store.get_file(uri, scratch / ARCHIVE_NAME, expected_sha256=expected)


__all__ = ["MODEL_DATA_URL_ENV", "MODEL_SHA256_ENV", "verified_model_dir"]
