"""`mlcicd aws deploy` and `mlcicd aws destroy` against moto's server.

Real: CloudFormation change sets (create, update, nothing to change), stack events, the
Lambda package uploaded to its bucket, emptying buckets and the image repository, deletion
— all through real boto3 clients over loopback.

What moto does not do, and how the tests stand: moto's CloudFormation completes a change
set at once, reports only the stack's own events (not each resource's), leaves a stack
made by a change set without Outputs (only CreateStack computes them), and skips the
resource types it has no model for (see tests/aws/stack.py). The library tests deploy the
template with those types removed (``for_moto``, as tests/aws/test_stack.py does); the CLI
test deploys the full generated template and moto skips them (with a warning in its own
log), so it proves the command's flow, not that CloudFormation accepts every resource —
cfn-lint does that (tests/aws/test_linters.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcicd.aws.clients import client
from mlcicd.aws.package import build_lambda_package
from mlcicd.aws.stack import (
    StackEvent,
    deploy_stack,
    describe_stack,
    upload_lambda_package,
    upload_template,
)
from mlcicd.aws.template import TEMPLATE_BODY_LIMIT, build_template, to_yaml
from mlcicd.config import Config
from mlcicd.errors import ConfigError
from tests.aws.conftest import AwsClient, scaled_in_moto
from tests.aws.stack import CONNECTION, for_moto
from tests.conftest import IRIS
from tests.helpers import mlcicd

pytestmark = pytest.mark.integration

STACK = "ml-cicd-pipeline"
GITHUB = {"GitHubOwner": "ada", "GitHubRepo": "iris", "ConnectionArn": CONNECTION}


def _parameters(aws: AwsClient, tmp_path: Path) -> dict[str, str]:
    package = build_lambda_package(tmp_path / "lambdas.zip")
    key = upload_lambda_package(package, "mlcicd-lambda-code-test")
    return {
        **GITHUB,
        "LambdaCodeBucket": "mlcicd-lambda-code-test",
        "LambdaCodeKey": key,
        "WebhookSecret": "webhook-secret-of-the-tests",
    }


def test_create_then_nothing_to_change_then_update(
    aws_env: AwsClient, iris_config: Config, tmp_path: Path
) -> None:
    template, _ = for_moto(build_template(iris_config))
    parameters = _parameters(aws_env, tmp_path)
    events: list[StackEvent] = []
    created = deploy_stack(
        STACK, to_yaml(template), template, parameters, on_event=events.append, poll_seconds=0.01
    )
    assert (created.status, created.changed) == ("CREATE_COMPLETE", True)
    assert [e.status for e in events][-1] == "CREATE_COMPLETE"
    assert "REVIEW_IN_PROGRESS" not in [
        e.status for e in events
    ]  # only what followed the change set

    unchanged = deploy_stack(STACK, to_yaml(template), template, parameters, poll_seconds=0.01)
    assert (unchanged.status, unchanged.changed) == ("CREATE_COMPLETE", False)

    # Only the changed parameter is given: the others keep their values.
    updated = deploy_stack(
        STACK, to_yaml(template), template, {"LogRetentionDays": "14"}, poll_seconds=0.01
    )
    assert (updated.status, updated.changed) == ("UPDATE_COMPLETE", True)
    stack = describe_stack(client("cloudformation"), STACK)
    assert stack is not None
    values = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert values["LogRetentionDays"] == "14" and values["GitHubOwner"] == "ada"
    assert values["LambdaCodeKey"] == parameters["LambdaCodeKey"]


def test_an_unknown_parameter_is_refused_before_anything_is_sent(
    aws_env: AwsClient, iris_config: Config
) -> None:
    template = build_template(iris_config)
    with pytest.raises(ConfigError, match="--parameter: the template has no parameter GitHubUser"):
        deploy_stack(STACK, to_yaml(template), template, {"GitHubUser": "ada"})
    assert describe_stack(client("cloudformation"), STACK) is None


def test_the_commands_deploy_and_destroy(aws_env: AwsClient) -> None:
    deployed = mlcicd(
        None, "aws", "deploy", str(IRIS), *[f"--parameter={k}={v}" for k, v in GITHUB.items()]
    )
    assert deployed.exit_code == 0, deployed.output
    code_bucket = "mlcicd-lambda-code-123456789012-us-east-1"
    assert f"Lambda package s3://{code_bucket}/mlcicd/lambdas-" in deployed.output
    assert (
        "CREATE_COMPLETE" in deployed.output
        and "stack ml-cicd-pipeline: CREATE_COMPLETE" in deployed.output
    )
    (code,) = aws_env("s3").list_objects_v2(Bucket=code_bucket)["Contents"]
    functions = aws_env("lambda").get_function(FunctionName="ml-cicd-pipeline-training")
    assert functions["Configuration"]["Handler"] == "mlcicd.aws.lambdas.training.handler"

    # Deploying again changes nothing. (The code is named explicitly: a rebuilt package would
    # differ if the working tree's mlcicd changed in between; same code, same key is tested
    # in test_package.py.)
    again = mlcicd(
        None,
        "aws",
        "deploy",
        str(IRIS),
        "--json",
        f"-pLambdaCodeBucket={code_bucket}",
        f"-pLambdaCodeKey={code['Key']}",
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["changed"] is False

    models, artifacts = _buckets(aws_env)
    aws_env("s3").put_object(
        Bucket=models, Key="iris-classifier/job/output/model.tar.gz", Body=b"a model"
    )
    aws_env("s3").put_object(Bucket=artifacts, Key="ml-cicd-pipeline/SourceOutp/x.zip", Body=b"PK")
    aws_env("ecr").put_image(
        repositoryName="ml-model-repo",
        imageTag="0123456789ab",
        imageManifest=json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": 1,
                    "digest": "sha256:" + "a" * 64,
                },
                "layers": [],
            }
        ),
    )

    refused = mlcicd(None, "aws", "destroy")
    assert refused.exit_code == 1
    assert refused.output.startswith("error: stack ml-cicd-pipeline still holds data: ")
    assert f"bucket {models}" in refused.output and "repository ml-model-repo" in refused.output
    assert "--force" in refused.output
    assert describe_stack(client("cloudformation"), STACK) is not None

    destroyed = mlcicd(None, "aws", "destroy", "--force")
    assert destroyed.exit_code == 0, destroyed.output
    assert f"emptied bucket {models}: 1 object version(s) or image(s) deleted" in destroyed.output
    assert "emptied repository ml-model-repo: 1" in destroyed.output
    assert "stack ml-cicd-pipeline deleted" in destroyed.output
    assert describe_stack(client("cloudformation"), STACK) is None

    gone = mlcicd(None, "aws", "destroy")
    assert gone.exit_code == 3
    assert "stack ml-cicd-pipeline does not exist" in gone.output


def test_a_bad_parameter_is_one_line(aws_env: AwsClient) -> None:
    result = mlcicd(None, "aws", "deploy", str(IRIS), "--parameter", "GitHubOwner")
    assert result.exit_code == 2
    assert result.output == "error: --parameter: expected KEY=VALUE, got 'GitHubOwner'\n"


def _buckets(aws: AwsClient) -> tuple[str, str]:
    resources: dict[str, Any] = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in aws("cloudformation").list_stack_resources(StackName=STACK)[
            "StackResourceSummaries"
        ]
    }
    return resources["ModelsBucket"], resources["ArtifactsBucket"]


def _stack_parameters() -> dict[str, str]:
    stack = describe_stack(client("cloudformation"), STACK)
    assert stack is not None
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_a_webhook_secret_is_generated_once_and_never_shown(aws_env: AwsClient) -> None:
    token = "ghp_" + "t" * 36
    source = ["-pGitHubOwner=ada", "-pGitHubRepo=iris", f"-pGitHubToken={token}"]
    deployed = mlcicd(None, "aws", "deploy", str(IRIS), *source)
    assert deployed.exit_code == 0, deployed.output
    secret = _stack_parameters()["WebhookSecret"]
    assert len(secret) >= 40 and secret != token
    assert "WebhookSecret: generated at random" in deployed.output
    assert secret not in deployed.output

    # An update keeps it (CloudFormation's previous value), and says nothing of it.
    updated = mlcicd(None, "aws", "deploy", str(IRIS), "-pLogRetentionDays=14")
    assert updated.exit_code == 0, updated.output
    assert _stack_parameters()["WebhookSecret"] == secret
    assert "WebhookSecret" not in updated.output

    # One given is used as given.
    given = mlcicd(None, "aws", "deploy", str(IRIS), "-pWebhookSecret=" + "w" * 24)
    assert given.exit_code == 0, given.output
    assert _stack_parameters()["WebhookSecret"] == "w" * 24


def test_a_first_value_is_not_used_for_a_parameter_an_earlier_deploy_set(
    aws_env: AwsClient, iris_config: Config, tmp_path: Path
) -> None:
    template, _ = for_moto(build_template(iris_config))
    parameters = _parameters(aws_env, tmp_path)
    created = deploy_stack(
        STACK,
        to_yaml(template),
        template,
        parameters,
        first_values={"WebhookSecret": "f" * 20},
        poll_seconds=0.01,
    )
    assert created.first_values == ()
    updated = deploy_stack(
        STACK,
        to_yaml(template),
        template,
        {"LogRetentionDays": "14"},
        first_values={"WebhookSecret": "f" * 20},
        poll_seconds=0.01,
    )
    assert (updated.changed, updated.first_values) == (True, ())
    assert _stack_parameters()["WebhookSecret"] == parameters["WebhookSecret"]


def test_a_template_past_the_inline_limit_is_read_from_s3(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    """Autoscaling, the API in front and the VPC endpoints take the template past the 51,200
    bytes CloudFormation takes inline: `mlcicd aws deploy` puts it beside the Lambda code and
    passes its TemplateURL."""
    project = tmp_path / "iris"
    shutil.copytree(IRIS, project, ignore=shutil.ignore_patterns(".mlcicd", "__pycache__"))
    config = project / "mlcicd.yaml"
    data = yaml.safe_load(config.read_text())
    for section, values in scaled_in_moto(aws_env).items():
        data[section] = {**data.get(section, {}), **values}
    config.write_text(yaml.safe_dump(data))

    deployed = mlcicd(
        None, "aws", "deploy", str(project), *[f"--parameter={k}={v}" for k, v in GITHUB.items()]
    )
    assert deployed.exit_code == 0, deployed.output
    assert "stack ml-cicd-pipeline: CREATE_COMPLETE" in deployed.output
    code_bucket = "mlcicd-lambda-code-123456789012-us-east-1"
    listed = aws_env("s3").list_objects_v2(Bucket=code_bucket, Prefix="mlcicd/templates/")
    (uploaded,) = listed["Contents"]
    assert uploaded["Size"] > TEMPLATE_BODY_LIMIT
    body = aws_env("s3").get_object(Bucket=code_bucket, Key=uploaded["Key"])["Body"].read()
    assert "RestApi" in json.loads(body)["Resources"]
    assert describe_stack(client("cloudformation"), STACK) is not None


def test_every_call_on_the_code_bucket_names_this_account_as_its_owner(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    """The default code bucket's name (``mlcicd-lambda-code-<account>-<region>``) is guessable:
    another account could create it first, open it to us, and swap the Lambda code or the
    template before CloudFormation reads them. Every call on it carries ExpectedBucketOwner, so
    S3 answers 403 for such a bucket (moto does not enforce the header: the test reads it off
    each request the real client sends)."""
    sent: list[tuple[str, bytes | None]] = []

    def record(request: Any, event_name: str, **_: Any) -> None:
        owner = request.headers.get("x-amz-expected-bucket-owner")
        sent.append((event_name.rsplit(".", 1)[-1], owner))

    events = client("s3").meta.events
    events.register("before-send.s3", record)
    try:
        package = build_lambda_package(tmp_path / "lambdas.zip")
        upload_lambda_package(package, "mlcicd-code-owned")
        upload_template("{}", "mlcicd-code-owned")
    finally:
        events.unregister("before-send.s3", record)
    account = aws_env("sts").get_caller_identity()["Account"]
    on_the_bucket = [(op, owner) for op, owner in sent if op != "CreateBucket"]
    assert {op for op, _ in on_the_bucket} == {
        "HeadBucket",
        "PutPublicAccessBlock",
        "HeadObject",
        "PutObject",
    }
    assert all(owner == account.encode() for _, owner in on_the_bucket), sent
