"""Creating the stack in moto's server: which resource types moto can create, and how.

moto's CloudFormation (moto 5.2) has no model for some resource types the stack uses; it
would skip them with a warning. ``for_moto`` removes them first, and checks that nothing
left refers to them:

    AWS::CodeBuild::Project         no CloudFormation model in moto
    AWS::CodePipeline::Pipeline     no CloudFormation model in moto
    AWS::CodePipeline::Webhook      no CloudFormation model (nor webhook API) in moto
    AWS::CloudWatch::Alarm          no CloudFormation model in moto (its API has alarms)
    AWS::S3::BucketPolicy           no CloudFormation model in moto
    AWS::SNS::Subscription          no CloudFormation model in moto

Their shape is checked by cfn-lint (CloudFormation's own resource schemas), checkov, and the
unit tests on the plain data.
"""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

from mlcicd.aws.template import to_yaml
from tests.aws.cfn import references
from tests.aws.conftest import AwsClient

NOT_IN_MOTO = frozenset(
    {
        "AWS::CodeBuild::Project",
        "AWS::CodePipeline::Pipeline",
        "AWS::CodePipeline::Webhook",
        "AWS::CloudWatch::Alarm",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
    }
)
STACK = "ml-cicd-pipeline"
CODE_BUCKET = "mlcicd-lambda-code"
CONNECTION = (
    "arn:aws:codeconnections:us-east-1:123456789012:connection/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"
)


def for_moto(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The template without the resource types moto cannot create, and the ids removed."""
    removed = {k for k, r in template["Resources"].items() if r["Type"] in NOT_IN_MOTO}
    kept = {k: r for k, r in template["Resources"].items() if k not in removed}
    for logical_id, resource in kept.items():
        dangling = (references(resource) | set(resource.get("DependsOn", []))) & removed
        assert not dangling, f"{logical_id} refers to {dangling}, which moto cannot create"
    outputs = {k: o for k, o in template["Outputs"].items() if not references(o) & removed}
    return {**template, "Resources": kept, "Outputs": outputs}, removed


def _upload_lambda_code(aws: AwsClient) -> None:
    """What `mlcicd aws package` will upload (moto creates the functions without running them)."""
    s3 = aws("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "mlcicd/aws/lambdas/training.py", "def handler(event, context):\n    return None\n"
        )
    s3.put_object(Bucket=CODE_BUCKET, Key="mlcicd/lambdas.zip", Body=archive.getvalue())


def create_stack(aws: AwsClient, template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """Create the stack through CloudFormation's API; return it once CREATE_COMPLETE."""
    _upload_lambda_code(aws)
    values = {
        "GitHubOwner": "ada",
        "GitHubRepo": "iris",
        "LambdaCodeBucket": CODE_BUCKET,
        "WebhookSecret": "webhook-secret-of-the-tests",
        **parameters,
    }
    cfn = aws("cloudformation")
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=to_yaml(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 120
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    failures = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in cfn.describe_stack_events(StackName=STACK)["StackEvents"]
        if e["ResourceStatus"].endswith("FAILED")
    ]
    assert stack["StackStatus"] == "CREATE_COMPLETE", failures
    return stack


def stack_resources(aws: AwsClient) -> dict[str, dict[str, Any]]:
    summaries = aws("cloudformation").list_stack_resources(StackName=STACK)[
        "StackResourceSummaries"
    ]
    return {r["LogicalResourceId"]: r for r in summaries}


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
