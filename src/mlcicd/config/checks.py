"""The checks a type cannot express: names, ranges, cross-references, and what SageMaker accepts.

``_check_semantics`` validates every config that ``load_config``/``parse_config`` build
and every one ``with_backend`` returns; ``check_sagemaker_deploy`` is also called on its own
for the stack, whose pipeline deploys to SageMaker whatever ``deploy.backend`` says.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from mlcicd.config.bounds import at_least, not_negative, positive, within
from mlcicd.config.infrastructure import check_infrastructure, check_sagemaker_hosting
from mlcicd.config.processing import check_processing, report_names
from mlcicd.config.schema import (
    CONFIG_FILE,
    MAX_ENDPOINT_NAME,
    MIN_MONITOR_SCHEDULE,
    NAME_RE,
    Config,
    DeployConfig,
)
from mlcicd.durations import format_duration
from mlcicd.errors import ConfigError

# explain.rows: above this, an exact explainer's report takes minutes and a sampling one's hours.
MAX_EXPLAIN_ROWS = 10_000
# Lowers monitor.schedule's floor (seconds): the tests' service checks every few seconds.
# Not for production use: a check reads its whole window into memory and writes reports.
MIN_SCHEDULE_ENV = "MLCICD_MONITOR_MIN_SCHEDULE"


def _check_semantics(config: Config, source: str) -> None:
    for key, name in (
        ("pipeline", config.pipeline),
        ("deploy.endpoint_name", config.endpoint_name),
    ):
        if not NAME_RE.match(name):
            raise ConfigError(
                f"{name!r} is not a valid name: use letters, digits and hyphens, at most 63 "
                "characters",
                path=source,
                key=key,
            )
    if len(config.endpoint_name) > MAX_ENDPOINT_NAME:
        explicit = config.deploy.endpoint_name is not None
        raise ConfigError(
            f"the endpoint name {config.endpoint_name!r} has {len(config.endpoint_name)} "
            "characters; "
            f"at most {MAX_ENDPOINT_NAME}, so its endpoint configs' names "
            "(<endpoint>-v<version>-<digest>) "
            "fit in SageMaker's 63",
            path=source,
            key="deploy.endpoint_name" if explicit else "pipeline",
            hint="shorten deploy.endpoint_name"
            if explicit
            else "it is <pipeline>-endpoint: set a shorter deploy.endpoint_name, or shorten "
            "pipeline",
        )
    counts = {
        "train.max_runtime": config.train.max_runtime,
        "train.instance_count": config.train.instance_count,
        "deploy.workers": config.deploy.workers,
        "deploy.instance_count": config.deploy.instance_count,
        "build.timeout": config.build.timeout,
    }
    for key, number in counts.items():
        at_least(source, key, number, 1)
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
            raise ConfigError(
                "channel names use letters, digits, '.', '_' and '-'",
                path=source,
                key=f"train.channels.{name}",
            )
    check_processing(config, source)
    defined = {d.name for d in config.train.metric_definitions}
    reports = report_names(config)
    for threshold in config.gate.thresholds:
        in_report = "." in threshold.metric and threshold.metric.split(".", 1)[0] in reports
        if defined and not in_report and threshold.metric not in defined:
            raise ConfigError(
                f"the gate checks {threshold.metric!r}, but train.metric_definitions does not "
                "define it",
                path=source,
                key=f"gate.{threshold.metric}",
                hint=f"defined metrics: {', '.join(sorted(defined))}",
            )
    if not 1 <= config.service.port <= 65535:
        raise ConfigError(f"not a TCP port: {config.service.port}", path=source, key="service.port")
    seconds = "number of seconds"
    positive(source, "service.poll_interval", config.service.poll_interval, seconds)
    positive(source, "approve.timeout", config.approve.timeout, seconds)
    for i, url in enumerate(config.service.notify):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"expected an http(s) URL, got {url!r}", path=source, key=f"service.notify[{i}]"
            )
    if config.store.uri is not None and not config.store.uri.startswith(("s3://", "file://", "/")):
        raise ConfigError(
            f"expected an s3:// URI or a local path, got {config.store.uri!r}",
            path=source,
            key="store.uri",
        )
    _check_monitor(config, source)
    _check_staging(config, source)
    _check_transform(config, source)
    _check_explain(config, source)
    _check_own_jobs(config, source)
    if config.deploy.backend == "sagemaker":  # SageMaker's refusals name the key to drop
        check_sagemaker_hosting(config, source)
    check_infrastructure(config, source)


def _check_explain(config: Config, source: str) -> None:
    """``explain:``: a row count SHAP can afford, and a baseline that names something."""
    explain = config.explain
    if explain is None:
        return
    rows = f"expected between 1 and {MAX_EXPLAIN_ROWS} rows"
    within(source, "explain.rows", explain.rows, 1, MAX_EXPLAIN_ROWS, rows)
    if not explain.baseline.strip():
        raise ConfigError(
            "expected 'training' or a CSV file in the commit, got an empty string",
            path=source,
            key="explain.baseline",
        )
    baseline = PurePosixPath(explain.baseline)
    if baseline.is_absolute() or ".." in baseline.parts:
        # A pushed commit's mlcicd.yaml must not make the register stage read the machine's files.
        raise ConfigError(
            f"expected a path inside the commit, got {explain.baseline!r}",
            path=source,
            key="explain.baseline",
            hint="give the CSV's path relative to mlcicd.yaml, without '..'",
        )
    if explain.online and config.deploy.backend == "container":
        raise ConfigError(
            "a container endpoint does not serve explanations",
            path=source,
            key="explain.online",
            hint="use deploy.backend: local or sagemaker, or set explain.online: false",
        )


def _check_own_jobs(config: Config, source: str) -> None:
    """The stack's data check and explain jobs: an instance SageMaker names, a time limit."""
    for section, job in (("monitor", config.monitor), ("explain", config.explain)):
        if job is None:
            continue
        if not job.instance_type.startswith("ml.") or len(job.instance_type) < 4:
            raise ConfigError(
                f"expected a SageMaker instance type, got {job.instance_type!r}",
                path=source,
                key=f"{section}.instance_type",
                hint="e.g. ml.m5.large (the default), ml.m5.xlarge",
            )
        at_least(source, f"{section}.max_runtime", job.max_runtime, 1, " second")


def _check_transform(config: Config, source: str) -> None:
    """What a type cannot say of ``transform:`` (its filters are read when the stage runs)."""
    transform = config.transform
    if transform is None:
        return
    for key in ("input", "output"):
        if not getattr(transform, key).strip():
            raise ConfigError("must name a file or directory", path=source, key=f"transform.{key}")
    if transform.backend not in ("local", "sagemaker"):
        raise ConfigError(
            f"transform backend {transform.backend!r} is not available in this version",
            path=source,
            key="transform.backend",
            hint="use backend: local or sagemaker",
        )
    payload = "must be more than 0 and at most 100 (MB), as SageMaker's"
    within(
        source, "transform.max_payload_mb", transform.max_payload_mb, 0, 100, payload, above=True
    )
    workers = "must be 1 to 64 workers"
    within(source, "transform.max_concurrent", transform.max_concurrent, 1, 64, workers)


def _check_staging(config: Config, source: str) -> None:
    staging = config.staging
    name = config.staging_endpoint_name
    if staging is None or name is None:
        return
    explicit = staging.endpoint_name is not None
    key = "staging.endpoint_name" if explicit else "deploy.endpoint_name"
    if not NAME_RE.match(name) or len(name) > MAX_ENDPOINT_NAME:
        raise ConfigError(
            f"the staging endpoint name {name!r} is not a valid endpoint name: letters, digits "
            f"and hyphens, at most {MAX_ENDPOINT_NAME} characters",
            path=source,
            key=key,
            hint=None if explicit else "it is <endpoint>-staging: set staging.endpoint_name",
        )
    if name == config.endpoint_name:
        raise ConfigError(
            f"the staging endpoint {name!r} is the production endpoint: staging would replace "
            "the model production serves",
            path=source,
            key="staging.endpoint_name",
            hint="give staging its own name, or leave it out for <endpoint>-staging",
        )
    at_least(source, "staging.timeout", staging.timeout, 1, " second")
    if staging.test is not None and not staging.test.strip():
        raise ConfigError(
            "is empty: give the command that runs the endpoint tests, or leave it out",
            path=source,
            key="staging.test",
        )
    load = staging.load
    if load is None:
        return
    at_least(source, "staging.load.requests", load.requests, 1)
    at_least(source, "staging.load.concurrency", load.concurrency, 1)
    positive(source, "staging.load.p99_ms", load.p99_ms, "number of milliseconds")
    fraction = "must be a fraction between 0.0 and 1.0"
    within(source, "staging.load.max_error_rate", load.max_error_rate, 0, 1, fraction)
    if load.payload is None and config.deploy.sample is None:
        raise ConfigError(
            "the load check has nothing to send",
            path=source,
            key="staging.load.payload",
            hint="give a request body file here, or set deploy.sample",
        )


def _check_monitor(config: Config, source: str) -> None:
    monitor = config.monitor
    distance = (
        "a distribution distance is between 0 and 1; expected a threshold above 0 and at most 1"
    )
    within(source, "monitor.drift_threshold", monitor.drift_threshold, 0, 1, distance, above=True)
    channels = config.train.channels
    if monitor.channel is not None and monitor.channel not in channels:
        raise ConfigError(
            f"{monitor.channel!r} is not a training channel",
            path=source,
            key="monitor.channel",
            hint=f"channels: {', '.join(channels)}" if channels else "train.channels names none",
        )
    if monitor.label is not None and not monitor.label.strip():
        raise ConfigError(
            "expected a column name, got an empty string", path=source, key="monitor.label"
        )
    if monitor.schedule is not None:
        _check_schedule(config, source)


def _check_schedule(config: Config, source: str) -> None:
    schedule, capture = config.monitor.schedule, config.deploy.data_capture
    seconds = config.monitor.schedule_seconds
    if seconds is None:
        raise ConfigError(
            f"expected a duration like 1h, 30m or 1h30m, got {schedule!r}",
            path=source,
            key="monitor.schedule",
        )
    floor = float(os.environ.get(MIN_SCHEDULE_ENV) or MIN_MONITOR_SCHEDULE)
    if seconds <= 0 or seconds < floor:
        raise ConfigError(
            f"the shortest schedule is {format_duration(floor)}, got {schedule!r}",
            path=source,
            key="monitor.schedule",
            hint="SageMaker's is hourly: 1h",
        )
    if not capture.enabled:
        raise ConfigError(
            "a scheduled check reads the endpoint's captured requests, and deploy.data_capture "
            "is not enabled",
            path=source,
            key="monitor.schedule",
            hint="set deploy.data_capture: {enabled: true}, or drop monitor.schedule",
        )
    if "input" not in capture.capture:
        raise ConfigError(
            "a scheduled check reads the endpoint's captured requests, and deploy.data_capture "
            "captures responses only",
            path=source,
            key="monitor.schedule",
            hint="add input to deploy.data_capture.capture, or drop monitor.schedule",
        )


def _check_deploy(deploy: DeployConfig, source: str) -> None:
    def fail(key: str, message: str) -> None:
        raise ConfigError(message, path=source, key=f"deploy.{key}")

    percentage = "must be a percentage above 0 and at most 100"
    within(source, "deploy.canary.percent", deploy.canary.percent, 0, 100, percentage, above=True)
    step = deploy.linear.step_percent
    within(source, "deploy.linear.step_percent", step, 0, 100, percentage, above=True)
    not_negative(source, "deploy.canary.bake_seconds", deploy.canary.bake_seconds)
    not_negative(source, "deploy.linear.interval_seconds", deploy.linear.interval_seconds)
    not_negative(source, "deploy.alarms.bake_seconds", deploy.alarms.bake_seconds)
    for key in ("header_timeout", "body_timeout", "model_timeout"):
        positive(source, f"deploy.{key}", getattr(deploy, key), "number of seconds")
    rate = "a rate between 0 and 1 (0.01 is 1%)"
    within(source, "deploy.alarms.max_5xx_rate", deploy.alarms.max_5xx_rate, 0, 1, rate)
    p99 = deploy.alarms.max_p99_latency_ms
    positive(source, "deploy.alarms.max_p99_latency_ms", p99, "number of milliseconds")
    sampling = deploy.data_capture.sampling_percentage
    percent = "must be between 0 and 100"
    within(source, "deploy.data_capture.sampling_percentage", sampling, 0, 100, percent)
    names = [v.name for v in deploy.variants]
    for i, variant in enumerate(deploy.variants):
        if not NAME_RE.match(variant.name):
            fail(
                f"variants[{i}].name",
                f"{variant.name!r} is not a valid name: letters, digits and hyphens",
            )
        if names.count(variant.name) > 1:
            fail(f"variants[{i}].name", f"{variant.name!r} is used by more than one variant")
        not_negative(source, f"deploy.variants[{i}].weight", variant.weight)
        if isinstance(variant.model, str) and variant.model != "latest":
            fail(
                f"variants[{i}].model",
                f"expected 'latest' or a model package version, got {variant.model!r}",
            )
    if deploy.variants and not any(v.weight > 0 for v in deploy.variants):
        fail("variants", "at least one variant needs a weight above 0")
    if deploy.shadow is not None:
        if deploy.shadow.name in names:
            fail("shadow.name", f"{deploy.shadow.name!r} is also a production variant's name")
        if isinstance(deploy.shadow.model, str) and deploy.shadow.model != "latest":
            fail(
                "shadow.model",
                f"expected 'latest' or a model package version, got {deploy.shadow.model!r}",
            )
    if deploy.backend == "sagemaker":
        check_sagemaker_deploy(deploy, source)
    if deploy.backend == "container":
        _check_container_deploy(deploy, source)


def _check_container_deploy(deploy: DeployConfig, source: str) -> None:
    """What one container running the image's ``serve`` can do (docs/containers.md): one
    model, all traffic, switched all at once."""
    unsupported = [
        ("variants", len(deploy.variants) > 1, "more than one variant"),
        ("shadow", deploy.shadow is not None, "a shadow variant"),
        ("strategy", deploy.strategy != "all_at_once", f"strategy {deploy.strategy}"),
        ("data_capture.enabled", deploy.data_capture.enabled, "data capture"),
        ("autoscaling", deploy.autoscaling is not None, "autoscaling its workers"),
    ]
    for key, present, what in unsupported:
        if present:
            raise ConfigError(
                f"deploy.backend: container serves one model from one container: {what} is not "
                "supported",
                path=source,
                key=f"deploy.{key}",
                hint="use backend: local for it, or remove the setting",
            )


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
        fail(
            wait_key,
            f"SageMaker waits whole seconds, at most {_SAGEMAKER_MAX_WAIT} "
            "(WaitIntervalInSeconds), "
            f"got {wait:g}",
        )
    for strategy, key, value, (low, high), what in (
        ("canary", "canary.percent", deploy.canary.percent, _SAGEMAKER_CANARY, "CanarySize"),
        (
            "linear",
            "linear.step_percent",
            deploy.linear.step_percent,
            _SAGEMAKER_LINEAR_STEP,
            "LinearStepSize",
        ),
    ):
        if deploy.strategy == strategy and (not whole(value) or not low <= value <= high):
            fail(
                key,
                f"SageMaker's {what} is a whole percentage of the instances from {low} to "
                f"{high}, got {value:g}",
            )
    if deploy.shadow is not None and len(deploy.variants) > 1:
        fail(
            "shadow",
            f"SageMaker puts a shadow variant beside one production variant, and deploy.variants "
            f"has {len(deploy.variants)}",
            hint="keep one variant, or drop the shadow",
        )
    alarmed = deploy.alarms.max_5xx_rate is not None or deploy.alarms.max_p99_latency_ms is not None
    if alarmed and len(deploy.variants) > _SAGEMAKER_ALARMED_VARIANTS:
        fail(
            "alarms",
            f"on SageMaker, alarms watch at most {_SAGEMAKER_ALARMED_VARIANTS} variants (an "
            "alarm reads "
            f"at most 10 metrics), and deploy.variants has {len(deploy.variants)}",
        )
    capture = deploy.data_capture
    if capture.enabled and not whole(capture.sampling_percentage):
        fail(
            "data_capture.sampling_percentage",
            "SageMaker samples a whole percentage (InitialSamplingPercentage), "
            f"got {capture.sampling_percentage:g}",
        )
    if capture.enabled and not capture.capture:
        fail("data_capture.capture", "SageMaker captures input, output or both: name at least one")
