"""`mlcicd approve` and `mlcicd reject`: the decision on a model waiting for approval."""

from __future__ import annotations

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.progress import TerminalReporter
from mlcicd.operations import open_operations


def _decide(ctx: click.Context, run_id: int, approved: bool, comment: str | None) -> None:
    """Decide, say so, then go on with the run: here, or following the service that does."""
    ops = open_operations(find_project(ctx))
    decision = ops.decide(run_id, approved, comment)
    if decision.timed_out:
        click.echo(f"run {run_id}: the approval had timed out; the model is rejected", err=True)
    else:
        click.echo(
            f"run {run_id}: model {decision.model_group}/{decision.model_version} "
            f"{decision.status.lower()} by {decision.decided_by}"
            + (f": {comment}" if comment else "")
        )
    if ops.service_url is not None:
        click.echo(f"the service at {ops.service_url} continues run {run_id}", err=True)
    continued = ops.continue_run(run_id, TerminalReporter())
    if continued.status is None:  # a service started since: it resumes the run
        click.echo(f"the service at {continued.service_url} continues run {run_id}")
        return
    click.echo(f"run {run_id} {continued.status.lower()}")
    if decision.timed_out or (approved and continued.status != "Succeeded"):
        ctx.exit(1)


@cli.command()
@click.argument("run_id", type=int)
@click.option("--comment", "-m", default=None, help="Why (recorded with your user name).")
@click.pass_context
def approve(ctx: click.Context, run_id: int, comment: str | None) -> None:
    """Approve the model of run RUN_ID (WaitingForApproval): it is registered and deployed."""
    _decide(ctx, run_id, True, comment)


@cli.command()
@click.argument("run_id", type=int)
@click.option("--comment", "-m", default=None, help="Why (recorded with your user name).")
@click.pass_context
def reject(ctx: click.Context, run_id: int, comment: str | None) -> None:
    """Reject the model of run RUN_ID: the run fails and the endpoint keeps its model."""
    _decide(ctx, run_id, False, comment)
