"""The ``mlcicd`` command: a thin layer over the library.

Every expected failure is an ``MlcicdError``; it is printed as one line (what, where, what
to do) with the error's exit code. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlcicd import __version__
from mlcicd.errors import MlcicdError
from mlcicd.project import Project


class _ErrorLine(click.ClickException):
    def __init__(self, error: MlcicdError) -> None:
        super().__init__(error.headline)
        self.exit_code: int = error.exit_code  # type: ignore[misc]  # click's is a class default

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class MlcicdGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlcicdError as exc:
            raise _ErrorLine(exc) from exc


@click.group(cls=MlcicdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlcicd")
@click.option(
    "-C",
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project directory (default: the one holding mlcicd.yaml, from here upwards).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None) -> None:
    """CI/CD for machine-learning models: source → build → train + gate → register → deploy.

    Runs on this machine in seconds, with SageMaker's own contracts, so the same
    train.py and inference.py run unchanged on SageMaker.
    """
    ctx.obj = project_dir


def find_project(ctx: click.Context, explicit: Path | None = None) -> Project:
    start = explicit or ctx.find_root().obj or Path.cwd()
    return Project.find(Path(start))


def main() -> None:
    cli(prog_name="mlcicd")


# Importing the command modules registers their commands on `cli` (hence E402).
from mlcicd.cli import (  # noqa: E402
    approve,
    aws,
    endpoints,
    events,
    explain,
    hooks,
    image,
    init,
    lineage,
    models,
    monitor,
    rollback,
    run,
    runs,
    transform,
    up,
)

__all__ = [
    "approve",
    "aws",
    "cli",
    "endpoints",
    "events",
    "explain",
    "hooks",
    "image",
    "init",
    "lineage",
    "main",
    "models",
    "monitor",
    "rollback",
    "run",
    "runs",
    "transform",
    "up",
]
