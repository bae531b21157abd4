"""Roll an endpoint back to an earlier model package, through the normal deploy path.

The deploy stage runs alone, in a run of its own (trigger ``rollback``), with the outputs of
source, build and register rebuilt from the package's lineage: the commit's tree exported
again if it is gone, its build environment (cached by its requirements) ensured. So a
rollback deploys exactly as a deploy does — a new generation of workers, handed over
without dropping a request — and the endpoint's history says why.

Two ways in. :func:`rollback` runs it now, in this process (the CLI without a service); it is
refused while a run of the pipeline is in progress. :func:`request_rollback` queues it in the
service's queue, to run as soon as no run of the pipeline is (:func:`run_queued_rollback`,
in the service's runner). Either way the version is decided when it is asked for: ``--to V``
is V; without it, "the previous model" is resolved then and recorded (``trigger.version``),
so a run that deploys something else before a queued rollback starts does not change what
the rollback serves.
"""

from __future__ import annotations

from typing import Any

from mlcicd import git
from mlcicd.environments import ensure_environment, environment_extras
from mlcicd.errors import NotFoundError, StateError
from mlcicd.pipeline import Reporter, RunOptions, RunSummary, run_pipeline
from mlcicd.project import Project, cache_dir
from mlcicd.stages.deploy import DeployStage
from mlcicd.state import ModelPackage, Run


def rollback_target(
    project: Project, endpoint: str, to_version: int | None
) -> tuple[ModelPackage, str]:
    """The package to roll back to, and what the endpoint serves now (``group/version``)."""
    state = project.state
    record = state.get_endpoint(endpoint)
    if record is None:
        raise NotFoundError(f"endpoint {endpoint} does not exist")
    if endpoint != project.config.endpoint_name:  # the deploy stage deploys the configured one
        raise StateError(
            f"endpoint {endpoint} is not the one {project.config.pipeline} deploys "
            f"({project.config.endpoint_name})",
            hint="roll back from the project that deploys it",
        )
    group = record.model_group or project.config.pipeline
    current = record.model_version
    if to_version is None:
        history = [h.model_version for h in reversed(state.endpoint_history(endpoint))]
        configs = [c.model_version for c in state.endpoint_configs(endpoint)]  # newest first
        earlier = [v for v in history if v not in (None, current)] or [
            v for v in configs if v not in (None, current)
        ]
        if not earlier:
            raise StateError(
                f"endpoint {endpoint} has served no other model", hint="name one with --to VERSION"
            )
        to_version = earlier[0]
    package = state.get_model_package(group, to_version)
    _check_servable(package)
    return package, f"{group}/{current}"


def _check_servable(package: ModelPackage) -> None:
    if package.status != "Approved":
        raise StateError(
            f"model {package.arn} is {package.status}; only an Approved model can be served"
        )
    commit: dict[str, Any] = package.lineage.get("commit") or {}
    if not commit.get("commit") or not commit.get("tree"):
        raise StateError(
            f"model {package.arn} has no commit in its lineage; it cannot be redeployed"
        )


def _trigger(
    endpoint: str,
    package: ModelPackage,
    current: str,
    *,
    explicit: bool,
    by: str | None,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "kind": "rollback",
        "endpoint": endpoint,
        "to": package.arn,
        "version": package.version,
        "from": current,
        "chosen": "--to" if explicit else "previous",
        "by": by,
        "reason": reason,
        "detail": f"rollback from {current} to {package.arn}{_asked(by, reason)}",
    }


def _asked(by: str | None, reason: str | None) -> str:
    return (f" by {by}" if by else "") + (f": {reason}" if reason else "")


def _message(endpoint: str, trigger: dict[str, Any]) -> str:
    asked = _asked(trigger.get("by"), trigger.get("reason"))
    return f"rollback of {endpoint} to {trigger['to']}{asked}"


def rollback(
    project: Project,
    endpoint: str,
    to_version: int | None,
    reporter: Reporter | None = None,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> RunSummary:
    """Roll back now, in this process; refused while a run of the pipeline is in progress."""
    state, config = project.state, project.config
    package, current = rollback_target(project, endpoint, to_version)
    _refuse_while_running(project)
    outputs = deploy_inputs(project, package)
    trigger = _trigger(
        endpoint, package, current, explicit=to_version is not None, by=by, reason=reason
    )
    commit = outputs["source"]
    try:
        run = state.create_started_run(
            pipeline=config.pipeline,
            project_dir=str(project.root),
            commit_sha=commit["commit"],
            trigger=trigger,
        )
    except StateError:  # a run started while the tree was exported: the same refusal
        _refuse_while_running(project)
        raise
    state.update_run_source(
        run.id,
        commit_sha=commit["commit"],
        branch=commit.get("branch") or config.branch,
        author=commit.get("author") or "",
        message=_message(endpoint, trigger),
        dirty=False,
    )
    return run_pipeline(
        project, [DeployStage()], RunOptions(), reporter, run_id=run.id, outputs=outputs
    )


def _refuse_while_running(project: Project) -> None:
    pipeline = project.config.pipeline
    running = project.state.runs_with_status("Running", pipeline)
    if running:
        run = running[0]
        raise StateError(
            f"run {run.id} of {pipeline} is in progress (pid {run.pid}); a rollback now would "
            "race its deploy",
            hint="start `mlcicd up` and roll back again: the service queues the rollback to run "
            f"as soon as run {run.id} ends; or wait for run {run.id} to end "
            f"(`mlcicd runs show {run.id}`)",
        )


def request_rollback(
    project: Project, endpoint: str, to_version: int | None, *, by: str, reason: str | None
) -> tuple[Run, list[int]]:
    """Queue a rollback in the service's queue (the version decided now): the queued run and
    the ids of the earlier queued rollbacks of ``endpoint`` it replaced."""
    config = project.config
    package, current = rollback_target(project, endpoint, to_version)
    trigger = _trigger(
        endpoint, package, current, explicit=to_version is not None, by=by, reason=reason
    )
    return project.state.enqueue_rollback(
        pipeline=config.pipeline,
        project_dir=str(project.root),
        endpoint=endpoint,
        commit_sha=str(package.lineage["commit"]["commit"]),
        trigger=trigger,
        message=_message(endpoint, trigger),
    )


def run_queued_rollback(project: Project, run: Run, reporter: Reporter | None = None) -> RunSummary:
    """Run a rollback the service claimed: the version recorded when it was asked for."""
    state, config = project.state, project.config
    trigger = run.trigger
    endpoint, group, version = (
        str(trigger["endpoint"]),
        str(trigger["to"]).rpartition("/")[0],
        int(trigger["version"]),
    )
    record = state.get_endpoint(endpoint)
    if record is None:
        raise NotFoundError(f"endpoint {endpoint} does not exist (any more)")
    package = state.get_model_package(group, version)
    _check_servable(package)
    current = f"{record.model_group}/{record.model_version}"
    outputs = deploy_inputs(project, package)
    commit = outputs["source"]
    # What it rolls back from is what the endpoint serves now: a run may have deployed since.
    since = (
        f" (asked for while it served {trigger['from']})"
        if trigger.get("from") not in (None, current)
        else ""
    )
    asked = _asked(trigger.get("by"), trigger.get("reason"))
    state.set_trigger_detail(run.id, f"rollback from {current} to {package.arn}{since}{asked}")
    state.update_run_source(
        run.id,
        commit_sha=commit["commit"],
        branch=commit.get("branch") or config.branch,
        author=commit.get("author") or "",
        message=run.message or _message(endpoint, trigger),
        dirty=False,
    )
    return run_pipeline(
        project, [DeployStage()], RunOptions(), reporter, run_id=run.id, outputs=outputs
    )


def deploy_inputs(project: Project, package: ModelPackage) -> dict[str, dict[str, Any]]:
    """The outputs of source, build and register for ``package``, rebuilt from its lineage."""
    config = project.config
    commit: dict[str, Any] = package.lineage["commit"]
    source_dir = project.state_dir / "sources" / commit["tree"]
    if not source_dir.is_dir():
        git.export_tree(project.repo, commit["commit"], project.rel, source_dir)
    env = ensure_environment(
        source_dir / config.build.requirements,
        environment_extras(config),
        cache_dir(),
        log=lambda line: None,
        timeout=config.build.timeout,
    )
    return {
        "source": {**commit, "source_dir": str(source_dir)},
        "build": {
            "digest": package.build_digest,
            "environment": str(env.path),
            "python": str(env.python),
        },
        "register": {
            "group": package.group_name,
            "version": package.version,
            "model_sha256": package.model_sha256,
            "model_uri": package.model_uri,
        },
    }


__all__ = [
    "deploy_inputs",
    "request_rollback",
    "rollback",
    "rollback_target",
    "run_queued_rollback",
]
