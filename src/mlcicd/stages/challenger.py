"""Champion/challenger: is the new model at least as good as the one in production?

The champion is the model the endpoint serves now. Both models are scored on the same
held-out data through the candidate's inference.py, in the build environment (a subprocess,
:mod:`mlcicd.evaluation`), so the comparison is the one a client of the endpoint would see.
The margins follow MLflow's ``min_absolute_change`` / ``min_relative_change``.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from mlcicd.archive import safe_extract
from mlcicd.config import ChallengerConfig
from mlcicd.environments import venv_environment
from mlcicd.errors import GateError, NotFoundError
from mlcicd.evaluation import GREATER_IS_BETTER
from mlcicd.pipeline import RunContext
from mlcicd.process import run_streaming
from mlcicd.project import Project
from mlcicd.state import ModelPackage


def champion(project: Project, endpoint_name: str) -> ModelPackage | None:
    """The model package the endpoint serves, if any."""
    endpoint = project.state.get_endpoint(endpoint_name)
    if endpoint is None or endpoint.model_group is None or endpoint.model_version is None:
        return None
    try:
        return project.state.get_model_package(endpoint.model_group, endpoint.model_version)
    except NotFoundError:
        return None


def judge(
    cfg: ChallengerConfig, challenger: float, champion_value: float
) -> tuple[bool, float, float]:
    """(passes, improvement, relative improvement); improvement > 0 is better whatever the
    metric."""
    change = (
        challenger - champion_value
        if GREATER_IS_BETTER[cfg.metric]
        else champion_value - challenger
    )
    relative = math.inf if change > 0 else 0.0  # against a champion scoring zero
    if champion_value:
        relative = change / abs(champion_value)
    ok = change >= cfg.min_absolute_change - 1e-12
    if cfg.min_relative_change is not None:
        ok = ok and relative >= cfg.min_relative_change - 1e-12
    return ok, change, relative


def compare(ctx: RunContext, cfg: ChallengerConfig) -> tuple[list[str], dict[str, Any]]:
    """The failed checks (empty: the candidate may replace the champion) and what was measured."""
    project, train = ctx.project, ctx.outputs["train"]
    current = champion(project, ctx.config.endpoint_name)
    if current is None:
        ctx.log(
            f"challenger: no model serves {ctx.config.endpoint_name} yet; nothing to compare with"
        )
        return [], {"champion": None}
    if current.model_sha256 == train["model_sha256"]:
        ctx.log(f"challenger: the candidate is the champion ({current.arn}) itself")
        return [], {"champion": current.arn, "same_model": True}
    source_dir = Path(ctx.outputs["source"]["source_dir"])
    data = source_dir / cfg.data
    if not data.is_file():
        raise GateError(
            f"gate.challenger.data: {cfg.data} is not in the commit",
            hint="commit the held-out data",
        )
    scratch = project.state_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="challenger-") as tmp:
        models = {}
        for name, uri, sha in (
            ("challenger", train["model_uri"], train["model_sha256"]),
            ("champion", current.model_uri, current.model_sha256),
        ):
            models[name] = str(Path(tmp, name))
            safe_extract(project.model_archive(uri, sha), Path(tmp, name), expected_sha256=sha)
        spec = {
            "code_dir": str(source_dir / ctx.config.deploy.source_dir),
            "entry_point": ctx.config.deploy.entry_point,
            "data": str(data),
            "label": cfg.label,
            "prediction_key": cfg.prediction_key,
            "models": models,
        }
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        scores = _run_evaluation(ctx, Path(tmp), Path(tmp, "spec.json"))
    ours, theirs = scores["challenger"][cfg.metric], scores["champion"][cfg.metric]
    ok, change, relative = judge(cfg, ours, theirs)
    shown = (
        f"{cfg.metric}: challenger {ours:.4f} vs champion {theirs:.4f} ({current.arn}), "
        f"change {change:+.4f} ({relative:+.1%})"
    )
    ctx.log(shown)
    result = {
        "metric": cfg.metric,
        "challenger": ours,
        "champion": theirs,
        "champion_model": current.arn,
        "change": change,
        "relative_change": relative,
        "passed": ok,
        "summary": shown,
        "scores": scores,
    }
    if ok:
        return [], result
    needed = f"at least {cfg.min_absolute_change:+g}"
    if cfg.min_relative_change is not None:
        needed += f" and {cfg.min_relative_change:+.1%}"
    return [f"{shown}; needed a change of {needed}"], result


def _run_evaluation(ctx: RunContext, cwd: Path, spec: Path) -> dict[str, dict[str, float]]:
    build = ctx.outputs["build"]
    env = venv_environment(Path(build["environment"]))
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if not line.startswith("{"):
            ctx.log(line)

    outcome = run_streaming(
        [build["python"], "-m", "mlcicd.evaluation", str(spec)],
        cwd=cwd,
        env=env,
        on_line=on_line,
        max_runtime_seconds=ctx.config.build.timeout,
    )
    last = next((line for line in reversed(lines) if line.startswith("{")), "{}")
    try:
        answer = json.loads(last)
    except ValueError:
        answer = {}
    if outcome.exit_code != 0 or "scores" not in answer:
        reason = answer.get("error") or (lines[-1] if lines else f"exit {outcome.exit_code}")
        raise GateError(
            f"the champion/challenger evaluation failed: {reason}", hint="see the gate log"
        )
    scores: dict[str, dict[str, float]] = answer["scores"]
    return scores
