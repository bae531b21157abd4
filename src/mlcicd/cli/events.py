"""`mlcicd events`: the registry's event log."""

from __future__ import annotations

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when


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
