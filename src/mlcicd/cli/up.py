"""`mlcicd up`: the always-on service (:mod:`mlcicd.daemon`) for one or more projects."""

from __future__ import annotations

from pathlib import Path

import click

from mlcicd.cli import cli, find_project


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
    from mlcicd.daemon import up as daemon_up

    projects = [find_project(ctx, d) for d in project_dirs] or [find_project(ctx)]
    service = daemon_up.start(
        [p.root for p in projects], port if port is not None else projects[0].config.service.port
    )
    click.echo(
        f"mlcicd up: {service.url} (webhook: {service.url}/webhooks/github) — Ctrl-C to stop",
        err=True,
    )
    service.wait()
