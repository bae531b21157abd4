"""APPROVE: a person decides before the model goes to production (``approve: manual``).

The first time the stage runs, the model is registered as PendingManualApproval and the run
stops at ``WaitingForApproval``, showing the model's metrics next to production's. A
decision (``mlcicd approve RUN`` / ``mlcicd reject RUN``, or the timeout, which rejects)
resumes the run here: approved, the package becomes Approved and the run goes on to
register and deploy; rejected, it becomes Rejected and the run fails.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mlcicd.config import Config
from mlcicd.errors import MlcicdError, StageError
from mlcicd.pipeline import WAITING, RunContext, StageResult
from mlcicd.stages.challenger import champion
from mlcicd.stages.register import explain_model, register_model, run_channels
from mlcicd.state import ModelPackage


def _metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())) or "no metrics"


def _importance(
    ctx: RunContext, package: ModelPackage, production: ModelPackage | None
) -> dict[str, Any]:
    """Mean |SHAP| per feature of the new model (explained now, if the register stage has not)
    and of production's, for the person deciding (docs/explain.md); production's only from a
    report :func:`~mlcicd.explain.report.load_report` verified, the log says why not."""
    from mlcicd.explain.report import load_report

    report = explain_model(ctx, package, run_channels(ctx))
    try:
        theirs = load_report(ctx.project, production) if production is not None else None
    except MlcicdError as exc:  # replaced since it was stored, or never verifiable: not shown
        ctx.log(f"production's importance is not shown: {exc.headline}")
        theirs = None
    return {
        "model": None if report is None else report["importance"],
        "production": None if theirs is None or "error" in theirs else theirs["importance"],
    }


def _log_importance(ctx: RunContext, importance: dict[str, Any] | None) -> None:
    if not importance or importance["model"] is None:
        return
    ours, theirs = importance["model"], importance["production"] or {}
    ctx.log("importance (mean |SHAP|), new" + (" vs production:" if theirs else ":"))
    for feature in sorted(ours, key=lambda f: -ours[f]):
        was = f" vs {theirs[feature]:.4g}" if feature in theirs else ""
        ctx.log(f"  {feature}: {ours[feature]:.4g}{was}")


class ApproveStage:
    name: ClassVar[str] = "approve"

    def log_group(self, config: Config) -> str:
        return f"/aws/codepipeline/{config.pipeline}"

    def run(self, ctx: RunContext) -> StageResult:
        state = ctx.project.state
        approval = state.get_approval(ctx.run.id)
        if approval is None:
            return self._request(ctx)
        ref = f"{approval.model_group}/{approval.model_version}"
        why = f"{approval.decided_by}" + (f": {approval.comment}" if approval.comment else "")
        outputs = {
            "model": ref,
            "decision": approval.status,
            "by": approval.decided_by,
            "comment": approval.comment,
        }
        if approval.status == "Approved":
            state.set_model_package_status(
                approval.model_group,
                approval.model_version,
                "Approved",
                reason=f"approved by {why}",
            )
            ctx.log(f"model {ref} approved by {why}")
            return StageResult("Succeeded", f"model {ref} approved by {why}", outputs)
        state.set_model_package_status(
            approval.model_group, approval.model_version, "Rejected", reason=f"rejected by {why}"
        )
        ctx.log(f"model {ref} rejected by {why}")
        raise StageError(
            f"model {ref} was rejected by {why}",
            stage=self.name,
            hint="the endpoint keeps serving its current model",
        )

    def _request(self, ctx: RunContext) -> StageResult:
        state, train = ctx.project.state, ctx.outputs["train"]
        existing = state.find_model_package(ctx.config.pipeline, train["model_sha256"])
        if existing is not None and existing.status == "Approved":
            ctx.log(f"model {existing.arn} was approved before (same sha256)")
            return StageResult(
                "Succeeded", f"model {existing.arn} approved before", {"model": existing.arn}
            )
        package = register_model(
            ctx, status="PendingManualApproval", reason="waiting for a manual approval"
        )
        production = champion(ctx.project, ctx.config.endpoint_name)
        summary: dict[str, Any] = {
            "model": package.arn,
            "metrics": package.metrics,
            "production": {"model": production.arn, "metrics": production.metrics}
            if production
            else None,
            "challenger": ctx.outputs.get("gate", {}).get("challenger"),
        }
        if ctx.config.explain is not None:
            summary["importance"] = _importance(ctx, package, production)
        timeout = ctx.config.approve.timeout
        superseded = state.request_approval(
            ctx.run.id, package.group_name, package.version, timeout=timeout, summary=summary
        )
        for run_id in superseded:
            old = state.get_approval(run_id)
            if old is not None and old.model_version != package.version:
                state.set_model_package_status(
                    old.model_group,
                    old.model_version,
                    "Rejected",
                    reason=f"superseded by run {ctx.run.id}",
                )
        ctx.log(f"model {package.arn}: {_metrics(package.metrics)}")
        if production:
            ctx.log(f"production {production.arn}: {_metrics(production.metrics)}")
            for key in sorted(set(package.metrics) & set(production.metrics)):
                delta = package.metrics[key] - production.metrics[key]
                ctx.log(
                    f"  {key}: {package.metrics[key]:g} vs {production.metrics[key]:g} ({delta:+g})"
                )
        else:
            ctx.log("production: no model serves the endpoint yet")
        _log_importance(ctx, summary.get("importance"))
        if superseded:
            ctx.log(f"superseded the runs waiting before: {', '.join(map(str, superseded))}")
        ctx.log(
            f"waiting for approval: `mlcicd approve {ctx.run.id}` or `mlcicd reject {ctx.run.id}`"
            + (f" (rejected after {timeout:g}s)" if timeout else "")
        )
        vs = f" vs production {production.arn} {_metrics(production.metrics)}" if production else ""
        return StageResult(WAITING, f"model {package.arn} {_metrics(package.metrics)}{vs}", summary)
