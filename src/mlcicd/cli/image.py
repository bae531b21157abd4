"""`mlcicd image build`, `base` and `prune`: the project's image, built with podman."""

from __future__ import annotations

from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json

# The project both build and prune work on: the current one when not given.
project_argument = click.argument(
    "project_dir",
    metavar="[PROJECT]",
    required=False,
    type=click.Path(file_okay=False, path_type=Path),
)


@cli.group()
def image() -> None:
    """The project's container image (podman; docs/containers.md).

    The image SageMaker runs with `train` and `serve`, built and run on this machine:
    `mlcicd image build` is the check to make before a push.
    """


@image.command("build")
@project_argument
@click.option(
    "--base",
    default=None,
    metavar="IMAGE",
    help="The base image (the Dockerfile's BASE_IMAGE); default build.image.base in "
    "mlcicd.yaml, else $MLCICD_IMAGE_BASE, else the Dockerfile's FROM.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Build from scratch, even when an image of the same context exists.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def build(
    ctx: click.Context, project_dir: Path | None, base: str | None, force: bool, as_json: bool
) -> None:
    """Build the project's Dockerfile from its last commit as mlcicd/<pipeline>:<commit[:12]>.

    The image carries this mlcicd (a wheel of it) and the commit's code; a failing step is
    named with its output. Prints the tag and the image id (its digest).
    """
    from mlcicd.images.build import build_project_image

    project = find_project(ctx, project_dir)
    log = (lambda line: click.echo(line, err=True)) if not as_json else (lambda line: None)
    built = build_project_image(project, base=base, force=force, log=log)
    if as_json:
        echo_json(
            {
                "tag": built.tag,
                "image_id": built.image_id,
                "context_digest": built.context_digest,
                "base": built.base,
                "built": built.built,
                "seconds": round(built.seconds, 1),
                "size_bytes": built.size_bytes,
            }
        )
        return
    size = f", {built.size_bytes / 1e6:.0f} MB" if built.size_bytes else ""
    click.echo(
        f"{built.tag} {built.image_id} ({'built' if built.built else 'reused'} in "
        f"{built.seconds:.1f}s{size})"
    )


@image.command("base")
@click.option("--tag", default=None, help="The tag (default localhost/mlcicd/python-base:<suite>).")
@click.option("--suite", default=None, help="The Debian suite (default this machine's).")
@click.option("--mirror", default=None, help="The Debian mirror (default the one apt uses here).")
@click.option("--force", is_flag=True, help="Make it again even if the tag exists.")
def base(tag: str | None, suite: str | None, mirror: str | None, force: bool) -> None:
    """Make a Python base image from Debian packages, with no registry (needs root).

    For machines that cannot pull one (CI, air-gapped): prints the tag to pass as
    `mlcicd image build --base TAG` (or to set as build.image.base / $MLCICD_IMAGE_BASE).
    """
    from mlcicd.images.base import make_base_image

    made = make_base_image(tag, suite=suite, mirror=mirror, force=force)
    how = f"made from {made.suite} ({made.mirror})" if made.built else "exists"
    click.echo(f"{made.tag} {made.image_id} ({how}, {made.seconds:.1f}s)", err=True)
    click.echo(made.tag)


@image.command("prune")
@project_argument
@click.option(
    "--keep",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the newest images to keep.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def prune(
    ctx: click.Context, project_dir: Path | None, keep: int, dry_run: bool, as_json: bool
) -> None:
    """Remove the project's old images (mlcicd/<pipeline>:*), never one in use.

    Kept: the --keep newest, any image a container endpoint serves, and any image a
    container was made from. The base image and other projects' images are not touched.
    """
    from mlcicd.images.prune import prune_images

    project = find_project(ctx, project_dir)
    pruned = prune_images(project.config.pipeline, project.state_dir, keep=keep, dry_run=dry_run)
    if as_json:
        echo_json({"removed": pruned.removed, "kept": pruned.kept, "failed": pruned.failed})
        return
    verb = "would remove" if dry_run else "removed"
    for tag in pruned.removed:
        click.echo(f"{verb} {tag}")
    for tag, why in pruned.kept.items():
        click.echo(f"kept {tag}: {why}")
    for tag, said in pruned.failed.items():
        click.echo(f"could not remove {tag}: {said}", err=True)
    if pruned.failed:
        ctx.exit(1)
