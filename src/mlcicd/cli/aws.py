"""`mlcicd aws …`: the pipeline on AWS, as a CloudFormation stack."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlcicd.aws.template import DEFAULT_STACK_NAME, build_template, to_yaml
from mlcicd.cli import cli, find_project
from mlcicd.errors import ProjectError
from mlcicd.project import Project


@cli.group()
def aws() -> None:
    """The pipeline on AWS: CodePipeline, CodeBuild, ECR, Lambda and SageMaker."""


def _buildspec(project: Project) -> str:
    """buildspec.yml's path from the repository root, where CodeBuild starts."""
    try:
        rel = project.rel
    except ProjectError:  # not (yet) a git repository: the project will be its root
        rel = ""
    return f"{rel}/buildspec.yml" if rel else "buildspec.yml"


@aws.command("template")
@click.argument("project_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True,
              help="Names the stack's resources (log groups, Lambdas, pipeline).")
@click.option("--approval", is_flag=True,
              help="Require a manual approval before deploying (the RequireApproval parameter's default).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def aws_template(
    ctx: click.Context, project_dir: Path | None, stack_name: str, approval: bool, as_json: bool
) -> None:
    """Print the CloudFormation template generated from mlcicd.yaml.

    It holds the whole reference architecture: S3 buckets, the ECR repository, IAM roles,
    the CodeBuild project, the training and deploy Lambdas, the pipeline, log groups,
    alarms and the SNS topic. Nothing is created: see docs/aws.md for the parameters.
    """
    project = find_project(ctx, project_dir)
    template = build_template(
        project.config, stack_name=stack_name, approval=approval, buildspec=_buildspec(project)
    )
    if as_json:
        click.echo(json.dumps(template, indent=2))
    else:
        click.echo(to_yaml(template), nl=False)
