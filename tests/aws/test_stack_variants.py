"""The stack's conditions in moto's server: token source, approval, an existing training log
group; and the stack of a project deploying canary with rollback alarms and data capture.
(LambdaReservedConcurrency=0 is checked on the plain data only: moto reads a Number
parameter as an int, so its Fn::Equals never finds it equal to "0" as CloudFormation does.)"""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from mlcicd.aws import names
from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws.conftest import AwsClient
from tests.aws.stack import CONNECTION, create_stack, for_moto, outputs, stack_resources

pytestmark = pytest.mark.integration


def test_token_source_with_approval_and_an_existing_training_log_group(
    aws: AwsClient, iris_config: Config
) -> None:
    aws("logs").create_log_group(
        logGroupName="/aws/sagemaker/TrainingJobs"
    )  # an account that trained before
    template, _ = for_moto(build_template(iris_config, approval=True))
    create_stack(aws, template, GitHubToken="ghp_0123456789", CreateTrainingJobsLogGroup="false")
    created = stack_resources(aws)
    assert "TrainingJobsLogGroup" not in created

    sids = [
        statement["Sid"]
        for statement in _statements(aws, created["PipelineRole"]["PhysicalResourceId"])
    ]
    assert "UseTheGitHubConnection" not in sids
    assert "InvokeTheOrchestrators" in sids


def test_a_canary_deploy_with_alarms_and_capture(aws: AwsClient, canary_config: Config) -> None:
    template, _ = for_moto(build_template(canary_config))
    stack = create_stack(aws, template, ConnectionArn=CONNECTION)
    created = stack_resources(aws)
    models_bucket = outputs(stack)["ModelsBucketName"]
    env = aws("lambda").get_function_configuration(FunctionName="ml-cicd-pipeline-deploy")[
        "Environment"
    ]["Variables"]
    assert json.loads(env[names.ENV_TRAFFIC_ROUTING])["type"] == "CANARY"
    assert json.loads(env[names.ENV_ROLLBACK_THRESHOLDS])["max_5xx_rate"] == 0.01
    # CloudFormation filled the bucket in.
    capture = json.loads(env[names.ENV_DATA_CAPTURE])
    assert capture["destination"] == f"s3://{models_bucket}/ml-cicd-pipeline-artifacts/data-capture"

    statements = {
        s["Sid"]: s for s in _statements(aws, created["DeployFunctionRole"]["PhysicalResourceId"])
    }
    put = statements["PutTheRollbackAlarms"]
    assert sorted(put["Action"]) == ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"]
    assert sorted(put["Resource"]) == [
        f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:iris-classifier-endpoint-rollback-{name}"
        for name in ("5xx-rate", "model-latency-p99")
    ]


def _statements(aws: AwsClient, role: str) -> list[dict[str, Any]]:
    """The statements of ``role``'s one inline policy, as moto serves them."""
    iam = aws("iam")
    [policy] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if isinstance(
        document, str
    ):  # moto serves CloudFormation-made inline policies as a Python repr
        document = json.loads(document) if document.startswith('{"') else ast.literal_eval(document)
    # moto leaves AWS::NoValue in a list as null where CloudFormation drops it.
    return [statement for statement in document["Statement"] if statement is not None]
