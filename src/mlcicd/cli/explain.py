"""`mlcicd explain`: what drives a model version, as mean |SHAP| per feature
(:mod:`mlcicd.explain.report`)."""

from __future__ import annotations

from pathlib import Path

import click

from mlcicd.cli import cli, find_project
from mlcicd.cli.models import model_version
from mlcicd.cli.output import echo_json, table


@cli.command()
@click.argument("target")
@click.option(
    "--rows",
    "rows_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Explain these rows (a CSV with the training channel's columns) instead.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def explain(ctx: click.Context, target: str, rows_file: Path | None, as_json: bool) -> None:
    """Global importance of model TARGET (GROUP/VERSION or VERSION): mean |SHAP| per feature,
    and per class for a classifier."""
    from mlcicd.explain.report import explain_version

    project = find_project(ctx)
    package = model_version(project, target)
    report = explain_version(
        project, package, rows_file=rows_file, log=lambda line: click.echo(line, err=True)
    )
    if as_json:
        echo_json(report)
        return
    accuracy = report["local_accuracy"]
    click.echo(
        f"model {package.arn}: {report['explainer']} explainer ({report['model_type']}) on the "
        f"{report['output']}, {report['rows']} rows from {report['dataset']['rows_from']}; "
        f"baseline {report['dataset']['baseline']}"
    )
    click.echo(
        f"local accuracy: max error {accuracy['max_error']:.2g} "
        f"(tolerance {accuracy['tolerance']:g})"
    )
    by_output = report["importance_by_output"]
    ranked = sorted(report["features"], key=lambda f: -report["importance"][f])
    outputs = list(by_output)
    table(
        ["feature", "mean |SHAP|", *outputs],
        [
            (
                f,
                f"{report['importance'][f]:.4g}",
                *(f"{by_output[o][f]:.4g}" for o in outputs),
            )
            for f in ranked
        ],
    )
