"""Batch transform as a user asks for it: ``mlcicd transform MODEL --input --output``.

MODEL is resolved to exactly what an endpoint would serve: a registry version
(``group/version``), a group's newest Approved version (``group``), or the model an
endpoint serves now (its name). Its commit's inference code (exported again if it is gone)
and build environment (cached by its requirements) are rebuilt from the package's lineage,
as a rollback rebuilds them, so a transform job runs the same code with the same answers.
The job itself is :mod:`mlcicd.transform`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mlcicd.errors import NotFoundError, TransformError
from mlcicd.project import Project
from mlcicd.rollback import deploy_inputs
from mlcicd.stages.deploy import model_file
from mlcicd.state import ModelPackage, TransformJobRecord
from mlcicd.transform import (
    TransformJobSpec,
    TransformModel,
    TransformProgress,
    TransformSettings,
    job_name,
    open_backend,
    run_job,
)

_VERSIONED = re.compile(r"^(?P<group>[^/]+)/(?P<version>\d+)$")


def resolve_package(project: Project, ref: str) -> ModelPackage:
    """``group/version``, ``group`` (its newest Approved version) or an endpoint's model."""
    state = project.state
    if m := _VERSIONED.match(ref):
        return state.get_model_package(m["group"], int(m["version"]))
    approved = [p for p in state.list_model_packages(ref) if p.status == "Approved"]
    if approved:
        return max(approved, key=lambda p: p.version)
    endpoint = state.get_endpoint(ref)
    if endpoint is not None and endpoint.model_group and endpoint.model_version is not None:
        return state.get_model_package(endpoint.model_group, endpoint.model_version)
    raise NotFoundError(
        f"MODEL {ref!r} is neither a model version (GROUP/VERSION), a group with an Approved "
        "version, nor an endpoint serving a model",
        hint="see `mlcicd models list` and `mlcicd endpoints list`",
    )


def transform_model(project: Project, package: ModelPackage) -> TransformModel:
    """The package's model file, inference code and environment, ready on this machine."""
    if not (package.lineage.get("commit") or {}).get("tree"):
        raise TransformError(
            f"model {package.arn} has no commit in its lineage: its inference code is unknown"
        )
    inputs = deploy_inputs(project, package)
    deploy = project.config.deploy
    return TransformModel(
        ref=package.arn,
        model_file=model_file(project, package.model_uri, package.model_sha256),
        model_sha256=package.model_sha256,
        code_dir=Path(inputs["source"]["source_dir"]) / deploy.source_dir,
        entry_point=deploy.entry_point,
        python=Path(inputs["build"]["python"]),
        environment=dict(deploy.environment),
    )


def transform(
    project: Project,
    ref: str,
    source: str,
    output: str,
    settings: TransformSettings,
    *,
    backend: str = "local",
    name: str | None = None,
    on_progress: Callable[[TransformProgress], None] | None = None,
    on_log: Callable[[str], None] | None = None,
) -> TransformJobRecord:
    """Run a transform job of MODEL ``ref`` now, in this process's workers; its record."""
    package = resolve_package(project, ref)
    if on_log is not None:
        commit = str((package.lineage.get("commit") or {}).get("commit", ""))[:12]
        on_log(f"model {package.arn} ({package.status}): commit {commit}'s code and environment")
    model = transform_model(project, package)
    chosen = open_backend(backend, project)
    spec = TransformJobSpec(
        name=name or job_name(package.group_name, package.version),
        model=model,
        input=source,
        output=output,
        settings=settings,
    )
    return run_job(
        project.state,
        chosen,
        spec,
        model_group=package.group_name,
        model_version=package.version,
        log_path=str(chosen.log_path(spec.name)),
        on_progress=on_progress,
        on_log=on_log,
    )


__all__ = ["resolve_package", "transform", "transform_model"]
