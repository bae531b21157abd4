"""mlcicd.yaml: the pipeline definition, its schema and its loading.

The schema is the dataclasses below; ``load_config`` walks the YAML against their type
hints, so an unknown key, a wrong type or a bad value fails with the file, the key path
(``train.hyperparameters.C``) and what was expected — before any stage runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcicd.errors import ConfigError

CONFIG_FILE = "mlcicd.yaml"

# SageMaker's resource-name pattern (training jobs, endpoints, model package groups).
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# An endpoint config is named "<endpoint>-v<version>-<digest>" within SageMaker's 63
# characters, and must start with the whole endpoint name (the IAM policies' prefix).
MAX_ENDPOINT_NAME = 50
HyperparameterValue = str | int | float | bool


@dataclass(frozen=True)
class BuildConfig:
    requirements: str = "requirements.txt"
    test_requirements: tuple[str, ...] = ()
    test: str | None = None
    timeout: int = 1800


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str


@dataclass(frozen=True)
class TrainConfig:
    backend: Literal["local", "sagemaker"] = "local"
    source_dir: str = "src"
    entry_point: str = "train.py"
    hyperparameters: dict[str, HyperparameterValue] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    max_runtime: int = 86400
    metric_definitions: tuple[MetricDefinition, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    # SageMaker backend (ignored by the local one).
    image: str | None = None
    role: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    use_spot: bool = False
    max_wait: int | None = None
    output_path: str | None = None


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
    remote: str = "origin"  # fetched on a push; the webhook payload's clone URL if absent
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
class DeployConfig:
    backend: Literal["local", "sagemaker"] = "local"
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
    # SageMaker backend (ignored by the local one).
    instance_type: str = "ml.m5.large"
    instance_count: int = 1


@dataclass(frozen=True)
class StoreConfig:
    """Where artifacts go: a local directory (default: the project's state dir) or s3://."""

    uri: str | None = None
    artifacts_bucket: str = "ml-cicd-pipeline-artifacts"
    models_bucket: str = "ml-cicd-pipeline-models"


@dataclass(frozen=True)
class MonitorConfig:
    """Data-quality monitoring in SageMaker Model Monitor's terms (docs/monitor.md): a
    baseline from the training channel when a model is registered, checked by
    ``mlcicd monitor check`` against what the endpoint captured."""

    channel: str | None = None  # the training channel the baseline reads; default: training, or the only one
    label: str | None = None  # a column that is not a feature: its header name, or _c0, _c1… without a header
    drift_threshold: float = 0.1  # baseline_drift_check: a distribution distance above this is a violation
    comparison_method: Literal["Robust", "Simple"] = "Robust"  # constraints.json's comparison_method


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

    @property
    def endpoint_name(self) -> str:
        return self.deploy.endpoint_name or f"{self.pipeline}-endpoint"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- one run's backends (`mlcicd run --backend aws|local`) ---------------------------------

RunBackend = Literal["aws", "local"]
# The outputs of the stack (`mlcicd aws deploy`) that fill what --backend aws needs.
STACK_ROLE_OUTPUT = "SageMakerRoleArn"
STACK_MODELS_BUCKET_OUTPUT = "ModelsBucketName"
STACK_REPOSITORY_OUTPUT = "RepositoryUri"
IMAGE_TAG_LENGTH = 12  # buildspec.yml tags the image with the commit's first 12 digits


def with_backend(
    config: Config,
    backend: RunBackend,
    *,
    stack_outputs: Mapping[str, str] | None = None,
    commit: str | None = None,
    source: str = CONFIG_FILE,
) -> Config:
    """``config`` with every stage on ``backend`` — a new Config; ``config`` is unchanged.

    ``local`` runs training and the endpoint on this machine. ``aws`` sets ``train.backend``
    and ``deploy.backend`` to ``sagemaker``, which needs ``train.image``, ``train.role`` and
    ``store.uri`` on S3: what the config leaves unset is taken from ``stack_outputs`` (the
    outputs of the stack ``mlcicd aws deploy`` made) — ``SageMakerRoleArn`` → ``train.role``,
    ``ModelsBucketName`` → ``store.uri`` (``s3://<bucket>``), ``RepositoryUri`` and the
    ``commit`` being run → ``train.image`` (``<uri>:<commit[:12]>``, the tag buildspec.yml
    gives the image it builds). Whatever is still missing is one ConfigError naming every
    missing key. The result is validated as a loaded config is.
    """
    if backend == "local":
        result = dataclasses.replace(
            config,
            train=dataclasses.replace(config.train, backend="local"),
            deploy=dataclasses.replace(config.deploy, backend="local"),
        )
        _check_semantics(result, source)
        return result
    outputs = stack_outputs or {}
    train, store = config.train, config.store
    role = train.role or outputs.get(STACK_ROLE_OUTPUT) or None
    uri = store.uri
    if uri is None and outputs.get(STACK_MODELS_BUCKET_OUTPUT):
        uri = f"s3://{outputs[STACK_MODELS_BUCKET_OUTPUT]}"
    image = train.image
    if not image and outputs.get(STACK_REPOSITORY_OUTPUT) and commit:
        image = f"{outputs[STACK_REPOSITORY_OUTPUT]}:{commit[:IMAGE_TAG_LENGTH]}"
    missing = [key for key, value in (("train.image", image), ("train.role", role), ("store.uri", uri)) if not value]
    if missing:
        hint = (
            f"the stack's outputs hold none of them ({STACK_REPOSITORY_OUTPUT}, {STACK_ROLE_OUTPUT}, "
            f"{STACK_MODELS_BUCKET_OUTPUT}): is it the stack `mlcicd aws deploy` made?"
            if stack_outputs is not None
            else "set them in mlcicd.yaml, or pass --stack-name NAME to take them from the stack "
            "`mlcicd aws deploy` made"
        )
        raise ConfigError(
            f"--backend aws (SageMaker) needs {', '.join(missing)}, not set", path=source, hint=hint
        )
    if uri is None or not uri.startswith("s3://"):
        raise ConfigError(
            f"--backend aws keeps artifacts on S3; this is not an s3:// URI: {uri!r}",
            path=source,
            key="store.uri",
            hint="set store.uri: s3://BUCKET[/PREFIX], or leave it unset and pass --stack-name NAME",
        )
    result = dataclasses.replace(
        config,
        train=dataclasses.replace(train, backend="sagemaker", image=image, role=role),
        deploy=dataclasses.replace(config.deploy, backend="sagemaker"),
        store=dataclasses.replace(store, uri=uri),
    )
    _check_semantics(result, source)
    return result


# --- loading ----------------------------------------------------------------------------

_THRESHOLD_RE = re.compile(r"^\s*(>=|<=|==|>|<)?\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def load_config(project_dir: Path) -> Config:
    """Read and validate ``<project_dir>/mlcicd.yaml``."""
    path = project_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            "file not found",
            path=str(path),
            hint="run `mlcicd init` to create one, or pass the project directory",
        )
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))


def parse_config(text: str, *, source: str = CONFIG_FILE) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", path=source) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings at the top level", path=source)
    data = dict(data)
    if "gate" in data:
        data["gate"] = _gate_to_thresholds(data["gate"], source)
    if isinstance(data.get("approve"), str):  # `approve: manual` is `approve: {mode: manual}`
        data["approve"] = {"mode": data["approve"]}
    config: Config = _build(Config, data, "", source)
    _check_semantics(config, source)
    return config


def _gate_to_thresholds(raw: Any, source: str) -> dict[str, Any]:
    """``gate: {accuracy: ">= 0.85"}`` → ``{"thresholds": [...]}``; a bare number means ``>=``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"expected a mapping of metric: threshold (e.g. accuracy: \">= 0.85\"), got {_kind(raw)}",
            path=source,
            key="gate",
        )
    thresholds = []
    challenger = raw.get("challenger")
    for metric, spec in raw.items():
        if metric == "challenger":
            continue
        key = f"gate.{metric}"
        if isinstance(spec, bool) or not isinstance(spec, int | float | str):
            raise ConfigError(
                f"expected a threshold like \">= 0.85\", got {_kind(spec)}", path=source, key=key
            )
        match = _THRESHOLD_RE.match(str(spec))
        if not match:
            raise ConfigError(
                f"cannot read threshold {spec!r}; write it as \"OP NUMBER\" with OP one of >=, >, <=, <, ==",
                path=source,
                key=key,
            )
        thresholds.append({"metric": str(metric), "op": match.group(1) or ">=", "value": float(match.group(2))})
    return {"thresholds": thresholds, **({"challenger": challenger} if challenger is not None else {})}


def _build(cls: type[Any], data: Any, keypath: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {_kind(data)}", path=source, key=keypath or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{keypath}.{key}" if keypath else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(fields)}"
            raise ConfigError("unknown key", path=source, key=sub, hint=hint)
        kwargs[key] = _coerce(hints[key], value, sub, source)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            sub = f"{keypath}.{name}" if keypath else name
            raise ConfigError("required key is missing", path=source, key=sub)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, keypath: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, keypath, source)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # Optional[X]: X's own error names the key that is wrong
            raise errors[0]
        expected = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise ConfigError(f"expected {expected}, got {_kind(value)}", path=source, key=keypath)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"expected one of {allowed}, got {value!r}", path=source, key=keypath)
        return value
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type[Any], tp), value, keypath, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {_kind(value)}", path=source, key=keypath)
        return tuple(_coerce(args[0], v, f"{keypath}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {_kind(value)}", path=source, key=keypath)
        return {str(k): _coerce(args[1], v, f"{keypath}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_kind(value)}", path=source, key=keypath)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_kind(value)}", path=source, key=keypath)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_kind(value)}", path=source, key=keypath)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_kind(value)}", path=source, key=keypath)
        return value
    raise TypeError(f"config schema uses unsupported type {tp!r} at {keypath}")  # a bug in the schema


def _check_semantics(config: Config, source: str) -> None:
    for key, name in (("pipeline", config.pipeline), ("deploy.endpoint_name", config.endpoint_name)):
        if not NAME_RE.match(name):
            raise ConfigError(
                f"{name!r} is not a valid name: use letters, digits and hyphens, at most 63 characters",
                path=source,
                key=key,
            )
    if len(config.endpoint_name) > MAX_ENDPOINT_NAME:
        explicit = config.deploy.endpoint_name is not None
        raise ConfigError(
            f"the endpoint name {config.endpoint_name!r} has {len(config.endpoint_name)} characters; "
            f"at most {MAX_ENDPOINT_NAME}, so its endpoint configs' names (<endpoint>-v<version>-<digest>) "
            "fit in SageMaker's 63",
            path=source,
            key="deploy.endpoint_name" if explicit else "pipeline",
            hint="shorten deploy.endpoint_name" if explicit
            else "it is <pipeline>-endpoint: set a shorter deploy.endpoint_name, or shorten pipeline",
        )
    positive = {
        "train.max_runtime": config.train.max_runtime,
        "train.instance_count": config.train.instance_count,
        "deploy.workers": config.deploy.workers,
        "deploy.instance_count": config.deploy.instance_count,
        "build.timeout": config.build.timeout,
    }
    for key, number in positive.items():
        if number < 1:
            raise ConfigError(f"must be at least 1, got {number}", path=source, key=key)
    _check_deploy(config.deploy, source)
    if config.deploy.port is not None and not 0 <= config.deploy.port <= 65535:
        raise ConfigError(f"not a TCP port: {config.deploy.port}", path=source, key="deploy.port")
    for i, definition in enumerate(config.train.metric_definitions):
        key = f"train.metric_definitions[{i}].regex"
        try:
            pattern = re.compile(definition.regex)
        except re.error as exc:
            raise ConfigError(f"invalid regular expression: {exc}", path=source, key=key) from exc
        if pattern.groups < 1:
            raise ConfigError(
                "the regex needs one capture group around the number, e.g. accuracy=([0-9.]+)",
                path=source,
                key=key,
            )
    for name in config.train.channels:
        if not re.match(r"^[A-Za-z0-9._-]+$", name):
            raise ConfigError("channel names use letters, digits, '.', '_' and '-'", path=source, key=f"train.channels.{name}")
    defined = {d.name for d in config.train.metric_definitions}
    for threshold in config.gate.thresholds:
        if defined and threshold.metric not in defined:
            raise ConfigError(
                f"the gate checks {threshold.metric!r}, but train.metric_definitions does not define it",
                path=source,
                key=f"gate.{threshold.metric}",
                hint=f"defined metrics: {', '.join(sorted(defined))}",
            )
    if not 1 <= config.service.port <= 65535:
        raise ConfigError(f"not a TCP port: {config.service.port}", path=source, key="service.port")
    if config.service.poll_interval is not None and config.service.poll_interval <= 0:
        raise ConfigError("must be a positive number of seconds", path=source, key="service.poll_interval")
    if config.approve.timeout is not None and config.approve.timeout <= 0:
        raise ConfigError("must be a positive number of seconds", path=source, key="approve.timeout")
    for i, url in enumerate(config.service.notify):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"expected an http(s) URL, got {url!r}", path=source, key=f"service.notify[{i}]")
    if config.store.uri is not None and not config.store.uri.startswith(("s3://", "file://", "/")):
        raise ConfigError(
            f"expected an s3:// URI or a local path, got {config.store.uri!r}", path=source, key="store.uri"
        )
    _check_monitor(config, source)


def _check_monitor(config: Config, source: str) -> None:
    monitor = config.monitor
    if not 0 < monitor.drift_threshold <= 1:
        raise ConfigError(
            f"a distribution distance is between 0 and 1; expected a threshold above 0 and at most 1, "
            f"got {monitor.drift_threshold:g}",
            path=source,
            key="monitor.drift_threshold",
        )
    channels = config.train.channels
    if monitor.channel is not None and monitor.channel not in channels:
        raise ConfigError(
            f"{monitor.channel!r} is not a training channel",
            path=source,
            key="monitor.channel",
            hint=f"channels: {', '.join(channels)}" if channels else "train.channels names none",
        )
    if monitor.label is not None and not monitor.label.strip():
        raise ConfigError("expected a column name, got an empty string", path=source, key="monitor.label")


def _check_deploy(deploy: DeployConfig, source: str) -> None:
    def fail(key: str, message: str) -> None:
        raise ConfigError(message, path=source, key=f"deploy.{key}")

    for key, value in (("canary.percent", deploy.canary.percent), ("linear.step_percent", deploy.linear.step_percent)):
        if not 0 < value <= 100:
            fail(key, f"must be a percentage above 0 and at most 100, got {value:g}")
    for key, value in (
        ("canary.bake_seconds", deploy.canary.bake_seconds), ("linear.interval_seconds", deploy.linear.interval_seconds),
        ("alarms.bake_seconds", deploy.alarms.bake_seconds),
    ):
        if value < 0:
            fail(key, f"must not be negative, got {value:g}")
    for key, value in (("header_timeout", deploy.header_timeout), ("body_timeout", deploy.body_timeout)):
        if value <= 0:
            fail(key, f"must be a positive number of seconds, got {value:g}")
    rate = deploy.alarms.max_5xx_rate
    if rate is not None and not 0 <= rate <= 1:
        fail("alarms.max_5xx_rate", f"a rate between 0 and 1 (0.01 is 1%), got {rate:g}")
    if deploy.alarms.max_p99_latency_ms is not None and deploy.alarms.max_p99_latency_ms <= 0:
        fail("alarms.max_p99_latency_ms", "must be a positive number of milliseconds")
    if not 0 <= deploy.data_capture.sampling_percentage <= 100:
        fail("data_capture.sampling_percentage", "must be between 0 and 100")
    names = [v.name for v in deploy.variants]
    for i, variant in enumerate(deploy.variants):
        if not NAME_RE.match(variant.name):
            fail(f"variants[{i}].name", f"{variant.name!r} is not a valid name: letters, digits and hyphens")
        if names.count(variant.name) > 1:
            fail(f"variants[{i}].name", f"{variant.name!r} is used by more than one variant")
        if variant.weight < 0:
            fail(f"variants[{i}].weight", f"must not be negative, got {variant.weight:g}")
        if isinstance(variant.model, str) and variant.model != "latest":
            fail(f"variants[{i}].model", f"expected 'latest' or a model package version, got {variant.model!r}")
    if deploy.variants and not any(v.weight > 0 for v in deploy.variants):
        fail("variants", "at least one variant needs a weight above 0")
    if deploy.shadow is not None:
        if deploy.shadow.name in names:
            fail("shadow.name", f"{deploy.shadow.name!r} is also a production variant's name")
        if isinstance(deploy.shadow.model, str) and deploy.shadow.model != "latest":
            fail("shadow.model", f"expected 'latest' or a model package version, got {deploy.shadow.model!r}")
    if deploy.backend == "sagemaker":
        check_sagemaker_deploy(deploy, source)


# SageMaker's limits: WaitIntervalInSeconds, CanarySize and LinearStepSize (CAPACITY_PERCENT),
# and an alarm's metric math reads at most 10 metrics, two per variant (mlcicd/aws/alarms.py).
_SAGEMAKER_MAX_WAIT = 3600
_SAGEMAKER_CANARY = (1, 50)
_SAGEMAKER_LINEAR_STEP = (10, 50)
_SAGEMAKER_ALARMED_VARIANTS = 5


def check_sagemaker_deploy(deploy: DeployConfig, source: str = CONFIG_FILE) -> None:
    """What SageMaker accepts of ``deploy:`` (checked before a run starts, not by a failed
    UpdateEndpoint after training): for ``deploy.backend: sagemaker``, and for the stack,
    whose pipeline deploys to SageMaker whatever the backend says."""

    def fail(key: str, message: str, hint: str | None = None) -> None:
        raise ConfigError(message, path=source, key=f"deploy.{key}", hint=hint)

    def whole(value: float) -> bool:
        return float(value).is_integer()

    wait_key, wait = {
        "canary": ("canary.bake_seconds", deploy.canary.bake_seconds),
        "linear": ("linear.interval_seconds", deploy.linear.interval_seconds),
    }.get(deploy.strategy, ("alarms.bake_seconds", deploy.alarms.bake_seconds))
    if not whole(wait) or wait > _SAGEMAKER_MAX_WAIT:
        fail(wait_key, f"SageMaker waits whole seconds, at most {_SAGEMAKER_MAX_WAIT} (WaitIntervalInSeconds), "
             f"got {wait:g}")  # fmt: skip
    for strategy, key, value, (low, high), what in (
        ("canary", "canary.percent", deploy.canary.percent, _SAGEMAKER_CANARY, "CanarySize"),
        ("linear", "linear.step_percent", deploy.linear.step_percent, _SAGEMAKER_LINEAR_STEP, "LinearStepSize"),
    ):
        if deploy.strategy == strategy and (not whole(value) or not low <= value <= high):
            fail(key, f"SageMaker's {what} is a whole percentage of the instances from {low} to {high}, got {value:g}")
    if deploy.shadow is not None and len(deploy.variants) > 1:
        fail("shadow", f"SageMaker puts a shadow variant beside one production variant, and deploy.variants "
             f"has {len(deploy.variants)}", hint="keep one variant, or drop the shadow")  # fmt: skip
    alarmed = deploy.alarms.max_5xx_rate is not None or deploy.alarms.max_p99_latency_ms is not None
    if alarmed and len(deploy.variants) > _SAGEMAKER_ALARMED_VARIANTS:
        fail("alarms", f"on SageMaker, alarms watch at most {_SAGEMAKER_ALARMED_VARIANTS} variants (an alarm reads "
             f"at most 10 metrics), and deploy.variants has {len(deploy.variants)}")  # fmt: skip
    capture = deploy.data_capture
    if capture.enabled and not whole(capture.sampling_percentage):
        fail("data_capture.sampling_percentage", "SageMaker samples a whole percentage (InitialSamplingPercentage), "
             f"got {capture.sampling_percentage:g}")  # fmt: skip
    if capture.enabled and not capture.capture:
        fail("data_capture.capture", "SageMaker captures input, output or both: name at least one")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"{type(value).__name__} ({value!r})"


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return "a list"
    return getattr(tp, "__name__", str(tp))
