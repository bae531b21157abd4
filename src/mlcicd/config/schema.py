"""The mlcicd.yaml schema: one frozen dataclass per section, with its defaults.

``mlcicd.config.load`` walks the YAML against these classes' type hints, so a field's type
here is what the file may hold; ``mlcicd.config.checks`` holds the rules a type cannot say.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from mlcicd.durations import parse_duration
from mlcicd.shapes import NAME_RE as NAME_RE  # SageMaker's name rule, for the checks

CONFIG_FILE = "mlcicd.yaml"

# An endpoint config is named "<endpoint>-v<version>-<digest>" within SageMaker's 63
# characters, and must start with the whole endpoint name (the IAM policies' prefix).
MAX_ENDPOINT_NAME = 50
HyperparameterValue = str | int | float | bool
# monitor.schedule: no shorter than this — a check reads the whole window and writes reports.
# MLCICD_MONITOR_MIN_SCHEDULE (seconds) lowers it, for the tests only (mlcicd.config.checks).
MIN_MONITOR_SCHEDULE = 300.0


@dataclass(frozen=True)
class ImageConfig:
    """``build.image``: the build stage builds the project's Dockerfile with podman
    (docs/containers.md); ``base`` replaces its FROM (else $MLCICD_IMAGE_BASE, else FROM)."""

    enabled: bool = True
    base: str | None = None
    dockerfile: str = "Dockerfile"


@dataclass(frozen=True)
class BuildConfig:
    requirements: str = "requirements.txt"
    test_requirements: tuple[str, ...] = ()
    test: str | None = None
    timeout: int = 1800
    image: bool | ImageConfig = False  # `true`, or the image's settings

    @property
    def image_settings(self) -> ImageConfig | None:
        """The image to build, or None: ``build.image`` is false (``enabled: false``)."""
        if isinstance(self.image, ImageConfig):
            return self.image if self.image.enabled else None
        return ImageConfig() if self.image else None


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str


@dataclass(frozen=True)
class TrainConfig:
    backend: Literal["local", "sagemaker", "container"] = "local"
    source_dir: str = "src"
    entry_point: str = "train.py"
    hyperparameters: dict[str, HyperparameterValue] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    max_runtime: int = 86400
    metric_definitions: tuple[MetricDefinition, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    # SageMaker backend (ignored by the local one); the container backend's image, when set
    # (else the one the build stage built: build.image).
    image: str | None = None
    role: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    use_spot: bool = False
    max_wait: int | None = None
    output_path: str | None = None
    kms_key: str | None = (
        None  # encrypts the job's output and volume (the stack's EncryptionKeyArn)
    )
    network_isolation: bool = True  # the script reaches no network; false if it must download
    # /opt/ml/checkpoints kept in the store (s3://…/checkpoints/<pipeline>/ on SageMaker, the
    # job's checkpoints/ directory locally) so a spot-interrupted or retried job resumes from
    # it. On SageMaker, use_spot checkpoints whatever this says (an interruption resumes).
    checkpoints: bool = False


@dataclass(frozen=True)
class Threshold:
    """``metric op value``, e.g. accuracy >= 0.85."""

    metric: str
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float

    def passes(self, actual: float) -> bool:
        return {
            ">=": actual >= self.value,
            ">": actual > self.value,
            "<=": actual <= self.value,
            "<": actual < self.value,
            "==": actual == self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class ChallengerConfig:
    """Champion/challenger: the new model must be no worse than the one in production.

    Both are evaluated on ``data`` (a CSV in the commit, a header row, the label in column
    ``label`` — default the last) through the candidate's inference.py; the candidate passes
    when ``metric`` improves on the champion's by at least ``min_absolute_change`` (and
    ``min_relative_change``, a fraction, when set). Negative margins tolerate a small loss.
    """

    data: str
    metric: Literal["accuracy", "error_rate", "mae", "mse", "rmse"] = "accuracy"
    label: str | None = None
    min_absolute_change: float = 0.0
    min_relative_change: float | None = None
    prediction_key: str = "predictions"  # where predictions are in a JSON object answer


@dataclass(frozen=True)
class GateConfig:
    thresholds: tuple[Threshold, ...] = ()
    challenger: ChallengerConfig | None = None


@dataclass(frozen=True)
class ApproveConfig:
    """``approve: manual`` stops each run before its model is registered as Approved."""

    mode: Literal["auto", "manual"] = "auto"
    timeout: float | None = None  # seconds; unanswered for that long, the model is rejected


@dataclass(frozen=True)
class ServiceConfig:
    """`mlcicd up`: its port, the GitHub webhook's secret, polling and event notifications."""

    port: int = 8765
    webhook_secret_env: str = "MLCICD_WEBHOOK_SECRET"  # the NAME of the variable holding the secret
    remote: str = "origin"  # fetched on a push; a webhook push must be for its repository
    poll_interval: float | None = None  # seconds between checks of the branch; None: no polling
    notify: tuple[str, ...] = ()  # URLs that registry events are POSTed to


@dataclass(frozen=True)
class VariantConfig:
    """A production variant: ``model`` is ``latest`` (this run's model) or a registered version."""

    name: str
    model: int | str = "latest"
    weight: float = 1.0


@dataclass(frozen=True)
class ShadowConfig:
    """A shadow variant: gets a copy of the traffic, its answers are only recorded."""

    model: int | str = "latest"
    name: str = "Shadow"


@dataclass(frozen=True)
class CanaryConfig:
    percent: float = 10.0
    bake_seconds: float = 60.0


@dataclass(frozen=True)
class LinearConfig:
    step_percent: float = 25.0
    interval_seconds: float = 30.0


@dataclass(frozen=True)
class AlarmsConfig:
    """Auto-rollback: thresholds on the new model's metrics while traffic shifts."""

    max_5xx_rate: float | None = None  # 0..1
    max_p99_latency_ms: float | None = None  # p99 ModelLatency
    min_invocations: int = 1
    bake_seconds: float = 0.0  # all_at_once: how long to watch after the switch


@dataclass(frozen=True)
class DataCaptureConfig:
    """SageMaker's DataCaptureConfig for the local endpoint."""

    enabled: bool = False
    sampling_percentage: float = 100.0
    capture: tuple[Literal["input", "output"], ...] = ("input", "output")


@dataclass(frozen=True)
class AutoscalingConfig:
    """``deploy.autoscaling``: target tracking on invocations per instance (SageMaker's
    SageMakerVariantInvocationsPerInstance, per minute) between ``min_instances`` and
    ``max_instances`` — Application Auto Scaling per variant on AWS, the endpoint's worker
    processes locally. Cooldowns are seconds after a scale-in / scale-out before the next."""

    max_instances: int
    target_invocations_per_instance: float
    min_instances: int = 1
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60


@dataclass(frozen=True)
class ServerlessConfig:
    """``deploy.serverless``: a serverless endpoint (SageMaker's ServerlessConfig) instead of
    instances; SageMaker refuses it with variants, shadow, capture and more (config/checks.py)."""

    memory_mb: int = 2048  # MemorySizeInMB: 1024 to 6144 in steps of 1024
    max_concurrency: int = 20  # MaxConcurrency: 1 to 200


@dataclass(frozen=True)
class DeployConfig:
    backend: Literal["local", "sagemaker", "container"] = "local"
    endpoint_name: str | None = None
    source_dir: str = "src"
    entry_point: str = "inference.py"
    workers: int = 2
    port: int | None = None
    startup_timeout: float = 60.0
    max_payload_mb: float = 6.0
    environment: dict[str, str] = field(default_factory=dict)
    sample: str | None = None  # a JSON request body `mlcicd run` sends once the endpoint is up
    strategy: Literal["all_at_once", "canary", "linear"] = "all_at_once"
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    variants: tuple[VariantConfig, ...] = ()  # empty: one variant, AllTraffic, this run's model
    shadow: ShadowConfig | None = None
    data_capture: DataCaptureConfig = field(default_factory=DataCaptureConfig)
    header_timeout: float = 10.0  # seconds for a client to send a request's headers
    body_timeout: float = 60.0  # then its body
    model_timeout: float = 60.0  # for one request's handlers; a worker stalled longer is replaced
    # SageMaker backend (ignored by the local one).
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    role: str | None = (
        None  # the endpoint's execution role (the stack's EndpointRoleArn); default train.role
    )
    autoscaling: AutoscalingConfig | None = None  # None: a fixed count (instance_count, workers)
    serverless: ServerlessConfig | None = None  # None: instances


@dataclass(frozen=True)
class LoadCheckConfig:
    """``staging.load``: a short built-in load check against the staging endpoint
    (its figures against these bounds fail the run at ``staging``)."""

    requests: int = 2000
    concurrency: int = 8
    p99_ms: float | None = None  # None: recorded, not bounded
    max_error_rate: float = 0.0  # a fraction of requests, 0.0 to 1.0
    payload: str | None = None  # a request body file; default: deploy.sample
    content_type: str = "application/json"


@dataclass(frozen=True)
class StagingConfig:
    """``staging``: the testing stage (docs/staging.md). When present, a run deploys the new
    model to a staging endpoint with production's deploy settings, runs the project's endpoint
    tests and the load check against it, and only then goes on to approve and deploy."""

    endpoint_name: str | None = None  # default: <deploy endpoint>-staging
    test: str | None = None  # the project's tests, run with MLCICD_ENDPOINT_URL set
    timeout: int = 600  # seconds for the test command
    load: LoadCheckConfig | None = None
    keep: bool = False  # keep the staging endpoint serving after the stage


@dataclass(frozen=True)
class ProcessingStepConfig:
    """``processing[i]``: a script run as a SageMaker ProcessingJob (docs/processing.md).

    ``inputs`` map a name (``/opt/ml/processing/input/<name>``) to a path in the commit or to
    an earlier output, ``<step>.<output>`` or ``train.model``; each of ``outputs`` is
    ``/opt/ml/processing/output/<name>``, stored as an artifact. A step runs before training
    unless ``after`` is ``train`` (or a step that runs after it); ``report`` names a JSON file
    in an output (``evaluation/evaluation.json``) whose numbers the gate reads."""

    name: str
    entry_point: str
    source_dir: str = "src"
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    after: str | None = None  # "train", or the name of a step this one waits for
    report: str | None = None  # "<output>/<file>.json": a PropertyFile for the gate
    backend: Literal["local", "sagemaker"] = "local"
    max_runtime: int = 3600  # seconds (StoppingCondition.MaxRuntimeInSeconds)
    # SageMaker backend (ignored by the local one): the image (default train.image), instances,
    # and whether the job may reach the network; the role and KMS key are train's.
    image: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    network_isolation: bool = True


@dataclass(frozen=True)
class StoreConfig:
    """Where artifacts go: a local directory (default: the project's state dir) or s3://."""

    uri: str | None = None
    artifacts_bucket: str = "ml-cicd-pipeline-artifacts"
    models_bucket: str = "ml-cicd-pipeline-models"


@dataclass(frozen=True)
class ExplainConfig:
    """``explain:`` (docs/explain.md): what drives each model version, as mean |SHAP| per
    feature, computed when it is registered; off when the section is absent."""

    baseline: str = "training"  # "training" (a k-means summary of the channel) or a CSV file
    rows: int = 500  # rows of the training channel explained at register
    online: bool = False  # endpoints answer explanation requests (Clarify's contract)
    required: bool = False  # an explainer that fails fails the run (else it is recorded)
    # The stack's explain job (a SageMaker ProcessingJob; `mlcicd run` explains in the build env).
    instance_type: str = "ml.m5.large"
    max_runtime: int = 3600  # seconds (StoppingCondition.MaxRuntimeInSeconds)

    @property
    def baseline_file(self) -> str | None:
        """The baseline's CSV file in the commit, or None for the training channel's summary."""
        return None if self.baseline == "training" else self.baseline


@dataclass(frozen=True)
class MonitorConfig:
    """Data-quality monitoring in SageMaker Model Monitor's terms (docs/monitor.md): a
    baseline from the training channel when a model is registered, checked by
    ``mlcicd monitor check`` against what the endpoint captured — and, with ``schedule``, by
    `mlcicd up` every interval, as SageMaker's MonitoringSchedule does."""

    channel: str | None = (
        None  # the training channel the baseline reads; default: training, or the only one
    )
    label: str | None = (
        None  # a column that is not a feature: its header name, or _c0, _c1… without a header
    )
    drift_threshold: float = (
        0.1  # baseline_drift_check: a distribution distance above this is a violation
    )
    comparison_method: Literal["Robust", "Simple"] = (
        "Robust"  # constraints.json's comparison_method
    )
    schedule: str | None = None  # `mlcicd up` checks the endpoint this often (1h, 30m); None: never
    # The stack's data check job (a SageMaker ProcessingJob; `mlcicd run` checks in the build env).
    instance_type: str = "ml.m5.large"
    max_runtime: int = 3600  # seconds (StoppingCondition.MaxRuntimeInSeconds)

    @property
    def schedule_seconds(self) -> float | None:
        """``schedule`` in seconds (checked at load, so a set schedule always reads)."""
        return None if self.schedule is None else parse_duration(self.schedule)


@dataclass(frozen=True)
class TransformConfig:
    """``transform``: a batch transform stage after register (docs/transform.md): the new
    model scores ``input`` into ``output`` (paths from the project directory) with SageMaker's
    CreateTransformJob fields; skipped when the same model already scored the same input."""

    input: str
    output: str
    backend: str = "local"
    content_type: str = "text/csv"
    accept: str | None = None
    split_type: Literal["Line", "None"] = "Line"
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "MultiRecord"
    max_payload_mb: float = 6
    max_concurrent: int = 1
    compression: Literal["None", "Gzip"] = "None"
    assemble_with: Literal["Line", "None"] = "Line"
    input_filter: str = "$"
    join_source: Literal["None", "Input"] = "None"
    output_filter: str = "$"


@dataclass(frozen=True)
class ThrottleConfig:
    """``api.throttle``: the usage plan's steady rate (requests per second) and burst."""

    rate: float = 100.0
    burst: int = 200


@dataclass(frozen=True)
class ApiConfig:
    """``api:``: an HTTPS API (API Gateway) in front of the SageMaker endpoint, POST
    /invocations; ``auth`` is ``iam`` (SigV4-signed requests) or ``api_key`` (keys with a
    usage plan). The local endpoint speaks the runtime API itself (docs/aws.md)."""

    enabled: bool = False
    auth: Literal["iam", "api_key"] = "iam"
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)


@dataclass(frozen=True)
class NetworkConfig:
    """``network:``: SageMaker's jobs and Models in the user's VPC (VpcConfig).

    ``isolation`` runs the Models' containers with no network (EnableNetworkIsolation; training
    jobs have train.network_isolation). ``private_subnets``: the subnets have no route to the
    internet, so the stack creates S3 and SageMaker VPC endpoints in ``vpc_id`` (S3's a
    gateway on ``route_tables``)."""

    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    isolation: bool = False
    encrypt_inter_container: bool = True  # EnableInterContainerTrafficEncryption (jobs)
    private_subnets: bool = False
    vpc_id: str | None = None
    route_tables: tuple[str, ...] = ()  # the subnets' route tables, for S3's gateway endpoint

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnets)


@dataclass(frozen=True)
class Config:
    pipeline: str
    branch: str = "main"
    build: BuildConfig = field(default_factory=BuildConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    approve: ApproveConfig = field(default_factory=ApproveConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    staging: StagingConfig | None = None  # None: no testing stage
    processing: tuple[ProcessingStepConfig, ...] = ()  # docs/processing.md
    # New training data against the production model's baseline, before training.
    data_check: Literal["off", "warn", "fail"] = "off"
    transform: TransformConfig | None = None  # None: no batch transform stage
    explain: ExplainConfig | None = None  # None: models are not explained
    api: ApiConfig = field(default_factory=ApiConfig)  # docs/aws.md
    network: NetworkConfig = field(default_factory=NetworkConfig)  # docs/aws.md

    @property
    def endpoint_name(self) -> str:
        return self.deploy.endpoint_name or f"{self.pipeline}-endpoint"

    @property
    def staging_endpoint_name(self) -> str | None:
        """The staging endpoint's name, or None when the project has no ``staging:``. The
        default, ``<endpoint>-staging``, is cut to fit an endpoint name (a default that fails
        the checks would make the longest pipeline names `mlcicd init` allows unusable)."""
        if self.staging is None:
            return None
        suffix = "-staging"
        return self.staging.endpoint_name or (
            f"{self.endpoint_name[: MAX_ENDPOINT_NAME - len(suffix)].rstrip('-')}{suffix}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
