"""`mlcicd init`: a new project from a template (iris, or pipeline), ready for `mlcicd run`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from mlcicd import templates
from mlcicd.cli import cli
from mlcicd.scaffold import init_project


@cli.command()
@click.argument("directory", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--name",
    default=None,
    metavar="PIPELINE",
    help="The pipeline's name (default: the directory's); its endpoint is PIPELINE-endpoint.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Add the template's missing files to a non-empty DIR; files already there "
    "are kept, never overwritten.",
)
@click.option(
    "--template",
    type=click.Choice(templates.NAMES),
    default=templates.DEFAULT,
    show_default=True,
    help="iris: train and serve; pipeline: prepare → train → evaluate, the gate on the "
    "evaluation report, and a data check (docs/processing.md).",
)
@click.pass_context
def init(
    ctx: click.Context, directory: Path | None, name: str | None, force: bool, template: str
) -> None:
    """Create a project in DIR (default: the current directory) from a template.

    DIR gets mlcicd.yaml (the pipeline renamed), src/train.py, src/inference.py,
    requirements.txt and data/ (the iris template: tests/; the pipeline template:
    src/prepare.py and src/evaluate.py), and a git repository with a first commit
    unless DIR is inside one already. Then: mlcicd run DIR.
    """
    target = directory or ctx.find_root().obj or Path(".")
    result = init_project(Path(target), name=name, force=force, template=template)
    shown = _shown(result.path)
    where = result.path if shown == "." else shown
    click.echo(
        f"created {where} from the {result.template} template: pipeline {result.pipeline}, "
        f"endpoint {result.endpoint}"
    )
    for rel in result.created:
        click.echo(f"  created  {rel}")
    for rel in result.kept:
        click.echo(f"  kept     {rel}  (already there; the template's was not written)")
    if "mlcicd.yaml" in result.kept:
        click.echo(
            "note: mlcicd.yaml was already there and is kept as it is: its pipeline and endpoint "
            "names are its own, not the ones above"
        )
    run = "mlcicd run" + ("" if shown == "." else f" {shlex.quote(shown)}")
    if result.repo is not None:
        rel = os.path.relpath(result.path, Path.cwd())
        click.echo(
            f"git: inside the repository {result.repo} (branch {result.branch}); nothing committed"
        )
        click.echo(
            f"next: git add {shlex.quote(rel)} && git commit -m 'Add {result.pipeline}' && {run}"
        )
        return
    if result.commit is not None:
        click.echo(
            f"git: a new repository on branch {result.branch}, first commit {result.commit[:12]}"
        )
    if result.untracked:
        click.echo(
            f"not committed (they were there before): {', '.join(result.untracked)} — commit or "
            "ignore them first, `mlcicd run` runs a clean tree"
        )
    click.echo(f"next: {run}")


def _shown(path: Path) -> str:
    """``path`` as the user would type it: relative to here when below here."""
    try:
        rel = path.relative_to(Path.cwd().absolute())
    except ValueError:
        return str(path)
    return rel.as_posix() if rel.parts else "."
