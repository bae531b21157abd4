"""Inputs from and outputs to ``s3://``: SageMaker's S3Prefix data source and S3OutputPath.

An input prefix's objects (its keys, relative to the prefix: ``<prefix>/day=1/a.csv`` is
``day=1/a.csv``) are listed before the workers start (as many start as the listing gives
tasks) and downloaded into the job's directory while they do — streamed to disk by boto3's
transfer manager, never held in memory — and each ``.out`` is
uploaded when it is complete: S3 makes an object visible whole or not at all, so nothing
half-written appears under the output prefix. The output prefix is claimed as a local
directory is (:func:`mlcicd.transform.local.claim_output`): a ``.mlcicd-transform.json``
under it, other objects refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcicd.errors import TransformError
from mlcicd.transform.base import MANIFEST

S3 = "s3://"
ClientFactory = Callable[[], Any]


def split(uri: str, name: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix without a trailing slash)."""
    bucket, _, prefix = uri.removeprefix(S3).partition("/")
    if not bucket:
        raise TransformError(f"{name} {uri} names no bucket", hint="write s3://bucket/prefix")
    return bucket, prefix.strip("/")


def objects(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object (ListObjectsV2's entries) under ``prefix``, a prefix of whole path parts,
    or the one object it names; sorted by key."""
    found: list[dict[str, Any]] = []
    paginator = client.raw.get_paginator("list_objects_v2")
    start = f"{prefix}/" if prefix else ""
    for page in paginator.paginate(Bucket=bucket, Prefix=start):
        found += page.get("Contents", [])
    if not found and prefix:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found += [o for o in page.get("Contents", []) if o["Key"] == prefix]
    return sorted(found, key=lambda o: str(o["Key"]))


def keys(client: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """Every (key, size) under ``prefix``, sorted."""
    return [(str(o["Key"]), int(o["Size"])) for o in objects(client, bucket, prefix)]


def listing_digest(client: Any, uri: str, name: str) -> str:
    """A digest of what is under ``uri``: keys, sizes and ETags."""
    bucket, prefix = split(uri, name)
    listing = [(o["Key"], o["Size"], o.get("ETag")) for o in objects(client, bucket, prefix)]
    if not listing:
        raise TransformError(f"{name} {uri} holds no objects", hint="point it at the files")
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def list_input(client: Any, uri: str, name: str) -> list[tuple[str, str, int]]:
    """The objects under ``uri`` as (key, name relative to the input, size): what
    :func:`download_input` writes where; refused when there is none, or a key is no clean path."""
    bucket, prefix = split(uri, name)
    found = keys(client, bucket, prefix)
    if not found:
        raise TransformError(
            f"{name} {uri} holds no objects", hint="point it at the files to transform"
        )
    listed = []
    for key, size in found:
        rel = key[len(prefix) :].lstrip("/") if key != prefix else Path(key).name
        if any(part in ("", ".", "..") for part in rel.split("/")):
            raise TransformError(f"{name} {uri}: the key {key!r} is not a clean path")
        listed.append((key, rel, size))
    return listed


def download_input(client: Any, uri: str, dest: Path, listed: list[tuple[str, str, int]]) -> Path:
    """The objects ``listed`` (:func:`list_input`'s) under ``uri`` as files under ``dest``."""
    bucket, _ = split(uri, "input")
    for key, rel, _size in listed:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return dest


def claim_output(client: Any, uri: str, expected: set[str], job: dict[str, Any], name: str) -> None:
    """The S3 twin of :func:`mlcicd.transform.local.claim_output`."""
    bucket, prefix = split(uri, name)
    base = f"{prefix}/" if prefix else ""
    present = [k[len(base) :] for k, _ in keys(client, bucket, prefix)]
    recorded = None
    if MANIFEST in present:
        body = client.get_object(Bucket=bucket, Key=base + MANIFEST)["Body"].read()
        recorded = json.loads(body)
        if recorded != job:
            raise TransformError(
                f"{name} {uri} holds the outputs of another transform job (model "
                f"{str(recorded.get('model_sha256'))[:12]}, input {recorded.get('input')})",
                hint="choose another output prefix, or delete that one",
            )
    others = [k for k in present if k != MANIFEST and (recorded is None or k not in expected)]
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise TransformError(
            f"{name} {uri} holds objects that are not this job's: {others[0]}{more}",
            hint="choose an empty (or new) output prefix",
        )
    client.put_object(Bucket=bucket, Key=base + MANIFEST, Body=json.dumps(job).encode())


def upload(client: Any, source: Path, uri: str, rel: str) -> None:
    bucket, prefix = split(uri, "output")
    client.upload_file(str(source), bucket, f"{prefix}/{rel}" if prefix else rel)
