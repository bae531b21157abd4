"""The SageMaker training toolkit's contract, as pure functions.

A script written for SageMaker script mode reads its world from three places, all
produced here exactly as ``sagemaker-training-toolkit`` produces them:

- ``/opt/ml`` (here: any base directory, see :class:`TrainingPaths`) with
  ``input/config/{hyperparameters,resourceconfig,inputdataconfig}.json``;
- the ``SM_*`` environment variables (:func:`training_env_vars`, the toolkit's
  ``Environment.to_env_vars``), among them ``SM_TRAINING_ENV``, the JSON document of the
  toolkit's ``Environment`` (:func:`training_env_document`);
- its arguments, the hyperparameters as ``--name value`` (:func:`hyperparameter_args`, the
  toolkit's ``mapping.to_cmd_args``).

Both the local runner and the in-container entry point (``mlcicd.training.container``)
build the environment from the decoded config files through these functions, so the two
cannot drift apart. Nothing here writes files or reads the process environment.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd.process import exit_reason

# Hyperparameters the SageMaker Python SDK adds for script mode; they configure the toolkit
# and are never passed to the script (params.SAGEMAKER_HYPERPARAMETERS in the toolkit).
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)
SAGEMAKER_PREFIX = "sagemaker_"

DEFAULT_HOST = "algo-1"
DEFAULT_INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_NETWORK_INTERFACE = "eth0"
MASTER_PORT = 7777  # the SDK's ModelTrainer default
# SageMaker keeps the first 1024 characters of output/failure as FailureReason.
FAILURE_REASON_LIMIT = 1024

_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
)


@dataclass(frozen=True)
class TrainingPaths:
    """The ``/opt/ml`` layout under ``base`` (a job directory locally, ``/opt/ml`` in a
    container)."""

    base: Path

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def input_config(self) -> Path:
        return self.input / "config"

    @property
    def input_data(self) -> Path:
        return self.input / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config / "resourceconfig.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config / "inputdataconfig.json"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def output_intermediate(self) -> Path:
        return self.output / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    @property
    def success_file(self) -> Path:
        return self.output / "success"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    def channel(self, name: str) -> Path:
        return self.input_data / name


def split_hyperparameters(
    hyperparameters: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(user, sagemaker)``: SageMaker's own keys (reserved names or ``sagemaker_*``) apart."""
    user: dict[str, Any] = {}
    sagemaker: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key in SAGEMAKER_HYPERPARAMETERS or key.startswith(SAGEMAKER_PREFIX):
            sagemaker[key] = value
        else:
            user[key] = value
    return user, sagemaker


def _decode(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def hyperparameter_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The script's arguments, formatted as the toolkit's ``mapping.to_cmd_args`` does.

    Sorted by name; ``--name`` (``-n`` for a one-letter name); values by ``str()`` — so
    ``True`` is ``"True"`` and ``[1, 2]`` is ``"[1, 2]"`` — except dicts, which become
    ``"k1=v1,k2=v2"``. SageMaker's own keys (``sagemaker_*``) are not arguments.
    """
    user, _ = split_hyperparameters(hyperparameters)
    args: list[str] = []
    for key in sorted(user):
        name = _decode(key)
        args.append(("--" if len(name) > 1 else "-") + name if name else "")
        value = user[key]
        if isinstance(value, Mapping):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_decode(value))
    return args


def env_value(value: Any) -> str:
    """An environment value as the toolkit's ``mapping.to_env_vars`` formats it.

    Strings as they are, ``None`` as ``""``, anything else as compact sorted JSON
    (``True`` is ``"true"``, ``[1, 2]`` is ``"[1,2]"``).
    """
    if isinstance(value, bytes):
        return value.decode("latin1")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def resource_config(
    instance_type: str,
    *,
    host: str = DEFAULT_HOST,
    network_interface_name: str = DEFAULT_NETWORK_INTERFACE,
) -> dict[str, Any]:
    """resourceconfig.json as SageMaker writes it for a single-instance job."""
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": DEFAULT_INSTANCE_GROUP,
        "hosts": [host],
        "instance_groups": [
            {
                "instance_group_name": DEFAULT_INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": [host],
            }
        ],
        "network_interface_name": network_interface_name,
    }


def input_data_config(channel_names: Sequence[str]) -> dict[str, dict[str, str]]:
    """inputdataconfig.json for File-mode channels."""
    return {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in channel_names
    }


def training_env_document(
    paths: TrainingPaths,
    *,
    hyperparameters: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    environ: Mapping[str, str],
    num_cpus: int,
    num_gpus: int = 0,
    num_neurons: int = 0,
) -> dict[str, Any]:
    """The toolkit's ``Environment`` as a dict: the document in ``SM_TRAINING_ENV``.

    ``hyperparameters`` are the decoded contents of hyperparameters.json, SageMaker's own
    keys included; ``environ`` supplies ``SAGEMAKER_PROGRAM``, ``TRAINING_JOB_NAME`` and
    ``SAGEMAKER_TRAINING_MODULE`` when set. The toolkit's quirks are kept on purpose (e.g.
    ``module_dir`` comes from the ``sagemaker_submit_directory`` hyperparameter, the log level
    from ``sagemaker_container_log_level``): the point is to be indistinguishable from it.
    """
    user_hps, sagemaker_hps = split_hyperparameters(hyperparameters)
    framework_params = {
        k: v for k, v in sagemaker_hps.items() if k not in SAGEMAKER_HYPERPARAMETERS
    }

    hosts = list(resource_config["hosts"])
    current_host = resource_config["current_host"]
    current_group = resource_config.get("current_group_name", DEFAULT_INSTANCE_GROUP)
    groups_config: list[Mapping[str, Any]] = list(resource_config.get("instance_groups", []))
    instance_groups = [group["instance_group_name"] for group in groups_config]
    groups_dict = {group["instance_group_name"]: dict(group) for group in groups_config}
    group_hosts = next(
        (list(g["hosts"]) for g in groups_config if g["instance_group_name"] == current_group), []
    )
    distributed = any(framework_params.get(flag, False) for flag in _DISTRIBUTION_FLAGS)
    distribution_groups = framework_params.get(
        "sagemaker_distribution_instance_groups", [current_group] if distributed else []
    )
    if groups_config:
        distribution_hosts = [
            host
            for group in groups_config
            if group["instance_group_name"] in distribution_groups
            for host in group["hosts"]
        ]
    else:
        distribution_hosts = list(hosts)
    master_hostname = distribution_hosts[0] if distribution_hosts else hosts[0]

    program = environ.get("SAGEMAKER_PROGRAM") or None
    user_entry_point = program or sagemaker_hps.get("sagemaker_program")
    module_name = program if program is not None else str(sagemaker_hps.get("sagemaker_program"))
    if module_name.endswith(".py"):
        module_name = module_name[:-3]

    return {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": {name: str(paths.channel(name)) for name in input_data_config},
        "current_host": current_host,
        "current_instance_group": current_group,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(paths.input_config),
        "input_data_config": dict(input_data_config),
        "input_dir": str(paths.input),
        "instance_groups": instance_groups,
        "instance_groups_dict": groups_dict,
        "is_hetero": len(instance_groups) > 1,
        "is_master": current_host == master_hostname,
        # The toolkit reads these from the host (an earlier SM_HP_MP_PARAMETERS, `which
        # smddprun`); a script-mode job has neither, so: from the hyperparameter, and False.
        "is_modelparallel_enabled": user_hps.get("mp_parameters") not in (None, {}, "{}"),
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": environ.get("TRAINING_JOB_NAME"),
        "log_level": sagemaker_hps.get("sagemaker_container_log_level", logging.INFO),
        "master_hostname": master_hostname,
        "model_dir": str(paths.model),
        "module_dir": str(sagemaker_hps.get("sagemaker_submit_directory", paths.code)),
        "module_name": module_name,
        "network_interface_name": resource_config.get(
            "network_interface_name", DEFAULT_NETWORK_INTERFACE
        ),
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": num_neurons,
        "output_data_dir": str(paths.output_data),
        "output_dir": str(paths.output),
        "output_intermediate_dir": str(paths.output_intermediate),
        "resource_config": dict(resource_config),
        "topology": list(resource_config.get("topology", [])),
        "user_entry_point": user_entry_point,
    }


def training_env_vars(
    paths: TrainingPaths,
    *,
    hyperparameters: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    environ: Mapping[str, str],
    num_cpus: int,
    num_gpus: int = 0,
    num_neurons: int = 0,
) -> dict[str, str]:
    """The environment the toolkit gives the script: every ``SM_*`` variable, plus the
    ``CURRENT_HOST``, ``SAGEMAKER_JOB_NAME`` and ``SAGEMAKER_REGION`` it sets on the way.

    Also the few variables only the SageMaker Python SDK's newer ``ModelTrainer`` driver
    sets (``SM_HOST_COUNT``, ``SM_CURRENT_HOST_RANK``, ``SM_MASTER_ADDR``/``PORT``,
    ``SM_INPUT_DATA_DIR``, ``SM_OUTPUT_FAILURE``, and ``SM_HP_LEARNING_RATE`` beside the
    toolkit's ``SM_HP_LEARNING-RATE``), so scripts written for either run; where a name
    exists in both, the toolkit's value is the one set. Arguments as for
    :func:`training_env_document`.
    """
    env = training_env_document(
        paths,
        hyperparameters=hyperparameters,
        resource_config=resource_config,
        input_data_config=input_data_config,
        environ=environ,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        num_neurons=num_neurons,
    )
    user_hps = env["hyperparameters"]
    values: dict[str, Any] = {
        "hosts": env["hosts"],
        "network_interface_name": env["network_interface_name"],
        "hps": user_hps,
        "user_entry_point": env["user_entry_point"],
        "framework_params": env["additional_framework_parameters"],
        "resource_config": env["resource_config"],
        "input_data_config": env["input_data_config"],
        "output_data_dir": env["output_data_dir"],
        "channels": sorted(env["channel_input_dirs"]),
        "current_host": env["current_host"],
        "current_instance_type": env["current_instance_type"],
        "current_instance_group": env["current_instance_group"],
        "current_instance_group_hosts": env["current_instance_group_hosts"],
        "instance_groups": env["instance_groups"],
        "instance_groups_dict": env["instance_groups_dict"],
        "distribution_instance_groups": env["distribution_instance_groups"],
        "is_hetero": env["is_hetero"],
        "module_name": env["module_name"],
        "log_level": env["log_level"],
        "framework_module": env["framework_module"],
        "input_dir": env["input_dir"],
        "input_config_dir": env["input_config_dir"],
        "output_dir": env["output_dir"],
        "num_cpus": env["num_cpus"],
        "num_gpus": env["num_gpus"],
        "num_neurons": env["num_neurons"],
        "model_dir": env["model_dir"],
        "module_dir": env["module_dir"],
        "training_env": env,
        "user_args": hyperparameter_args(user_hps),
        "output_intermediate_dir": env["output_intermediate_dir"],
    }
    if env["topology"]:
        values["topology"] = env["topology"]
    for name, path in env["channel_input_dirs"].items():
        values[f"channel_{name}"] = path
    for key, value in user_hps.items():
        values[f"hp_{key}"] = value

    result = {f"SM_{key.upper()}": env_value(value) for key, value in values.items()}
    hosts = sorted(env["hosts"])
    model_trainer = {
        "SM_HOST_COUNT": len(hosts),
        "SM_CURRENT_HOST_RANK": hosts.index(env["current_host"])
        if env["current_host"] in hosts
        else 0,
        "SM_MASTER_ADDR": env["master_hostname"],
        "SM_MASTER_PORT": MASTER_PORT,
        "SM_INPUT_DATA_DIR": str(paths.input_data),
        "SM_OUTPUT_FAILURE": str(paths.failure_file),
        **{f"SM_HP_{key.replace('-', '_').upper()}": value for key, value in user_hps.items()},
    }
    for name, value in model_trainer.items():
        result.setdefault(name, env_value(value))
    _, sagemaker_hps = split_hyperparameters(hyperparameters)
    result["CURRENT_HOST"] = env["current_host"]
    result["SAGEMAKER_JOB_NAME"] = env_value(sagemaker_hps.get("sagemaker_job_name", ""))
    result["SAGEMAKER_REGION"] = env_value(
        sagemaker_hps.get("sagemaker_region")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION", "")
    )
    return result


def script_mode_env(
    paths: TrainingPaths,
    base: Mapping[str, str],
    *,
    code_dir: Path,
    hyperparameters: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    num_cpus: int,
    num_gpus: int = 0,
) -> dict[str, str]:
    """The script's whole environment, as the toolkit starts a script-mode entry point.

    ``base`` is what the job already says (its own variables, ``SAGEMAKER_PROGRAM``,
    ``TRAINING_JOB_NAME``); the toolkit's :func:`training_env_vars` go over it, ``code_dir``
    comes first on ``PYTHONPATH`` (before ``base``'s own, so the job's modules win), and the
    output is unbuffered unless ``base`` says otherwise, so each line reaches the log as it is
    printed. The local runner and the in-container entry point both build it here, so a
    script sees the same world on either.
    """
    env = dict(base)
    env.update(
        training_env_vars(
            paths,
            hyperparameters=hyperparameters,
            resource_config=resource_config,
            input_data_config=input_data_config,
            environ=base,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
        )
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), base.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def algorithm_error_reason(exit_code: int, log_tail: Sequence[str]) -> str:
    """FailureReason for a script that failed without writing output/failure."""
    return exit_reason("training script", exit_code, log_tail)


def failure_reason_from_file(text: str) -> str:
    """The FailureReason SageMaker reports for an output/failure file's contents."""
    return text.strip()[:FAILURE_REASON_LIMIT]


def missing_model_reason(model_dir: Path) -> str | None:
    """FailureReason when a script that exited 0 saved no file in ``model_dir``, else None."""
    if model_dir.is_dir() and any(path.is_file() for path in model_dir.rglob("*")):
        return None
    return (
        f"ClientError: the script wrote nothing to SM_MODEL_DIR ({model_dir}); save the model there"
    )
