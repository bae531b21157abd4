"""`mlcicd aws …`: the pipeline on AWS, as a CloudFormation stack.

The stack's machinery (the template generator, the Lambda package, boto3's callers) is
imported inside each command: every other command, `mlcicd run` included, registers these
at start-up and would otherwise load it for nothing (~40 ms of each CLI start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlcicd.aws.names import DEFAULT_STACK_NAME
from mlcicd.cli import cli, find_project
from mlcicd.cli.output import echo_json
from mlcicd.errors import ConfigError

if TYPE_CHECKING:
    from mlcicd.aws.stack import StackEvent


@cli.group()
def aws() -> None:
    """The pipeline on AWS: CodePipeline, CodeBuild, ECR, Lambda and SageMaker."""


@aws.command("template")
@click.argument("project_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--stack-name",
    default=DEFAULT_STACK_NAME,
    show_default=True,
    help="Names the stack's resources (log groups, Lambdas, pipeline).",
)
@click.option(
    "--approval",
    is_flag=True,
    help="Require a manual approval before deploying (the RequireApproval parameter's default).",
)
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
    from mlcicd.aws.pipeline_stack import pipeline_template
    from mlcicd.aws.template import to_yaml

    project = find_project(ctx, project_dir)
    template = pipeline_template(project, stack_name=stack_name, approval=approval)
    if as_json:
        click.echo(json.dumps(template, indent=2))
    else:
        click.echo(to_yaml(template), nl=False)


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {value!r}", path="--parameter")
        parameters[key] = setting
    return parameters


def _show_event(event: StackEvent) -> None:
    click.echo(str(event))


@aws.command("package")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("mlcicd-lambdas.zip"),
    show_default=True,
    help="Where to write the zip.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the package's path, size and sha256 as JSON."
)
def aws_package(output: Path, as_json: bool) -> None:
    """Build the orchestrator Lambdas' deployment package (mlcicd and PyYAML; Lambda has boto3).

    `mlcicd aws deploy` builds and uploads it by itself; this is for uploading it your way
    (then pass --parameter LambdaCodeBucket=… --parameter LambdaCodeKey=…).
    """
    from mlcicd.aws.package import build_lambda_package

    package = build_lambda_package(output)
    if as_json:
        echo_json(
            {
                "path": str(package.path),
                "sha256": package.sha256,
                "size": package.size,
                "files": package.files,
                "key": package.key,
            }
        )
    else:
        click.echo(
            f"{package.path}: {package.files} files, {package.size / 1024:.0f} KiB, sha256 "
            f"{package.sha256}"
        )


@aws.command("deploy")
@click.argument("project_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--stack-name",
    default=DEFAULT_STACK_NAME,
    show_default=True,
    help="The stack to create or update.",
)
@click.option(
    "--parameter",
    "-p",
    "parameter_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template parameter (repeatable), e.g. -p GitHubOwner=ada -p GitHubRepo=iris. "
    "On an update, parameters not given keep their values.",
)
@click.option(
    "--approval",
    is_flag=True,
    help="Require a manual approval before deploying (RequireApproval's default).",
)
@click.option(
    "--code-bucket",
    default=None,
    help="Where the Lambda package goes (default: mlcicd-lambda-code-<account>-<region>, created "
    "if missing).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the stack's status and outputs as JSON at the end.",
)
@click.pass_context
def aws_deploy(
    ctx: click.Context,
    project_dir: Path | None,
    stack_name: str,
    parameter_values: tuple[str, ...],
    approval: bool,
    code_bucket: str | None,
    as_json: bool,
) -> None:
    """Create or update the stack on AWS through a change set, and wait, showing its events.

    The template is the one `mlcicd aws template` prints. The Lambda package is built and
    uploaded under its sha256, so the functions change exactly when their code does. A first
    deploy needs GitHubOwner, GitHubRepo and ConnectionArn (or GitHubToken). The webhook's
    secret (WebhookSecret) is generated at random on the first deploy unless given; it is
    never shown: CodePipeline registers it with GitHub itself.
    """
    from mlcicd.aws.pipeline_stack import deploy_pipeline, pipeline_template, publish_lambda_code
    from mlcicd.aws.template.parameters import WEBHOOK_SECRET

    project = find_project(ctx, project_dir)
    template = pipeline_template(project, stack_name=stack_name, approval=approval)
    parameters = _parameters(parameter_values)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    code = publish_lambda_code(parameters, code_bucket)
    if code is not None:
        say(
            f"Lambda package s3://{code.bucket}/{code.key} ({code.files} files, sha256 "
            f"{code.sha256[:12]})"
        )
    say(f"deploying stack {stack_name} …")
    deployment = deploy_pipeline(
        project, template, parameters, code, stack_name=stack_name, on_event=lambda e: say(str(e))
    )
    result = deployment.stack
    if deployment.webhook_secret_generated:
        say(
            f"{WEBHOOK_SECRET}: generated at random and kept by CloudFormation (NoEcho); "
            "CodePipeline registers it with GitHub's webhook. To change it: "
            "--parameter WebhookSecret=…"
        )
    if as_json:
        echo_json(
            {
                "stack_id": result.stack_id,
                "status": result.status,
                "changed": result.changed,
                "outputs": result.outputs,
            }
        )
        return
    click.echo(f"stack {stack_name}: {result.status}" + ("" if result.changed else " (no changes)"))
    for key, value in sorted(result.outputs.items()):
        click.echo(f"  {key:<24} {value}")


@aws.command("destroy")
@click.option(
    "--stack-name", default=DEFAULT_STACK_NAME, show_default=True, help="The stack to delete."
)
@click.option(
    "--force",
    is_flag=True,
    help="Empty the stack's buckets (every object version) and image repository first. "
    "Without it, a stack holding data is not deleted.",
)
def aws_destroy(stack_name: str, force: bool) -> None:
    """Delete the stack and everything it created, and wait, showing its events."""
    from mlcicd.aws.stack import destroy_stack

    destroy_stack(stack_name, force=force, on_event=_show_event, on_message=click.echo)
    click.echo(f"stack {stack_name} deleted")
