"""The generated template, read as plain data (no AWS, no linters)."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from typing import Any

import pytest
import yaml

from mlcicd.aws import names
from mlcicd.aws.template import TEMPLATE_BODY_LIMIT, build_template, iam, template_body, to_yaml
from mlcicd.config import Config, parse_config
from mlcicd.errors import ConfigError
from tests.aws.cfn import as_list, references, resolve, resources_of_type, role_statements
from tests.aws.conftest import CANARY_DEPLOY, iris_with, pipeline_with

# The actions AWS authorises only on Resource "*" (no resource type in IAM), and so the only
# ones a role may hold on "*". Adding one here is a decision: write down why in iam.py.
ACTIONS_ALLOWED_ON_ANY_RESOURCE = {
    "ecr:GetAuthorizationToken",
    "codepipeline:PutJobSuccessResult",
    "codepipeline:PutJobFailureResult",
    "cloudwatch:PutMetricData",
    "application-autoscaling:DescribeScalableTargets",  # the deploy Lambda's (deregistering)
    "application-autoscaling:DescribeScalingPolicies",
    "ec2:DescribeNetworkInterfaces",  # with network.subnets
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "sagemaker:ListModelPackages",  # the data check's, only with data_check: warn|fail
}

REFERENCE_LOG_GROUPS = {
    "/aws/codebuild/ml-cicd-pipeline-build",
    "/aws/lambda/ml-cicd-pipeline-training",
    "/aws/lambda/ml-cicd-pipeline-deploy",
    "/aws/sagemaker/TrainingJobs",
    "/aws/sagemaker/Endpoints/iris-classifier-endpoint",
}


@pytest.fixture(scope="module")
def iris_config() -> Config:
    """examples/iris without its testing stage: the reference's five stages (the Staging
    stage's resources are tests/aws/test_template_staging.py's)."""
    return iris_with(staging=None)


@pytest.fixture(scope="module")
def template(iris_config: Config) -> dict[str, Any]:
    return build_template(iris_config)


def _stage_names(template: dict[str, Any], **overrides: str) -> list[str]:
    pipeline = resolve(template, overrides)["Resources"]["Pipeline"]
    return [stage["Name"] for stage in pipeline["Properties"]["Stages"]]


def test_holds_every_component_of_the_reference(template: dict[str, Any]) -> None:
    types = {r["Type"] for r in template["Resources"].values()}
    assert types >= {
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::ECR::Repository",
        "AWS::IAM::Role",
        "AWS::CodeBuild::Project",
        "AWS::Lambda::Function",
        "AWS::CodePipeline::Pipeline",
        "AWS::Logs::LogGroup",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::Topic",
        "AWS::KMS::Key",
    }
    assert set(template["Outputs"]) >= {
        "ArtifactsBucketName",
        "ModelsBucketName",
        "RepositoryUri",
        "PipelineName",
        "NotificationTopicArn",
    }


def test_every_parameter_is_described(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        assert parameter.get("Description"), name


def test_log_groups_have_the_reference_names_and_a_retention(template: dict[str, Any]) -> None:
    groups = resources_of_type(template, "AWS::Logs::LogGroup").values()
    assert {g["Properties"]["LogGroupName"] for g in groups} == REFERENCE_LOG_GROUPS
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert "KmsKeyId" in group["Properties"]
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_log_group_names_follow_the_stack_and_endpoint(iris_config: Config) -> None:
    config = dataclasses.replace(
        iris_config, deploy=dataclasses.replace(iris_config.deploy, endpoint_name="fraud-endpoint")
    )
    template = build_template(config, stack_name="fraud-cicd")
    groups = resources_of_type(template, "AWS::Logs::LogGroup").values()
    assert {g["Properties"]["LogGroupName"] for g in groups} == {
        "/aws/codebuild/fraud-cicd-build",
        "/aws/lambda/fraud-cicd-training",
        "/aws/lambda/fraud-cicd-deploy",
        "/aws/sagemaker/TrainingJobs",
        "/aws/sagemaker/Endpoints/fraud-endpoint",
    }


def test_the_lambdas_write_to_their_own_log_groups(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Lambda::Function")
    for function in functions.values():
        name = function["Properties"]["FunctionName"]
        [group] = function["DependsOn"]
        assert template["Resources"][group]["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"


def test_no_role_holds_a_wildcard_action_or_resource_beyond_what_aws_requires(
    template: dict[str, Any], scaled_config: Config
) -> None:
    on_any_resource: set[str] = set()
    checking = build_template(pipeline_with())  # examples/pipeline: its data check lists models
    scaled = build_template(scaled_config)  # issue 14's keys: autoscaling, the VPC
    for generated, overrides in (
        (template, {}),
        (
            template,
            {"ConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/x"},
        ),
        (checking, {}),
        (scaled, {}),
    ):
        for role, statement in role_statements(resolve(generated, overrides)):
            actions = as_list(statement["Action"])
            for action in actions:
                verb = action.partition(":")[2]
                assert "*" not in verb, f"{role}: {action}"
            resources = as_list(statement["Resource"])
            if "*" in resources:
                assert resources == ["*"], role
                on_any_resource.update(actions)
            for resource in resources:
                if isinstance(resource, str):
                    assert resource == "*", (
                        f"{role}: a literal ARN {resource!r} (use the stack's names)"
                    )
    assert on_any_resource == ACTIONS_ALLOWED_ON_ANY_RESOURCE
    assert iam.ACTIONS_ON_ANY_RESOURCE == ACTIONS_ALLOWED_ON_ANY_RESOURCE


def test_one_role_per_component(template: dict[str, Any]) -> None:
    services = {
        logical_id: role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"][
            "Service"
        ]
        for logical_id, role in resources_of_type(template, "AWS::IAM::Role").items()
    }
    assert services == {
        "SageMakerExecutionRole": "sagemaker.amazonaws.com",
        "EndpointExecutionRole": "sagemaker.amazonaws.com",
        "CodeBuildRole": "codebuild.amazonaws.com",
        "TrainingFunctionRole": "lambda.amazonaws.com",
        "DeployFunctionRole": "lambda.amazonaws.com",
        "PipelineRole": "codepipeline.amazonaws.com",
    }


def test_each_lambda_passes_only_its_execution_role_and_only_to_sagemaker(
    template: dict[str, Any],
) -> None:
    statements = role_statements(resolve(template))
    passing = {role: s for role, s in statements if "iam:PassRole" in as_list(s["Action"])}
    passed = {role: s["Resource"] for role, s in passing.items()}
    assert passed == {
        "TrainingFunctionRole": [{"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}],
        "DeployFunctionRole": [{"Fn::GetAtt": ["EndpointExecutionRole", "Arn"]}],
    }
    for statement in passing.values():
        assert as_list(statement["Action"]) == ["iam:PassRole"]
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
        }


def _s3_grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Each S3 action the role holds, and the resources (Fn::Sub text) it holds it on."""
    grants: dict[str, set[str]] = {}
    for holder, statement in role_statements(resolve(template)):
        if holder == role:
            for action in as_list(statement["Action"]):
                if action.startswith("s3:"):
                    grants.setdefault(action, set()).update(
                        r["Fn::Sub"] if "Fn::Sub" in r else json.dumps(r)
                        for r in as_list(statement["Resource"])
                    )
    return grants


def test_endpoints_read_models_and_never_write_them(
    template: dict[str, Any], canary_config: Config
) -> None:
    assert _s3_grants(template, "EndpointExecutionRole") == {
        "s3:GetObject": {"${ModelsBucket.Arn}/*"}
    }
    # With data capture, it writes the capture, and nothing else.
    capturing = _s3_grants(build_template(canary_config), "EndpointExecutionRole")
    assert capturing == {
        "s3:GetObject": {"${ModelsBucket.Arn}/*"},
        "s3:PutObject": {"${ModelsBucket.Arn}/ml-cicd-pipeline-artifacts/data-capture/*"},
    }
    env = template["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"]
    assert env[names.ENV_SAGEMAKER_ROLE_ARN] == {"Fn::GetAtt": ["EndpointExecutionRole", "Arn"]}
    assert template["Outputs"]["EndpointRoleArn"]["Value"] == {
        "Fn::GetAtt": ["EndpointExecutionRole", "Arn"]
    }


def test_training_jobs_write_only_under_the_pipelines_prefix(template: dict[str, Any]) -> None:
    # The pipeline's own jobs, and those of `mlcicd run --backend aws` (under any store prefix):
    # its training jobs under the models "bucket", its processing jobs under the artifacts one.
    under = {
        "${ModelsBucket.Arn}/iris-classifier/*",
        "${ModelsBucket.Arn}/*ml-cicd-pipeline-models/iris-classifier/*",
        "${ModelsBucket.Arn}/*ml-cicd-pipeline-artifacts/iris-classifier/processing/*",
    }
    grants = _s3_grants(template, "SageMakerExecutionRole")
    assert (
        grants.pop("s3:ListBucket")
        == grants.pop("s3:GetBucketLocation")
        == {json.dumps({"Fn::GetAtt": ["ModelsBucket", "Arn"]})}
    )
    assert grants == {
        "s3:GetObject": under,
        "s3:PutObject": under,
        "s3:AbortMultipartUpload": under,
    }
    [listing] = [
        s
        for r, s in role_statements(template)
        if r == "SageMakerExecutionRole" and "s3:ListBucket" in s["Action"]
    ]
    assert listing["Condition"] == {
        "StringLike": {
            "s3:prefix": [
                "iris-classifier/*",
                "*ml-cicd-pipeline-models/iris-classifier/*",
                "*ml-cicd-pipeline-artifacts/iris-classifier/processing/*",
            ]
        }
    }
    # Their volumes are encrypted through a grant that only an AWS resource may use.
    [grant] = [
        s
        for r, s in role_statements(template)
        if r == "SageMakerExecutionRole" and "kms:CreateGrant" in s["Action"]
    ]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    # The training Lambda, too, writes only there.
    assert _s3_grants(template, "TrainingFunctionRole")["s3:PutObject"] == {
        "${ArtifactsBucket.Arn}/*",
        "${ModelsBucket.Arn}/iris-classifier/*",
    }


def test_sagemaker_permissions_are_scoped_to_the_pipelines_names(template: dict[str, Any]) -> None:
    arns = [
        resource["Fn::Sub"]
        for _, statement in role_statements(resolve(template))
        if any(a.startswith("sagemaker:") for a in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"])
    ]
    prefix = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
    assert f"{prefix}training-job/iris-classifier-*" in arns
    assert f"{prefix}endpoint/iris-classifier-endpoint" in arns
    assert f"{prefix}endpoint-config/iris-classifier-endpoint-*" in arns
    assert f"{prefix}model/iris-classifier-*" in arns
    assert all(arn.startswith(prefix) and "iris-classifier" in arn for arn in arns)


def test_sagemaker_arn_patterns_are_lower_case(iris_config: Config) -> None:
    config = dataclasses.replace(iris_config, pipeline="Iris-Classifier")
    text = json.dumps(build_template(config))
    assert "training-job/iris-classifier-*" in text
    assert "Iris-Classifier-*" not in text


def test_github_token_is_no_echo_and_only_used_without_a_connection(
    template: dict[str, Any],
) -> None:
    token = template["Parameters"]["GitHubToken"]
    assert token["NoEcho"] is True
    assert token["Default"] == ""
    token_source = resolve(template)["Resources"]["Pipeline"]["Properties"]["Stages"][0]["Actions"][
        0
    ]
    assert token_source["ActionTypeId"]["Provider"] == "GitHub"
    assert token_source["Configuration"]["OAuthToken"] == {"Ref": "GitHubToken"}
    connection = resolve(
        template, {"ConnectionArn": "arn:aws:codestar-connections:us-east-1:1:connection/x"}
    )
    source = connection["Resources"]["Pipeline"]["Properties"]["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert "PipelineWebhook" not in connection["Resources"]
    assert "PipelineWebhook" in resolve(template, {"GitHubToken": "ghp_x"})["Resources"]


def test_the_webhook_signs_with_its_own_secret_not_the_token(template: dict[str, Any]) -> None:
    secret = template["Parameters"]["WebhookSecret"]
    assert secret["NoEcho"] is True and "Default" not in secret and secret["MinLength"] == 20
    pattern = re.compile(secret["AllowedPattern"])
    assert pattern.match(secrets.token_urlsafe(32)) and not pattern.match("a secret with spaces")
    webhook = resolve(template, {"GitHubToken": "ghp_x"})["Resources"]["PipelineWebhook"][
        "Properties"
    ]
    assert webhook["AuthenticationConfiguration"] == {"SecretToken": {"Ref": "WebhookSecret"}}
    assert webhook["Authentication"] == "GITHUB_HMAC" and webhook["RegisterWithThirdParty"] is True
    assert "GitHubToken" not in references(webhook)
    rule = template["Rules"]["WebhookSecretIsItsOwn"]
    assert rule["RuleCondition"] == template["Conditions"]["UseGitHubToken"]
    asserted = [a["Assert"] for a in rule["Assertions"]]
    assert asserted == [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookSecret"}, {"Ref": "GitHubToken"}]}]}
    ]


def test_approval_stage_only_with_approval(iris_config: Config, template: dict[str, Any]) -> None:
    assert _stage_names(template) == ["Source", "Build", "Train", "Deploy"]
    assert _stage_names(template, RequireApproval="true") == [
        "Source",
        "Build",
        "Train",
        "Approval",
        "Deploy",
    ]
    with_approval = build_template(iris_config, approval=True)
    assert with_approval["Parameters"]["RequireApproval"]["Default"] == "true"
    assert _stage_names(with_approval) == ["Source", "Build", "Train", "Approval", "Deploy"]
    approve = resolve(with_approval)["Resources"]["Pipeline"]["Properties"]["Stages"][3]["Actions"][
        0
    ]
    assert approve["ActionTypeId"] == {
        "Category": "Approval",
        "Owner": "AWS",
        "Provider": "Manual",
        "Version": "1",
    }
    assert approve["Configuration"]["NotificationArn"] == {"Ref": "NotificationTopic"}


def test_buckets_are_named_from_the_config_and_unique_per_account_and_region(
    template: dict[str, Any],
) -> None:
    props = template["Resources"]["ArtifactsBucket"]["Properties"]
    assert props["BucketName"] == {
        "Fn::Sub": "ml-cicd-pipeline-artifacts-${AWS::AccountId}-${AWS::Region}"
    }
    models = template["Resources"]["ModelsBucket"]["Properties"]
    assert models["BucketName"] == {
        "Fn::Sub": "ml-cicd-pipeline-models-${AWS::AccountId}-${AWS::Region}"
    }


@pytest.mark.parametrize("bucket", ["ArtifactsBucket", "ModelsBucket", "AccessLogBucket"])
def test_buckets_are_private_versioned_encrypted_and_tls_only(
    template: dict[str, Any], bucket: str
) -> None:
    props = template["Resources"][bucket]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"aws:kms", "AES256"}
    assert props["LifecycleConfiguration"]["Rules"]
    [policy] = [
        r
        for r in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    assert denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_old_artifacts_move_to_cheaper_storage(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ArtifactsBucket"]["Properties"]["LifecycleConfiguration"][
        "Rules"
    ]
    classes = [t["StorageClass"] for r in rules for t in r.get("Transitions", [])]
    assert classes == ["STANDARD_IA", "GLACIER"]


def test_ecr_repository(template: dict[str, Any]) -> None:
    props = template["Resources"]["ModelRepository"]["Properties"]
    assert props["RepositoryName"] == "ml-model-repo"
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
    lifecycle = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])
    assert [r["selection"]["tagStatus"] for r in lifecycle["rules"]] == ["untagged", "any"]


def test_codebuild_project_builds_docker_images_from_the_buildspec(
    template: dict[str, Any],
) -> None:
    props = template["Resources"]["BuildProject"]["Properties"]
    assert props["Source"] == {"Type": "CODEPIPELINE", "BuildSpec": "buildspec.yml"}
    assert props["Environment"]["PrivilegedMode"] is True
    variables = {v["Name"]: v["Value"] for v in props["Environment"]["EnvironmentVariables"]}
    assert variables == {
        "IMAGE_REPO_NAME": {"Ref": "ModelRepository"},
        "AWS_ACCOUNT_ID": {"Ref": "AWS::AccountId"},
    }
    assert props["LogsConfig"]["CloudWatchLogs"]["GroupName"] == {"Ref": "BuildLogGroup"}


def test_lambdas(template: dict[str, Any], iris_config: Config) -> None:
    functions = resources_of_type(template, "AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {"mlcicd.aws.lambdas.training.handler", "mlcicd.aws.lambdas.deploy.handler"}
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.11"
        assert props["Code"] == {
            "S3Bucket": {"Ref": "LambdaCodeBucket"},
            "S3Key": {"Ref": "LambdaCodeKey"},
        }
        assert props["DeadLetterConfig"] == {
            "TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
        }
        assert "KmsKeyArn" in props and "ReservedConcurrentExecutions" in props
        env = props["Environment"]["Variables"]
        assert env[names.ENV_PIPELINE] == "iris-classifier"
        assert env[names.ENV_ENDPOINT_NAME] == "iris-classifier-endpoint"
        assert env[names.ENV_MODELS_BUCKET] == {"Ref": "ModelsBucket"}
    training = functions["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    assert training[names.ENV_SAGEMAKER_ROLE_ARN] == {
        "Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]
    }
    assert training[names.ENV_TRAINING_KMS_KEY] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    assert training[names.ENV_TRAINING_NETWORK_ISOLATION] == "true"
    assert json.loads(training[names.ENV_GATE_THRESHOLDS]) == [
        {"metric": "accuracy", "op": ">=", "value": 0.85}
    ]
    assert json.loads(training[names.ENV_HYPERPARAMETERS]) == {"C": 1.0, "max_iter": 200}
    assert json.loads(training[names.ENV_METRIC_DEFINITIONS])[0] == {
        "Name": "accuracy",
        "Regex": "accuracy=([0-9.]+)",
    }
    assert training[names.ENV_TRAINING_INSTANCE_TYPE] == iris_config.train.instance_type
    deploy = functions["DeployFunction"]["Properties"]["Environment"]["Variables"]
    assert deploy[names.ENV_ENDPOINT_INSTANCE_TYPE] == iris_config.deploy.instance_type


def test_reserved_concurrency_zero_reserves_none(template: dict[str, Any]) -> None:
    for overrides, expected in (
        ({}, {"Ref": "LambdaReservedConcurrency"}),
        ({"LambdaReservedConcurrency": "0"}, None),
    ):
        function = resolve(template, overrides)["Resources"]["TrainingFunction"]["Properties"]
        assert function.get("ReservedConcurrentExecutions") == expected


def test_lambda_environment_too_large_is_a_config_error(iris_config: Config) -> None:
    train = dataclasses.replace(
        iris_config.train, hyperparameters={f"p{i}": "x" * 100 for i in range(50)}
    )
    with pytest.raises(ConfigError, match="4096"):
        build_template(dataclasses.replace(iris_config, train=train))


def test_pipeline_stages_and_artifacts(template: dict[str, Any]) -> None:
    pipeline = resolve(template)["Resources"]["Pipeline"]["Properties"]
    assert pipeline["Name"] == "ml-cicd-pipeline"
    assert pipeline["ArtifactStore"]["Location"] == {"Ref": "ArtifactsBucket"}
    assert pipeline["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"
    train, deploy = pipeline["Stages"][2]["Actions"][0], pipeline["Stages"][3]["Actions"][0]
    assert train["Configuration"] == {"FunctionName": {"Ref": "TrainingFunction"}}
    assert [a["Name"] for a in train["InputArtifacts"]] == ["BuildOutput", "SourceOutput"]
    assert deploy["Configuration"] == {"FunctionName": {"Ref": "DeployFunction"}}
    assert deploy["InputArtifacts"] == train["OutputArtifacts"]


def test_endpoint_alarms_notify_the_topic(template: dict[str, Any]) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    errors = alarms["EndpointErrorsAlarm"]["Properties"]
    latency = alarms["EndpointLatencyAlarm"]["Properties"]
    assert errors["MetricName"] == "Invocation5XXErrors"
    assert errors["Threshold"] == {"Ref": "Endpoint5XXErrorsThreshold"}
    assert latency["MetricName"] == "ModelLatency"
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == {"Ref": "ModelLatencyP99Microseconds"}
    for alarm in (errors, latency):
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert {"Name": "EndpointName", "Value": "iris-classifier-endpoint"} in alarm["Dimensions"]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "NotificationTopic"}]


def test_topic_and_queue_are_encrypted(template: dict[str, Any]) -> None:
    assert template["Resources"]["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Ref": "EncryptionKey"
    }
    assert template["Resources"]["DeadLetterQueue"]["Properties"]["KmsMasterKeyId"] == {
        "Ref": "EncryptionKey"
    }


def test_every_reference_names_a_parameter_resource_or_pseudo_parameter(
    template: dict[str, Any],
) -> None:
    known = set(template["Parameters"]) | set(template["Resources"])
    for logical_id, resource in template["Resources"].items():
        unknown = {r for r in references(resource) if not r.startswith("AWS::")} - known
        assert not unknown, f"{logical_id} refers to {unknown}"


def test_yaml_round_trips_without_anchors(template: dict[str, Any]) -> None:
    text = to_yaml(template)
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == template


def test_fits_in_a_create_stack_template_body(template: dict[str, Any]) -> None:
    # CloudFormation takes at most 51,200 bytes inline; beyond that it has to go through S3.
    assert len(to_yaml(template).encode()) < TEMPLATE_BODY_LIMIT
    # What `mlcicd aws deploy` sends, with every stage and option: still inline, with room.
    everything = build_template(
        iris_with(deploy=CANARY_DEPLOY, processing=[{**PREPARE, "outputs": ["train"]}]),
        approval=True,
    )
    assert everything["Resources"]["StagingTestProject"]
    body = template_body(everything)
    assert json.loads(body) == everything
    assert len(body.encode()) < TEMPLATE_BODY_LIMIT * 0.95


@pytest.mark.parametrize("stack_name", ["1stack", "ml_cicd", "x" * 51, ""])
def test_bad_stack_name(iris_config: Config, stack_name: str) -> None:
    with pytest.raises(ConfigError, match="stack name"):
        build_template(iris_config, stack_name=stack_name)


@pytest.mark.parametrize("bucket", ["Upper-Case", "a" * 36, "double--hyphen", "-leading"])
def test_bad_bucket_prefix(bucket: str) -> None:
    config = parse_config(f"pipeline: p\nstore:\n  artifacts_bucket: {bucket!r}\n")
    with pytest.raises(ConfigError, match=r"store\.artifacts_bucket"):
        build_template(config)


def test_the_key_policy_lets_services_use_the_key_only_for_this_accounts_resources(
    template: dict[str, Any],
) -> None:
    statements = template["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]
    to_services = {s["Sid"]: s for s in statements if "Service" in s["Principal"]}
    assert set(to_services) == {
        "CloudWatchLogsEncryptsTheStacksLogGroups",
        "CloudWatchAlarmsPublishToTheTopic",
    }
    in_this_account = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:"
    logs = to_services["CloudWatchLogsEncryptsTheStacksLogGroups"]["Condition"]
    groups = logs["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert {g["Fn::Sub"] for g in groups} == {
        in_this_account.replace("{service}", "logs") + f"log-group:{name}"
        for name in REFERENCE_LOG_GROUPS
    }
    alarms = to_services["CloudWatchAlarmsPublishToTheTopic"]["Condition"]
    assert alarms["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    notifying = {
        a["Properties"]["AlarmName"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if {"Ref": "NotificationTopic"} in a["Properties"]["AlarmActions"]
    }
    assert {a["Fn::Sub"] for a in alarms["ArnLike"]["aws:SourceArn"]} == {
        in_this_account.replace("{service}", "cloudwatch") + f"alarm:{name}" for name in notifying
    }
    assert len(notifying) == 5


# What only `mlcicd run` runs: each section, as a project would write it, and the key the
# stack's refusal names. (staging:, approve, monitor and deploy.* are the stack's own.)
PREPARE = {"name": "prepare", "entry_point": "prepare.py", "inputs": {"raw": "data"}}
NOT_IN_THE_STACK = [
    pytest.param({"gate": {"challenger": {"data": "data/iris.csv"}}}, "gate.challenger", id="gate"),
    pytest.param({"transform": {"input": "data", "output": "scores"}}, "transform", id="transform"),
]


def test_explain_reaches_the_training_function_with_the_channel_and_inference_script() -> None:
    explain = {"rows": 50, "baseline": "data/iris.csv", "instance_type": "ml.c5.xlarge"}
    template = build_template(iris_with(explain={**explain, "max_runtime": 7200}))
    variables = template["Resources"]["TrainingFunction"]["Properties"]["Environment"]
    assert json.loads(variables["Variables"]["MLCICD_EXPLAIN"]) == {
        "channel": "training",
        "label": "species",
        "rows": 50,
        "baseline": "data/iris.csv",
        "source_dir": "src",
        "entry_point": "inference.py",
        "prediction_key": "predictions",
        "required": False,
        "online": False,
        "instance_type": "ml.c5.xlarge",
        "max_runtime": 7200,
    }
    without = build_template(iris_with())["Resources"]["TrainingFunction"]["Properties"]
    assert without["Environment"]["Variables"]["MLCICD_EXPLAIN"] == ""


def _deploy_role_statements(template: dict[str, Any]) -> dict[str, Any]:
    (policy,) = template["Resources"]["DeployFunctionRole"]["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_explain_online_lets_the_deploy_function_read_reports_and_put_baselines_only() -> None:
    online = build_template(iris_with(explain={"online": True}))
    variables = online["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MLCICD_EXPLAIN_ONLINE"] == "true"
    statements = _deploy_role_statements(online)
    read, put = statements["ReadTheModelsExplanations"], statements["PutTheClarifyBaseline"]
    assert (read["Action"], put["Action"]) == (["s3:GetObject"], ["s3:PutObject"])
    assert read["Resource"] == [{"Fn::Sub": "${ModelsBucket.Arn}/iris-classifier/*/explain/*"}]
    assert put["Resource"] == [{"Fn::Sub": "${ModelsBucket.Arn}/iris-classifier/explain/*"}]
    # Without explain.online the deploy function touches no model's files.
    offline = build_template(iris_with(explain={"online": False}))
    assert "ReadTheModelsExplanations" not in _deploy_role_statements(offline)
    assert "PutTheClarifyBaseline" not in _deploy_role_statements(offline)


@pytest.mark.parametrize(("sections", "key"), NOT_IN_THE_STACK)
def test_a_section_the_stack_does_not_run_is_refused_by_its_key(
    sections: dict[str, Any], key: str
) -> None:
    config = iris_with(**sections)
    with pytest.raises(ConfigError) as raised:
        build_template(config)
    assert raised.value.key == key
    assert raised.value.message.startswith(f"mlcicd.yaml: {key}: the AWS pipeline ")
    assert "yet" in raised.value.message
    assert raised.value.hint is not None
    assert "for the stack" in raised.value.hint
    assert "`mlcicd run`" in raised.value.hint


def test_processing_steps_go_to_the_training_function_and_its_policies() -> None:
    config = iris_with(
        processing=[
            {**PREPARE, "outputs": ["train"], "backend": "sagemaker", "max_runtime": 900},
        ],
        train={"channels": {"training": "prepare.train"}},
    )
    template = build_template(config)
    resources = template["Resources"]
    variables = resources["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    # Only what differs from a step's defaults (backend: the stack runs every step on SageMaker).
    assert json.loads(variables["MLCICD_PROCESSING"]) == {
        "steps": [
            {
                "name": "prepare",
                "entry_point": "prepare.py",
                "inputs": {"raw": "data"},
                "outputs": ["train"],
                "max_runtime": 900,
            }
        ],
        "requirements": "requirements.txt",
    }
    (jobs,) = [
        s
        for role, s in role_statements(template)
        if role == "TrainingFunctionRole" and s["Sid"] == "RunThePipelinesProcessingJobs"
    ]
    assert jobs["Action"] == [
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
    ]
    assert jobs["Resource"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
            "processing-job/iris-classifier-*"
        }
    ]
    # A project without steps has none to pass.
    plain = build_template(iris_with())["Resources"]["TrainingFunction"]
    assert plain["Properties"]["Environment"]["Variables"]["MLCICD_PROCESSING"] == ""


def test_more_steps_than_the_continuation_token_holds_are_refused() -> None:
    steps = [
        {"name": f"featurise-data-{i:09d}", "entry_point": "f.py", "inputs": {"raw": "data"}}
        for i in range(12)
    ]
    with pytest.raises(ConfigError, match="continuation token") as raised:
        build_template(iris_with(processing=steps))
    assert raised.value.key == "processing"
    assert build_template(iris_with(processing=steps[:4]))  # a few long names fit


def test_data_check_off_and_the_stacks_own_sections_generate() -> None:
    # examples/iris has staging:, monitor: and approve is always set: all mapped by the stack.
    config = iris_with(data_check="off", approve={"mode": "manual"})
    assert config.staging is not None
    assert "Pipeline" in build_template(config)["Resources"]


def _statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_scaling_and_the_vpc_are_granted_on_this_stack_s_own_only(scaled_config: Config) -> None:
    template = build_template(scaled_config)
    deploy = _statements(template, "DeployFunctionRole")
    endpoint = "iris-classifier-endpoint"
    assert deploy["RegisterTheEndpointsVariantsOnly"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/mlcicd:endpoint": endpoint}
    }
    assert deploy["ScaleTheEndpointsVariantsOnly"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/mlcicd:endpoint": endpoint}
    }
    assert deploy["CreateTheScalingServiceLinkedRole"]["Condition"] == {
        "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    }
    for role in ("SageMakerExecutionRole", "EndpointExecutionRole"):
        statements = _statements(template, role)
        create = [r["Fn::Sub"] for r in statements["InterfacesInTheSubnetsOnly"]["Resource"]]
        assert [r.rsplit(":", 1)[1] for r in create] == [
            "subnet/subnet-0123456789abcdef0",
            "subnet/subnet-0fedcba9876543210",
            "security-group/sg-0123abcd",
            "network-interface/*",
        ]
        manage = statements["ManageThoseInterfaces"]["Condition"]["ArnEquals"]["ec2:Subnet"]
        assert [s["Fn::Sub"] for s in manage] == create[:2]
    # Without the keys, none of it — but deregistering this endpoint's variants: when
    # deploy.autoscaling is removed, the deploy Lambda lifts what an earlier deploy registered.
    plain = build_template(iris_with(staging=None))
    released = _statements(plain, "DeployFunctionRole")
    assert "RegisterTheEndpointsVariantsOnly" not in released
    assert "ScaleTheEndpointsVariantsOnly" not in released
    assert released["ReleaseTheEndpointsVariantsOnly"]["Action"] == [
        "application-autoscaling:DeleteScalingPolicy",
        "application-autoscaling:DeregisterScalableTarget",
    ]
    assert released["ReleaseTheEndpointsVariantsOnly"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/mlcicd:endpoint": endpoint}
    }
    assert "InterfacesInTheSubnetsOnly" not in _statements(plain, "SageMakerExecutionRole")


def test_the_lambdas_may_read_the_tags_that_prove_a_continuations_jobs_theirs(
    template: dict[str, Any],
) -> None:
    """Each continuation checks the tags of the jobs (training) and the endpoint config
    (deploy) its token names (mlcicd.aws.lambdas.provenance): both roles may read them, on
    their own resources' prefixes only."""
    statements = {(role, s.get("Sid")): s for role, s in role_statements(template)}
    for role, sid, kind in (
        ("TrainingFunctionRole", "RunThePipelinesTrainingJobs", "training-job"),
        ("DeployFunctionRole", "ManageThePipelinesEndpoint", "endpoint-config"),
    ):
        statement = statements[(role, sid)]
        assert "sagemaker:ListTags" in statement["Action"], role
        resources = [str(r["Fn::Sub"]) for r in as_list(statement["Resource"])]
        assert any(f":{kind}/iris-classifier" in r for r in resources), resources
        assert all("*" not in r.split(":")[-1].split("/")[0] for r in resources)
