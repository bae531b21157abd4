"""`mlcicd run`: the whole pipeline, with its progress on the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json
from mlcicd.cli.progress import TerminalReporter
from mlcicd.endpoints.client import invoke_endpoint
from mlcicd.errors import MlcicdError
from mlcicd.pipeline import RunOptions, run_pipeline
from mlcicd.stages import default_stages
from mlcicd.state import StageExecution


@cli.command()
@click.argument("project_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--allow-dirty", is_flag=True, help="Run the last commit even with uncommitted changes (recorded).")
@click.option("--force", is_flag=True, help="Rerun every stage, ignoring caches.")
@click.option("--ref", default=None, help="Commit, tag or branch to run (default: the configured branch).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON at the end.")
@click.pass_context
def run(
    ctx: click.Context, project_dir: Path | None, allow_dirty: bool, force: bool, ref: str | None, as_json: bool
) -> None:
    """Run the pipeline on PROJECT_DIR (default: the current project).

    Exits 0 only when every stage succeeded, the quality gate included.
    """
    project = find_project(ctx, project_dir)
    config = project.config  # validate before anything runs
    reporter = TerminalReporter(sys.stderr if as_json else None)
    options = RunOptions(force=force, allow_dirty=allow_dirty, ref=ref)
    click.echo(f"mlcicd run · {config.pipeline} · {project.root}", err=as_json)
    try:
        summary = run_pipeline(project, default_stages(config), options, reporter)
    except KeyboardInterrupt:
        click.echo("interrupted: the run is recorded as Stopped; the endpoint keeps serving", err=True)
        ctx.exit(130)
    run_record = summary.run
    if as_json:
        echo_json({"run": run_record, "stages": project.state.stages(run_record.id)})
    if summary.error is not None:
        _show_failure(project.state.stages(run_record.id), summary.error)
        ctx.exit(summary.error.exit_code)
    if summary.waiting:
        click.echo(f"run {run_record.id} is waiting for approval: `mlcicd approve {run_record.id}` "
                   f"or `mlcicd reject {run_record.id}`", err=as_json)  # fmt: skip
        return
    deploy = summary.outputs.get("deploy", {})

    def out(message: str) -> None:
        click.echo(message, err=as_json)  # with --json, stdout is the JSON alone

    out(f"run {run_record.id} succeeded in {run_record.elapsed:.1f}s")
    if deploy.get("url"):
        out(f"endpoint {deploy['endpoint']}: {deploy['url']}/invocations")
        if config.deploy.sample:
            try:
                response = invoke_endpoint(deploy["url"], config.deploy.sample.encode(), "application/json")
                body = response.body.decode(errors="replace")
                out(f"sample  {json.dumps(json.loads(config.deploy.sample))} → {body.strip()}")
            except MlcicdError as exc:
                out(f"sample prediction failed: {exc.headline}")


def _show_failure(stages: list[StageExecution], error: MlcicdError) -> None:
    """The failed stage's last log lines (what led to it), then the error in one line."""
    failed = next((s for s in stages if s.status == "Failed"), None)
    if failed is not None and failed.log_path and Path(failed.log_path).is_file():
        lines = [
            line for line in Path(failed.log_path).read_text(errors="replace").splitlines()
            if " FAILED: " not in line  # the error itself is printed below
        ][-15:]  # fmt: skip
        if lines:
            click.echo(f"last lines of the {failed.stage} log ({failed.log_path}):", err=True)
            for line in lines:
                click.echo(f"    │ {line}", err=True)
    click.echo(f"error: {error.headline}", err=True)
