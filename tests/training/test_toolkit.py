"""The SageMaker toolkit's formats, checked against the toolkit's own examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlcicd.training.toolkit import (
    TrainingPaths,
    env_value,
    hyperparameter_args,
    input_data_config,
    resource_config,
    script_mode_env,
    training_env_document,
    training_env_vars,
)

BASE = TrainingPaths(Path("/opt/ml"))

# Environment.to_env_vars() of sagemaker-training-toolkit, for a job with channels and hps.
TOOLKIT_VARS = {
    "SM_HOSTS",
    "SM_NETWORK_INTERFACE_NAME",
    "SM_HPS",
    "SM_USER_ENTRY_POINT",
    "SM_FRAMEWORK_PARAMS",
    "SM_RESOURCE_CONFIG",
    "SM_INPUT_DATA_CONFIG",
    "SM_OUTPUT_DATA_DIR",
    "SM_CHANNELS",
    "SM_CURRENT_HOST",
    "SM_CURRENT_INSTANCE_TYPE",
    "SM_CURRENT_INSTANCE_GROUP",
    "SM_CURRENT_INSTANCE_GROUP_HOSTS",
    "SM_INSTANCE_GROUPS",
    "SM_INSTANCE_GROUPS_DICT",
    "SM_DISTRIBUTION_INSTANCE_GROUPS",
    "SM_IS_HETERO",
    "SM_MODULE_NAME",
    "SM_LOG_LEVEL",
    "SM_FRAMEWORK_MODULE",
    "SM_INPUT_DIR",
    "SM_INPUT_CONFIG_DIR",
    "SM_OUTPUT_DIR",
    "SM_NUM_CPUS",
    "SM_NUM_GPUS",
    "SM_NUM_NEURONS",
    "SM_MODEL_DIR",
    "SM_MODULE_DIR",
    "SM_TRAINING_ENV",
    "SM_USER_ARGS",
    "SM_OUTPUT_INTERMEDIATE_DIR",
    "SM_CHANNEL_TRAINING",
    "SM_HP_BATCH-SIZE",
}
# The properties of the toolkit's Environment, i.e. the keys of SM_TRAINING_ENV.
TOOLKIT_PROPERTIES = {
    "additional_framework_parameters",
    "channel_input_dirs",
    "current_host",
    "current_instance_group",
    "current_instance_group_hosts",
    "current_instance_type",
    "distribution_hosts",
    "distribution_instance_groups",
    "framework_module",
    "hosts",
    "hyperparameters",
    "input_config_dir",
    "input_data_config",
    "input_dir",
    "instance_groups",
    "instance_groups_dict",
    "is_hetero",
    "is_master",
    "is_modelparallel_enabled",
    "is_smddpmprun_installed",
    "is_smddprun_installed",
    "job_name",
    "log_level",
    "master_hostname",
    "model_dir",
    "module_dir",
    "module_name",
    "network_interface_name",
    "num_cpus",
    "num_gpus",
    "num_neurons",
    "output_data_dir",
    "output_dir",
    "output_intermediate_dir",
    "resource_config",
    "topology",
    "user_entry_point",
}


def env_for(hps: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return training_env_vars(
        BASE,
        hyperparameters=hps,
        resource_config=kwargs.pop("resource_config", resource_config("ml.m5.large")),
        input_data_config=kwargs.pop("input_data_config", input_data_config(["training"])),
        environ=kwargs.pop("environ", {"TRAINING_JOB_NAME": "job-1"}),
        num_cpus=4,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("hps", "expected"),
    [
        (  # the toolkit's own test cases (test_mapping.py)
            {"da-sh": "1", "un_der": "2", "un-sh": "3", "da_der": "2"},
            ["--da-sh", "1", "--da_der", "2", "--un-sh", "3", "--un_der", "2"],
        ),
        ({}, []),
        (
            {"unicode": "¡ø", "bytes": b"2", "floats": 4.0, "int": 2},
            ["--bytes", "2", "--floats", "4.0", "--int", "2", "--unicode", "¡ø"],
        ),
        (
            {
                "C": 1.5,
                "flag": True,
                "off": False,
                "layers": [1, 2],
                "cfg": {"b": 2, "a": "x"},
                "none": None,
            },
            [
                "-C",
                "1.5",
                "--cfg",
                "a=x,b=2",
                "--flag",
                "True",
                "--layers",
                "[1, 2]",
                "--none",
                "",
                "--off",
                "False",
            ],
        ),
        ({"sagemaker_program": "train.py", "sagemaker_mpi_enabled": True, "x": 1}, ["-x", "1"]),
    ],
)
def test_hyperparameter_args(hps: dict[str, Any], expected: list[str]) -> None:
    assert hyperparameter_args(hps) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/opt/ml/model", "/opt/ml/model"),
        (b"2", "2"),
        (4.0, "4.0"),
        (2, "2"),
        ("¡ø", "¡ø"),
        (None, ""),
        (True, "true"),
        ([1, "a"], '[1,"a"]'),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ],
)
def test_env_value(value: Any, expected: str) -> None:
    assert env_value(value) == expected


def test_training_env_has_every_toolkit_variable() -> None:
    hps = {
        "batch-size": 256,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": "s3://b/k.tar.gz",
    }
    env = env_for(hps)
    sm = {key for key in env if key.startswith("SM_")}
    assert sm >= TOOLKIT_VARS
    model_trainer = {
        "SM_HOST_COUNT",
        "SM_CURRENT_HOST_RANK",
        "SM_MASTER_ADDR",
        "SM_MASTER_PORT",
        "SM_INPUT_DATA_DIR",
        "SM_OUTPUT_FAILURE",
        "SM_HP_BATCH_SIZE",
    }
    assert sm - TOOLKIT_VARS == model_trainer
    assert json.loads(env["SM_TRAINING_ENV"]).keys() == TOOLKIT_PROPERTIES

    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CHANNEL_TRAINING"] == "/opt/ml/input/data/training"
    assert env["SM_CHANNELS"] == '["training"]'
    assert env["SM_HPS"] == '{"batch-size":256}'
    assert env["SM_HP_BATCH-SIZE"] == env["SM_HP_BATCH_SIZE"] == "256"
    assert env["SM_USER_ARGS"] == '["--batch-size","256"]'
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_MODULE_DIR"] == "s3://b/k.tar.gz"  # the toolkit takes it from the hyperparameter
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_FRAMEWORK_MODULE"] == ""
    assert env["SM_FRAMEWORK_PARAMS"] == "{}"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert env["SM_IS_HETERO"] == "false"
    assert env["SM_NUM_CPUS"] == "4"
    assert env["SM_NUM_GPUS"] == env["SM_NUM_NEURONS"] == "0"
    assert env["SM_HOST_COUNT"] == "1"
    assert env["SM_CURRENT_HOST_RANK"] == "0"
    assert env["CURRENT_HOST"] == "algo-1"
    assert env["SAGEMAKER_REGION"] == ""
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["job_name"] == "job-1"
    assert training["is_master"] is True
    assert training["hyperparameters"] == {"batch-size": 256}


def test_framework_parameters_are_kept_apart() -> None:
    hps = {"epochs": 1, "sagemaker_mpi_enabled": True, "sagemaker_region": "eu-west-1"}
    env = env_for(hps)
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_mpi_enabled": True}
    assert json.loads(env["SM_HPS"]) == {"epochs": 1}
    assert json.loads(env["SM_DISTRIBUTION_INSTANCE_GROUPS"]) == ["homogeneousCluster"]
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert "SM_HP_SAGEMAKER_MPI_ENABLED" not in env


def test_environ_sets_program_and_framework_module() -> None:
    env = env_for(
        {"sagemaker_program": "hp.py"},
        environ={"SAGEMAKER_PROGRAM": "env.py", "SAGEMAKER_TRAINING_MODULE": "fw.training:main"},
    )
    assert env["SM_USER_ENTRY_POINT"] == "env.py"
    assert env["SM_MODULE_NAME"] == "env"
    assert env["SM_FRAMEWORK_MODULE"] == "fw.training:main"
    assert env["SM_MODULE_DIR"] == "/opt/ml/code"


def test_script_mode_env_puts_the_toolkit_over_the_job_and_the_code_first() -> None:
    """What both the local runner and the container's entry point hand the script."""
    base = {
        "SAGEMAKER_PROGRAM": "train.py",
        "PYTHONPATH": "/opt/lib",
        "SM_MODEL_DIR": "/stale",  # the job's own value of a toolkit variable loses
        "PYTHONUNBUFFERED": "0",  # the job's choice is kept
        "MINE": "kept",
    }
    env = script_mode_env(
        BASE,
        base,
        code_dir=BASE.code,
        hyperparameters={"epochs": 2},
        resource_config=resource_config("ml.m5.large"),
        input_data_config=input_data_config(["training"]),
        num_cpus=3,
    )
    assert env["PYTHONPATH"] == "/opt/ml/code:/opt/lib"
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_USER_ENTRY_POINT"] == "train.py"  # read from the base
    assert env["SM_NUM_CPUS"] == "3"
    assert (env["PYTHONUNBUFFERED"], env["MINE"]) == ("0", "kept")
    plain = script_mode_env(
        BASE,
        {},
        code_dir=Path("/x"),
        hyperparameters={},
        resource_config=resource_config("local"),
        input_data_config={},
        num_cpus=1,
    )
    assert (plain["PYTHONPATH"], plain["PYTHONUNBUFFERED"]) == ("/x", "1")


def test_resource_config_without_instance_groups() -> None:
    """The shape the toolkit itself writes outside SageMaker: hosts only."""
    env = training_env_document(
        BASE,
        hyperparameters={},
        resource_config={"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]},
        input_data_config={},
        environ={},
        num_cpus=1,
    )
    assert env["instance_groups"] == []
    assert env["distribution_hosts"] == ["algo-1", "algo-2"]
    assert env["master_hostname"] == "algo-1"
    assert env["is_master"] is False
    assert env["current_instance_type"] == "local"
    assert env["network_interface_name"] == "eth0"
    assert env["module_name"] == "None"  # the toolkit's str(None) when no program is known


def test_resource_config_is_what_sagemaker_writes() -> None:
    assert resource_config("ml.m5.large") == {
        "current_host": "algo-1",
        "current_instance_type": "ml.m5.large",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.m5.large",
                "hosts": ["algo-1"],
            }
        ],
        "network_interface_name": "eth0",
    }
    assert input_data_config(["train"]) == {
        "train": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    }
