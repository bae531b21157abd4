"""`mlcicd runs` and `mlcicd logs`: what happened in a run, stage by stage; `runs retry`."""

from __future__ import annotations

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.operations import open_operations
from mlcicd.pipeline import run_logs


@cli.group()
def runs() -> None:
    """Pipeline runs: their stages, status and timing."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True, help="How many of the newest runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest runs first."""
    found = find_project(ctx).state.list_runs(limit=limit)
    if as_json:
        echo_json(found)
        return
    table(
        ["run", "status", "commit", "started", "elapsed", "failed stage", "message"],
        [
            (
                r.id,
                r.status,
                (r.commit_sha or "")[:12],
                when(r.started_at),
                f"{r.elapsed:.1f}s",
                r.failed_stage,
                r.failure_reason or _subject(r.message),
            )
            for r in found
        ],
    )


def _subject(message: str | None) -> str:
    return message.splitlines()[0] if message else ""


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """One run: its commit, each stage's status, time and outputs."""
    state = find_project(ctx).state
    run = state.get_run(run_id)
    stages = state.stages(run_id)
    if as_json:
        echo_json({"run": run, "stages": stages})
        return
    click.echo(
        f"run {run.id}  {run.status}  {run.pipeline}  started {when(run.started_at)}  "
        f"{run.elapsed:.1f}s"
    )
    if run.commit_sha:
        dirty = " (working tree was dirty)" if run.dirty else ""
        click.echo(f"commit {run.commit_sha} on {run.branch} by {run.author}{dirty}")
        click.echo(f"    {_subject(run.message)}")
    if run.failure_reason:
        click.echo(f"failed at {run.failed_stage}: {run.failure_reason}")
    table(
        ["stage", "status", "elapsed", "message"],
        [
            (s.stage, s.status, f"{s.elapsed:.1f}s" if s.elapsed is not None else "-", s.message)
            for s in stages
        ],
    )
    check = next((s.outputs for s in stages if s.stage == "data_check" and s.outputs), None)
    if check and check.get("violations"):
        click.echo(f"data check against model {check.get('model')} ({check.get('mode')}):")
        for v in check["violations"]:
            click.echo(f"  {v['feature_name']}: {v['constraint_check_type']}: {v['description']}")
    staged = next((s for s in stages if s.stage == "staging" and s.outputs), None)
    if staged is not None:
        from mlcicd.endpoints.acceptance import failed_test_tail, staging_facts

        for what, text in staging_facts(staged.outputs):
            click.echo(f"{what}: {text}")
        for line in failed_test_tail(staged.outputs):
            click.echo(f"    │ {line}")


@cli.command()
@click.argument("run_id", type=int)
@click.option(
    "--stage", "-s", default=None, help="Only this stage's log (source, build, train, …)."
)
@click.pass_context
def logs(ctx: click.Context, run_id: int, stage: str | None) -> None:
    """Print a run's logs, stage by stage."""
    for log in run_logs(find_project(ctx).state, run_id, stage):
        click.echo(f"==> {log.title} {log.path}")
        text = log.read()
        click.echo("(no log was written)" if text is None else text, nl=False)


@runs.command("retry")
@click.argument("run_id", type=int)
@click.pass_context
def runs_retry(ctx: click.Context, run_id: int) -> None:
    """Queue the commit of a finished (e.g. interrupted) run again; `mlcicd up` runs it."""
    retried = open_operations(find_project(ctx)).retry(run_id)
    what = f"retry of run {run_id}, commit {retried.commit[:12]}"
    if retried.service_url is not None:
        click.echo(f"run {retried.run_id} queued in the service at {retried.service_url} ({what})")
        return
    click.echo(
        f"run {retried.run_id} queued ({what})"
        + ("" if retried.service_running else "; start `mlcicd up` to run it")
    )
