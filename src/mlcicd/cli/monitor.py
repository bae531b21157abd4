"""`mlcicd monitor baseline`, `mlcicd monitor check` and `mlcicd monitor history`: data
quality, in SageMaker Model Monitor's terms (docs/monitor.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json, table, when
from mlcicd.errors import MlcicdError, MonitorError
from mlcicd.jsonable import to_jsonable

if TYPE_CHECKING:  # mlcicd.monitor loads numpy: imported by the commands that use it
    from mlcicd.monitor import CheckReport
    from mlcicd.project import Project


@cli.group()
def monitor() -> None:
    """Data-quality baselines of models, and checks of what endpoints captured against them."""


@monitor.command("baseline")
@click.option(
    "--model",
    "version",
    type=int,
    default=None,
    help="The model package version (default: the newest Approved one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def monitor_baseline(ctx: click.Context, version: int | None, as_json: bool) -> None:
    """Compute a model's baseline (again) from its commit's training channel.

    statistics.json and constraints.json go beside the model in the artifact store and are
    recorded with its version; the register stage computes them for every new model.
    """
    from mlcicd.monitor import rebaseline
    from mlcicd.monitor.baseline import describe

    baseline = rebaseline(find_project(ctx), version)
    if as_json:
        echo_json(baseline)
        return
    click.echo(f"baseline of {baseline.arn}: {describe(baseline)}")


@monitor.command("check")
@click.argument("endpoint")
@click.option(
    "--since",
    default="1h",
    show_default=True,
    help="Captured since: a duration back from now (30m, 1h, 2d) or an ISO 8601 time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def monitor_check(ctx: click.Context, endpoint: str, since: str, as_json: bool) -> None:
    """Check ENDPOINT's captured requests against the baselines of the models that served them.

    Writes statistics.json and constraint_violations.json per variant and model to the
    artifact store (a SageMaker monitoring execution's outputs) and prints a summary. Exit
    status: 0 no violation, 3 violations found, 1 or 2 when the check could not run (no
    capture, no baseline, a bad setting) — for CI and cron.
    """
    from mlcicd.monitor import VIOLATIONS_EXIT_CODE, check_endpoint, parse_since

    try:
        start = parse_since(since, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    project = find_project(ctx)
    try:
        report = check_endpoint(project, endpoint, since=start)
    except MlcicdError as exc:
        if (
            exc.exit_code == VIOLATIONS_EXIT_CODE
        ):  # e.g. a NotFoundError: 3 would read as "violations"
            raise MonitorError(exc.message, hint=exc.hint) from exc
        raise
    if as_json:
        echo_json({**to_jsonable(report), "violation_count": report.violation_count})
    else:
        _show(report)
        _label_hint(report, project)
    if report.violation_count:
        ctx.exit(VIOLATIONS_EXIT_CODE)


def _label_hint(report: CheckReport, project: Project) -> None:
    """A column the requests never carry is often the label, in a baseline that kept it."""
    from mlcicd.monitor.baseline import label_column

    missing = sorted(
        {
            v["feature_name"]
            for variant in report.variants
            for v in variant.violations
            if v["constraint_check_type"] == "missing_column_check"
        }
    )
    if missing and label_column(project.config) is None:
        click.echo(
            f"hint: if {' or '.join(missing)} is the label, set monitor.label in mlcicd.yaml "
            "and run `mlcicd monitor baseline` (no setting names the label yet)"
        )


@monitor.command("history")
@click.argument("endpoint", required=False)
@click.option("--limit", default=20, show_default=True, help="How many executions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def monitor_history(ctx: click.Context, endpoint: str | None, limit: int, as_json: bool) -> None:
    """The scheduled checks `mlcicd up` ran (monitor.schedule) on ENDPOINT (default: the
    project's): each one's window, verdict, violations and where its reports are."""
    project = find_project(ctx)
    name = endpoint or project.config.endpoint_name
    executions = project.state.monitoring_executions(name, limit=limit)
    if as_json:
        echo_json(executions)
        return
    schedule = project.config.monitor.schedule if name == project.config.endpoint_name else None
    click.echo(
        f"{name}: "
        + (
            f"checked every {schedule} by `mlcicd up` (monitor.schedule)"
            if schedule
            else "no monitor.schedule here: `mlcicd up` does not check it"
        )
    )
    if not executions:
        click.echo("no monitoring executions yet")
        return
    table(
        [
            "id",
            "window start",
            "window end",
            "status",
            "records",
            "violations",
            "model",
            "report / why",
        ],
        [
            (
                e.id,
                when(e.window_start),
                when(e.window_end),
                e.status,
                e.records,
                e.violation_count,
                ", ".join(str(v.get("model")) for v in e.variants) or None,
                " ".join(str(v.get("violations_uri")) for v in e.variants) or e.reason,
            )
            for e in executions
        ],
    )


def _show(report: CheckReport) -> None:
    rows = sum(v.rows for v in report.variants)
    click.echo(
        f"{report.endpoint}: {report.records} captured requests ({rows} rows) since "
        f"{when(report.since)}, "
        f"from {report.files} files in {report.destination}"
    )
    if report.skipped:
        reasons = "; ".join(
            f"{n} {why}" for why, n in sorted(report.skipped.items(), key=lambda i: -i[1])
        )
        click.echo(f"skipped {sum(report.skipped.values())} unreadable lines: {reasons}")
    if report.shadow_copies:
        click.echo(f"left out {report.shadow_copies} shadow copies of requests")
    for variant in report.variants:
        click.echo(
            f"\nvariant {variant.variant}, model {variant.model}: {variant.records} requests, "
            f"{variant.rows} rows"
        )
        table(
            [
                "feature",
                "type",
                "n",
                "missing",
                "mean (baseline)",
                "std (baseline)",
                "drift",
                "violations",
            ],
            [
                (
                    f.name,
                    f.inferred_type,
                    f.n,
                    f"{f.missing_rate:.1%}",
                    _pair(f.mean, f.baseline_mean),
                    _pair(f.std, f.baseline_std),
                    _number(f.drift),
                    ", ".join(f.checks) or "ok",
                )
                for f in variant.features
            ],
        )
        threshold = f"drift threshold {report.drift_threshold:g}, {report.comparison_method}"
        if variant.violations:
            click.echo(
                f"{len(variant.violations)} violations ({threshold}): {variant.violations_uri}"
            )
            for v in variant.violations:
                click.echo(
                    f"  {v['feature_name']}: {v['constraint_check_type']}: {v['description']}"
                )
        else:
            click.echo(f"no violations ({threshold}): {variant.violations_uri}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _pair(value: float | None, baseline: float | None) -> str:
    return f"{_number(value)} ({_number(baseline)})"
