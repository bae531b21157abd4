"""`mlcicd up`, `hooks install`, `lineage`, `events`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.daemon.auth import token_path
from mlcicd.errors import MlcicdError
from mlcicd.project import Project


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
    from mlcicd.daemon import up

    projects = [find_project(ctx, d) for d in project_dirs] or [find_project(ctx)]
    service = up.start(
        [p.root for p in projects], port if port is not None else projects[0].config.service.port
    )
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
            "warning: no mlcicd project found (REPO, -C or here): the hook sends only "
            "$MLCICD_TOKEN, "
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
    from mlcicd.daemon.client import find_running_service

    if project is None:
        return f"http://127.0.0.1:{ServiceConfig().port}"
    return find_running_service(project) or f"http://127.0.0.1:{project.config.service.port}"


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
                f"  {when(h.at)}  {h.reason:<9} {h.config_name}  model "
                f"{h.model_group}/{h.model_version}" + (f"  ({h.detail})" if h.detail else "")
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
            f"endpoint      {config['endpoint']}  config {config['name']}  "
            f"{when(config['created_at'])}"
        )


@cli.command()
@click.option("--limit", default=50, show_default=True, help="How many of the newest events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def events(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The registry's event log: registered, approved, rejected, deployed, rolled back,
    restarted."""
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
