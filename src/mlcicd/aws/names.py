"""What the stack calls its resources, and the ARN patterns its policies are scoped to.

The template and the orchestrator Lambdas read the same names from here: a Lambda may
start a training job called ``<pipeline>-<suffix>`` because its policy allows
``training-job/<pipeline>-*``, and both sides take that prefix from this module.

Strings holding ``${AWS::AccountId}``, ``${AWS::Region}`` or ``${AWS::Partition}`` are
meant for ``Fn::Sub``: CloudFormation fills them in when the stack is created.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from mlcicd.config import Config
from mlcicd.errors import ConfigError

DEFAULT_STACK_NAME = "ml-cicd-pipeline"  # `mlcicd aws …`'s --stack-name
REPOSITORY_NAME = "ml-model-repo"  # the reference's ECR repository; buildspec.yml pushes there
VARIANT_NAME = "AllTraffic"  # the endpoint's production variant (SageMaker's own default name)
TRAINING_JOBS_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PROCESSING_JOBS_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"

# The environment of the orchestrator Lambdas: set by the template, read by mlcicd.aws.lambdas.
ENV_PIPELINE = "MLCICD_PIPELINE"
ENV_ENDPOINT_NAME = "MLCICD_ENDPOINT_NAME"
ENV_SAGEMAKER_ROLE_ARN = "MLCICD_SAGEMAKER_ROLE_ARN"
ENV_MODELS_BUCKET = "MLCICD_MODELS_BUCKET"
ENV_ARTIFACTS_BUCKET = "MLCICD_ARTIFACTS_BUCKET"
ENV_GATE_THRESHOLDS = "MLCICD_GATE_THRESHOLDS"  # JSON: [{"metric", "op", "value"}]
ENV_TRAINING_INSTANCE_TYPE = "MLCICD_TRAINING_INSTANCE_TYPE"
ENV_TRAINING_INSTANCE_COUNT = "MLCICD_TRAINING_INSTANCE_COUNT"
ENV_TRAINING_USE_SPOT = "MLCICD_TRAINING_USE_SPOT"  # "true" or "false"
ENV_TRAINING_MAX_RUNTIME = "MLCICD_TRAINING_MAX_RUNTIME"  # seconds
ENV_TRAINING_MAX_WAIT = "MLCICD_TRAINING_MAX_WAIT"  # seconds, "" when not set
ENV_TRAINING_KMS_KEY = (
    "MLCICD_TRAINING_KMS_KEY"  # KmsKeyId and VolumeKmsKeyId; "" = SageMaker's default
)
ENV_TRAINING_NETWORK_ISOLATION = "MLCICD_TRAINING_NETWORK_ISOLATION"  # "true" or "false"
ENV_TRAINING_CHECKPOINTS = "MLCICD_TRAINING_CHECKPOINTS"  # "true": train.checkpoints
ENV_INTER_CONTAINER_ENCRYPTION = "MLCICD_INTER_CONTAINER_ENCRYPTION"  # "true" or "false"
ENV_VPC_CONFIG = "MLCICD_VPC_CONFIG"  # JSON: VpcConfig {Subnets, SecurityGroupIds}; "" none
ENV_MODEL_NETWORK_ISOLATION = "MLCICD_MODEL_NETWORK_ISOLATION"  # "true": network.isolation
ENV_TRAINING_CHANNELS = "MLCICD_TRAINING_CHANNELS"  # JSON: {channel: path in the source}
ENV_TRAINING_ENVIRONMENT = "MLCICD_TRAINING_ENVIRONMENT"  # JSON: {name: value}
ENV_HYPERPARAMETERS = "MLCICD_HYPERPARAMETERS"  # JSON: {name: value}
ENV_METRIC_DEFINITIONS = "MLCICD_METRIC_DEFINITIONS"  # JSON: SageMaker's [{"Name", "Regex"}]
ENV_ENDPOINT_INSTANCE_TYPE = "MLCICD_ENDPOINT_INSTANCE_TYPE"
ENV_ENDPOINT_INSTANCE_COUNT = "MLCICD_ENDPOINT_INSTANCE_COUNT"
# deploy: as mlcicd/aws/deployment.py maps it for `mlcicd run` too; each "" = not configured.
ENV_TRAFFIC_ROUTING = (
    "MLCICD_TRAFFIC_ROUTING"  # JSON: deploy.strategy as blue/green traffic shifting
)
ENV_ROLLBACK_THRESHOLDS = "MLCICD_ROLLBACK_THRESHOLDS"  # JSON: deploy.alarms {max_5xx_rate, …}
ENV_DATA_CAPTURE = "MLCICD_DATA_CAPTURE"  # JSON: deploy.data_capture {sampling_percentage, …}
ENV_VARIANTS = "MLCICD_VARIANTS"  # JSON: deploy.variants [{name, model, weight}]
ENV_SHADOW = "MLCICD_SHADOW"  # JSON: deploy.shadow {name, model}
ENV_AUTOSCALING = "MLCICD_AUTOSCALING"  # JSON: deploy.autoscaling {min_instances, …}; "" off
ENV_SERVERLESS = "MLCICD_SERVERLESS"  # JSON: deploy.serverless {memory_mb, max_concurrency}
ENV_ENDPOINT_ENVIRONMENT = "MLCICD_ENDPOINT_ENVIRONMENT"  # JSON: each Model's environment
# Each has a default for a function whose environment lacks it.
# processing: for the training Lambda, JSON {"steps": [step, …], "requirements": path}, each
# step mlcicd.yaml's keys (docs/processing.md) but backend; "" = no steps.
ENV_PROCESSING = "MLCICD_PROCESSING"
# data_check: JSON {"mode": "warn"|"fail", "channel", "label", "drift_threshold", "method"};
# "" = off.
ENV_DATA_CHECK = "MLCICD_DATA_CHECK"
ENV_PROJECT_DIR = "MLCICD_PROJECT_DIR"  # the project's directory in the repository; "" = its root
ENV_REQUIRE_APPROVAL = "MLCICD_REQUIRE_APPROVAL"  # "true": models wait as PendingManualApproval
# The deploy Lambda's second endpoint (staging:); "" = none. An action's UserParameters
# choose it, never name it: the function deploys and deletes only what its environment names.
ENV_STAGING_ENDPOINT_NAME = "MLCICD_STAGING_ENDPOINT_NAME"

# Read by `mlcicd run` with the SageMaker backends (not by the Lambdas, which never wait).
ENV_POLL_SECONDS = (
    "MLCICD_SAGEMAKER_POLL_SECONDS"  # between DescribeTrainingJob/DescribeEndpoint calls
)
DEFAULT_POLL_SECONDS = 15.0


def poll_seconds(explicit: float | None = None) -> float:
    """How long `mlcicd run` waits between two looks at a SageMaker job or endpoint."""
    if explicit is not None:
        return explicit
    raw = os.environ.get(ENV_POLL_SECONDS)
    try:
        return float(raw) if raw else DEFAULT_POLL_SECONDS
    except ValueError as exc:
        raise ConfigError(f"{ENV_POLL_SECONDS} must be a number of seconds, not {raw!r}") from exc


# CloudFormation's stack-name rule; the Lambda names "<stack>-training" must stay within 64.
_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
MAX_STACK_NAME = 50
# A bucket name is "<prefix>-<account>-<region>"; S3 allows 63 characters and the longest
# region names have 14, so the prefix gets 63 - 1 - 12 - 1 - 14.
_BUCKET_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
MAX_BUCKET_PREFIX = 35
MAX_SAGEMAKER_NAME = 63  # training jobs, models, endpoint configs, endpoints


def training_job_prefix(pipeline: str) -> str:
    return f"{pipeline}-"


def model_prefix(pipeline: str) -> str:
    return f"{pipeline}-"


def endpoint_config_prefix(endpoint: str) -> str:
    return f"{endpoint}-"


def _sagemaker_name(prefix: str, suffix: str, what: str, key: str) -> str:
    name = f"{prefix}{suffix}"
    if len(name) > MAX_SAGEMAKER_NAME:
        # Truncating the prefix would take the name out of what the policies allow.
        raise ConfigError(
            f"the {what} name {name!r} would be {len(name)} characters; SageMaker allows "
            f"{MAX_SAGEMAKER_NAME}",
            key=key,
            hint=f"shorten {key} to at most {MAX_SAGEMAKER_NAME - len(suffix) - 1} characters",
        )
    return name


def training_job_name(pipeline: str, suffix: str) -> str:
    """``<pipeline>-<suffix>``: what the training Lambda's policy allows it to start."""
    return _sagemaker_name(training_job_prefix(pipeline), suffix, "training job", "pipeline")


def processing_job_name(pipeline: str, suffix: str) -> str:
    """``<pipeline>-<suffix>``: a processing job the training Lambda's policy allows it to
    start (``processing-job/<pipeline>-*``, the training jobs' prefix)."""
    return _sagemaker_name(training_job_prefix(pipeline), suffix, "processing job", "pipeline")


def model_name(pipeline: str, suffix: str) -> str:
    """``<pipeline>-<suffix>``: a SageMaker Model the deploy Lambda may create."""
    return _sagemaker_name(model_prefix(pipeline), suffix, "model", "pipeline")


def endpoint_config_name(endpoint: str, suffix: str) -> str:
    """``<endpoint>-<suffix>``: an EndpointConfig the deploy Lambda may create."""
    return _sagemaker_name(
        endpoint_config_prefix(endpoint), suffix, "endpoint config", "deploy.endpoint_name"
    )


MIN_DIGEST_LENGTH = 4


def versioned_endpoint_config_name(
    endpoint: str, version: int | str, digest: str, *, digest_length: int = 8
) -> str:
    """``<endpoint>-v<version>-<digest>``: the full endpoint name first (the IAM prefix
    ``endpoint-config/<endpoint>-*``), at most 63 characters — the digest is shortened to fit
    (to no fewer than 4 hex digits), never the endpoint's name."""
    head = f"{endpoint_config_prefix(endpoint)}v{version}-"
    room = min(digest_length, MAX_SAGEMAKER_NAME - len(head))
    if room < MIN_DIGEST_LENGTH:
        raise ConfigError(
            f"the endpoint config name {head}… leaves no room for a digest; SageMaker allows "
            f"{MAX_SAGEMAKER_NAME} characters",
            key="deploy.endpoint_name",
            hint="shorten deploy.endpoint_name to at most "
            f"{MAX_SAGEMAKER_NAME - len(head) + len(endpoint) - MIN_DIGEST_LENGTH} characters",
        )
    return head + digest[:room]


def rollback_errors_alarm(endpoint: str) -> str:
    """The alarm ``deploy.alarms.max_5xx_rate`` becomes on SageMaker (made by mlcicd, not by
    the stack: it watches the config being rolled out, so every deploy points it anew)."""
    return f"{endpoint}-rollback-5xx-rate"


def rollback_latency_alarm(endpoint: str) -> str:
    """The alarm ``deploy.alarms.max_p99_latency_ms`` becomes on SageMaker (see above)."""
    return f"{endpoint}-rollback-model-latency-p99"


def arn(service: str, resource: str) -> str:
    """An ARN in this stack's account and region, for ``Fn::Sub``."""
    return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"


@dataclass(frozen=True)
class StackNames:
    stack: str
    pipeline: str
    endpoint: str
    artifacts_bucket_prefix: str
    models_bucket_prefix: str
    repository: str = REPOSITORY_NAME
    staging_endpoint: str | None = None  # staging: the testing stage's endpoint; None: no stage
    api: bool = False  # api.enabled: a REST API in front of the endpoint

    @classmethod
    def from_config(cls, config: Config, stack_name: str) -> StackNames:
        if not _STACK_NAME_RE.match(stack_name) or len(stack_name) > MAX_STACK_NAME:
            raise ConfigError(
                f"{stack_name!r} is not a usable stack name",
                path="--stack-name",
                hint="start with a letter; use letters, digits and hyphens; at most "
                f"{MAX_STACK_NAME} characters",
            )
        for key, prefix in (
            ("store.artifacts_bucket", config.store.artifacts_bucket),
            ("store.models_bucket", config.store.models_bucket),
        ):
            if (
                not _BUCKET_PREFIX_RE.match(prefix)
                or len(prefix) > MAX_BUCKET_PREFIX
                or "--" in prefix
            ):
                raise ConfigError(
                    f"{prefix!r} cannot start an S3 bucket name",
                    key=key,
                    hint="use lower-case letters, digits and single hyphens, at most "
                    f"{MAX_BUCKET_PREFIX} "
                    "characters (the stack appends the account and region)",
                )
        return cls(
            stack=stack_name,
            pipeline=config.pipeline,
            endpoint=config.endpoint_name,
            artifacts_bucket_prefix=config.store.artifacts_bucket,
            models_bucket_prefix=config.store.models_bucket,
            staging_endpoint=config.staging_endpoint_name,
            api=config.api.enabled,
        )

    # --- S3 (global names: made unique per account and region) -------------------------

    @property
    def artifacts_bucket(self) -> str:
        return f"{self.artifacts_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"

    @property
    def models_bucket(self) -> str:
        return f"{self.models_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"

    # --- the stack's own resources -----------------------------------------------------

    @property
    def code_pipeline(self) -> str:
        return self.stack

    @property
    def build_project(self) -> str:
        return f"{self.stack}-build"

    @property
    def training_function(self) -> str:
        return f"{self.stack}-training"

    @property
    def deploy_function(self) -> str:
        return f"{self.stack}-deploy"

    @property
    def staging_test_project(self) -> str:
        """The CodeBuild project that runs ``staging.test`` against the staging endpoint."""
        return f"{self.stack}-staging-test"

    @property
    def rest_api(self) -> str:
        return f"{self.stack}-api"

    @property
    def topic(self) -> str:
        return f"{self.stack}-notifications"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.stack}-lambda-dlq"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.stack}"

    # --- log groups: the reference's names -----------------------------------------------

    @property
    def build_log_group(self) -> str:
        return f"/aws/codebuild/{self.build_project}"

    @property
    def training_log_group(self) -> str:
        return f"/aws/lambda/{self.training_function}"

    @property
    def deploy_log_group(self) -> str:
        return f"/aws/lambda/{self.deploy_function}"

    @property
    def training_jobs_log_group(self) -> str:
        return TRAINING_JOBS_LOG_GROUP

    @property
    def endpoint_log_group(self) -> str:
        return f"/aws/sagemaker/Endpoints/{self.endpoint}"

    @property
    def staging_test_log_group(self) -> str:
        return f"/aws/codebuild/{self.staging_test_project}"

    @property
    def staging_endpoint_log_group(self) -> str | None:
        if self.staging_endpoint is None:
            return None
        return f"/aws/sagemaker/Endpoints/{self.staging_endpoint}"

    @property
    def staging_log_groups(self) -> tuple[str, ...]:
        """The testing stage's log groups (the test project's, the staging endpoint's)."""
        if self.staging_endpoint_log_group is None:
            return ()
        return self.staging_test_log_group, self.staging_endpoint_log_group

    @property
    def api_log_group(self) -> str:
        return f"/aws/apigateway/{self.rest_api}"

    @property
    def api_log_groups(self) -> tuple[str, ...]:
        """The API's access log group, with ``api.enabled``."""
        return (self.api_log_group,) if self.api else ()

    def log_group_arn(self, name: str) -> str:
        return arn("logs", f"log-group:{name}:*")

    # --- alarms --------------------------------------------------------------------------

    @property
    def endpoint_errors_alarm(self) -> str:
        return f"{self.endpoint}-5xx-errors"

    @property
    def endpoint_latency_alarm(self) -> str:
        return f"{self.endpoint}-model-latency-p99"

    @property
    def training_function_errors_alarm(self) -> str:
        return f"{self.training_function}-errors"

    @property
    def deploy_function_errors_alarm(self) -> str:
        return f"{self.deploy_function}-errors"

    @property
    def dead_letter_queue_alarm(self) -> str:
        return f"{self.dead_letter_queue}-messages"

    @property
    def notifying_alarms(self) -> tuple[str, ...]:
        """The stack's alarms that publish to its (encrypted) topic: whose use of the key
        the key policy allows CloudWatch."""
        return (
            self.endpoint_errors_alarm,
            self.endpoint_latency_alarm,
            self.training_function_errors_alarm,
            self.deploy_function_errors_alarm,
            self.dead_letter_queue_alarm,
        )

    @property
    def rollback_alarms(self) -> tuple[str, str]:
        """The alarms `mlcicd run` makes from deploy.alarms (their names differ from the
        stack's own two, so neither overwrites the other)."""
        return rollback_errors_alarm(self.endpoint), rollback_latency_alarm(self.endpoint)

    # --- SageMaker resources the Lambdas create, by name prefix ----------------------------
    # SageMaker writes resource names in lower case inside ARNs, and IAM compares ARNs
    # case-sensitively: the patterns are lower-cased so that a pipeline called "Iris" matches.

    @property
    def training_job_prefix(self) -> str:
        return training_job_prefix(self.pipeline)

    @property
    def model_prefix(self) -> str:
        return model_prefix(self.pipeline)

    @property
    def endpoint_config_prefix(self) -> str:
        return endpoint_config_prefix(self.endpoint)

    @property
    def training_prefixes(self) -> tuple[str, str, str]:
        """Where in the models bucket training and processing jobs (one role) read and write,
        as IAM patterns: ``<pipeline>/`` (the training Lambda's jobs, its steps' under
        ``<pipeline>/processing/``), ``*<models bucket prefix>/<pipeline>/`` (the training jobs
        of ``mlcicd run --backend aws``, whose store keeps them under ``[<store.uri prefix>/]
        <store.models_bucket>/<pipeline>/``) and ``*<artifacts bucket prefix>/<pipeline>/
        processing/`` (its processing jobs', ``processing/sagemaker.py``)."""
        return (
            f"{self.pipeline}/",
            f"*{self.models_bucket_prefix}/{self.pipeline}/",
            f"*{self.artifacts_bucket_prefix}/{self.pipeline}/processing/",
        )

    @property
    def model_package_group(self) -> str:
        return self.pipeline

    def sagemaker_arn(self, resource_type: str, name: str) -> str:
        return arn("sagemaker", f"{resource_type}/{name.lower()}")
