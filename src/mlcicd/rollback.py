"""Roll an endpoint back to an earlier model package, through the normal deploy path.

The deploy stage runs alone, in a run of its own (trigger ``rollback``), with the outputs of
source, build and register rebuilt from the package's lineage: the commit's tree exported
again if it is gone, its build environment (cached by its requirements) ensured. So a
rollback deploys exactly as a deploy does — a new generation of workers, handed over
without dropping a request — and the endpoint's history says why.
"""

from __future__ import annotations

from typing import Any

from mlcicd import git
from mlcicd.environments import ensure_environment
from mlcicd.errors import NotFoundError, StateError
from mlcicd.pipeline import Reporter, RunOptions, RunSummary, run_pipeline
from mlcicd.project import Project, cache_dir
from mlcicd.stages.build import environment_extras
from mlcicd.stages.deploy import DeployStage
from mlcicd.state import ModelPackage


def rollback_target(project: Project, endpoint: str, to_version: int | None) -> tuple[ModelPackage, str]:
    """The package to roll back to, and what the endpoint serves now (``group/version``)."""
    state = project.state
    record = state.get_endpoint(endpoint)
    if record is None:
        raise NotFoundError(f"endpoint {endpoint} does not exist")
    group = record.model_group or project.config.pipeline
    current = record.model_version
    if to_version is None:
        history = [h.model_version for h in reversed(state.endpoint_history(endpoint))]
        configs = [c.model_version for c in state.endpoint_configs(endpoint)]  # newest first
        earlier = [v for v in history if v not in (None, current)] or [v for v in configs if v not in (None, current)]
        if not earlier:
            raise StateError(f"endpoint {endpoint} has served no other model", hint="name one with --to VERSION")
        to_version = earlier[0]
    package = state.get_model_package(group, to_version)
    if package.status != "Approved":
        raise StateError(f"model {package.arn} is {package.status}; only an Approved model can be served")
    return package, f"{group}/{current}"


def rollback(
    project: Project, endpoint: str, to_version: int | None, reporter: Reporter | None = None
) -> RunSummary:
    state, config = project.state, project.config
    package, current = rollback_target(project, endpoint, to_version)
    if state.runs_with_status("Running", config.pipeline):
        raise StateError(f"a run of {config.pipeline} is in progress", hint="wait for it, then roll back")
    commit: dict[str, Any] = package.lineage.get("commit") or {}
    if not commit.get("commit") or not commit.get("tree"):
        raise StateError(f"model {package.arn} has no commit in its lineage; it cannot be redeployed")
    source_dir = project.state_dir / "sources" / commit["tree"]
    if not source_dir.is_dir():
        git.export_tree(project.repo, commit["commit"], project.rel, source_dir)
    env = ensure_environment(source_dir / config.build.requirements, environment_extras(config), cache_dir(),
                             log=lambda line: None, timeout=config.build.timeout)  # fmt: skip
    outputs = {
        "source": {**commit, "source_dir": str(source_dir)},
        "build": {"digest": package.build_digest, "environment": str(env.path), "python": str(env.python)},
        "register": {"group": package.group_name, "version": package.version,
                     "model_sha256": package.model_sha256, "model_uri": package.model_uri},
    }  # fmt: skip
    run = state.create_started_run(
        pipeline=config.pipeline, project_dir=str(project.root), commit_sha=commit["commit"],
        trigger={"kind": "rollback", "to": package.arn, "detail": f"rollback from {current} to {package.arn}"},
    )  # fmt: skip
    state.update_run_source(run.id, commit_sha=commit["commit"], branch=commit.get("branch") or config.branch,
                            author=commit.get("author") or "", message=f"rollback of {endpoint} to {package.arn}",
                            dirty=False)  # fmt: skip
    return run_pipeline(project, [DeployStage()], RunOptions(), reporter, run_id=run.id, outputs=outputs)


__all__ = ["rollback", "rollback_target"]
