"""The stack's conditions in moto's server: token source, approval, an existing training log
group. (LambdaReservedConcurrency=0 is checked on the plain data only: moto reads a Number
parameter as an int, so its Fn::Equals never finds it equal to "0" as CloudFormation does.)"""

from __future__ import annotations

import ast
import json

import pytest

from mlcicd.aws.template import build_template
from mlcicd.config import Config
from tests.aws.conftest import AwsClient
from tests.aws.stack import create_stack, for_moto, stack_resources

pytestmark = pytest.mark.integration


def test_token_source_with_approval_and_an_existing_training_log_group(aws: AwsClient, iris_config: Config) -> None:
    aws("logs").create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")  # an account that trained before
    template, _ = for_moto(build_template(iris_config, approval=True))
    create_stack(aws, template, GitHubToken="ghp_0123456789", CreateTrainingJobsLogGroup="false")
    created = stack_resources(aws)
    assert "TrainingJobsLogGroup" not in created

    iam = aws("iam")
    role = created["PipelineRole"]["PhysicalResourceId"]
    [policy] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):  # moto serves CloudFormation-made inline policies as a Python repr
        document = json.loads(document) if document.startswith('{"') else ast.literal_eval(document)
    # moto leaves AWS::NoValue in a list as null where CloudFormation drops it.
    sids = [statement["Sid"] for statement in document["Statement"] if statement is not None]
    assert "UseTheGitHubConnection" not in sids
    assert "InvokeTheOrchestrators" in sids
