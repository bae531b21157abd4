"""What the rest of ``deploy:`` becomes on SageMaker (mlcicd.endpoints.sagemaker), against
moto's server: weighted variants, the shadow, data capture, the update's traffic shifting
and rollback alarms, and ``set_weights``.

Real, and read back from moto: CreateEndpointConfig (ProductionVariants' weights,
DataCaptureConfig), PutMetricAlarm (DescribeAlarms), UpdateEndpointWeightsAndCapacities
(DescribeEndpoint). Where moto falls short, said at each place: it accepts
ShadowProductionVariants and drops them (what was sent is recorded on its way, and a strict
xfail waits for a moto that keeps them); it has no UpdateEndpoint (botocore's Stubber
answers it, checking the DeploymentConfig sent); its endpoints are InService at once
(the Stubber shows one Updating).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mlcicd.aws.clients import client
from mlcicd.cli import cli
from mlcicd.endpoints import (
    DataCapture,
    DeploymentPolicy,
    EndpointConfig,
    ProductionVariant,
)
from mlcicd.endpoints.sagemaker import SageMakerEndpointBackend
from mlcicd.errors import EndpointError
from mlcicd.project import Project
from mlcicd.state import EndpointRecord
from mlcicd.store import S3ArtifactStore
from tests.aws.conftest import AwsClient
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import tar_gz
from tests.aws.stubs import OperationStubber, SentParams
from tests.conftest import IRIS

pytestmark = pytest.mark.integration

STORE = "mlcicd-runs"
ENDPOINT = "iris-classifier-endpoint"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"
ERRORS_ALARM = f"{ENDPOINT}-rollback-5xx-rate"
LATENCY_ALARM = f"{ENDPOINT}-rollback-model-latency-p99"
CAPTURE_TYPES = {
    "JsonContentTypes": ["application/json", "application/jsonlines"],
    "CsvContentTypes": ["text/csv"],
}


@pytest.fixture
def backend(aws_env: AwsClient) -> SageMakerEndpointBackend:
    aws_env("s3").create_bucket(Bucket=STORE)
    return SageMakerEndpointBackend(
        store=S3ArtifactStore(f"s3://{STORE}/runs"),
        bucket="ml-cicd-pipeline-models",
        pipeline="iris-classifier",
        image=IMAGE,
        role_arn=ROLE_ARN,
        instance_type="ml.t2.medium",
        instance_count=2,
        capture_bucket="ml-cicd-pipeline-artifacts",
        poll_seconds=0.01,
    )


def variant(tmp_path: Path, name: str, model: str, weight: float = 1.0) -> ProductionVariant:
    path = tmp_path / model / "model.tar.gz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tar_gz({"model.joblib": model.encode()}))
    return ProductionVariant(
        name=name,
        model_data=path,
        model_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        code_dir=IRIS / "src",
        entry_point="inference.py",
        python=Path(sys.executable),
        weight=weight,
    )


def config(name: str, *variants: ProductionVariant, **settings: Any) -> EndpointConfig:
    return EndpointConfig(
        name=f"{ENDPOINT}-{name}", endpoint_name=ENDPOINT, variants=variants, **settings
    )


def answer(
    config_name: str,
    status: str,
    weights: dict[str, float] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ARN,
        "EndpointConfigName": config_name,
        "EndpointStatus": status,
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    if weights is not None:
        described["ProductionVariants"] = [
            {"VariantName": v, "CurrentWeight": w} for v, w in weights.items()
        ]
    if reason:
        described["FailureReason"] = reason
    return described


# --- the EndpointConfig --------------------------------------------------------------------


def test_weighted_variants_and_data_capture(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    a, b = variant(tmp_path, "A", "one", weight=3), variant(tmp_path, "B", "two", weight=1)
    ab = config(
        "v1-ab", a, b, data_capture=DataCapture(sampling_percentage=20, capture_output=False)
    )
    described = backend.deploy(ab)

    stored = aws_env("sagemaker").describe_endpoint_config(EndpointConfigName=ab.name)
    variants = {v["VariantName"]: v for v in stored["ProductionVariants"]}
    assert {
        n: (v["InitialVariantWeight"], v["InitialInstanceCount"]) for n, v in variants.items()
    } == {"A": (3.0, 2), "B": (1.0, 2)}
    assert variants["A"]["ModelName"] != variants["B"]["ModelName"]
    # Under the store, where the local endpoint writes its capture (data-capture/ of the
    # artifacts bucket); SageMaker appends <endpoint>/<variant>/yyyy/mm/dd/hh.
    assert stored["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": f"s3://{STORE}/runs/ml-cicd-pipeline-artifacts/data-capture",
        "CaptureOptions": [{"CaptureMode": "Input"}],
        "CaptureContentTypeHeader": CAPTURE_TYPES,
    }
    assert [(v["name"], v["weight"], v["model_sha256"]) for v in described.variants] == [
        ("A", 3.0, a.model_sha256),
        ("B", 1.0, b.model_sha256),
    ]
    assert described.model_sha256 == a.model_sha256

    # The same config again is the same content: nothing to say.
    assert backend.deploy(ab).config_name == ab.name
    assert len(aws_env("sagemaker").list_endpoint_configs()["EndpointConfigs"]) == 1


def test_capture_goes_where_the_deploy_stage_says_on_s3(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    elsewhere = f"s3://{STORE}/captured"
    capture = DataCapture(sampling_percentage=100, destination=elsewhere)
    backend.deploy(
        config("v1-capture", variant(tmp_path, "AllTraffic", "one"), data_capture=capture)
    )
    stored = aws_env("sagemaker").describe_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-v1-capture"
    )
    assert stored["DataCaptureConfig"]["DestinationS3Uri"] == elsewhere
    assert stored["DataCaptureConfig"]["CaptureOptions"] == [
        {"CaptureMode": "Input"},
        {"CaptureMode": "Output"},
    ]


def test_the_shadow_is_a_shadow_production_variant(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    production, shadow = (
        variant(tmp_path, "AllTraffic", "one", weight=2),
        variant(tmp_path, "Shadow", "two"),
    )
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        backend.deploy(config("v1-shadow", production, shadow=shadow))
    ((_, params),) = sent.calls
    (copy,) = params["ShadowProductionVariants"]
    # Weighted as the production variant: SageMaker copies every request, as the local
    # endpoint does.
    assert (copy["VariantName"], copy["InitialVariantWeight"], copy["InstanceType"]) == (
        "Shadow",
        2,
        "ml.t2.medium",
    )
    model = aws_env("sagemaker").describe_model(ModelName=copy["ModelName"])
    assert model["PrimaryContainer"]["Environment"]["MLCICD_MODEL_SHA256"] == shadow.model_sha256
    assert [v["VariantName"] for v in params["ProductionVariants"]] == ["AllTraffic"]


@pytest.mark.xfail(
    strict=True,
    reason="moto 5.2 accepts ShadowProductionVariants in CreateEndpointConfig and drops them",
)
def test_moto_keeps_the_shadow(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    shadow = variant(tmp_path, "Shadow", "two")
    backend.deploy(config("v1-shadow", variant(tmp_path, "AllTraffic", "one"), shadow=shadow))
    stored = aws_env("sagemaker").describe_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-v1-shadow"
    )
    assert [v["VariantName"] for v in stored["ShadowProductionVariants"]] == ["Shadow"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"data_capture": DataCapture(sampling_percentage=10)}, "DataCaptureConfig"),
        ({"shadow": "shadow"}, "ShadowProductionVariants"),
        ({"weight": 5.0}, "ProductionVariants"),
    ],
)
def test_an_existing_config_of_that_name_must_hold_the_same(
    backend: SageMakerEndpointBackend, tmp_path: Path, settings: dict[str, Any], field: str
) -> None:
    plain = variant(tmp_path, "AllTraffic", "one")
    backend.deploy(config("v1-0123abcd", plain))
    other = dict(settings)
    if other.pop("shadow", None):
        other["shadow"] = variant(tmp_path, "Shadow", "two")
    if "weight" in other:
        plain = variant(tmp_path, "AllTraffic", "one", weight=other.pop("weight"))
    with pytest.raises(
        EndpointError, match=f"exists on SageMaker with other {field} than this deploy asks for"
    ):
        backend.deploy(config("v1-0123abcd", plain, **other))


# --- the update: traffic shifting and rollback alarms -----------------------------------------


def test_a_canary_update_with_alarms_on_the_new_fleet(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    a, b = variant(tmp_path, "A", "one", weight=9), variant(tmp_path, "B", "two", weight=1)
    old = config("v1-old", a, b)
    backend.deploy(old)
    policy = DeploymentPolicy(
        strategy="canary",
        canary_percent=10,
        wait_seconds=300,
        max_5xx_rate=0.01,
        max_p99_latency_ms=50,
        min_invocations=20,
    )
    new = config("v2-new", variant(tmp_path, "A", "three", weight=9), b, deployment=policy)
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": ERRORS_ALARM}, {"AlarmName": LATENCY_ALARM}]
        },
    }
    # moto has no UpdateEndpoint, and its endpoints never update: the Stubber answers both.
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", answer(old.name, "InService"))  # is it Failed?
        sagemaker.add_response(
            "describe_endpoint", answer(old.name, "InService")
        )  # create or update?
        sagemaker.add_response(
            "update_endpoint",
            {"EndpointArn": ARN},
            {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": new.name,
                "DeploymentConfig": deployment,
            },
        )
        sagemaker.add_response("describe_endpoint", answer(new.name, "Updating"))
        sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))
        sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))  # describe()
        assert backend.deploy(new).config_name == new.name

    alarms = {a["AlarmName"]: a for a in aws_env("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {ERRORS_ALARM, LATENCY_ALARM}
    errors, latency = alarms[ERRORS_ALARM], alarms[LATENCY_ALARM]
    assert (errors["Threshold"], latency["Threshold"]) == (
        0.01,
        50_000.0,
    )  # ModelLatency is in microseconds
    for alarm in (errors, latency):
        assert (
            alarm["ComparisonOperator"],
            alarm["EvaluationPeriods"],
            alarm["TreatMissingData"],
        ) == ("GreaterThanThreshold", 1, "notBreaching")
    expressions = {alarm["AlarmName"]: _expression(alarm) for alarm in (errors, latency)}
    assert expressions == {
        ERRORS_ALARM: "IF(SUM([n0, n1]) >= 20, SUM([e0, e1]) / SUM([n0, n1]), 0)",
        LATENCY_ALARM: "IF(SUM([n0, n1]) >= 20, MAX([p0, p1]), 0)",
    }
    watched = _watched(errors)
    assert watched["e0"] == (
        "Invocation5XXErrors",
        "Sum",
        {"EndpointName": ENDPOINT, "VariantName": "A", "EndpointConfigName": new.name},
    )
    assert watched["n1"] == (
        "Invocations",
        "Sum",
        {"EndpointName": ENDPOINT, "VariantName": "B", "EndpointConfigName": new.name},
    )
    assert _watched(latency)["p1"][:2] == ("ModelLatency", "p99")

    # The next update puts the same two alarms again, watching its own config.
    newer = config(
        "v3-newer",
        a,
        b,
        deployment=DeploymentPolicy(
            strategy="linear", linear_step_percent=20, wait_seconds=60, max_5xx_rate=0.05
        ),
    )
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))
        sagemaker.add_response(
            "update_endpoint",
            {"EndpointArn": ARN},
            {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": newer.name,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "LINEAR",
                            "WaitIntervalInSeconds": 60,
                            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                        },
                        "TerminationWaitInSeconds": 0,
                    },
                    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ERRORS_ALARM}]},
                },
            },
        )
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(newer.name, "InService"))
        backend.deploy(newer)
    alarms = {a["AlarmName"]: a for a in aws_env("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert len(alarms) == 2 and alarms[ERRORS_ALARM]["Threshold"] == 0.05
    assert _watched(alarms[ERRORS_ALARM])["e0"][2]["EndpointConfigName"] == newer.name


def test_all_at_once_with_alarms_bakes_as_long_as_asked(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    old = config("v1-old", variant(tmp_path, "AllTraffic", "one"))
    backend.deploy(old)
    policy = DeploymentPolicy(
        max_p99_latency_ms=20, wait_seconds=0
    )  # not the deploy Lambda's 10-minute default
    new = config("v2-new", variant(tmp_path, "AllTraffic", "two"), deployment=policy)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(old.name, "InService"))
        sagemaker.add_response(
            "update_endpoint",
            {"EndpointArn": ARN},
            {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": new.name,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "ALL_AT_ONCE",
                            "WaitIntervalInSeconds": 0,
                        },
                        "TerminationWaitInSeconds": 0,
                    },
                    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": LATENCY_ALARM}]},
                },
            },
        )
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(new.name, "InService"))
        backend.deploy(new)


def test_an_update_the_alarms_rolled_back_fails_with_the_reason(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    old = config("v1-old", variant(tmp_path, "AllTraffic", "one"))
    backend.deploy(old)
    new = config(
        "v2-new",
        variant(tmp_path, "AllTraffic", "two"),
        deployment=DeploymentPolicy(strategy="canary", wait_seconds=60, max_5xx_rate=0.01),
    )
    reason = f"Alarm {ERRORS_ALARM} went into ALARM state; rolled back"
    with OperationStubber(client("sagemaker"), "DescribeEndpoint", "UpdateEndpoint") as sagemaker:
        for _ in range(2):
            sagemaker.add_response("describe_endpoint", answer(old.name, "InService"))
        sagemaker.add_response("update_endpoint", {"EndpointArn": ARN})
        sagemaker.add_response("describe_endpoint", answer(old.name, "RollingBack"))
        sagemaker.add_response("describe_endpoint", answer(old.name, "InService", reason=reason))
        with pytest.raises(EndpointError, match=f"still serves {old.name}: {reason}"):
            backend.deploy(new)


# --- set_weights: UpdateEndpointWeightsAndCapacities --------------------------------------------


def test_set_weights(backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path) -> None:
    ab = config("v1-ab", variant(tmp_path, "A", "one"), variant(tmp_path, "B", "two"))
    backend.deploy(ab)
    described = backend.set_weights(ENDPOINT, {"B": 3})
    assert [(v["name"], v["weight"]) for v in described.variants] == [("A", 1.0), ("B", 3.0)]
    live = aws_env("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert {v["VariantName"]: v["CurrentWeight"] for v in live["ProductionVariants"]} == {
        "A": 1.0,
        "B": 3.0,
    }

    for weights, message in (
        ({"C": 1.0}, "endpoint iris-classifier-endpoint has no variant C"),
        ({"A": -1.0}, "variant A: weight must be a number >= 0"),
        ({"A": 0.0, "B": 0.0}, "at least one variant needs a weight above 0"),
    ):
        with pytest.raises(EndpointError, match=message):
            backend.set_weights(ENDPOINT, weights)
    live = aws_env("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert {v["VariantName"]: v["CurrentWeight"] for v in live["ProductionVariants"]} == {
        "A": 1.0,
        "B": 3.0,
    }


def test_set_weights_waits_until_sagemaker_serves_them(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    ab = config("v1-ab", variant(tmp_path, "A", "one"), variant(tmp_path, "B", "two"))
    backend.deploy(ab)
    # moto applies new weights at once: the Stubber shows SageMaker's Updating in between.
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", answer(ab.name, "InService", {"A": 1, "B": 1}))
        sagemaker.add_response("describe_endpoint", answer(ab.name, "Updating", {"A": 1, "B": 1}))
        sagemaker.add_response(
            "describe_endpoint", answer(ab.name, "InService", {"A": 1, "B": 1})
        )  # not yet
        sagemaker.add_response("describe_endpoint", answer(ab.name, "InService", {"A": 0, "B": 1}))
        sagemaker.add_response(
            "describe_endpoint", answer(ab.name, "InService", {"A": 0, "B": 1})
        )  # describe()
        described = backend.set_weights(ENDPOINT, {"A": 0})
    assert [(v["name"], v["weight"]) for v in described.variants] == [("A", 0.0), ("B", 1.0)]


def test_set_weights_of_an_endpoint_that_is_not_in_service(
    backend: SageMakerEndpointBackend, tmp_path: Path
) -> None:
    ab = config("v1-ab", variant(tmp_path, "A", "one"), variant(tmp_path, "B", "two"))
    backend.deploy(ab)
    with OperationStubber(client("sagemaker"), "DescribeEndpoint") as sagemaker:
        sagemaker.add_response("describe_endpoint", answer(ab.name, "Updating", {"A": 1, "B": 1}))
        with pytest.raises(
            EndpointError,
            match="is Updating; SageMaker changes the weights of an InService endpoint",
        ):
            backend.set_weights(ENDPOINT, {"A": 2})


def test_describe_survives_a_deleted_model(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    ab = config("v1-ab", variant(tmp_path, "A", "one", weight=2), variant(tmp_path, "B", "two"))
    backend.deploy(ab)
    sagemaker = aws_env("sagemaker")
    (a, _) = sagemaker.describe_endpoint_config(EndpointConfigName=ab.name)["ProductionVariants"]
    sagemaker.delete_model(ModelName=a["ModelName"])
    described = backend.describe(ENDPOINT)
    assert [(v["name"], v["weight"], v["model_sha256"] is None) for v in described.variants] == [
        ("A", 2.0, True),
        ("B", 1.0, False),
    ]


def recorded_project(tmp_path: Path, config_name: str) -> Path:
    """A project whose state records the SageMaker endpoint (serving ``config_name``), as
    the deploy stage leaves it: what `mlcicd endpoints` and `mlcicd invoke` reach."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlcicd.yaml").write_text(f"""\
pipeline: iris-classifier
train: {{image: {IMAGE}, role: {ROLE_ARN}}}
deploy:
  {{backend: sagemaker, endpoint_name: {ENDPOINT}, instance_type: ml.t2.medium,
   instance_count: 2}}
store: {{uri: 's3://{STORE}/runs'}}
""")
    now = time.time()
    Project(project).state.upsert_endpoint(
        EndpointRecord(
            name=ENDPOINT,
            backend="sagemaker",
            status="InService",
            url=None,
            port=None,
            pid=None,
            config_name=config_name,
            model_group=None,
            model_version=None,
            model_sha256=None,
            failure_reason=None,
            created_at=now,
            updated_at=now,
        )
    )

    return project


def test_the_cli_sets_the_weights_of_a_sagemaker_endpoint(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    ab = config("v1-ab", variant(tmp_path, "A", "one"), variant(tmp_path, "B", "two"))
    backend.deploy(ab)
    project = recorded_project(tmp_path, ab.name)

    result = CliRunner().invoke(
        cli, ["-C", str(project), "endpoints", "set-weights", ENDPOINT, "A=1", "B=0", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [(v["name"], v["weight"]) for v in json.loads(result.stdout)] == [("A", 1.0), ("B", 0.0)]
    live = aws_env("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert {v["VariantName"]: v["CurrentWeight"] for v in live["ProductionVariants"]} == {
        "A": 1.0,
        "B": 0.0,
    }

    bad = CliRunner().invoke(cli, ["-C", str(project), "endpoints", "set-weights", ENDPOINT, "C=1"])
    assert bad.exit_code != 0 and "has no variant C" in bad.output
    metrics = CliRunner().invoke(cli, ["-C", str(project), "endpoints", "metrics", ENDPOINT])
    assert metrics.exit_code == 0, (
        metrics.output
    )  # from CloudWatch: test_endpoints_sagemaker_metrics.py


def _expression(alarm: dict[str, Any]) -> str:
    (returned,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    return str(returned["Expression"])


def _watched(alarm: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Each metric an alarm reads: its name, statistic and dimensions, by query id."""
    return {
        m["Id"]: (
            m["MetricStat"]["Metric"]["MetricName"],
            m["MetricStat"]["Stat"],
            {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]},
        )
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }


def test_explain_online_is_a_clarify_explainer_config_with_its_baseline_in_the_store(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, tmp_path: Path
) -> None:
    from mlcicd.explain.online import clarify_explainer_config

    report = {
        "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "expected_value": {"0": 0.1, "1": 0.2, "2": 0.3},
        "baseline": [[5.0, 3.4, 1.5, 0.2], [6.5, 3.0, 5.5, 2.0]],
    }
    clarify = clarify_explainer_config(report, "iris-classifier/1")
    explained = config("v1-explained", variant(tmp_path, "AllTraffic", "one"), explainer=clarify)
    with SentParams(client("sagemaker"), "CreateEndpointConfig") as sent:
        backend.deploy(explained)
    ((_, params),) = sent.calls
    sent_config = params["ExplainerConfig"]["ClarifyExplainerConfig"]
    uri = sent_config["ShapConfig"]["ShapBaselineConfig"]["ShapBaselineUri"]
    assert uri.startswith(f"s3://{STORE}/runs/ml-cicd-pipeline-models/iris-classifier/explain/")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    stored = aws_env("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert stored == "5.0,3.4,1.5,0.2\n6.5,3.0,5.5,2.0"
    assert sent_config == {
        "EnableExplanations": "`false`",
        "ShapConfig": {"ShapBaselineConfig": {"MimeType": "text/csv", "ShapBaselineUri": uri}},
        "InferenceConfig": {
            "FeatureHeaders": report["features"],
            "LabelHeaders": ["0", "1", "2"],
            "MaxRecordCount": 100,
        },
    }
    # botocore validated the request against SageMaker's model before sending it; moto 5.2
    # drops ExplainerConfig (as ShadowProductionVariants), so what was sent is what is checked.


def test_invoke_explain_on_sagemaker_sends_enable_explanations(
    backend: SageMakerEndpointBackend, aws_env: AwsClient, moto_server: str, tmp_path: Path
) -> None:
    """`mlcicd invoke --explain` on a SageMaker endpoint: InvokeEndpoint with
    EnableExplanations, signed; Clarify's answer (moto's canned one here) printed."""
    import urllib.request

    deployed = config("v1-invoked", variant(tmp_path, "AllTraffic", "one"))
    backend.deploy(deployed)
    project = recorded_project(tmp_path, deployed.name)
    clarify_answer = {
        "version": "1.0",
        "predictions": {"content_type": "text/csv", "data": "2\n"},
        "label_headers": ["2"],
        "explanations": {
            "kernel_shap": [
                [
                    {"feature_header": "petal_length", "attributions": [{"attribution": [0.5]}]},
                    {"feature_header": "sepal_width", "attributions": [{"attribution": [-0.01]}]},
                ]
            ]
        },
    }
    canned = {
        "account_id": "123456789012",
        "region": "us-east-1",
        "results": [{"Body": json.dumps(clarify_answer), "ContentType": "application/json"}],
    }
    urllib.request.urlopen(  # moto's API: what its InvokeEndpoint answers
        urllib.request.Request(
            f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
            data=json.dumps(canned).encode(),
            method="POST",
        )
    ).read()
    from mlcicd.endpoints.sagemaker_runtime import runtime_client

    with SentParams(runtime_client(), "InvokeEndpoint") as sent:
        result = CliRunner().invoke(
            cli,
            [
                *("-C", str(project), "invoke", ENDPOINT, "--body", "6.3,2.8,5.1,1.5"),
                *("--content-type", "text/csv", "--explain"),
            ],
        )
    assert result.exit_code == 0, result.output
    ((_, params),) = sent.calls
    assert (params["EndpointName"], params["EnableExplanations"]) == (ENDPOINT, "`true`")
    lines = result.output.split("record 1:")[1].splitlines()
    assert lines[1].split() == ["FEATURE", "2"]
    assert lines[2].split() == ["petal_length", "+0.5000"]
