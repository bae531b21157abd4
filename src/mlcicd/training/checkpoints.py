"""A job's ``/opt/ml/checkpoints`` kept in the artifact store between attempts.

SageMaker's ``CheckpointConfig``: what a script writes to ``/opt/ml/checkpoints`` is copied to
an S3 prefix, and the next attempt (after a spot interruption) finds it there again, so a
script that looks for its last checkpoint at start resumes instead of starting over. The local
and container backends do the same with the project's store: before the script starts,
:func:`restore` copies the kept files into the job's ``checkpoints/``; whatever ended the
script — it finished, failed, was killed, ran out of time or was interrupted — :func:`save`
keeps what it left there. A job that completes clears the kept set: the next job of the same
training (``--force``) starts afresh rather than from a finished run.

In the store, under ``<bucket>/<prefix>/``:

    manifest.json      {"job": ..., "files": {"<relative path>": "<sha256>"}}, written last
    files/<sha256>     each file's content, by digest

Content by digest, with the manifest written last, means an attempt that dies while saving
leaves the previous manifest whole and every file it names intact. Restoring checks each
file's digest, and every path the manifest names must stay inside the job's
``checkpoints/``: a manifest from a shared bucket is data, not a list of places to write.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd.archive import MAX_BYTES_ENV, MAX_MEMBERS_ENV, Limits
from mlcicd.errors import ArtifactError, TrainingError
from mlcicd.fsutil import sha256_file
from mlcicd.shapes import NAME_RE
from mlcicd.store.base import ArtifactStore
from mlcicd.training.base import CheckpointConfig

MANIFEST = "manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` found: the job that saved it and how many files."""

    job: str | None
    files: int


def restore(store: ArtifactStore, where: CheckpointConfig, dest: Path) -> Restored:
    """Copy the kept checkpoints into ``dest`` (the job's ``checkpoints/``, empty)."""
    manifest = _manifest(store, where)
    if manifest is None:
        return Restored(None, 0)
    files = manifest["files"]
    root = dest.resolve()
    # A manifest may name one big file a million times: the set is capped as a model archive
    # is (MLCICD_MAX_MODEL_MEMBERS files, MLCICD_MAX_MODEL_BYTES bytes), checked as it goes.
    limits = Limits.from_env()
    if len(files) > limits.max_members:
        raise TrainingError(
            f"the checkpoints kept at {store.uri(where.bucket, where.prefix)} name "
            f"{len(files)} files, more than {limits.max_members} ({MAX_MEMBERS_ENV})",
            hint="remove that folder from the store to start the training afresh, or raise "
            f"{MAX_MEMBERS_ENV}",
        )
    total = 0
    for relative, digest in files.items():
        target = (root / relative).resolve()
        if not target.is_relative_to(root):  # through a link the script left: never written
            raise TrainingError(f"checkpoint {relative!r} would be written outside {root}")
        uri = store.uri(where.bucket, f"{where.prefix}/files/{digest}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(uri, target, expected_sha256=digest)
        except (ArtifactError, OSError) as exc:
            # OSError: the manifest names "a" and "a/b" (a file where a folder goes), or the
            # disk is full — said like a damaged file, never a traceback.
            why = exc.message if isinstance(exc, ArtifactError) else exc.strerror or str(exc)
            raise TrainingError(
                f"the checkpoints kept at {store.uri(where.bucket, where.prefix)} are damaged: "
                f"{relative}: {why}",
                hint="remove that folder from the store to start the training afresh",
            ) from exc
        total += target.stat().st_size
        if total > limits.max_bytes:
            raise TrainingError(
                f"the checkpoints kept at {store.uri(where.bucket, where.prefix)} come to more "
                f"than {limits.max_bytes} bytes ({MAX_BYTES_ENV}), at {relative}",
                hint="remove that folder from the store to start the training afresh, or raise "
                f"{MAX_BYTES_ENV}",
            )
    # The job's name goes into the job's log and description.json: only a job name's characters
    # (a newline in it would forge log lines).
    job = manifest.get("job")
    return Restored(job if isinstance(job, str) and NAME_RE.match(job) else None, len(files))


def save(store: ArtifactStore, where: CheckpointConfig, source: Path, job: str) -> int:
    """Keep the files under ``source`` (symbolic links are not followed: they stay behind);
    how many. The manifest goes last, so a save cut short leaves the previous one whole."""
    files: dict[str, str] = {}
    # checkpoints/ itself replaced by a link is kept as nothing: rglob would follow it, as it
    # follows no link below. (Only a local script can do it — in a container the folder is a
    # mount point — and a local script runs as the owner: this keeps save's rule whole, it is
    # no boundary; the container's links, resolved on the host, are the ones that matter.)
    paths = [] if source.is_symlink() else sorted(source.rglob("*"))
    for path in paths:
        if path.is_symlink() or not path.is_file():
            continue
        digest = sha256_file(path)
        store.put_file(path, where.bucket, f"{where.prefix}/files/{digest}")
        files[path.relative_to(source).as_posix()] = digest
    _write_manifest(store, where, {"job": job, "saved_at": time.time(), "files": files})
    return len(files)


def clear(store: ArtifactStore, where: CheckpointConfig, job: str) -> None:
    """Forget the kept set (the job completed): the next attempt starts afresh."""
    _write_manifest(store, where, {"job": job, "saved_at": time.time(), "files": {}})


def _write_manifest(store: ArtifactStore, where: CheckpointConfig, data: dict[str, Any]) -> None:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    store.put_bytes(body, where.bucket, f"{where.prefix}/{MANIFEST}")


def _manifest(store: ArtifactStore, where: CheckpointConfig) -> dict[str, Any] | None:
    """The kept manifest, checked; None when nothing was kept."""
    uri = store.uri(where.bucket, f"{where.prefix}/{MANIFEST}")
    if not store.exists(uri):
        return None
    try:
        data = json.loads(store.read_bytes(uri))
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" nested too deep
        raise TrainingError(
            f"the checkpoint manifest {uri} is not valid JSON: {exc}",
            hint="remove it from the store to start the training afresh",
        ) from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise TrainingError(
            f'the checkpoint manifest {uri} has no "files" object',
            hint="remove it from the store to start the training afresh",
        )
    for relative, digest in files.items():
        # Only the names save() writes: "/"-separated parts, none empty, "." or "..", no
        # backslash or NUL. "." named the checkpoints/ folder itself (its temp file went to
        # the job's folder); "a/./b" or "a/" are another spelling of a name, never written.
        parts = relative.split("/")  # JSON object keys are strings
        if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            raise TrainingError(
                f"the checkpoint manifest {uri} names {relative!r}, which is not a path inside "
                "the job's checkpoints/",
                hint="remove it from the store: mlcicd writes only relative paths there",
            )
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise TrainingError(
                f"the checkpoint manifest {uri}: {relative!r} has no sha256 digest",
                hint="remove it from the store to start the training afresh",
            )
    checked: dict[str, Any] = data
    return checked
