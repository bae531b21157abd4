"""`mlcicd run`: the whole pipeline, with its progress on the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlcicd import git
from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json
from mlcicd.cli.progress import TerminalReporter
from mlcicd.config import CONFIG_FILE, Config, RunBackend, with_backend
from mlcicd.endpoints.client import invoke_endpoint
from mlcicd.errors import MlcicdError
from mlcicd.pipeline import RunOptions, run_pipeline
from mlcicd.project import Project
from mlcicd.stages import default_stages
from mlcicd.state import StageExecution


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
        config = _on_backend(project, config, backend, stack_name, ref)
        project.config = config  # this run's config: every stage and backend reads it from here
    reporter = TerminalReporter(sys.stderr if as_json else None)
    options = RunOptions(force=force, allow_dirty=allow_dirty, ref=ref)
    from mlcicd.daemon.client import find_running_service, run_through_service

    # When `mlcicd up` serves this project its queue runs it, so one run per pipeline holds.
    # (--backend runs stay here: the service always runs the commit's own mlcicd.yaml.)
    service_url = find_running_service(project) if backend is None else None
    if service_url is not None:
        click.echo(
            f"mlcicd run · {config.pipeline} · {project.root} · via {service_url}", err=as_json
        )
        ctx.exit(
            run_through_service(
                project,
                service_url,
                ref=ref,
                force=force,
                allow_dirty=allow_dirty,
                as_json=as_json,
                reporter=reporter,
            )
        )
    click.echo(f"mlcicd run · {config.pipeline} · {project.root}", err=as_json)
    try:
        summary = run_pipeline(project, default_stages(config), options, reporter)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the run is recorded as Stopped; the endpoint keeps serving", err=True
        )
        ctx.exit(130)
    run_record = summary.run
    if as_json:
        echo_json({"run": run_record, "stages": project.state.stages(run_record.id)})
    if summary.error is not None:
        _show_failure(project.state.stages(run_record.id), summary.error)
        ctx.exit(summary.error.exit_code)
    if summary.waiting:
        click.echo(
            f"run {run_record.id} is waiting for approval: `mlcicd approve {run_record.id}` "
            f"or `mlcicd reject {run_record.id}`",
            err=as_json,
        )
        return
    deploy = summary.outputs.get("deploy", {})

    def out(message: str) -> None:
        click.echo(message, err=as_json)  # with --json, stdout is the JSON alone

    out(f"run {run_record.id} succeeded in {run_record.elapsed:.1f}s")
    if deploy.get("arn"):
        out(f"endpoint {deploy['endpoint']}: {deploy['arn']}")
        out(
            f"invoke it at {deploy['runtime_url']} (signed: boto3's sagemaker-runtime "
            "invoke_endpoint)"
        )
    if deploy.get("url"):
        out(f"endpoint {deploy['endpoint']}: {deploy['url']}/invocations")
        if config.deploy.sample:
            try:
                response = invoke_endpoint(
                    deploy["url"], config.deploy.sample.encode(), "application/json"
                )
                body = response.body.decode(errors="replace")
                out(f"sample  {json.dumps(json.loads(config.deploy.sample))} → {body.strip()}")
            except MlcicdError as exc:
                out(f"sample prediction failed: {exc.headline}")


def _on_backend(
    project: Project, config: Config, backend: RunBackend, stack_name: str | None, ref: str | None
) -> Config:
    """``config`` on ``backend``; with a stack, what it lacks comes from the stack's outputs."""
    source = str(project.root / CONFIG_FILE)
    if backend != "aws" or stack_name is None:
        return with_backend(config, backend, source=source)
    from mlcicd.aws.stack import stack_outputs

    outputs = stack_outputs(stack_name)
    commit = None
    if not config.train.image:  # the image CodeBuild built from the commit this run runs
        commit = git.resolve_commit(
            project.repo, project.rel, ref or config.branch, config.branch
        ).sha
    return with_backend(config, backend, stack_outputs=outputs, commit=commit, source=source)


def _show_failure(stages: list[StageExecution], error: MlcicdError) -> None:
    """The failed stage's last log lines (what led to it), then the error in one line."""
    failed = next((s for s in stages if s.status == "Failed"), None)
    if failed is not None and failed.log_path and Path(failed.log_path).is_file():
        lines = [
            line
            for line in Path(failed.log_path).read_text(errors="replace").splitlines()
            if " FAILED: " not in line  # the error itself is printed below
        ][-15:]
        if lines:
            click.echo(f"last lines of the {failed.stage} log ({failed.log_path}):", err=True)
            for line in lines:
                click.echo(f"    │ {line}", err=True)
    click.echo(f"error: {error.headline}", err=True)
