"""The SageMaker requests as plain data (what moto does not keep, e.g. MetricDefinitions,
is checked here), names, and the deployment guardrails."""

from __future__ import annotations

import pytest

from mlcicd.aws import names
from mlcicd.aws.hosting import deployment_config, parse_traffic_routing, progress
from mlcicd.aws.training_jobs import (
    create_training_job_request,
    has_local_storage,
    metric_list,
    parse_metrics_file,
)
from mlcicd.errors import ConfigError


def _request(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = dict(
        name="iris-classifier-abc",
        image="img",
        role_arn="arn:role",
        channels={"training": "s3://b/p/"},
        output_path="s3://b/iris-classifier",
        instance_type="ml.m5.large",
        instance_count=2,
        max_runtime=600,
        hyperparameters={"C": 1.0, "optimizer": "adam"},
        environment={"A": "1"},
        metric_definitions=[{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}],
        tags={"mlcicd:pipeline": "iris"},
    )
    arguments.update(overrides)
    return create_training_job_request(**arguments)  # type: ignore[arg-type]


def test_the_training_job_request() -> None:
    request = _request()
    assert request["HyperParameters"] == {
        "C": "1.0",
        "optimizer": '"adam"',
    }  # JSON-encoded, as the SDK does
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "img",
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}],
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert request["EnableManagedSpotTraining"] is False and "CheckpointConfig" not in request
    assert request["Environment"] == {"A": "1"}
    assert request["Tags"] == [{"Key": "mlcicd:pipeline", "Value": "iris"}]
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
    }


def test_the_key_encrypts_output_and_volume_except_local_nvme() -> None:
    plain = _request()
    assert (
        "KmsKeyId" not in plain["OutputDataConfig"]
        and "VolumeKmsKeyId" not in plain["ResourceConfig"]
    )  # type: ignore[operator]
    assert plain["EnableNetworkIsolation"] is False
    encrypted = _request(kms_key_id="alias/k", network_isolation=True)
    assert encrypted["OutputDataConfig"] == {
        "S3OutputPath": "s3://b/iris-classifier",
        "KmsKeyId": "alias/k",
    }
    assert encrypted["ResourceConfig"]["VolumeKmsKeyId"] == "alias/k"  # type: ignore[index]
    assert encrypted["EnableNetworkIsolation"] is True
    # SageMaker refuses a volume key where the instance has only local NVMe storage.
    nvme = _request(kms_key_id="alias/k", instance_type="ml.g4dn.xlarge")
    assert (
        "VolumeKmsKeyId" not in nvme["ResourceConfig"]
        and nvme["OutputDataConfig"]["KmsKeyId"] == "alias/k"
    )  # type: ignore[index,operator]
    local = {
        t
        for t in (
            "ml.m5.large",
            "ml.m5d.large",
            "ml.p3.2xlarge",
            "ml.p3dn.24xlarge",
            "ml.p4d.24xlarge",
            "ml.g5.xlarge",
            "ml.c5.xlarge",
            "ml.trn1.2xlarge",
        )
        if has_local_storage(t)
    }
    assert local == {
        "ml.m5d.large",
        "ml.p3dn.24xlarge",
        "ml.p4d.24xlarge",
        "ml.g5.xlarge",
        "ml.trn1.2xlarge",
    }


def test_spot_training_waits_and_checkpoints() -> None:
    request = _request(use_spot=True, checkpoint_uri="s3://b/ckpt")
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 600}
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://b/ckpt",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert (
        _request(use_spot=True, max_wait=3600)["StoppingCondition"]["MaxWaitTimeInSeconds"] == 3600
    )  # type: ignore[index]
    with pytest.raises(
        ConfigError, match=r"train.max_wait: max_wait \(60s\) must be at least max_runtime"
    ):
        _request(use_spot=True, max_wait=60)


def test_checkpoints_without_spot_and_a_job_in_a_vpc() -> None:
    request = _request(checkpoints=True, checkpoint_uri="s3://b/ckpt")
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://b/ckpt",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]  # type: ignore[operator]
    assert "VpcConfig" not in request
    vpc = {"SecurityGroupIds": ["sg-0123abcd"], "Subnets": ["subnet-0123abcd"]}
    in_vpc = _request(vpc_config=vpc, inter_container_encryption=True)
    assert in_vpc["VpcConfig"] == vpc
    assert in_vpc["EnableInterContainerTrafficEncryption"] is True


def test_metrics() -> None:
    assert metric_list(
        {"FinalMetricDataList": [{"MetricName": "accuracy", "Value": 0.9, "Timestamp": 0}]}
    ) == {"accuracy": 0.9}
    assert parse_metrics_file(b'{"accuracy": 1, "f1": 0.5}') == {"accuracy": 1.0, "f1": 0.5}
    for bad, message in (
        (b"[1]", "must hold an object"),
        (b'{"a": true}', "not a finite number"),
        (b"{", "not JSON"),
        (b"[" * 100_000, "not JSON"),  # the job's output: nested past the parser's depth
    ):
        with pytest.raises(ValueError, match=message):
            parse_metrics_file(bad)


def test_names_stay_within_what_the_policies_allow() -> None:
    assert names.training_job_name("iris", "0123456789abcdef") == "iris-0123456789abcdef"
    assert names.endpoint_config_name("iris-endpoint", "v3-abcd1234") == "iris-endpoint-v3-abcd1234"
    with pytest.raises(
        ConfigError, match=r"pipeline: the training job name .* would be 66 characters"
    ):
        names.training_job_name("p" * 49, "0123456789abcdef")


def test_deployment_guardrails() -> None:
    assert deployment_config([], None) is None
    linear = deployment_config(
        ["a"],
        parse_traffic_routing(
            '{"type": "LINEAR", "size_percent": 25, "wait_seconds": 120, '
            '"max_execution_seconds": 3600}'
        ),
    )
    assert linear == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 120,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]},
    }
    all_at_once = deployment_config(["a"], None)
    assert all_at_once is not None
    assert all_at_once["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 600,
    }
    with pytest.raises(ConfigError, match="MLCICD_TRAFFIC_ROUTING: expected an object with type"):
        parse_traffic_routing('{"type": "SOMETIMES"}')
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_traffic_routing('{"type": "CANARY", "percent": 5}')


def test_progress_towards_a_config() -> None:
    def endpoint(status: str, config: str, reason: str | None = None) -> dict[str, object]:
        return {"EndpointStatus": status, "EndpointConfigName": config, "FailureReason": reason}

    assert progress(endpoint("Creating", "new"), "new").state == "waiting"
    assert progress(endpoint("Updating", "old"), "new").state == "waiting"
    assert progress(endpoint("InService", "new"), "new").state == "done"
    rolled_back = progress(endpoint("InService", "old", "alarm fired"), "new")
    assert rolled_back.state == "failed" and "still serves old: alarm fired" in (
        rolled_back.reason or ""
    )
    assert progress(endpoint("Failed", "new", "ping failed"), "new").reason == "ping failed"
    assert progress(None, "new").state == "failed"
