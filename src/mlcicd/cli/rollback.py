"""`mlcicd endpoints rollback`: an endpoint back to the model it served before."""

from __future__ import annotations

import click

from mlcicd.cli import find_project
from mlcicd.cli.endpoints import endpoints
from mlcicd.cli.progress import TerminalReporter
from mlcicd.operations import open_operations


@endpoints.command("rollback")
@click.argument("name")
@click.option(
    "--to",
    "to_version",
    type=int,
    default=None,
    help="The model version to serve (default: the previous one).",
)
@click.option(
    "--reason",
    "-m",
    default=None,
    help="Why (recorded with your user name in the run, history and events).",
)
@click.option(
    "--wait", is_flag=True, help="With `mlcicd up` running: wait until the queued rollback is done."
)
@click.pass_context
def endpoints_rollback(
    ctx: click.Context, name: str, to_version: int | None, reason: str | None, wait: bool
) -> None:
    """Serve the previous (or a named) model again, through the normal deploy path.

    When `mlcicd up` serves the project the rollback is queued there: it runs as soon as the
    pipeline's run in progress ends, before its queued runs (a rollback of NAME queued earlier
    is replaced). Without --to, "the previous model" is decided now, not when it runs."""
    ops = open_operations(find_project(ctx))
    request = ops.request_rollback(name, to_version, reason)
    run_id = request.run_id
    if run_id is None:
        click.echo(f"rolling {name} back from {request.current} to {request.target}")
    else:
        click.echo(
            f"rollback of {name} from {request.current} to {request.target} queued as run "
            f"{run_id} in the service at {request.service_url}"
        )
        for old in request.superseded:
            click.echo(
                f"run {old} (a rollback of {name} queued earlier, not started) is replaced by "
                f"run {run_id}"
            )
        for busy in request.behind:
            click.echo(f"it runs when run {busy} ends, before any queued run")
        if not wait:
            click.echo(f"follow it: `mlcicd runs show {run_id}`, `mlcicd logs {run_id}`")
            return
    try:
        done = ops.finish_rollback(request, TerminalReporter(), wait=wait, on_wait=click.echo)
    except KeyboardInterrupt:
        if run_id is None:
            raise
        click.echo(
            f"stopped following; rollback run {run_id} goes on in the service "
            f"(`mlcicd runs show {run_id}`)",
            err=True,
        )
        raise SystemExit(130) from None
    assert done is not None  # run here, or followed to its end
    click.echo(f"{name} serves {request.target} at {done.url} (run {done.run_id})")
