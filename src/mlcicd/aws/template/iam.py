"""One IAM role per component, each allowed only what its component does, on the stack's
own resources.

Where AWS authorises an action only on ``"*"`` (the action has no resource type), the
statement names the action alone; ``ACTIONS_ON_ANY_RESOURCE`` lists every such action
the stack uses, and a test holds the roles to that list.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlcicd.aws.names import PROCESSING_JOBS_LOG_GROUP, StackNames, arn
from mlcicd.aws.template import parameters as p
from mlcicd.aws.template._cfn import (
    NO_VALUE,
    Json,
    allow,
    arn_of,
    assume_role_policy,
    if_,
    policy_document,
    ref,
    sub,
)
from mlcicd.aws.template.monitoring import DEAD_LETTER_QUEUE, TOPIC
from mlcicd.aws.template.storage import ARTIFACTS_BUCKET, KEY, MODELS_BUCKET, REPOSITORY
from mlcicd.config import NetworkConfig

SAGEMAKER_ROLE = (
    "SageMakerExecutionRole"  # the training jobs' (the name predates the endpoints' own)
)
ENDPOINT_ROLE = "EndpointExecutionRole"
CODEBUILD_ROLE = "CodeBuildRole"
TRAINING_FUNCTION_ROLE = "TrainingFunctionRole"
DEPLOY_FUNCTION_ROLE = "DeployFunctionRole"
PIPELINE_ROLE = "PipelineRole"
STAGING_TEST_ROLE = "StagingTestRole"  # with staging: only

# What SageMaker reads of the VPC before it puts an instance's network interface there.
_EC2_DESCRIBE = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)

ACTIONS_ON_ANY_RESOURCE = frozenset(
    {
        "ecr:GetAuthorizationToken",  # a registry login, not a repository action
        "codepipeline:PutJobSuccessResult",  # job results name a job id, not a resource
        "codepipeline:PutJobFailureResult",
        "cloudwatch:PutMetricData",  # narrowed by the cloudwatch:namespace condition instead
        # Application Auto Scaling's reads have no resource type (the deploy Lambda's: it
        # deregisters what an earlier deploy.autoscaling registered).
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScalingPolicies",
        # EC2's reads have no resource type either (network: the jobs' and Models' VPC only).
        *_EC2_DESCRIBE,
        # A listing names no resource; the training Lambda lists only its own group, for the
        # data check's production model (with data_check: warn|fail only).
        "sagemaker:ListModelPackages",
    }
)

_ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
_ECR_PUSH = [
    *_ECR_PULL,
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]


def resources(
    names: StackNames,
    *,
    rollback_alarms: Sequence[str] = (),
    capture_prefix: str | None = None,
    staging_cleanup: bool = True,
    autoscaled: bool = False,
    network: NetworkConfig | None = None,
    data_check: bool = False,
    explain_online: bool = False,
) -> Json:
    """``rollback_alarms``: the alarms the deploy Lambda puts for ``deploy.alarms``;
    ``capture_prefix``: where in the models bucket the endpoint writes its data capture
    (None: it captures nothing); ``staging_cleanup``: the staging test project deletes the
    staging endpoint when its tests fail (``staging.keep`` is false); ``data_check``: the
    training Lambda looks up the production model's baseline (``data_check: warn|fail``);
    ``autoscaled``: the deploy Lambda registers the endpoint's variants for scaling
    (``deploy.autoscaling``); ``network``: the training jobs and Models run in these subnets
    (``network:``); ``explain_online``: the deploy Lambda reads the model's explanation and
    puts its Clarify baseline beside it (``explain.online``)."""
    roles = {
        SAGEMAKER_ROLE: _training_job_role(names, network),
        ENDPOINT_ROLE: _endpoint_role(names, capture_prefix, network),
        CODEBUILD_ROLE: _codebuild_role(names),
        TRAINING_FUNCTION_ROLE: _training_function_role(names, data_check=data_check),
        DEPLOY_FUNCTION_ROLE: _deploy_function_role(
            names, rollback_alarms, autoscaled, explain_online=explain_online
        ),
        PIPELINE_ROLE: _pipeline_role(names),
    }
    if names.staging_endpoint is not None:
        roles[STAGING_TEST_ROLE] = _staging_test_role(
            names, names.staging_endpoint, cleanup=staging_cleanup
        )
    return roles


def _role(service: str, description: str, *statements: Json) -> Json:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": description,
            "AssumeRolePolicyDocument": assume_role_policy(service),
            "Policies": [
                {"PolicyName": "least-privilege", "PolicyDocument": policy_document(*statements)}
            ],
        },
    }


def _allow_on_any_resource(sid: str, actions: list[str], *, condition: Json | None = None) -> Json:
    unlisted = set(actions) - ACTIONS_ON_ANY_RESOURCE
    if unlisted:  # a bug in this module: name the resources instead
        raise ValueError(f"{sorted(unlisted)} must be scoped to resources")
    return allow(sid, actions, "*", condition=condition)


def _objects(bucket: str, prefix: str = "") -> Json:
    return sub(f"${{{bucket}.Arn}}/{prefix}*")


def _write_logs(sid: str, *groups: str) -> Json:
    return allow(
        sid,
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [sub(arn("logs", f"log-group:{g}:*")) for g in groups],
    )


def _read_and_write_artifacts() -> Json:
    """The pipeline's artifacts, read (any version) and written: CodePipeline, CodeBuild's
    build and both orchestrator Lambdas."""
    return allow(
        "ReadAndWriteArtifacts",
        ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
        [_objects(ARTIFACTS_BUCKET)],
    )


def _use_key(*actions: str) -> Json:
    return allow("UseTheStackKey", list(actions), [arn_of(KEY)])


def _ecr_login() -> Json:
    return _allow_on_any_resource("LogInToEcr", ["ecr:GetAuthorizationToken"])


def _pass_role(role: str) -> Json:
    return allow(
        "PassItsExecutionRoleToSageMakerOnly",
        ["iam:PassRole"],
        [arn_of(role)],
        condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


def _sagemaker_basics(*log_groups: str) -> list[Json]:
    """What a training job's and an endpoint's containers both need: the image, their log
    groups, SageMaker's metrics."""
    return [
        allow("PullTheImage", _ECR_PULL, [arn_of(REPOSITORY)]),
        _ecr_login(),
        allow(
            "WriteSageMakerLogs",
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            [
                sub(arn("logs", f"log-group:{group}{tail}"))
                for group in log_groups
                for tail in ("", ":*")
            ],
        ),
        _allow_on_any_resource(
            "PutSageMakerMetrics",
            ["cloudwatch:PutMetricData"],
            condition={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        ),
    ]


def _in_the_vpc(network: NetworkConfig | None) -> list[Json]:
    """What SageMaker needs, as the role of a job or a Model in the user's VPC, to put its
    instances' network interfaces there: only in ``network.subnets``, only with
    ``network.security_groups``, and only those interfaces it then manages."""
    if network is None or not network.in_vpc:
        return []
    subnets = [sub(arn("ec2", f"subnet/{s}")) for s in network.subnets]
    interfaces = sub(arn("ec2", "network-interface/*"))
    return [
        _allow_on_any_resource("ReadTheVpc", list(_EC2_DESCRIBE)),
        allow(
            "InterfacesInTheSubnetsOnly",
            ["ec2:CreateNetworkInterface"],
            [
                *subnets,
                *[sub(arn("ec2", f"security-group/{g}")) for g in network.security_groups],
                interfaces,
            ],
        ),
        allow(
            "ManageThoseInterfaces",
            [
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            [interfaces],
            condition={"ArnEquals": {"ec2:Subnet": subnets}},
        ),
    ]


def _training_job_role(names: StackNames, network: NetworkConfig | None = None) -> Json:
    # The pipeline's jobs (the training Lambda's) keep everything under <pipeline>/, those of
    # `mlcicd run --backend aws` under [<store prefix>/]<models bucket prefix>/<pipeline>/: the
    # channels and code they read, the model, output and checkpoints they write.
    prefixes = names.training_prefixes
    return _role(
        "sagemaker.amazonaws.com",
        "SageMaker training jobs: read their inputs and write their model, only under the "
        "pipeline's prefix",
        allow(
            "ReadAndWriteUnderThePipelinesPrefix",
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [_objects(MODELS_BUCKET, prefix) for prefix in prefixes],
        ),
        allow(
            "ListThePipelinesPrefix",
            ["s3:ListBucket"],
            [arn_of(MODELS_BUCKET)],
            condition={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        ),
        allow("LocateModels", ["s3:GetBucketLocation"], [arn_of(MODELS_BUCKET)]),
        # The processing steps' jobs run with this role too.
        *_sagemaker_basics(names.training_jobs_log_group, PROCESSING_JOBS_LOG_GROUP),
        # KmsKeyId (the model and output on S3) and VolumeKmsKeyId (the instances' volumes,
        # attached through a grant only an AWS resource may use).
        _use_key("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
        allow(
            "AttachEncryptedVolumes",
            ["kms:CreateGrant"],
            [arn_of(KEY)],
            condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        *_in_the_vpc(network),
    )


def _endpoint_role(
    names: StackNames, capture_prefix: str | None, network: NetworkConfig | None = None
) -> Json:
    capture = (
        [
            allow(
                "WriteTheDataCapture", ["s3:PutObject"], [_objects(MODELS_BUCKET, capture_prefix)]
            ),
        ]
        if capture_prefix
        else []
    )
    return _role(
        "sagemaker.amazonaws.com",
        "SageMaker endpoints: read models (never write them), pull the image, write logs"
        + (" and the data capture" if capture_prefix else ""),
        allow("ReadModels", ["s3:GetObject"], [_objects(MODELS_BUCKET)]),
        *capture,
        # The staging endpoint runs with this role too, and logs to its own group.
        *_sagemaker_basics(names.endpoint_log_group, *names.staging_log_groups[1:]),
        # Deployment guardrails: SageMaker reads the rollback alarms as the endpoint's role —
        # those the deploy Lambda and `mlcicd run` put from deploy.alarms (the same two names).
        allow(
            "ReadRollbackAlarms",
            ["cloudwatch:DescribeAlarms"],
            [_alarm(a) for a in names.rollback_alarms],
        ),
        _use_key("kms:Decrypt", *(["kms:GenerateDataKey"] if capture_prefix else [])),
        *_in_the_vpc(network),
    )


def _codebuild_role(names: StackNames) -> Json:
    return _role(
        "codebuild.amazonaws.com",
        "CodeBuild: read the source artifact, build and push the image, write build logs",
        _write_logs("WriteBuildLogs", names.build_log_group),
        _read_and_write_artifacts(),
        allow(
            "LocateArtifacts",
            ["s3:GetBucketAcl", "s3:GetBucketLocation"],
            [arn_of(ARTIFACTS_BUCKET)],
        ),
        allow("PushTheImage", _ECR_PUSH, [arn_of(REPOSITORY)]),
        _ecr_login(),
        _use_key("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
    )


def _function_basics(log_group: str, execution_role: str) -> list[Json]:
    """What both orchestrator Lambdas do: log, report to CodePipeline, read and write artifacts,
    hand SageMaker the ``execution_role`` of what they create."""
    return [
        _write_logs("WriteFunctionLogs", log_group),
        _allow_on_any_resource(
            "ReportToCodePipeline",
            ["codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"],
        ),
        _read_and_write_artifacts(),
        allow("SendToTheDeadLetterQueue", ["sqs:SendMessage"], [arn_of(DEAD_LETTER_QUEUE)]),
        _use_key("kms:Decrypt", "kms:GenerateDataKey"),
        _pass_role(execution_role),
    ]


def _training_function_role(names: StackNames, *, data_check: bool) -> Json:
    group = names.model_package_group
    # The data check's production model: the newest Approved version of the group.
    finding = (
        [_allow_on_any_resource("FindTheProductionModel", ["sagemaker:ListModelPackages"])]
        if data_check
        else []
    )
    return _role(
        "lambda.amazonaws.com",
        "Training Lambda: start and follow the pipeline's training jobs, register model packages",
        *_function_basics(names.training_log_group, SAGEMAKER_ROLE),
        allow(
            "RunThePipelinesTrainingJobs",
            [
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
                "sagemaker:ListTags",  # a continuation's job: its tags prove whose it is
            ],
            [sub(names.sagemaker_arn("training-job", f"{names.training_job_prefix}*"))],
        ),
        allow(  # processing: the steps around training, on the training jobs' prefix
            "RunThePipelinesProcessingJobs",
            [
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:AddTags",
                "sagemaker:ListTags",  # a cached step's job: its tags are the cache's proof
            ],
            [sub(names.sagemaker_arn("processing-job", f"{names.training_job_prefix}*"))],
        ),
        allow(
            "RegisterThePipelinesModels",
            [
                "sagemaker:CreateModelPackageGroup",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:AddTags",
            ],
            [
                sub(names.sagemaker_arn("model-package-group", group)),
                sub(names.sagemaker_arn("model-package", f"{group}/*")),
            ],
        ),
        *finding,
        # The channels it uploads, the model it hashes, the registration it records: all under
        # <pipeline>/. A job's output is read as the one version the job wrote (joboutputs).
        allow(
            "ReadAndWriteUnderThePipelinesPrefix",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            [_objects(MODELS_BUCKET, f"{names.pipeline}/")],
        ),
        allow(  # NoSuchKey, not AccessDenied; and how many versions an output has
            "ListModels", ["s3:ListBucket", "s3:ListBucketVersions"], [arn_of(MODELS_BUCKET)]
        ),
    )


def _alarm(name: str) -> Json:
    return sub(arn("cloudwatch", f"alarm:{name}"))


_SCALING_TAG = "mlcicd:endpoint"


def _scalable_targets() -> list[Json]:
    return [sub(arn("application-autoscaling", "scalable-target/*"))]


def _release_the_endpoints_scaling(names: StackNames) -> list[Json]:
    """What deregistering the endpoint's variants takes: the deploy Lambda does it before
    every update, and for good once ``deploy.autoscaling`` is removed — when the stack no
    longer grants the rest of :func:`_scale_the_endpoint`. Only deletions, only of the
    targets tagged with this endpoint (and their target-tracking alarms, which deleting a
    policy deletes in the caller's name)."""
    endpoint = names.endpoint
    return [
        _allow_on_any_resource(
            "ReadScaling",
            [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
        ),
        allow(
            "ReleaseTheEndpointsVariantsOnly",
            [
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DeregisterScalableTarget",
            ],
            _scalable_targets(),
            condition={"StringEquals": {f"aws:ResourceTag/{_SCALING_TAG}": endpoint}},
        ),
        allow(
            "TheTargetTrackingAlarms",
            ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            [_alarm(f"TargetTracking-endpoint/{endpoint}/variant/*")],
        ),
    ]


def _scale_the_endpoint(names: StackNames) -> list[Json]:
    """What registering the endpoint's variants for scaling takes (mlcicd/aws/autoscaling.py),
    as Application Auto Scaling documents it for SageMaker. Its scalable targets' ARNs are
    opaque ids, not endpoint names: the writes are held to targets tagged with this endpoint
    (created so, by RegisterScalableTarget's Tags)."""
    endpoint = names.endpoint
    targets = _scalable_targets()
    tag = _SCALING_TAG
    return [
        allow(
            "RegisterTheEndpointsVariantsOnly",
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:TagResource",
            ],
            targets,
            condition={"StringEquals": {f"aws:RequestTag/{tag}": endpoint}},
        ),
        allow(
            "ScaleTheEndpointsVariantsOnly",
            ["application-autoscaling:PutScalingPolicy"],
            targets,
            condition={"StringEquals": {f"aws:ResourceTag/{tag}": endpoint}},
        ),
        # Registering checks that the caller may read and resize the variant; a target
        # tracking policy's alarms are put in the caller's name.
        allow(
            "ResizeTheEndpoint",
            ["sagemaker:UpdateEndpointWeightsAndCapacities"],
            [sub(names.sagemaker_arn("endpoint", endpoint))],
        ),
        allow(
            "PutTheTargetTrackingAlarms",
            ["cloudwatch:PutMetricAlarm"],
            [_alarm(f"TargetTracking-endpoint/{endpoint}/variant/*")],
        ),
        allow(
            "CreateTheScalingServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            [
                sub(
                    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                    "sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                )
            ],
            condition={
                "StringLike": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                }
            },
        ),
    ]


def _deploy_function_role(
    names: StackNames,
    rollback_alarms: Sequence[str],
    autoscaled: bool = False,
    *,
    explain_online: bool = False,
) -> Json:
    # explain.online: the report the training Lambda stored beside the model
    # (<pipeline>/<job>/explain/), and the baseline CSV the endpoint's explainer reads
    # (<pipeline>/explain/), nothing else of the models bucket.
    explaining = [
        allow(
            "ReadTheModelsExplanations",
            ["s3:GetObject"],
            [_objects(MODELS_BUCKET, f"{names.pipeline}/*/explain/")],
        ),
        allow(
            "PutTheClarifyBaseline",
            ["s3:PutObject"],
            [_objects(MODELS_BUCKET, f"{names.pipeline}/explain/")],
        ),
    ]
    # PutMetricAlarm with Tags also needs TagResource on the alarm.
    put_alarms = allow(
        "PutTheRollbackAlarms",
        ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"],
        [_alarm(a) for a in rollback_alarms],
    )
    return _role(
        "lambda.amazonaws.com",
        "Deploy Lambda: create the pipeline's models and endpoint configs, create or update its "
        "endpoint",
        *_function_basics(names.deploy_log_group, ENDPOINT_ROLE),
        allow(
            "ManageThePipelinesEndpoint",
            [
                "sagemaker:CreateModel",
                "sagemaker:DescribeModel",
                "sagemaker:DeleteModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:AddTags",
                "sagemaker:ListTags",  # a continuation's endpoint config: whose it is
            ],
            [
                sub(names.sagemaker_arn("model", f"{names.model_prefix}*")),
                sub(names.sagemaker_arn("endpoint-config", f"{names.endpoint_config_prefix}*")),
                sub(names.sagemaker_arn("endpoint", names.endpoint)),
            ],
        ),
        allow(
            "ApproveThePipelinesModels",
            ["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
            [sub(names.sagemaker_arn("model-package", f"{names.model_package_group}/*"))],
        ),
        *([put_alarms] if rollback_alarms else []),
        *_release_the_endpoints_scaling(names),
        *(_scale_the_endpoint(names) if autoscaled else []),
        *(explaining if explain_online else []),
        *_manage_staging_endpoint(names),
    )


def _manage_staging_endpoint(names: StackNames) -> list[Json]:
    """The deploy Lambda's staging actions: its endpoint configs by prefix and the staging
    endpoint by name — which it alone may delete (production's it never may)."""
    if names.staging_endpoint is None:
        return []
    staging = names.staging_endpoint
    return [
        allow(
            "MakeTheStagingEndpointsConfigs",
            [
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            [sub(names.sagemaker_arn("endpoint-config", f"{staging}-*"))],
        ),
        allow(
            "ManageTheStagingEndpoint",
            [
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:AddTags",
            ],
            [sub(names.sagemaker_arn("endpoint", staging))],
        ),
    ]


def _staging_test_role(names: StackNames, staging: str, *, cleanup: bool) -> Json:
    # The project's tests run with this role: they may call the staging endpoint, and no other.
    endpoint = [sub(names.sagemaker_arn("endpoint", staging))]
    delete = (
        [
            allow(
                "DeleteTheStagingEndpointWhenItsTestsFail",
                ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"],
                endpoint,
            )
        ]
        if cleanup
        else []
    )
    return _role(
        "codebuild.amazonaws.com",
        f"CodeBuild: run the project's endpoint tests and the load check against {staging}",
        _write_logs("WriteTestLogs", names.staging_test_log_group),
        allow(
            "ReadTheSource",
            ["s3:GetObject", "s3:GetObjectVersion"],
            [_objects(ARTIFACTS_BUCKET)],
        ),
        allow(
            "LocateArtifacts",
            ["s3:GetBucketAcl", "s3:GetBucketLocation"],
            [arn_of(ARTIFACTS_BUCKET)],
        ),
        allow("InvokeTheStagingEndpoint", ["sagemaker:InvokeEndpoint"], endpoint),
        *delete,
        _use_key("kms:Decrypt", "kms:DescribeKey"),
    )


def _pipeline_role(names: StackNames) -> Json:
    functions = [names.training_function, names.deploy_function]
    return _role(
        "codepipeline.amazonaws.com",
        "CodePipeline: move artifacts, start the build, invoke the Lambdas, notify approvers",
        _read_and_write_artifacts(),
        allow(
            "LocateArtifacts",
            ["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
            [arn_of(ARTIFACTS_BUCKET)],
        ),
        allow(
            "RunTheBuild",
            ["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
            [
                sub(arn("codebuild", f"project/{project}"))
                for project in (
                    names.build_project,
                    *([names.staging_test_project] if names.staging_endpoint else []),
                )
            ],
        ),
        allow(
            "InvokeTheOrchestrators",
            ["lambda:InvokeFunction"],
            [sub(arn("lambda", f"function:{f}")) for f in functions],
        ),
        if_(
            p.USE_CONNECTION,
            allow(
                "UseTheGitHubConnection",
                ["codestar-connections:UseConnection", "codeconnections:UseConnection"],
                [ref(p.CONNECTION_ARN)],
            ),
            NO_VALUE,
        ),
        allow("NotifyApprovers", ["sns:Publish"], [ref(TOPIC)]),
        _use_key("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"),
    )
