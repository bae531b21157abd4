"""Batch transform: score files with a registered model, with SageMaker's TransformJob contract.

base.py       TransformSettings (CreateTransformJob's fields), TransformJobSpec,
              TransformBackend, check_settings
dataproc.py   DataProcessing: InputFilter / JoinSource / OutputFilter on one record
local.py      LocalTransformBackend: worker processes on this machine
s3io.py       s3:// inputs and outputs (the artifact store's client)
sagemaker.py  SageMakerTransformBackend: CreateTransformJob on SageMaker, followed to its end
worker.py     ``python -m mlcicd.transform.worker``: one worker, in the model's environment
jobs.py       a job run and recorded (InProgress → Completed / Failed / Stopped)

:func:`open_backend` picks the backend by its ``TYPE`` (``transform.backend``, ``--backend``).
``job_name`` and ``run_job`` are imported when first asked for: a worker (``python -m
mlcicd.transform.worker``) imports this package first, and the state database's modules
would add to every worker's start what no worker uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.errors import ConfigError
from mlcicd.transform.base import (
    STATUSES,
    TransformBackend,
    TransformJobResult,
    TransformJobSpec,
    TransformModel,
    TransformProgress,
    TransformSettings,
    Where,
    check_settings,
    flag,
)

if TYPE_CHECKING:
    from mlcicd.project import Project
    from mlcicd.transform.jobs import job_name, run_job


def open_backend(kind: str, project: Project, *, where: Where = flag) -> TransformBackend:
    """The transform backend whose ``TYPE`` is ``kind``; ``where`` names a setting as the
    user gave it (``--input`` on the command line, ``transform.input`` in mlcicd.yaml)."""
    if kind == "local":
        from mlcicd.store import S3ArtifactStore
        from mlcicd.transform.local import LocalTransformBackend

        store = project.store
        s3 = (lambda: store.client) if isinstance(store, S3ArtifactStore) else None
        return LocalTransformBackend(project.state_dir / "transform-jobs", where=where, s3=s3)
    if kind == "sagemaker":
        from mlcicd.transform.sagemaker import SageMakerTransformBackend

        return SageMakerTransformBackend.from_config(
            project.config, project.store, project.state_dir / "transform-jobs", where
        )
    raise ConfigError(
        f"transform backend {kind!r} is not available in this version",
        key="transform.backend",
        hint="use backend: local or sagemaker",
    )


def __getattr__(name: str) -> object:
    """``job_name`` and ``run_job`` (:mod:`mlcicd.transform.jobs`), imported when first asked
    for."""
    if name in ("job_name", "run_job"):
        from mlcicd.transform import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STATUSES",
    "TransformBackend",
    "TransformJobResult",
    "TransformJobSpec",
    "TransformModel",
    "TransformProgress",
    "TransformSettings",
    "check_settings",
    "flag",
    "job_name",
    "open_backend",
    "run_job",
]
