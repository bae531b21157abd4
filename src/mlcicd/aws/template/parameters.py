"""The stack's parameters, the conditions drawn from them, and the rules that check them."""

from __future__ import annotations

from mlcicd.aws.names import StackNames
from mlcicd.aws.template._cfn import Json, equals, not_empty, ref
from mlcicd.config import Config

# Parameters
CONNECTION_ARN = "ConnectionArn"
GITHUB_TOKEN = "GitHubToken"
WEBHOOK_SECRET = "WebhookSecret"
GITHUB_OWNER = "GitHubOwner"
GITHUB_REPO = "GitHubRepo"
BRANCH = "Branch"
LAMBDA_CODE_BUCKET = "LambdaCodeBucket"
LAMBDA_CODE_KEY = "LambdaCodeKey"
REQUIRE_APPROVAL = "RequireApproval"
NOTIFICATION_EMAIL = "NotificationEmail"
LOG_RETENTION_DAYS = "LogRetentionDays"
CREATE_TRAINING_JOBS_LOG_GROUP = "CreateTrainingJobsLogGroup"
ARTIFACT_TRANSITION_DAYS = "ArtifactTransitionDays"
LAMBDA_RESERVED_CONCURRENCY = "LambdaReservedConcurrency"
ENDPOINT_5XX_THRESHOLD = "Endpoint5XXErrorsThreshold"
MODEL_LATENCY_P99_THRESHOLD = "ModelLatencyP99Microseconds"

# Conditions
USE_CONNECTION = "UseConnection"
USE_GITHUB_TOKEN = "UseGitHubToken"
APPROVAL_REQUIRED = "ApprovalRequired"
HAS_NOTIFICATION_EMAIL = "HasNotificationEmail"
MANAGES_TRAINING_JOBS_LOG_GROUP = "ManagesTrainingJobsLogGroup"
HAS_RESERVED_CONCURRENCY = "HasReservedConcurrency"

# A webhook secret shorter than this is refused; `mlcicd aws deploy` generates 43 characters.
WEBHOOK_SECRET_MIN_LENGTH = 20

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_CHOICES = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def parameters(config: Config, names: StackNames, *, approval: bool) -> Json:
    return {
        CONNECTION_ARN: {
            "Type": "String",
            "Default": "",
            "AllowedPattern": (
                r"^$|^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:"
                r"[0-9]{12}:connection/[A-Za-z0-9-]+$"
            ),
            "Description": "ARN of a CodeStar (CodeConnections) connection to GitHub; the "
            "recommended source. "
            "Leave empty to use GitHubToken instead.",
        },
        GITHUB_TOKEN: {
            "Type": "String",
            "Default": "",
            "NoEcho": True,
            "Description": "GitHub personal access token for the (older) GitHub version 1 source "
            "action; "
            "used only when ConnectionArn is empty.",
        },
        WEBHOOK_SECRET: {
            # Required even with a connection (which has no webhook): an empty default would be
            # an empty HMAC key the day the source switches to GitHubToken.
            "Type": "String",
            "NoEcho": True,
            "MinLength": WEBHOOK_SECRET_MIN_LENGTH,
            # Printable ASCII without spaces: what GitHub's webhook settings take as a secret.
            "AllowedPattern": "^[\\x21-\\x7e]+$",
            "ConstraintDescription": f"at least {WEBHOOK_SECRET_MIN_LENGTH} printable "
            "characters, no spaces",
            "Description": "HMAC secret GitHub signs its push events to the pipeline's webhook "
            "with (GitHubToken "
            "source; CodePipeline registers it with GitHub). `mlcicd aws deploy` generates one.",
        },
        GITHUB_OWNER: {
            "Type": "String",
            "MinLength": 1,
            "Description": "GitHub user or organisation that owns the repository.",
        },
        GITHUB_REPO: {
            "Type": "String",
            "MinLength": 1,
            "Description": "GitHub repository holding mlcicd.yaml, buildspec.yml and the "
            "Dockerfile.",
        },
        BRANCH: {
            "Type": "String",
            "Default": config.branch,
            "MinLength": 1,
            "Description": "Branch whose pushes run the pipeline.",
        },
        LAMBDA_CODE_BUCKET: {
            "Type": "String",
            "MinLength": 3,
            "Description": "S3 bucket holding the orchestrator Lambdas' deployment package "
            "(built by `mlcicd aws package`).",
        },
        LAMBDA_CODE_KEY: {
            "Type": "String",
            "Default": "mlcicd/lambdas.zip",
            "MinLength": 1,
            "Description": "S3 key of the Lambdas' deployment package in LambdaCodeBucket.",
        },
        REQUIRE_APPROVAL: {
            "Type": "String",
            "Default": "true" if approval else "false",
            "AllowedValues": ["true", "false"],
            "Description": "Add a manual approval stage between training and deployment "
            "(notified through the SNS topic).",
        },
        NOTIFICATION_EMAIL: {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^$|^[^@\s]+@[^@\s]+$",
            "Description": "E-mail address subscribed to the topic for approvals and alarms "
            "(optional).",
        },
        LOG_RETENTION_DAYS: {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": list(LOG_RETENTION_CHOICES),
            "Description": "Days CloudWatch Logs keeps the build, Lambda and SageMaker logs.",
        },
        CREATE_TRAINING_JOBS_LOG_GROUP: {
            "Type": "String",
            "Default": "true",
            "AllowedValues": ["true", "false"],
            "Description": f"Create {names.training_jobs_log_group} (one per account and region, "
            "shared by "
            "every training job): set false if it exists already.",
        },
        ARTIFACT_TRANSITION_DAYS: {
            "Type": "Number",
            "Default": 30,
            "MinValue": 30,
            "MaxValue": 335,
            "Description": "Days after which pipeline artifacts, and replaced model versions, "
            "move to "
            "cheaper storage (S3's minimum is 30; artifacts go on to Glacier after a year).",
        },
        LAMBDA_RESERVED_CONCURRENCY: {
            "Type": "Number",
            "Default": 2,
            "MinValue": 0,
            "MaxValue": 100,
            "Description": "Concurrent executions reserved for each orchestrator Lambda; 0 "
            "reserves "
            "none (for accounts whose concurrency quota is still 10).",
        },
        ENDPOINT_5XX_THRESHOLD: {
            "Type": "Number",
            "Default": 1,
            "MinValue": 1,
            "Description": "Alarm when the endpoint returns at least this many 5XX errors in 5 "
            "minutes.",
        },
        MODEL_LATENCY_P99_THRESHOLD: {
            "Type": "Number",
            "Default": 500000,
            "MinValue": 1,
            "Description": "Alarm when the endpoint's p99 ModelLatency exceeds this, in "
            "microseconds "
            "(SageMaker's unit for the metric), for 3 periods of 5 minutes.",
        },
    }


def conditions() -> Json:
    return {
        USE_CONNECTION: not_empty(CONNECTION_ARN),
        # Token only when no connection is given (the rule below asks for one of the two).
        USE_GITHUB_TOKEN: {"Fn::And": [equals(CONNECTION_ARN, ""), not_empty(GITHUB_TOKEN)]},
        APPROVAL_REQUIRED: equals(REQUIRE_APPROVAL, "true"),
        HAS_NOTIFICATION_EMAIL: not_empty(NOTIFICATION_EMAIL),
        MANAGES_TRAINING_JOBS_LOG_GROUP: equals(CREATE_TRAINING_JOBS_LOG_GROUP, "true"),
        HAS_RESERVED_CONCURRENCY: {"Fn::Not": [equals(LAMBDA_RESERVED_CONCURRENCY, "0")]},
    }


def rules() -> Json:
    return {
        "SourceIsConfigured": {
            "Assertions": [
                {
                    "Assert": {"Fn::Or": [not_empty(CONNECTION_ARN), not_empty(GITHUB_TOKEN)]},
                    "AssertDescription": "Give ConnectionArn (recommended) or GitHubToken.",
                }
            ]
        },
        # The webhook's secret authenticates GitHub to the pipeline: not the token, which reads
        # the repository and would then sit in GitHub's webhook settings as well.
        "WebhookSecretIsItsOwn": {
            "RuleCondition": {"Fn::And": [equals(CONNECTION_ARN, ""), not_empty(GITHUB_TOKEN)]},
            "Assertions": [
                {
                    "Assert": {
                        "Fn::Not": [{"Fn::Equals": [ref(WEBHOOK_SECRET), ref(GITHUB_TOKEN)]}]
                    },
                    "AssertDescription": "WebhookSecret must differ from GitHubToken.",
                },
            ],
        },
    }


def interface() -> Json:
    """The console's grouping of the parameters."""
    groups = [
        (
            "Source (GitHub)",
            [CONNECTION_ARN, GITHUB_TOKEN, WEBHOOK_SECRET, GITHUB_OWNER, GITHUB_REPO, BRANCH],
        ),
        (
            "Orchestrator Lambdas",
            [LAMBDA_CODE_BUCKET, LAMBDA_CODE_KEY, LAMBDA_RESERVED_CONCURRENCY],
        ),
        (
            "Approvals and alarms",
            [
                REQUIRE_APPROVAL,
                NOTIFICATION_EMAIL,
                ENDPOINT_5XX_THRESHOLD,
                MODEL_LATENCY_P99_THRESHOLD,
            ],
        ),
        (
            "Retention",
            [LOG_RETENTION_DAYS, CREATE_TRAINING_JOBS_LOG_GROUP, ARTIFACT_TRANSITION_DAYS],
        ),
    ]
    return {
        "AWS::CloudFormation::Interface": {
            "ParameterGroups": [
                {"Label": {"default": label}, "Parameters": ps} for label, ps in groups
            ]
        }
    }
