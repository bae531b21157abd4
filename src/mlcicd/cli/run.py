"""`mlcicd run`: the whole pipeline, with its progress on the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json
from mlcicd.cli.progress import TerminalReporter
from mlcicd.config import RunBackend
from mlcicd.operations import RunDone, RunRequest, on_backend, open_operations
from mlcicd.pipeline import RunOptions


@cli.command()
@click.argument("project_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="Run the last commit even with uncommitted changes (recorded).",
)
@click.option("--force", is_flag=True, help="Rerun every stage, ignoring caches.")
@click.option(
    "--ref", default=None, help="Commit, tag or branch to run (default: the configured branch)."
)
@click.option(
    "--backend",
    type=click.Choice(["aws", "local"]),
    default=None,
    help="Train and serve on this backend for this run, whatever mlcicd.yaml says "
    "(aws: SageMaker, with the artifact store on S3).",
)
@click.option(
    "--stack-name",
    default=None,
    metavar="NAME",
    help="With --backend aws: take train.role, train.image (RepositoryUri:<commit[:12]>) "
    "and store.uri, where mlcicd.yaml leaves them unset, from this stack's outputs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON at the end.")
@click.pass_context
def run(
    ctx: click.Context,
    project_dir: Path | None,
    allow_dirty: bool,
    force: bool,
    ref: str | None,
    backend: RunBackend | None,
    stack_name: str | None,
    as_json: bool,
) -> None:
    """Run the pipeline on PROJECT_DIR (default: the current project).

    Exits 0 only when every stage succeeded, the quality gate included.
    """
    if stack_name is not None and backend != "aws":
        raise click.UsageError("--stack-name goes with --backend aws")
    project = find_project(ctx, project_dir)
    config = project.config  # validate before anything runs
    if backend is not None:
        project = on_backend(project, backend, stack_name=stack_name, ref=ref)
    # When `mlcicd up` serves this project its queue runs it, so one run per pipeline holds.
    ops = open_operations(project, through_service=backend is None)

    def say(message: str) -> None:
        click.echo(message, err=as_json)  # with --json, stdout is the JSON alone

    via = f" · via {ops.service_url}" if ops.service_url else ""
    say(f"mlcicd run · {config.pipeline} · {project.root}{via}")
    request = ops.request_run(RunOptions(force=force, allow_dirty=allow_dirty, ref=ref))
    if request.run_id is not None:
        _say_queued(request, say)
    try:
        done = ops.finish_run(
            request, TerminalReporter(sys.stderr if as_json else None), on_wait=say
        )
    except KeyboardInterrupt:
        if request.run_id is None:
            click.echo(
                "interrupted: the run is recorded as Stopped; the endpoint keeps serving", err=True
            )
        else:
            click.echo(
                f"stopped following; run {request.run_id} goes on in the service (`mlcicd runs "
                f"show {request.run_id}`)",
                err=True,
            )
        ctx.exit(130)
    if as_json:
        echo_json(done.record)
    if done.error is not None:
        _show_failure(done)
        ctx.exit(done.error.exit_code)
    if done.status == "WaitingForApproval":
        say(
            f"run {done.run_id} is waiting for approval: `mlcicd approve {done.run_id}` "
            f"or `mlcicd reject {done.run_id}`"
        )
        return
    _show_success(done, say)


def _say_queued(request: RunRequest, say: Callable[[str], None]) -> None:
    """What the service did with the run asked for: queued it, or follows the one it had."""
    sha = request.commit[:12]
    if request.existing:
        say(
            f"run {request.run_id} of {sha} is already {request.status.lower()} in the service "
            f"at {request.service_url}; following it"
        )
    else:
        say(f"run {request.run_id} of {sha} queued in the service at {request.service_url}")
    for old in request.superseded:
        say(f"run {old} (queued, not started) is superseded by run {request.run_id}")


def _show_success(done: RunDone, say: Callable[[str], None]) -> None:
    say(f"run {done.run_id} succeeded in {done.elapsed:.1f}s")
    deploy = done.deploy
    if deploy.get("arn"):
        say(f"endpoint {deploy['endpoint']}: {deploy['arn']}")
        say(
            f"invoke it at {deploy['runtime_url']} (signed: boto3's sagemaker-runtime "
            "invoke_endpoint)"
        )
    if deploy.get("url"):
        say(f"endpoint {deploy['endpoint']}: {deploy['url']}/invocations")
    if done.sample is not None and done.sample.error is not None:
        say(f"sample prediction failed: {done.sample.error}")
    elif done.sample is not None:
        say(f"sample  {done.sample.request} → {done.sample.answer}")


def _show_failure(done: RunDone) -> None:
    """The failed stage's last log lines (what led to it), then the error in one line."""
    assert done.error is not None
    log = done.failed_log
    if log is not None and log.is_file():
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if " FAILED: " not in line  # the error itself is printed below
        ][-15:]
        if lines:
            click.echo(f"last lines of the {done.failed_stage} log ({log}):", err=True)
            for line in lines:
                click.echo(f"    │ {line}", err=True)
    click.echo(f"error: {done.error.headline}", err=True)
