"""`mlcicd models`: the model registry, what the runs registered."""

from __future__ import annotations

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.project import Project
from mlcicd.state import ModelPackage


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


def model_version(project: Project, target: str) -> ModelPackage:
    """The model package TARGET names: GROUP/VERSION, or VERSION of the project's pipeline."""
    group, _, version = target.rpartition("/")
    if not version.isdigit():
        raise NotFoundError(f"{target!r} is not a model version (GROUP/VERSION or VERSION)")
    return project.state.get_model_package(group or project.config.pipeline, int(version))


@models.command("describe")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_describe(ctx: click.Context, target: str, as_json: bool) -> None:
    """One model version (GROUP/VERSION or VERSION): its record and what drives it."""
    from mlcicd.explain.report import load_report, top_features

    project = find_project(ctx)
    package = model_version(project, target)
    try:
        report, refused = load_report(project, package), None
    except MlcicdError as exc:  # replaced in the store, or unverifiable: not shown
        report, refused = None, exc.headline
    if as_json:
        echo_json({"model": package, "explanation": report, "explanation_refused": refused})
        return
    click.echo(f"model {package.arn}  {package.status}  sha256 {package.model_sha256[:12]}")
    click.echo(f"  uri {package.model_uri}")
    click.echo(f"  metrics {' '.join(f'{k}={v:g}' for k, v in sorted(package.metrics.items()))}")
    click.echo(f"  commit {(package.commit_sha or '')[:12]}  created {when(package.created_at)}")
    if refused is not None:
        click.echo(f"  explanation: not shown: {refused}")
    elif report is None:
        click.echo("  explanation: none (add explain: to mlcicd.yaml)")
    elif "error" in report:
        click.echo(f"  explanation: failed: {report['error']}")
    else:
        top = ", ".join(f"{name} {value:.3g}" for name, value in top_features(report))
        click.echo(f"  top features (mean |SHAP|, {report['explainer']}): {top}")
