"""`mlcicd hooks install`: git hooks that tell `mlcicd up` about new commits."""

from __future__ import annotations

from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.daemon.auth import token_path
from mlcicd.errors import MlcicdError
from mlcicd.project import Project


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
    from mlcicd.hooks import hook_script, hook_url, install

    project = _hook_project(ctx, repo)
    if url is None:
        url = hook_url(project)
    token_file = None if project is None else token_path(project.state_dir)
    if token_file is None:
        click.echo(
            "warning: no mlcicd project found (REPO, -C or here): the hook sends only "
            "$MLCICD_TOKEN, if set when it runs",
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
