"""`mlcicd up`, `hooks install`, `approve`, `reject`, `lineage`, `events`, `runs retry`."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.inspect import runs
from mlcicd.cli.output import echo_json, table, when
from mlcicd.cli.progress import TerminalReporter
from mlcicd.errors import MlcicdError
from mlcicd.project import Project
from mlcicd.service.auth import token_path


@cli.command()
@click.argument("project_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port on 127.0.0.1 (default: service.port of the first project).",
)
@click.pass_context
def up(ctx: click.Context, project_dirs: tuple[Path, ...], port: int | None) -> None:
    """Serve PROJECT_DIRs: run their pipelines on push, keep their endpoints serving.

    One process: an HTTP API (it needs the token in .mlcicd/service.token, which the CLI
    sends itself), a read-only dashboard and the GitHub webhook (POST /webhooks/github) on
    127.0.0.1, a durable run queue (one run per pipeline at a time, newer commits supersede queued
    ones), polling when service.poll_interval is set, and endpoint supervision. Stop it with
    Ctrl-C; a run in progress is recorded as Failed and can be retried.
    """
    from mlcicd.service.core import Service

    projects = [find_project(ctx, d) for d in project_dirs] or [find_project(ctx)]
    service = Service(
        [p.root for p in projects], port if port is not None else projects[0].config.service.port
    )
    service.start()
    click.echo(
        f"mlcicd up: {service.url} (webhook: {service.url}/webhooks/github) — Ctrl-C to stop",
        err=True,
    )
    service.wait()


@cli.group()
def hooks() -> None:
    """Git hooks that start runs when commits arrive."""


@hooks.command("install")
@click.argument("repo", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--url",
    default=None,
    help="The service's URL (default: the running `mlcicd up` of the project, else "
    "http://127.0.0.1:<service.port>).",
)
@click.option("--force", is_flag=True, help="Replace an existing hook that mlcicd did not install.")
@click.option(
    "--print", "print_only", is_flag=True, help="Print the hook instead of installing it."
)
@click.pass_context
def hooks_install(
    ctx: click.Context, repo: Path, url: str | None, force: bool, print_only: bool
) -> None:
    """Install post-receive (bare REPO) or post-commit (working REPO) to notify `mlcicd up`."""
    from mlcicd.hooks import hook_script, install

    project = _hook_project(ctx, repo)
    if url is None:
        url = _service_url(project)
    token_file = None if project is None else token_path(project.state_dir)
    if token_file is None:
        click.echo(
            "warning: no mlcicd project found (REPO, -C or here): the hook sends only $MLCICD_TOKEN, "
            "if set when it runs",
            err=True,
        )
    if print_only:
        click.echo(hook_script(url, token_file), nl=False)
        return
    hook = install(repo, url, force=force, token_file=token_file)
    click.echo(f"installed {hook} → {url}")


def _hook_project(ctx: click.Context, repo: Path) -> Project | None:
    """The project a hook of ``repo`` serves: REPO itself when it is one, else -C or the current
    directory; its service's URL and token file are the hook's."""
    for start in (repo, None):
        try:
            return find_project(ctx, start)
        except MlcicdError:
            continue
    return None


def _service_url(project: Project | None) -> str:
    """Where the hook should knock: the project's live service, else its configured port."""
    from mlcicd.config import ServiceConfig
    from mlcicd.service.client import find_running_service

    if project is None:
        return f"http://127.0.0.1:{ServiceConfig().port}"
    return find_running_service(project) or f"http://127.0.0.1:{project.config.service.port}"


def _decide(ctx: click.Context, run_id: int, approved: bool, comment: str | None) -> None:
    from mlcicd.pipeline import resume_pipeline
    from mlcicd.service.info import running_service
    from mlcicd.service.runner import commit_config
    from mlcicd.stages import default_stages

    project = find_project(ctx)
    if _through_service(ctx, project, run_id, approved, comment):
        return
    state = project.state
    user = os.environ.get("USER") or getpass.getuser()
    approval, expired = state.decide_approval_unless_expired(
        run_id, approved, by=user, comment=comment
    )
    if expired:
        click.echo(f"run {run_id}: the approval had timed out; the model is rejected", err=True)
    else:
        click.echo(
            f"run {run_id}: model {approval.model_group}/{approval.model_version} "
            f"{approval.status.lower()} by {user}" + (f": {comment}" if comment else "")
        )
    service = running_service(project.state_dir)
    if service is not None:  # it started between the check above and the decision
        click.echo(f"the service at {service['url']} continues run {run_id}")
        return
    run = state.get_run(run_id)
    if run.commit_sha:
        project.__dict__["config"] = commit_config(project, run.commit_sha)
    summary = resume_pipeline(project, default_stages(project.config), run_id, TerminalReporter())
    if summary.error is not None:
        raise summary.error
    click.echo(f"run {run_id} {summary.run.status.lower()}")
    if expired:
        ctx.exit(1)


def _through_service(
    ctx: click.Context, project: Project, run_id: int, approved: bool, comment: str | None
) -> bool:
    """When `mlcicd up` serves the project, decide through its API and follow the run it resumes."""
    from mlcicd.service import client

    url = client.find_running_service(project)
    if url is None:
        return False
    answer = client.decide(url, project, run_id, approved, comment)
    approval = answer["approval"]
    if answer.get("timed_out"):
        click.echo(f"run {run_id}: the approval had timed out; the model is rejected", err=True)
    else:
        click.echo(
            f"run {run_id}: model {approval['model_group']}/{approval['model_version']} "
            f"{str(approval['status']).lower()} by {approval['decided_by']}"
            + (f": {comment}" if comment else "")
        )
    click.echo(f"the service at {url} continues run {run_id}", err=True)
    shown = client.follow_run(url, project, run_id, TerminalReporter())
    status = shown["run"]["status"]
    click.echo(f"run {run_id} {status.lower()}")
    if answer.get("timed_out") or (approved and status != "Succeeded"):
        ctx.exit(1)
    return True


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


@runs.command("retry")
@click.argument("run_id", type=int)
@click.pass_context
def runs_retry(ctx: click.Context, run_id: int) -> None:
    """Queue the commit of a finished (e.g. interrupted) run again; `mlcicd up` runs it."""
    from mlcicd.service import client
    from mlcicd.service.info import running_service
    from mlcicd.service.triggers import retry

    project = find_project(ctx)
    url = client.find_running_service(project)
    if url is not None:
        run = client.retry(url, project, run_id)["run"]
        click.echo(
            f"run {run['id']} queued in the service at {url} "
            f"(retry of run {run_id}, commit {str(run.get('commit_sha') or run.get('ref') or '')[:12]})"
        )
        return
    run = retry(project, run_id)
    where = running_service(project.state_dir)
    click.echo(
        f"run {run.id} queued (retry of run {run_id}, commit {(run.commit_sha or run.ref or '')[:12]})"
        + ("" if where else "; start `mlcicd up` to run it")
    )


@cli.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage(ctx: click.Context, target: str, as_json: bool) -> None:
    """Where TARGET came from: a model version (GROUP/VERSION or VERSION) or an endpoint name."""
    from mlcicd.lineage import lineage as find

    project = find_project(ctx)
    found = find(project.state, target, project.config.pipeline)
    if as_json:
        echo_json(found)
        return
    if "endpoint" in found:
        e = found["endpoint"]
        click.echo(f"endpoint {e['name']}  {e['status']}  {e['url'] or ''}  config {e['config']}")
        for h in found["history"]:
            click.echo(
                f"  {when(h.at)}  {h.reason:<9} {h.config_name}  model {h.model_group}/{h.model_version}"
                + (f"  ({h.detail})" if h.detail else "")
            )
        if found["model"] is None:
            return
        found = found["model"]
    _show_model(found)


def _show_model(found: dict[str, object]) -> None:
    c, b, j, m = (dict(found[k]) for k in ("commit", "build", "training_job", "model_package"))  # type: ignore[call-overload]
    message = str(c.get("message") or "").splitlines()
    click.echo(f"commit        {c.get('commit')} on {c.get('branch')} by {c.get('author')}")
    click.echo(f"              {message[0] if message else ''}")
    click.echo(f"build         {b.get('digest')}")
    hps = json.dumps(j.get("hyperparameters", {}), sort_keys=True)
    metrics = " ".join(f"{k}={v:g}" for k, v in sorted(dict(j.get("metrics") or {}).items()))
    click.echo(f"training job  {j.get('name')}  hyperparameters {hps}")
    click.echo(f"              data {j.get('data_digest')}  {metrics}")
    click.echo(f"model package {m['arn']}  {m['status']}  sha256 {m['sha256']}")
    for config in found["endpoint_configs"]:  # type: ignore[attr-defined]
        click.echo(
            f"endpoint      {config['endpoint']}  config {config['name']}  {when(config['created_at'])}"
        )


@cli.command()
@click.option("--limit", default=50, show_default=True, help="How many of the newest events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def events(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The registry's event log: registered, approved, rejected, deployed, rolled back, restarted."""
    found = find_project(ctx).state.recent_events(limit)
    if as_json:
        echo_json(found)
        return
    table(
        ["id", "when", "event", "subject", "detail"],
        [
            (
                e.id,
                when(e.at),
                e.kind,
                e.subject,
                " ".join(
                    f"{k}={v}"
                    for k, v in sorted(e.data.items())
                    if v is not None and k != "metrics"
                ),
            )
            for e in found
        ],
    )
