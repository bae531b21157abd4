"""mlcicd.yaml: the pipeline definition, its schema and its loading.

    schema.py    the schema: frozen dataclasses, one per section, with their defaults
    load.py      ``load_config`` / ``parse_config``: the YAML walked into the schema
    checks.py    the checks a type cannot express, SageMaker's limits among them
    infrastructure.py  autoscaling, serverless, api, network and spot: ranges, SageMaker's refusals
    processing.py  ``processing:`` as a graph: references, order, phases and their checks
    bounds.py    the range checks the three above share: one wording for each kind of bound
    backend.py   ``with_backend``: one run on local or AWS, filled from the stack's outputs

The schema is the dataclasses of schema.py; ``load_config`` walks the YAML against their
type hints, so an unknown key, a wrong type or a bad value fails with the file, the key path
(``train.hyperparameters.C``) and what was expected — before any stage runs.

Import from here, ``mlcicd.config``: the modules are how it is laid out, not its interface.
"""

from __future__ import annotations

from mlcicd.config.backend import (
    IMAGE_TAG_LENGTH,
    STACK_MODELS_BUCKET_OUTPUT,
    STACK_REPOSITORY_OUTPUT,
    STACK_ROLE_OUTPUT,
    RunBackend,
    with_backend,
)
from mlcicd.config.checks import check_sagemaker_deploy
from mlcicd.config.infrastructure import check_sagemaker_hosting
from mlcicd.config.load import load_config, parse_config
from mlcicd.config.schema import (
    CONFIG_FILE,
    MAX_ENDPOINT_NAME,
    NAME_RE,
    AlarmsConfig,
    ApiConfig,
    ApproveConfig,
    AutoscalingConfig,
    BuildConfig,
    CanaryConfig,
    ChallengerConfig,
    Config,
    DataCaptureConfig,
    DeployConfig,
    ExplainConfig,
    GateConfig,
    HyperparameterValue,
    ImageConfig,
    LinearConfig,
    MetricDefinition,
    MonitorConfig,
    NetworkConfig,
    ProcessingStepConfig,
    ServerlessConfig,
    ServiceConfig,
    ShadowConfig,
    StoreConfig,
    Threshold,
    ThrottleConfig,
    TrainConfig,
    VariantConfig,
)

__all__ = [
    "CONFIG_FILE",
    "IMAGE_TAG_LENGTH",
    "MAX_ENDPOINT_NAME",
    "NAME_RE",
    "STACK_MODELS_BUCKET_OUTPUT",
    "STACK_REPOSITORY_OUTPUT",
    "STACK_ROLE_OUTPUT",
    "AlarmsConfig",
    "ApiConfig",
    "ApproveConfig",
    "AutoscalingConfig",
    "BuildConfig",
    "CanaryConfig",
    "ChallengerConfig",
    "Config",
    "DataCaptureConfig",
    "DeployConfig",
    "ExplainConfig",
    "GateConfig",
    "HyperparameterValue",
    "ImageConfig",
    "LinearConfig",
    "MetricDefinition",
    "MonitorConfig",
    "NetworkConfig",
    "ProcessingStepConfig",
    "RunBackend",
    "ServerlessConfig",
    "ServiceConfig",
    "ShadowConfig",
    "StoreConfig",
    "Threshold",
    "ThrottleConfig",
    "TrainConfig",
    "VariantConfig",
    "check_sagemaker_deploy",
    "check_sagemaker_hosting",
    "load_config",
    "parse_config",
    "with_backend",
]
