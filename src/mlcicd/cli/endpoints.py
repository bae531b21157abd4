"""`mlcicd endpoints …` and `mlcicd invoke`: the endpoints and calling them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlcicd.aws.names import DEFAULT_STACK_NAME
from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.endpoints import recorded
from mlcicd.endpoints.base import metric_rows, scaling_lines
from mlcicd.errors import EndpointError


@cli.group()
def endpoints() -> None:
    """Endpoints: what serves which model, where."""


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_list(ctx: click.Context, as_json: bool) -> None:
    """Every endpoint with its live status."""
    project = find_project(ctx)
    records = [recorded.live(project, e.name)[0] for e in project.state.list_endpoints()]
    if as_json:
        echo_json(records)
        return
    table(
        ["endpoint", "status", "url", "model", "config", "updated"],
        [
            (
                r.name,
                r.status,
                r.url,
                f"{r.model_group}/{r.model_version}" if r.model_group else None,
                r.config_name,
                when(r.updated_at),
            )
            for r in records
        ],
    )


@endpoints.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_describe(ctx: click.Context, name: str, as_json: bool) -> None:
    """One endpoint: status, URL, pid, model and the configs it served."""
    project = find_project(ctx)
    record, described = recorded.live(project, name)
    configs = project.state.endpoint_configs(name)
    if as_json:
        echo_json({"endpoint": record, "live": described, "configs": configs})
        return
    click.echo(f"{record.name}  {record.status}  ({record.backend})")
    for label, value in (
        ("url", record.url),
        ("pid", record.pid),
        ("config", record.config_name),
        ("model", f"{record.model_group}/{record.model_version}" if record.model_group else None),
        ("model sha256", record.model_sha256),
        ("failure", described.failure_reason),
        ("last update failure", described.last_update_failure),
        ("created", when(record.created_at)),
        ("updated", when(record.updated_at)),
    ):
        if value is not None:
            click.echo(f"  {label:<20}{value}")
    if described.variants:
        weights = ", ".join(f"{v['name']}={v['weight']:g}" for v in described.variants)
        click.echo(f"  {'variants':<20}{weights}")
        compiled = [
            f"{v['name']}: {', '.join(v['compiled']) or 'none'}"
            for v in described.variants
            if isinstance(v.get("compiled"), list)
        ]
        if compiled:  # the model methods answered through compiled code (MLCICD_FASTPATH)
            click.echo(f"  {'compiled':<20}{'; '.join(compiled)}")
    if described.traffic:
        t = described.traffic
        click.echo(
            f"  {'traffic shift':<20}{t['percent']:g}% to {t['config_name']} ({t['strategy']})"
        )
    for label, value in scaling_lines(described.autoscaling):
        click.echo(f"  {label:<20}{value}")
    if described.last_rollback:
        rb = described.last_rollback
        click.echo(
            f"  {'last rollback':<20}{rb.get('at')}: {rb.get('config_name')} → "
            f"{rb.get('rolled_back_to')}, "
            f"alarm {rb.get('message')}"
        )
    if configs:
        click.echo("  endpoint configs (newest first):")
        for config in configs:
            click.echo(
                f"    {config.name}  model {config.model_group}/{config.model_version}  "
                f"{when(config.created_at)}"
            )


@endpoints.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_history(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every config endpoint NAME served, when, and why it changed (deploy, rollback, restart,
    alarm)."""
    history = find_project(ctx).state.endpoint_history(name)
    if as_json:
        echo_json(history)
        return
    table(
        ["when", "why", "config", "model", "run", "detail"],
        [
            (
                when(h.at),
                h.reason,
                h.config_name,
                f"{h.model_group}/{h.model_version}" if h.model_group else None,
                h.run_id,
                h.detail,
            )
            for h in history
        ],
    )


@endpoints.command("delete")
@click.argument("name")
@click.pass_context
def endpoints_delete(ctx: click.Context, name: str) -> None:
    """Stop the endpoint and remove it (its model stays in the registry)."""
    recorded.delete(find_project(ctx), name)
    click.echo(f"deleted {name}")


@cli.command()
@click.argument("name")
@click.option("--body", default=None, help="The request body (default: read from standard input).")
@click.option(
    "--body-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the request body from this file.",
)
@click.option("--content-type", default="application/json", show_default=True)
@click.option(
    "--accept", default=None, help="The response type to ask for (default: the endpoint's choice)."
)
@click.option(
    "--explain",
    "explain",
    flag_value="`true`",
    default=None,
    help="Ask for the records' SHAP attributions (X-Amzn-SageMaker-Enable-Explanations).",
)
@click.option(
    "--explain-if",
    "explain",
    metavar="JMESPATH",
    help="Explain the records whose answer this expression holds for, e.g. '[0] > `0.5`'.",
)
@click.option("--json", "as_json", is_flag=True, help="With --explain: print Clarify's JSON.")
@click.option(
    "--via-api",
    is_flag=True,
    help="Through the stack's API Gateway API (api: in mlcicd.yaml), as an application would.",
)
@click.option(
    "--stack-name",
    default=DEFAULT_STACK_NAME,
    show_default=True,
    help="With --via-api: the stack whose API to call.",
)
@click.option(
    "--api-key",
    envvar="MLCICD_API_KEY",
    default=None,
    help="With --via-api and api.auth: api_key: the key (default: read from API Gateway).",
)
@click.pass_context
def invoke(
    ctx: click.Context,
    name: str,
    body: str | None,
    body_file: Path | None,
    content_type: str,
    accept: str | None,
    explain: str | None,
    as_json: bool,
    via_api: bool,
    stack_name: str,
    api_key: str | None,
) -> None:
    """Send one request to endpoint NAME and print the response; with --explain, the
    prediction and each record's attributions per feature and label (docs/explain.md)."""
    if via_api and explain is not None:
        raise click.UsageError(
            "--explain goes to the endpoint itself: the stack's API does not forward "
            "X-Amzn-SageMaker-Enable-Explanations"
        )
    if body_file is not None:
        data = body_file.read_bytes()
    elif body is not None:
        data = body.encode()
    else:
        data = sys.stdin.buffer.read()
    if via_api:
        # Imported here: the stack's API client would load the template for every command.
        from mlcicd.aws.gateway import ApiTarget, invoke_api
        from mlcicd.aws.stack import stack_outputs

        target = ApiTarget.from_outputs(stack_outputs(stack_name), stack=stack_name, endpoint=name)
        response = invoke_api(target, data, content_type, accept=accept, api_key=api_key)
    else:  # where it runs: a local URL, or SageMaker's runtime API
        response = recorded.invoke(
            find_project(ctx), name, data, content_type, accept=accept, enable_explanations=explain
        )
    if not response.ok:
        raise EndpointError(f"{name} answered {response.status}: {response.error_message()}")
    if explain is not None and not as_json:
        _print_explained(json.loads(response.body), response.headers.get("x-mlcicd-explainer"))
        return
    sys.stdout.buffer.write(
        response.body if response.body.endswith(b"\n") else response.body + b"\n"
    )
    sys.stdout.flush()


def _print_explained(answer: dict[str, Any], explainer: str | None) -> None:
    """Clarify's answer for a person: the prediction, then per explained record a table of
    the features (most influential first) by label."""
    predictions = answer.get("predictions", {})
    click.echo(f"prediction ({predictions.get('content_type', '?')}):")
    click.echo(str(predictions.get("data", "")).rstrip("\n"))
    records = answer.get("explanations", {}).get("kernel_shap")
    if not records:
        click.echo("\nno record explained (EnableExplanations held for none)")
        return
    how = explainer.replace("; output=", " explainer, on the ") if explainer else "SHAP"
    click.echo(f"\nattributions ({how}): how far each feature moves each label's output")
    labels = [str(label) for label in answer.get("label_headers") or []]
    for number, record in enumerate(records, 1):
        click.echo("")
        if record is None:
            click.echo(f"record {number}: not explained")
            continue
        click.echo(f"record {number}:")
        rows = []
        for index, feature in enumerate(record):
            values = feature["attributions"][0]["attribution"]
            rows.append((feature.get("feature_header", f"feature {index + 1}"), values))
        rows.sort(key=lambda row: -max(abs(v) for v in row[1]))
        heads = (
            labels if len(labels) == len(rows[0][1]) else [str(i) for i in range(len(rows[0][1]))]
        )
        table(["feature", *heads], [(f, *(f"{v:+.4f}" for v in vs)) for f, vs in rows])


def _weight(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise click.BadParameter(f"{text!r}: write VARIANT=WEIGHT, e.g. A=0.9") from None


@endpoints.command("set-weights")
@click.argument("name")
@click.argument("weights", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_set_weights(
    ctx: click.Context, name: str, weights: tuple[str, ...], as_json: bool
) -> None:
    """Change the traffic weights of NAME's variants without a restart: VARIANT=WEIGHT …

    On SageMaker: UpdateEndpointWeightsAndCapacities, waiting until the endpoint serves them."""
    project = find_project(ctx)
    described = recorded.backend_of(project, name).set_weights(
        name, dict(_weight(w) for w in weights)
    )
    if as_json:
        echo_json(described.variants)
        return
    total = sum(v["weight"] for v in described.variants) or 1.0
    for v in described.variants:
        click.echo(
            f"{v['name']:<20}weight {v['weight']:g}  ({v['weight'] / total:.0%} of the traffic)"
        )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    try:
        if text[-1] in _UNITS:
            return float(text[:-1]) * _UNITS[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        raise click.BadParameter(f"{text!r}: write a duration like 30s, 5m or 1h") from None


@endpoints.command("metrics")
@click.argument("name")
@click.option(
    "--window", default="5m", show_default=True, help="How far back: 30s, 5m, 1h, or all."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def endpoints_metrics(ctx: click.Context, name: str, window: str, as_json: bool) -> None:
    """Invocations, errors and p50/p90/p99 latencies of NAME's variants over a window.

    On SageMaker: CloudWatch's AWS/SageMaker metrics, about a minute late."""
    project = find_project(ctx)
    seconds = None if window == "all" else _duration(window)
    summary = recorded.backend_of(project, name).metrics(name, seconds)
    if as_json:
        echo_json(summary)
        return
    headings, rows = metric_rows(summary["variants"])
    click.echo(f"{name}, last {window}:")
    table(headings, rows)
    dropped = {k: v for k, v in summary["counters"].items() if v}
    if dropped:
        click.echo("  " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    for note in summary["notes"]:
        click.echo(f"  note: {note}")
