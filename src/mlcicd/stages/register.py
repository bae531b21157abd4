"""REGISTER: a model package in the registry — group = pipeline, versions 1, 2, 3…

A model is identified by its sha256: registering the same bytes again reuses the version.
Lineage is explicit: commit → build digest → processing steps' outputs → training job →
evaluation report → model package. An Approved model
gets its data-quality baseline here, from its training channel (mlcicd.monitor.baseline): a
model whose data cannot give one is registered all the same, and the log says why. With
``explain:``, every model gets its SHAP report here too (mlcicd.explain.report), cached by the
model's digest; a model that cannot be explained is registered all the same unless
``explain.required``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from mlcicd.config import Config
from mlcicd.errors import MlcicdError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.stages.process import processing_lineage
from mlcicd.stages.train import channel_sources
from mlcicd.state import ModelPackage


def register_model(ctx: RunContext, *, status: str, reason: str | None = None) -> ModelPackage:
    train, source, build = ctx.outputs["train"], ctx.outputs["source"], ctx.outputs["build"]
    state = ctx.project.state
    existing = state.find_model_package(ctx.config.pipeline, train["model_sha256"])
    if existing is not None and existing.status == status:
        return existing
    # The same model of the same job shares its explanation report (its key follows from
    # them): the new version keeps the sha256 recorded when mlcicd stored it.
    explained = None
    if existing is not None and existing.training_job == train["job"]:
        explained = existing.lineage.get("explanation")
    return state.register_model_package(
        group_name=ctx.config.pipeline,
        status=status,
        status_reason=reason,
        model_uri=train["model_uri"],
        model_sha256=train["model_sha256"],
        metrics=train["metrics"],
        training_job=train["job"],
        build_digest=build["digest"],
        commit_sha=source["commit"],
        run_id=ctx.run.id,
        lineage={
            "commit": {
                k: source[k] for k in ("commit", "branch", "author", "message", "tree", "dirty")
            },
            "build": {"digest": build["digest"], "environment": build["environment"]},
            "training_job": {
                "name": train["job"],
                "hyperparameters": train["hyperparameters"],
                "data_digest": train["data_digest"],
                "metrics": train["metrics"],
            },
            **({"processing": steps} if (steps := processing_lineage(ctx.outputs)) else {}),
            **({"explanation": explained} if explained else {}),
        },
    )


def run_channels(ctx: RunContext) -> dict[str, Path] | None:
    """Where this run found its training channels (a processing step's output among them), or
    None (logged) when they cannot be found again."""
    try:
        return {name: path for name, (path, _) in channel_sources(ctx).items()}
    except MlcicdError as exc:
        ctx.log(f"the training channels cannot be found again: {exc.headline}")
        return None


def explain_model(
    ctx: RunContext, package: ModelPackage, channels: dict[str, Path] | None
) -> dict[str, Any] | None:
    """The model's explanation (docs/explain.md), computed in its build environment unless it
    has one: the report, or None when it could not be explained (the log says why)."""
    from mlcicd.explain.report import ensure_report

    build = ctx.outputs["build"]
    return ensure_report(
        ctx.project,
        ctx.config,
        package,
        source_dir=Path(ctx.outputs["source"]["source_dir"]),
        python=build["python"],
        environment=Path(build["environment"]),
        channels=channels,
        log=ctx.log,
    )


def _approval_follows(config: Config) -> bool:
    """Does a manual approval come after this stage (``staging:`` puts it after staging)?"""
    return config.approve.mode == "manual" and config.staging is not None


class RegisterStage:
    name: ClassVar[str] = "register"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-training"

    def run(self, ctx: RunContext) -> StageResult:
        sha = ctx.outputs["train"]["model_sha256"]
        existing = ctx.project.state.find_model_package(ctx.config.pipeline, sha)
        if _approval_follows(ctx.config) and (existing is None or existing.status != "Approved"):
            # A person decides after staging: until then the package is not Approved.
            package = register_model(
                ctx, status="PendingManualApproval", reason="waiting for staging and an approval"
            )
        else:
            package = register_model(ctx, status="Approved")
        cached = existing is not None and existing.version == package.version
        ctx.log(f"model package {package.arn} ({package.status}) sha256 {sha[:12]}")
        outputs = {
            "group": package.group_name,
            "version": package.version,
            "model_sha256": sha,
            "model_uri": package.model_uri,
        }
        # Imported here: numpy loads when a model is registered, not with every command.
        from mlcicd.monitor.baseline import ensure_baseline

        source_dir = Path(ctx.outputs["source"]["source_dir"])
        channels = run_channels(ctx)
        baseline = ensure_baseline(
            ctx.project, ctx.config, package, source_dir, ctx.log, channels=channels
        )
        if baseline is not None:
            outputs["baseline"] = {
                "statistics": baseline.statistics_uri,
                "constraints": baseline.constraints_uri,
            }
        if ctx.config.explain is not None:
            report = explain_model(ctx, package, channels)
            outputs["explanation"] = None if report is None else report["uri"]
        return StageResult("Cached" if cached else "Succeeded", f"model {package.arn}", outputs)
