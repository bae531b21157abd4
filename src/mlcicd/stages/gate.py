"""GATE: the model quality gate — thresholds from mlcicd.yaml on the job's metrics and on
the processing steps' reports (``evaluation.metrics.accuracy``: a JSON path into a report).

A model that misses a threshold is registered as Rejected (so the registry remembers it),
the run fails naming metric, value and threshold, and the endpoint keeps what it served.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mlcicd.config import Config
from mlcicd.errors import GateError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.stages.process import step_reports
from mlcicd.stages.register import register_model
from mlcicd.thresholds import evaluate_thresholds, shown_value


def evaluate(
    config: Config, metrics: dict[str, float], reports: dict[str, Any] | None = None
) -> list[str]:
    """The failed checks of ``config``'s gate, each as one sentence; empty when the model passes."""
    return evaluate_thresholds(config.gate.thresholds, metrics, reports)


class GateStage:
    name: ClassVar[str] = "gate"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-training"

    def run(self, ctx: RunContext) -> StageResult:
        metrics = ctx.outputs["train"]["metrics"]
        reports = step_reports(ctx.config, ctx.outputs)
        for threshold in ctx.config.gate.thresholds:
            ctx.log(f"check {threshold}: {shown_value(threshold.metric, metrics, reports)}")
        failures = evaluate(ctx.config, metrics, reports)
        challenger: dict[str, object] = {}
        if not failures and ctx.config.gate.challenger is not None:
            from mlcicd.stages.challenger import compare

            failures, challenger = compare(ctx, ctx.config.gate.challenger)
        if failures:
            reason = "; ".join(failures)
            package = register_model(ctx, status="Rejected", reason=f"quality gate: {reason}")
            ctx.log(f"model package {package.arn} registered as Rejected")
            raise GateError(
                f"quality gate failed: {reason}",
                hint=f"model {package.arn} was rejected; the endpoint keeps serving its current "
                "model",
            )
        checks = ", ".join(str(t) for t in ctx.config.gate.thresholds) or "no thresholds configured"
        if challenger.get("summary"):
            checks += f"; {challenger['summary']}"
        outputs = {
            "passed": True,
            "metrics": metrics,
            **({"reports": reports} if reports else {}),
            **({"challenger": challenger} if challenger else {}),
        }
        return StageResult("Succeeded", f"passed: {checks}", outputs)
