"""DATA_CHECK (``data_check: warn|fail``): the training channel against production's baseline.

Runs after the steps that prepare the data and before training (:mod:`mlcicd.monitor.datacheck`
holds the check). With ``fail`` a violation stops the run here, naming each column and what
it broke, so no model is trained on data unlike the data production's model was trained on;
with ``warn`` the run goes on and the violations are in the stage's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from mlcicd.config import Config
from mlcicd.errors import DataCheckError, MonitorError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.stages.train import channel_sources


class DataCheckStage:
    name: ClassVar[str] = "data_check"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-training"

    def run(self, ctx: RunContext) -> StageResult:
        # Imported here: numpy loads when a run checks its data, not with every command.
        from mlcicd.monitor.baseline import training_channel
        from mlcicd.monitor.datacheck import SKIPPED, WITH_VIOLATIONS, check_training_data

        source_dir = Path(ctx.outputs["source"]["source_dir"])
        channels = {name: path for name, (path, _) in channel_sources(ctx).items()}
        channel, path = training_channel(ctx.config, source_dir, channels)
        try:
            report = check_training_data(ctx.project, ctx.config, channel, path, ctx.run.id)
        except MonitorError as exc:  # no CSV, no rows, the label column gone: unlike the baseline
            reason = f"the training channel {channel!r} cannot be checked: {exc.message}"
            if ctx.config.data_check == "fail":
                raise DataCheckError(reason, hint=exc.hint) from exc
            ctx.log(f"data check (warn): {reason}")
            return StageResult(
                "Succeeded",
                f"not checked (warn): {reason}",
                {"mode": "warn", "status": "Unreadable", "channel": channel, "reason": reason},
            )
        outputs = {"mode": ctx.config.data_check, **report.to_dict()}
        if report.status == SKIPPED:
            ctx.log(f"data check skipped: {report.reason}")
            return StageResult("Succeeded", f"skipped: {report.reason}", outputs)
        for violation in report.violations:
            ctx.log(
                f"violation: {violation['feature_name']}: {violation['constraint_check_type']}: "
                f"{violation['description']}"
            )
        against = f"channel {channel} ({report.rows} rows) against model {report.model}'s baseline"
        if report.status == WITH_VIOLATIONS and ctx.config.data_check == "fail":
            raise DataCheckError(
                f"data check failed: {against}: {report.summary()}",
                hint=f"the report: {report.violations_uri}; fix the data, or set data_check: warn",
                outputs=outputs,
            )
        if report.status == WITH_VIOLATIONS:
            count = len(report.violations)
            return StageResult(
                "Succeeded", f"{count} violations (warn): {report.summary()}", outputs
            )
        return StageResult("Succeeded", f"passed: {against}", outputs)
