"""`mlcicd models`: the model registry, what the runs registered."""

from __future__ import annotations

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when


@cli.group()
def models() -> None:
    """The model registry: model package groups and their versions."""


@models.command("list")
@click.option("--group", default=None, help="Only this model package group (a pipeline's name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_list(ctx: click.Context, group: str | None, as_json: bool) -> None:
    """Every model package, newest version first."""
    packages = find_project(ctx).state.list_model_packages(group)
    if as_json:
        echo_json(packages)
        return
    table(
        ["model", "status", "metrics", "commit", "training job", "sha256", "created", "reason"],
        [
            (
                p.arn,
                p.status,
                " ".join(f"{k}={v:g}" for k, v in sorted(p.metrics.items())),
                (p.commit_sha or "")[:12],
                p.training_job,
                p.model_sha256[:12],
                when(p.created_at),
                p.status_reason or "",
            )
            for p in packages
        ],
    )
