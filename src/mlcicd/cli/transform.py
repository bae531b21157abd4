"""`mlcicd transform MODEL --input --output`, `mlcicd transforms list | describe JOB`: batch
transform jobs with SageMaker's CreateTransformJob fields (docs/transform.md)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.jsonable import to_jsonable

if TYPE_CHECKING:
    from mlcicd.state import TransformJobRecord
    from mlcicd.transform import TransformProgress

PROGRESS_INTERVAL = 1.0  # seconds between progress lines


@cli.command("transform")
@click.argument("model")
@click.option("--input", "source", required=True, help="A file, or a directory of files.")
@click.option("--output", required=True, help="The directory for <name>.out of each input.")
@click.option("--content-type", default="text/csv", show_default=True)
@click.option("--accept", default=None, help="The output's type (default: the content type).")
@click.option("--split-type", default="Line", show_default=True, help="Line | None")
@click.option("--batch-strategy", default="MultiRecord", show_default=True)
@click.option("--max-payload-mb", type=float, default=6, show_default=True)
@click.option("--max-concurrent", type=int, default=1, show_default=True, help="Workers.")
@click.option("--compression", default="None", show_default=True, help="None | Gzip")
@click.option("--assemble-with", default="Line", show_default=True, help="Line | None")
@click.option("--input-filter", default="$", show_default=True, help="JSONPath, e.g. '$[1:]'")
@click.option("--join-source", default="None", show_default=True, help="None | Input")
@click.option("--output-filter", default="$", show_default=True, help="JSONPath")
@click.option("--job-name", default=None, help="TransformJobName (default: model and time).")
@click.option("--backend", default="local", show_default=True, help="local | sagemaker")
@click.option("--json", "as_json", is_flag=True, help="Print the job's record as JSON.")
@click.pass_context
def transform(
    ctx: click.Context,
    model: str,
    source: str,
    output: str,
    content_type: str,
    accept: str | None,
    split_type: str,
    batch_strategy: str,
    max_payload_mb: float,
    max_concurrent: int,
    compression: str,
    assemble_with: str,
    input_filter: str,
    join_source: str,
    output_filter: str,
    job_name: str | None,
    backend: str,
    as_json: bool,
) -> None:
    """Score every record of --input with MODEL (GROUP/VERSION, GROUP's newest Approved
    version, or an endpoint's model) through its own inference.py; <name>.out per input."""
    from mlcicd.batch import transform as run_transform
    from mlcicd.transform import TransformSettings

    settings = TransformSettings(
        content_type=content_type,
        accept=accept,
        split_type=split_type,
        batch_strategy=batch_strategy,
        max_payload_mb=max_payload_mb,
        max_concurrent=max_concurrent,
        compression=compression,
        assemble_with=assemble_with,
        input_filter=input_filter,
        join_source=join_source,
        output_filter=output_filter,
    )
    progress = _Progress(enabled=not as_json)
    job = run_transform(
        find_project(ctx),
        model,
        source,
        output,
        settings,
        backend=backend,
        name=job_name,
        on_progress=progress.update,
        on_log=None if as_json else lambda line: click.echo(line, err=True),
    )
    progress.done()
    if as_json:
        echo_json(job)
        return
    click.echo(
        f"{job.name} {job.status}: {job.objects} object(s), {job.rows_in} rows in, "
        f"{job.rows_out} rows out, in {_took(job)} → {job.output_uri}"
    )


class _Progress:
    """objects, rows, rows/s and ETA on stderr, at most once a second."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.shown = False

    def update(self, p: TransformProgress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        elapsed = max(now - p.started, 1e-6)
        rate = p.rows_in / elapsed
        eta = "?"
        if p.bytes_done:
            eta = f"{max(0.0, elapsed * (p.bytes_total - p.bytes_done) / p.bytes_done):.0f}s"
        line = (
            f"objects {p.objects_done}/{p.objects_total}  rows {p.rows_in}  "
            f"{rate:,.0f} rows/s  ETA {eta}"
        )
        tty = sys.stderr.isatty()
        click.echo(("\r" + line + "\033[K") if tty else line, err=True, nl=not tty)
        self.shown = tty

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)


def _took(job: TransformJobRecord) -> str:
    return f"{(job.ended_at or time.time()) - job.started_at:.1f}s"


@cli.group()
def transforms() -> None:
    """Batch transform jobs: list them, describe one."""


@transforms.command("list")
@click.option("--model", default=None, help="Only the jobs of GROUP or GROUP/VERSION.")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def transforms_list(ctx: click.Context, model: str | None, limit: int, as_json: bool) -> None:
    """The newest transform jobs first."""
    group, _, version = (model or "").partition("/")
    jobs = find_project(ctx).state.transform_jobs(
        group or None, int(version) if version.isdigit() else None, limit=limit
    )
    if as_json:
        echo_json(jobs)
        return
    table(
        ["name", "status", "model", "rows in", "rows out", "started", "took", "output"],
        [
            [
                j.name,
                j.status,
                j.model,
                j.rows_in,
                j.rows_out,
                when(j.started_at),
                _took(j) if j.ended_at else None,
                j.output_uri,
            ]
            for j in jobs
        ],
    )


@transforms.command("describe")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def transforms_describe(ctx: click.Context, job: str, as_json: bool) -> None:
    """One transform job: its model, input, output, settings, how it ended, its log."""
    record = find_project(ctx).state.get_transform_job(job)
    if as_json:
        echo_json(record)
        return
    for key, value in to_jsonable(record).items():
        if key in ("pid", "pid_start") and value is None:
            continue
        if key == "settings":
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif key in ("started_at", "ended_at"):
            value = when(value)
        click.echo(f"{key:15} {'-' if value is None else value}")
