"""`mlcicd endpoints rollback`: an endpoint back to the model it served before."""

from __future__ import annotations

import click

from mlcicd.cli import find_project
from mlcicd.cli.endpoints import endpoints
from mlcicd.cli.progress import TerminalReporter
from mlcicd.errors import StateError
from mlcicd.project import Project


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
    from mlcicd.daemon import client
    from mlcicd.rollback import rollback, rollback_target

    project = find_project(ctx)
    url = client.find_running_service(project)
    if url is not None:
        _rollback_through_service(project, url, name, to_version, reason, wait)
        return
    package, current = rollback_target(project, name, to_version)
    click.echo(f"rolling {name} back from {current} to {package.arn}")
    summary = rollback(
        project, name, package.version, TerminalReporter(), by=client.user(), reason=reason
    )
    if summary.error is not None:
        raise summary.error
    deploy = summary.outputs.get("deploy", {})
    click.echo(f"{name} serves {package.arn} at {deploy.get('url')} (run {summary.run.id})")


def _rollback_through_service(
    project: Project, url: str, name: str, to_version: int | None, reason: str | None, wait: bool
) -> None:
    from mlcicd.daemon import client

    answer = client.request_rollback(url, project, name, to_version, reason)
    run_id = int(answer["run"]["id"])
    click.echo(
        f"rollback of {name} from {answer['from']} to {answer['target']} queued as run {run_id} "
        f"in the service at {url}"
    )
    for old in answer.get("superseded") or []:
        click.echo(
            f"run {old} (a rollback of {name} queued earlier, not started) is replaced by run {run_id}"
        )
    for busy in answer.get("behind") or []:
        click.echo(f"it runs when run {busy} ends, before any queued run")
    if not wait:
        click.echo(f"follow it: `mlcicd runs show {run_id}`, `mlcicd logs {run_id}`")
        return
    try:
        shown = client.follow_run(url, project, run_id, TerminalReporter(), on_wait=click.echo)
    except KeyboardInterrupt:
        click.echo(
            f"stopped following; rollback run {run_id} goes on in the service (`mlcicd runs show {run_id}`)",
            err=True,
        )
        raise SystemExit(130) from None
    run = shown["run"]
    if run["status"] != "Succeeded":
        raise StateError(
            f"rollback run {run_id} {run['status'].lower()}: {run.get('failure_reason') or ''}".rstrip(
                ": "
            )
        )
    deploy = next((s.get("outputs") or {} for s in shown["stages"] if s["stage"] == "deploy"), {})
    click.echo(f"{name} serves {answer['target']} at {deploy.get('url')} (run {run_id})")
