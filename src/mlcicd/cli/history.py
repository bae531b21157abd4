"""`mlcicd endpoints rollback` and `mlcicd endpoints history`."""

from __future__ import annotations

import click

from mlcicd.cli import find_project
from mlcicd.cli.endpoints import endpoints
from mlcicd.cli.output import echo_json, table, when
from mlcicd.cli.progress import TerminalReporter


@endpoints.command("rollback")
@click.argument("name")
@click.option("--to", "to_version", type=int, default=None, help="The model version to serve (default: the previous one).")
@click.pass_context
def endpoints_rollback(ctx: click.Context, name: str, to_version: int | None) -> None:
    """Serve the previous (or a named) model again, through the normal deploy path."""
    from mlcicd.rollback import rollback, rollback_target

    project = find_project(ctx)
    package, current = rollback_target(project, name, to_version)
    click.echo(f"rolling {name} back from {current} to {package.arn}")
    summary = rollback(project, name, package.version, TerminalReporter())
    if summary.error is not None:
        raise summary.error
    deploy = summary.outputs.get("deploy", {})
    click.echo(f"{name} serves {package.arn} at {deploy.get('url')} (run {summary.run.id})")


@endpoints.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_history(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every config endpoint NAME served, when, and why it changed (deploy, rollback, restart, alarm)."""
    history = find_project(ctx).state.endpoint_history(name)
    if as_json:
        echo_json(history)
        return
    table(["when", "why", "config", "model", "run", "detail"],
          [(when(h.at), h.reason, h.config_name, f"{h.model_group}/{h.model_version}" if h.model_group else None,
            h.run_id, h.detail) for h in history])  # fmt: skip
