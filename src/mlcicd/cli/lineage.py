"""`mlcicd lineage`: where a model or an endpoint came from (:mod:`mlcicd.lineage`)."""

from __future__ import annotations

import json

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, when


@cli.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage(ctx: click.Context, target: str, as_json: bool) -> None:
    """Where TARGET came from: a model version (GROUP/VERSION or VERSION) or an endpoint name."""
    from mlcicd.lineage import lineage as find

    project = find_project(ctx)
    found = find(project.state, target, project.config.pipeline)
    if as_json:
        echo_json(found)
        return
    if "endpoint" in found:
        e = found["endpoint"]
        click.echo(f"endpoint {e['name']}  {e['status']}  {e['url'] or ''}  config {e['config']}")
        for h in found["history"]:
            click.echo(
                f"  {when(h.at)}  {h.reason:<9} {h.config_name}  model "
                f"{h.model_group}/{h.model_version}" + (f"  ({h.detail})" if h.detail else "")
            )
        if found["model"] is None:
            return
        found = found["model"]
    _show_model(found)


def _show_model(found: dict[str, object]) -> None:
    c, b, j, m = (dict(found[k]) for k in ("commit", "build", "training_job", "model_package"))  # type: ignore[call-overload]
    message = str(c.get("message") or "").splitlines()
    click.echo(f"commit        {c.get('commit')} on {c.get('branch')} by {c.get('author')}")
    click.echo(f"              {message[0] if message else ''}")
    click.echo(f"build         {b.get('digest')}")
    for step, done in dict(found.get("processing") or {}).items():  # type: ignore[call-overload]
        shown = " ".join(f"{n}={o['sha256'][:12]}" for n, o in sorted(done["outputs"].items()))
        click.echo(f"processing    {step}  job {done['job']}  {shown}")
    hps = json.dumps(j.get("hyperparameters", {}), sort_keys=True)
    metrics = " ".join(f"{k}={v:g}" for k, v in sorted(dict(j.get("metrics") or {}).items()))
    click.echo(f"training job  {j.get('name')}  hyperparameters {hps}")
    click.echo(f"              data {j.get('data_digest')}  {metrics}")
    click.echo(f"model package {m['arn']}  {m['status']}  sha256 {m['sha256']}")
    for config in found["endpoint_configs"]:  # type: ignore[attr-defined]
        click.echo(
            f"endpoint      {config['endpoint']}  config {config['name']}  "
            f"{when(config['created_at'])}"
        )
