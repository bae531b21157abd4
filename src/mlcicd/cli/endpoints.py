"""`mlcicd endpoints …` and `mlcicd invoke`: the endpoints and calling them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.endpoints import EndpointBackend, EndpointDescription
from mlcicd.endpoints.client import invoke_endpoint
from mlcicd.errors import EndpointError, NotFoundError
from mlcicd.project import Project
from mlcicd.state import EndpointRecord


def _backend(project: Project, kind: str) -> EndpointBackend:
    if kind == "local":
        from mlcicd.endpoints.local import LocalEndpointBackend

        return LocalEndpointBackend(project.state_dir / "endpoints")
    raise EndpointError(f"endpoint backend {kind!r} is not available in this version")


def _live(project: Project, name: str) -> tuple[EndpointRecord, EndpointDescription]:
    """The recorded endpoint with what its backend reports now (and the record brought up to date)."""
    record = project.state.get_endpoint(name)
    if record is None:
        names = ", ".join(e.name for e in project.state.list_endpoints()) or "none yet"
        raise NotFoundError(f"endpoint {name} does not exist", hint=f"endpoints: {names}")
    try:
        described = _backend(project, record.backend).describe(name)
    except NotFoundError:
        described = EndpointDescription(
            name=name, status="OutOfService", url=None, port=None, pid=None, config_name=record.config_name,
            model_sha256=record.model_sha256, failure_reason="its files are gone", last_update_failure=None,
        )  # fmt: skip
    if (described.status, described.pid, described.url) != (record.status, record.pid, record.url):
        record.status, record.pid, record.url, record.port = (
            described.status, described.pid, described.url, described.port,
        )  # fmt: skip
        record.failure_reason = described.failure_reason or record.failure_reason
        record.updated_at = time.time()
        project.state.upsert_endpoint(record)
    return record, described


@cli.group()
def endpoints() -> None:
    """Endpoints: what serves which model, where."""


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_list(ctx: click.Context, as_json: bool) -> None:
    """Every endpoint with its live status."""
    project = find_project(ctx)
    records = [_live(project, e.name)[0] for e in project.state.list_endpoints()]
    if as_json:
        echo_json(records)
        return
    table(
        ["endpoint", "status", "url", "model", "config", "updated"],
        [(r.name, r.status, r.url, f"{r.model_group}/{r.model_version}" if r.model_group else None,
          r.config_name, when(r.updated_at)) for r in records],
    )  # fmt: skip


@endpoints.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_describe(ctx: click.Context, name: str, as_json: bool) -> None:
    """One endpoint: status, URL, pid, model and the configs it served."""
    project = find_project(ctx)
    record, described = _live(project, name)
    configs = project.state.endpoint_configs(name)
    if as_json:
        echo_json({"endpoint": record, "live": described, "configs": configs})
        return
    click.echo(f"{record.name}  {record.status}  ({record.backend})")
    for label, value in (
        ("url", record.url), ("pid", record.pid), ("config", record.config_name),
        ("model", f"{record.model_group}/{record.model_version}" if record.model_group else None),
        ("model sha256", record.model_sha256), ("failure", described.failure_reason),
        ("last update failure", described.last_update_failure), ("created", when(record.created_at)),
        ("updated", when(record.updated_at)),
    ):  # fmt: skip
        if value is not None:
            click.echo(f"  {label:<20}{value}")
    if configs:
        click.echo("  endpoint configs (newest first):")
        for config in configs:
            click.echo(f"    {config.name}  model {config.model_group}/{config.model_version}  {when(config.created_at)}")


@endpoints.command("delete")
@click.argument("name")
@click.pass_context
def endpoints_delete(ctx: click.Context, name: str) -> None:
    """Stop the endpoint and remove it (its model stays in the registry)."""
    project = find_project(ctx)
    record = project.state.get_endpoint(name)
    if record is None:
        raise NotFoundError(f"endpoint {name} does not exist")
    _backend(project, record.backend).delete(name)
    project.state.delete_endpoint(name)
    click.echo(f"deleted {name}")


@cli.command()
@click.argument("name")
@click.option("--body", default=None, help="The request body (default: read from standard input).")
@click.option("--body-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Read the request body from this file.")  # fmt: skip
@click.option("--content-type", default="application/json", show_default=True)
@click.option("--accept", default=None, help="The response type to ask for (default: the endpoint's choice).")
@click.pass_context
def invoke(
    ctx: click.Context, name: str, body: str | None, body_file: Path | None, content_type: str, accept: str | None
) -> None:
    """Send one request to endpoint NAME and print the response."""
    project = find_project(ctx)
    _record, described = _live(project, name)
    if described.status not in ("InService", "Updating") or not described.url:
        raise EndpointError(
            f"endpoint {name} is {described.status}" + (f": {described.failure_reason}" if described.failure_reason else ""),
            hint="redeploy it with `mlcicd run --force`",
        )
    if body_file is not None:
        data = body_file.read_bytes()
    elif body is not None:
        data = body.encode()
    else:
        data = sys.stdin.buffer.read()
    response = invoke_endpoint(described.url, data, content_type, accept=accept)
    if not response.ok:
        raise EndpointError(f"{name} answered {response.status}: {response.error_message()}")
    sys.stdout.buffer.write(response.body if response.body.endswith(b"\n") else response.body + b"\n")
    sys.stdout.flush()
