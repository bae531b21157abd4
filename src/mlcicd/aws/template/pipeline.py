"""The pipeline: the CodeBuild project, the orchestrator Lambdas and CodePipeline itself
(Source → Build → Train → Staging with ``staging:`` → optional Approval → Deploy)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from mlcicd.aws import autoscaling
from mlcicd.aws import names as n
from mlcicd.aws.alarms import rollback_alarms
from mlcicd.aws.deployment import CAPTURE_PREFIX, rollback_thresholds, traffic_routing
from mlcicd.aws.names import StackNames
from mlcicd.aws.network import vpc_config
from mlcicd.aws.template import parameters as p
from mlcicd.aws.template import staging
from mlcicd.aws.template._cfn import (
    ACCOUNT_ID,
    NO_VALUE,
    Json,
    arn_of,
    checkov_skips,
    get_att,
    if_,
    pipeline_action,
    ref,
    sub,
)
from mlcicd.aws.template.iam import (
    CODEBUILD_ROLE,
    DEPLOY_FUNCTION_ROLE,
    ENDPOINT_ROLE,
    PIPELINE_ROLE,
    SAGEMAKER_ROLE,
    TRAINING_FUNCTION_ROLE,
)
from mlcicd.aws.template.monitoring import (
    BUILD_LOG_GROUP,
    DEAD_LETTER_QUEUE,
    DEPLOY_FUNCTION_LOG_GROUP,
    TOPIC,
    TRAINING_FUNCTION_LOG_GROUP,
)
from mlcicd.aws.template.storage import ARTIFACTS_BUCKET, KEY, MODELS_BUCKET, REPOSITORY
from mlcicd.config import Config, ExplainConfig, ProcessingStepConfig
from mlcicd.config.processing import baseline_channel
from mlcicd.endpoints.base import data_capture, deployment_policy
from mlcicd.errors import ConfigError

BUILD_PROJECT = "BuildProject"
TRAINING_FUNCTION = "TrainingFunction"
DEPLOY_FUNCTION = "DeployFunction"
PIPELINE = "Pipeline"
WEBHOOK = "PipelineWebhook"

TRAINING_HANDLER = "mlcicd.aws.lambdas.training.handler"
DEPLOY_HANDLER = "mlcicd.aws.lambdas.deploy.handler"
LAMBDA_RUNTIME = "python3.11"
LAMBDA_TIMEOUT = 120  # seconds: the Lambdas start or poll, and return a continuation token
LAMBDA_ENVIRONMENT_LIMIT = 4096  # bytes, Lambda's limit on all variables together
CODEBUILD_IMAGE = "aws/codebuild/standard:7.0"  # Ubuntu 22.04 with Python 3.11 and Docker

SOURCE, BUILD, TRAIN, APPROVAL, DEPLOY = "Source", "Build", "Train", "Approval", "Deploy"
SOURCE_OUTPUT, BUILD_OUTPUT, MODEL_OUTPUT = "SourceOutput", "BuildOutput", "ModelOutput"

_NOT_IN_A_VPC = (
    "The function calls only AWS APIs (SageMaker, S3, CodePipeline) and reaches no private "
    "resource; a VPC would add NAT or interface endpoints and nothing to protect."
)


def resources(config: Config, names: StackNames, *, buildspec: str) -> Json:
    return {
        BUILD_PROJECT: _build_project(config, names, buildspec),
        TRAINING_FUNCTION: _function(
            names.training_function,
            TRAINING_HANDLER,
            TRAINING_FUNCTION_ROLE,
            TRAINING_FUNCTION_LOG_GROUP,
            "Starts and follows the pipeline's SageMaker training job, applies the gate, "
            "registers the model",
            _training_environment(config, names, project_dir=_project_dir(buildspec)),
        ),
        DEPLOY_FUNCTION: _function(
            names.deploy_function,
            DEPLOY_HANDLER,
            DEPLOY_FUNCTION_ROLE,
            DEPLOY_FUNCTION_LOG_GROUP,
            "Creates the model and endpoint config, creates or updates the endpoint, waits for "
            "InService",
            _deploy_environment(config, names),
        ),
        PIPELINE: _pipeline(config, names),
        WEBHOOK: _webhook(),
        **staging.resources(
            config, names, project_dir=_project_dir(buildspec), image=CODEBUILD_IMAGE
        ),
    }


def _build_project(config: Config, names: StackNames, buildspec: str) -> Json:
    return {
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": names.build_project,
            "Description": f"BUILD stage of {names.code_pipeline}: runs {buildspec}, pushes the "
            "image to ECR",
            "ServiceRole": arn_of(CODEBUILD_ROLE),
            "Source": {"Type": "CODEPIPELINE", "BuildSpec": buildspec},
            "Artifacts": {"Type": "CODEPIPELINE"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_SMALL",
                "Image": CODEBUILD_IMAGE,
                "PrivilegedMode": True,  # docker build needs the Docker daemon
                "EnvironmentVariables": [
                    {"Name": "IMAGE_REPO_NAME", "Type": "PLAINTEXT", "Value": ref(REPOSITORY)},
                    {"Name": "AWS_ACCOUNT_ID", "Type": "PLAINTEXT", "Value": ACCOUNT_ID},
                ],
            },
            "EncryptionKey": arn_of(KEY),
            "TimeoutInMinutes": min(max(math.ceil(config.build.timeout / 60), 5), 2160),
            "LogsConfig": {
                "CloudWatchLogs": {"Status": "ENABLED", "GroupName": ref(BUILD_LOG_GROUP)}
            },
        },
    }


def _function(
    name: str,
    handler: str,
    role: str,
    log_group: str,
    description: str,
    environment: dict[str, Any],
) -> Json:
    return {
        "Type": "AWS::Lambda::Function",
        # The function would create its log group on first use, without retention or key.
        "DependsOn": [log_group],
        "Metadata": checkov_skips(("CKV_AWS_117", _NOT_IN_A_VPC)),
        "Properties": {
            "FunctionName": name,
            "Description": description,
            "Runtime": LAMBDA_RUNTIME,
            "Handler": handler,
            "Role": arn_of(role),
            "Code": {"S3Bucket": ref(p.LAMBDA_CODE_BUCKET), "S3Key": ref(p.LAMBDA_CODE_KEY)},
            "Timeout": LAMBDA_TIMEOUT,
            "MemorySize": 256,
            "Environment": {"Variables": environment},
            "KmsKeyArn": arn_of(KEY),
            "ReservedConcurrentExecutions": if_(
                p.HAS_RESERVED_CONCURRENCY, ref(p.LAMBDA_RESERVED_CONCURRENCY), NO_VALUE
            ),
            "DeadLetterConfig": {"TargetArn": arn_of(DEAD_LETTER_QUEUE)},
        },
    }


def _common_environment(names: StackNames, execution_role: str) -> dict[str, Any]:
    """``execution_role``: the role the Lambda passes to what it has SageMaker create."""
    return {
        n.ENV_PIPELINE: names.pipeline,
        n.ENV_ENDPOINT_NAME: names.endpoint,
        n.ENV_SAGEMAKER_ROLE_ARN: arn_of(execution_role),
        n.ENV_MODELS_BUCKET: ref(MODELS_BUCKET),
        n.ENV_ARTIFACTS_BUCKET: ref(ARTIFACTS_BUCKET),
    }


def _project_dir(buildspec: str) -> str:
    """The project's directory in the repository: where its buildspec.yml is ('' = the root)."""
    return buildspec.rpartition("/")[0]


def _training_environment(config: Config, names: StackNames, *, project_dir: str) -> dict[str, Any]:
    train = config.train
    environment = {
        **_common_environment(names, SAGEMAKER_ROLE),
        n.ENV_PROJECT_DIR: project_dir,
        n.ENV_REQUIRE_APPROVAL: if_(p.APPROVAL_REQUIRED, "true", "false"),
        n.ENV_GATE_THRESHOLDS: _json(
            [{"metric": t.metric, "op": t.op, "value": t.value} for t in config.gate.thresholds]
        ),
        n.ENV_TRAINING_INSTANCE_TYPE: train.instance_type,
        n.ENV_TRAINING_INSTANCE_COUNT: str(train.instance_count),
        n.ENV_TRAINING_USE_SPOT: "true" if train.use_spot else "false",
        n.ENV_TRAINING_MAX_RUNTIME: str(train.max_runtime),
        n.ENV_TRAINING_MAX_WAIT: "" if train.max_wait is None else str(train.max_wait),
        n.ENV_TRAINING_KMS_KEY: arn_of(KEY),  # the stack's, which its training role may use
        n.ENV_TRAINING_NETWORK_ISOLATION: "true" if train.network_isolation else "false",
        n.ENV_TRAINING_CHECKPOINTS: "true" if train.checkpoints else "false",
        **_network_environment(config),
        n.ENV_TRAINING_CHANNELS: _json(train.channels),
        n.ENV_TRAINING_ENVIRONMENT: _json(train.environment),
        n.ENV_HYPERPARAMETERS: _json(train.hyperparameters),
        n.ENV_METRIC_DEFINITIONS: _json(
            [{"Name": d.name, "Regex": d.regex} for d in train.metric_definitions]
        ),
        n.ENV_PROCESSING: _json(processing_setting(config)) if config.processing else "",
        n.ENV_DATA_CHECK: _json(data_check_setting(config)) if config.data_check != "off" else "",
        n.ENV_EXPLAIN: _json(explain_setting(config)) if config.explain else "",
    }
    _check_size(environment, "train")
    return environment


CONTINUATION_TOKEN_LIMIT = 2048  # PutJobSuccessResult's continuationToken


def processing_setting(config: Config) -> dict[str, Any]:
    """``processing:`` for the training Lambda: each step's keys that differ from their
    defaults (the variables' 4 KB are shared), and where the environment's requirements are."""
    defaults = {f.name: f.default for f in dataclasses.fields(ProcessingStepConfig)}
    steps = [
        {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(step).items()
            # The stack runs every step on SageMaker, whatever its backend says.
            if k != "backend" and (k not in defaults or v != defaults[k]) and v not in ({}, ())
        }
        for step in config.processing
    ]
    _check_state(config)
    return {"steps": steps, "requirements": config.build.requirements}


def _check_state(config: Config) -> None:
    """The training Lambda carries a run's state in CodePipeline's continuation token (2,048
    characters): per step its job's name, its cache key and whether it is done, besides the
    image, the commit, the training job and the model. Estimated generously, refused here
    rather than when a push reaches the step."""
    pipeline = len(config.pipeline)
    size = 800 + 4 * pipeline + (400 + pipeline if config.explain else 0)
    size += sum(4 * len(s.name) + pipeline + 50 for s in config.processing)
    if size > CONTINUATION_TOKEN_LIMIT:
        raise ConfigError(
            f"the stack's pipeline keeps a run's state in CodePipeline's continuation token "
            f"({CONTINUATION_TOKEN_LIMIT} characters), and {len(config.processing)} steps with "
            f"these names need about {size}",
            key="processing",
            hint="shorten the steps' names, or merge steps; `mlcicd run` has no such limit",
        )


def data_check_setting(config: Config) -> dict[str, Any]:
    """``data_check`` for the training Lambda, with what of ``monitor:`` the check reads."""
    monitor, channel = config.monitor, baseline_channel(config)
    if channel is None:
        raise ConfigError(
            "the data check reads the training channel monitor.channel names (else training, "
            f"or the only one), and train.channels ({', '.join(config.train.channels)}) has no "
            "such channel",
            key="monitor.channel",
            hint="name the channel to check with monitor.channel",
        )
    return {
        "mode": config.data_check,
        "channel": channel,
        "label": monitor.label,
        "drift_threshold": monitor.drift_threshold,
        "method": monitor.comparison_method,
        "instance_type": monitor.instance_type,
        "max_runtime": monitor.max_runtime,
    }


def explain_setting(config: Config) -> dict[str, Any]:
    """``explain:`` for the training Lambda, with the channel (as the data check's), the
    label and the inference script the explainer loads the model with."""
    explain, channel = config.explain or ExplainConfig(), baseline_channel(config)
    if channel is None:
        raise ConfigError(
            "the explainer reads the training channel monitor.channel names (else training, "
            f"or the only one), and train.channels ({', '.join(config.train.channels)}) has no "
            "such channel",
            key="monitor.channel",
            hint="name the channel to explain the model on with monitor.channel",
        )
    return {
        "channel": channel,
        "label": config.monitor.label,  # the stack has no challenger (whose label it would be)
        "rows": explain.rows,
        "baseline": explain.baseline_file,
        "source_dir": config.deploy.source_dir,
        "entry_point": config.deploy.entry_point,
        "prediction_key": "predictions",
        "required": explain.required,
        "online": explain.online,
        "instance_type": explain.instance_type,
        "max_runtime": explain.max_runtime,
    }


def capture_destination(config: Config) -> str:
    """Where the endpoint's data capture goes, for ``Fn::Sub``: where ``mlcicd run --backend
    aws --stack-name`` has it go — its store is the models bucket, and the capture's place in
    a store is the artifacts bucket's ``data-capture/`` — and where the SageMaker role may write."""
    return f"s3://${{{MODELS_BUCKET}}}/{config.store.artifacts_bucket}/{CAPTURE_PREFIX}"


def capture_prefix(config: Config) -> str | None:
    """The key prefix in the models bucket under which the endpoint writes its data capture
    (see :func:`capture_destination`); None when ``deploy.data_capture`` is off."""
    if data_capture(config.deploy, capture_destination(config)) is None:
        return None
    return f"{config.store.artifacts_bucket}/{CAPTURE_PREFIX}/"


def rollback_alarm_names(config: Config, names: StackNames) -> list[str]:
    """The CloudWatch alarms the deploy Lambda puts for ``deploy.alarms`` (none without a
    threshold): what its role may put, and nothing else."""
    variants = [v.name for v in config.deploy.variants] or [n.VARIANT_NAME]
    thresholds = rollback_thresholds(deployment_policy(config.deploy))
    alarms = rollback_alarms(
        endpoint=names.endpoint, config_name="", variants=variants, **thresholds
    )
    return [str(alarm["AlarmName"]) for alarm in alarms]


def _deploy_environment(config: Config, names: StackNames) -> dict[str, Any]:
    """``deploy:`` for the deploy Lambda, which maps it to SageMaker as ``mlcicd run --backend
    aws`` does (mlcicd/aws/deployment.py)."""
    deploy = config.deploy
    policy = deployment_policy(deploy)
    thresholds = rollback_thresholds(policy)
    capture = data_capture(deploy, capture_destination(config))
    environment = {
        **_common_environment(names, ENDPOINT_ROLE),
        n.ENV_STAGING_ENDPOINT_NAME: names.staging_endpoint or "",
        n.ENV_EXPLAIN_ONLINE: "true" if config.explain and config.explain.online else "false",
        n.ENV_EXPLAIN_REQUIRED: "true" if config.explain and config.explain.required else "false",
        n.ENV_ENDPOINT_INSTANCE_TYPE: deploy.instance_type,
        n.ENV_ENDPOINT_INSTANCE_COUNT: str(deploy.instance_count),
        n.ENV_TRAFFIC_ROUTING: _json(traffic_routing(policy)),
        n.ENV_ROLLBACK_THRESHOLDS: _json(thresholds) if thresholds else "",
        n.ENV_DATA_CAPTURE: sub(_json(dataclasses.asdict(capture))) if capture else "",
        n.ENV_VARIANTS: _json([dataclasses.asdict(v) for v in deploy.variants])
        if deploy.variants
        else "",
        n.ENV_SHADOW: _json(dataclasses.asdict(deploy.shadow)) if deploy.shadow else "",
        n.ENV_AUTOSCALING: _json(autoscaling.to_json(deploy.autoscaling))
        if deploy.autoscaling
        else "",
        n.ENV_SERVERLESS: _json(dataclasses.asdict(deploy.serverless)) if deploy.serverless else "",
        **_network_environment(config),
        # As `mlcicd run` sets each Model's (its code is in the image here, not on S3).
        n.ENV_ENDPOINT_ENVIRONMENT: _json(
            {"SAGEMAKER_PROGRAM": deploy.entry_point, **deploy.environment}
        ),
    }
    _check_size(environment, "deploy")
    return environment


def _network_environment(config: Config) -> dict[str, str]:
    """``network:`` for both Lambdas (empty without a VPC or isolation: nothing to pass)."""
    network = config.network
    vpc = vpc_config(network)
    environment = {}
    if vpc is not None:
        environment[n.ENV_VPC_CONFIG] = _json(vpc)
        environment[n.ENV_INTER_CONTAINER_ENCRYPTION] = (
            "true" if network.encrypt_inter_container else "false"
        )
    if network.isolation:
        environment[n.ENV_MODEL_NETWORK_ISOLATION] = "true"
    return environment


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return len(value["Fn::Sub"]) + 200
    return 200


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_size(environment: dict[str, Any], section: str) -> None:
    # Values CloudFormation fills in (ARNs, bucket names) are counted at a generous 200 bytes.
    size = sum(len(k) + _size(v) for k, v in environment.items())
    if size > LAMBDA_ENVIRONMENT_LIMIT:
        raise ConfigError(
            f"the settings passed to the {section} Lambda take about {size} bytes; Lambda allows "
            f"{LAMBDA_ENVIRONMENT_LIMIT} for its whole environment",
            key=section,
            hint="shorten the hyperparameters, environment, metric definitions or processing steps",
        )


def _pipeline(config: Config, names: StackNames) -> Json:
    from_connection = pipeline_action(
        SOURCE,
        "Source",
        "CodeStarSourceConnection",
        outputs=(SOURCE_OUTPUT,),
        configuration={
            "ConnectionArn": ref(p.CONNECTION_ARN),
            "FullRepositoryId": sub(f"${{{p.GITHUB_OWNER}}}/${{{p.GITHUB_REPO}}}"),
            "BranchName": ref(p.BRANCH),
            "OutputArtifactFormat": "CODE_ZIP",
        },
    )
    from_token = pipeline_action(
        SOURCE,
        "Source",
        "GitHub",
        owner="ThirdParty",
        outputs=(SOURCE_OUTPUT,),
        configuration={
            "Owner": ref(p.GITHUB_OWNER),
            "Repo": ref(p.GITHUB_REPO),
            "Branch": ref(p.BRANCH),
            "OAuthToken": ref(p.GITHUB_TOKEN),
            "PollForSourceChanges": False,  # the webhook starts the pipeline
        },
    )
    approval = {
        "Name": APPROVAL,
        "Actions": [
            pipeline_action(
                "Approve",
                "Approval",
                "Manual",
                configuration={
                    "NotificationArn": ref(TOPIC),
                    "CustomData": f"The model trained by {names.pipeline} passed its gate"
                    + (
                        f" and its tests on {names.staging_endpoint}"
                        if names.staging_endpoint
                        else ""
                    )
                    + f". Approve to deploy it to {names.endpoint}.",
                },
            )
        ],
    }
    stages = [
        {"Name": SOURCE, "Actions": [if_(p.USE_CONNECTION, from_connection, from_token)]},
        {
            "Name": BUILD,
            "Actions": [
                pipeline_action(
                    BUILD,
                    "Build",
                    "CodeBuild",
                    {"ProjectName": ref(BUILD_PROJECT)},
                    inputs=(SOURCE_OUTPUT,),
                    outputs=(BUILD_OUTPUT,),
                ),
            ],
        },
        # The source goes along: the training channels (e.g. data/) live in the repository.
        {
            "Name": TRAIN,
            "Actions": [
                pipeline_action(
                    TRAIN,
                    "Invoke",
                    "Lambda",
                    {"FunctionName": ref(TRAINING_FUNCTION)},
                    inputs=(BUILD_OUTPUT, SOURCE_OUTPUT),
                    outputs=(MODEL_OUTPUT,),
                ),
            ],
        },
        *(
            [
                staging.stage(
                    keep=config.staging.keep,
                    deploy_function=DEPLOY_FUNCTION,
                    model_output=MODEL_OUTPUT,
                    source_output=SOURCE_OUTPUT,
                )
            ]
            if config.staging is not None
            else []
        ),
        if_(p.APPROVAL_REQUIRED, approval, NO_VALUE),
        {
            "Name": DEPLOY,
            "Actions": [
                pipeline_action(
                    DEPLOY,
                    "Invoke",
                    "Lambda",
                    {"FunctionName": ref(DEPLOY_FUNCTION)},
                    inputs=(MODEL_OUTPUT,),
                ),
            ],
        },
    ]
    return {
        "Type": "AWS::CodePipeline::Pipeline",
        "Properties": {
            "Name": names.code_pipeline,
            "RoleArn": arn_of(PIPELINE_ROLE),
            "ArtifactStore": {
                "Type": "S3",
                "Location": ref(ARTIFACTS_BUCKET),
                "EncryptionKey": {"Id": arn_of(KEY), "Type": "KMS"},
            },
            "RestartExecutionOnUpdate": False,
            "Stages": stages,
        },
    }


def _webhook() -> Json:
    """GitHub's push event starts the pipeline (version 1 source only: connections need none)."""
    return {
        "Type": "AWS::CodePipeline::Webhook",
        "Condition": p.USE_GITHUB_TOKEN,
        "Properties": {
            "Authentication": "GITHUB_HMAC",
            # Its own secret: the token reads the repository, and is nobody's signing key.
            "AuthenticationConfiguration": {"SecretToken": ref(p.WEBHOOK_SECRET)},
            "Filters": [{"JsonPath": "$.ref", "MatchEquals": "refs/heads/{Branch}"}],
            "TargetPipeline": ref(PIPELINE),
            "TargetAction": SOURCE,
            "TargetPipelineVersion": get_att(PIPELINE, "Version"),
            "RegisterWithThirdParty": True,
        },
    }
