"""``mlcicd endpoints metrics`` of a SageMaker endpoint: CloudWatch's AWS/SageMaker metrics
(mlcicd.endpoints.sagemaker, mlcicd.aws.endpoint_metrics) against moto's server.

Real, in moto: the endpoint and its two variants (DescribeEndpoint), the datapoints
(PutMetricData with SageMaker's dimensions) and GetMetricData's Sums of them. Where moto
falls short, said at each place: its GetMetricData computes no percentile — a query for
``p99`` over stored datapoints makes its server fail — so :class:`MotoPercentiles` takes
those queries out of the call on its way to moto and answers them as CloudWatch would (the
counts in the same call stay moto's); its server enforces no IAM, so botocore's Stubber
answers GetMetricData with AccessDenied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlcicd.aws.clients import client
from mlcicd.endpoints import EndpointMetrics
from mlcicd.endpoints.sagemaker import SageMakerEndpointBackend
from mlcicd.errors import AwsError, NotFoundError
from mlcicd.project import Project
from mlcicd.serving import metrics
from mlcicd.state import EndpointRecord
from mlcicd.store import S3ArtifactStore
from tests.aws.conftest import AwsClient
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.stubs import OperationStubber
from tests.aws.test_endpoints_sagemaker_config import ENDPOINT, STORE, config, variant
from tests.helpers import mlcicd

pytestmark = pytest.mark.integration

# What CloudWatch would answer for the percentiles, microseconds, by (variant, metric, stat).
PERCENTILES = {
    ("A", "ModelLatency", "p50"): 1500.0,
    ("A", "ModelLatency", "p90"): 4000.0,
    ("A", "ModelLatency", "p99"): 9876.5,
    ("A", "OverheadLatency", "p50"): 200.0,
    ("A", "OverheadLatency", "p90"): 300.0,
    ("A", "OverheadLatency", "p99"): 750.0,
    ("B", "ModelLatency", "p50"): 2500.0,
    ("B", "ModelLatency", "p90"): 5000.0,
    ("B", "ModelLatency", "p99"): 20000.0,
    ("B", "OverheadLatency", "p50"): 100.0,
    ("B", "OverheadLatency", "p90"): 150.0,
    ("B", "OverheadLatency", "p99"): 400.0,
}


class MotoPercentiles:
    """moto 5.2's GetMetricData computes Sum, Average, Minimum, Maximum and SampleCount, not
    percentiles (its server fails on a ``p99`` query over stored data). On mlcicd's own
    client, this takes the percentile queries out of each GetMetricData on its way to moto,
    and adds their answers — ``answers`` for the datapoints the test put, none for any other
    endpoint — to what moto sends back. ``calls`` keeps every call's queries as mlcicd sent them."""

    def __init__(self, answers: Mapping[tuple[str, str, str], float]) -> None:
        self.client = client("cloudwatch").raw
        self.answers = answers
        self.calls: list[dict[str, Any]] = []
        self._taken: list[dict[str, Any]] = []

    def _take(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append({**params, "MetricDataQueries": list(params["MetricDataQueries"])})
        self._taken = [
            q for q in params["MetricDataQueries"] if q["MetricStat"]["Stat"].startswith("p")
        ]
        params["MetricDataQueries"] = [
            q for q in params["MetricDataQueries"] if q not in self._taken
        ]

    def _answer(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        start = self.calls[-1]["StartTime"]
        for query in self._taken:
            stat = query["MetricStat"]
            dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            value = None
            if (
                stat["Metric"]["Namespace"] == "AWS/SageMaker"
                and dimensions.get("EndpointName") == ENDPOINT
            ):
                value = self.answers.get(
                    (dimensions["VariantName"], stat["Metric"]["MetricName"], stat["Stat"])
                )
            parsed.setdefault("MetricDataResults", []).append(
                {
                    "Id": query["Id"],
                    "Label": query["Id"],
                    "StatusCode": "Complete",
                    "Timestamps": [start] if value is not None else [],
                    "Values": [value] if value is not None else [],
                }
            )

    def _handlers(self) -> list[tuple[str, Any, str]]:
        # botocore's unique ids are unique across all events: one each.
        return [
            (
                "before-parameter-build.cloudwatch.GetMetricData",
                self._take,
                "moto-percentiles-take",
            ),
            ("after-call.cloudwatch.GetMetricData", self._answer, "moto-percentiles-answer"),
        ]

    def __enter__(self) -> MotoPercentiles:
        for event, handler, unique_id in self._handlers():
            self.client.meta.events.register(event, handler, unique_id=unique_id)
        return self

    def __exit__(self, *exc: Any) -> None:
        for event, _, unique_id in self._handlers():
            self.client.meta.events.unregister(event, unique_id=unique_id)


@pytest.fixture
def backend(aws_env: AwsClient, tmp_path: Path) -> SageMakerEndpointBackend:
    """An endpoint in moto serving variants A and B."""
    aws_env("s3").create_bucket(Bucket=STORE)
    backend = SageMakerEndpointBackend(
        store=S3ArtifactStore(f"s3://{STORE}/runs"),
        bucket="ml-cicd-pipeline-models",
        pipeline="iris-classifier",
        image=IMAGE,
        role_arn=ROLE_ARN,
        instance_type="ml.t2.medium",
        instance_count=2,
        poll_seconds=0.01,
    )
    backend.deploy(config("v1-ab", variant(tmp_path, "A", "one"), variant(tmp_path, "B", "two")))
    return backend


def put_traffic(
    aws: AwsClient,
    endpoint: str,
    variant: str,
    at: datetime,
    *,
    invocations: int,
    errors_4xx: int,
    errors_5xx: int,
    latency_us: list[float],
) -> None:
    """The per-minute datapoints SageMaker publishes for one variant's traffic."""
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    datum = {"Dimensions": dimensions, "Timestamp": at}
    aws("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {**datum, "MetricName": "Invocations", "Value": invocations, "Unit": "None"},
            {**datum, "MetricName": "Invocation4XXErrors", "Value": errors_4xx, "Unit": "None"},
            {**datum, "MetricName": "Invocation5XXErrors", "Value": errors_5xx, "Unit": "None"},
            {**datum, "MetricName": "ModelLatency", "Values": latency_us, "Unit": "Microseconds"},
            {
                **datum,
                "MetricName": "OverheadLatency",
                "Values": [v / 10 for v in latency_us],
                "Unit": "Microseconds",
            },
        ],
    )


def traffic(aws: AwsClient) -> None:
    """Two minutes of A, one of B, in the last five minutes; older and other endpoints' besides."""
    now = datetime.now(UTC)
    put_traffic(
        aws,
        ENDPOINT,
        "A",
        now - timedelta(seconds=150),
        invocations=30,
        errors_4xx=1,
        errors_5xx=0,
        latency_us=[1500, 4000, 9000],
    )
    put_traffic(
        aws,
        ENDPOINT,
        "A",
        now - timedelta(seconds=90),
        invocations=20,
        errors_4xx=0,
        errors_5xx=2,
        latency_us=[1800, 9800],
    )
    put_traffic(
        aws,
        ENDPOINT,
        "B",
        now - timedelta(seconds=90),
        invocations=10,
        errors_4xx=0,
        errors_5xx=1,
        latency_us=[2500, 20000],
    )
    put_traffic(
        aws,
        ENDPOINT,
        "A",
        now - timedelta(minutes=20),
        invocations=1000,
        errors_4xx=0,
        errors_5xx=0,
        latency_us=[1000],
    )
    put_traffic(
        aws,
        "another-endpoint",
        "A",
        now - timedelta(seconds=90),
        invocations=7,
        errors_4xx=7,
        errors_5xx=7,
        latency_us=[1000],
    )


def test_counts_and_percentiles_per_variant_from_cloudwatch(
    backend: SageMakerEndpointBackend, aws_env: AwsClient
) -> None:
    traffic(aws_env)
    with MotoPercentiles(PERCENTILES) as cloudwatch:
        found = backend.metrics(ENDPOINT, 300)
    (call,) = cloudwatch.calls  # every variant and metric in one GetMetricData
    assert len(call["MetricDataQueries"]) == 18
    assert {q["MetricStat"]["Period"] for q in call["MetricDataQueries"]} == {300}
    assert call["EndTime"] - call["StartTime"] == timedelta(minutes=5)

    assert set(found) == set(EndpointMetrics.__required_keys__)
    assert (found["endpoint"], found["window_seconds"], found["counters"], found["notes"]) == (
        ENDPOINT,
        300,
        {},
        [],
    )
    a, b = found["variants"]["A"], found["variants"]["B"]
    assert set(a) == set(b) == set(metrics.summary({}))  # as a local endpoint's
    assert (a["Invocations"], a["Invocation4XXErrors"], a["Invocation5XXErrors"], a["5XXRate"]) == (
        50,
        1,
        2,
        0.04,
    )
    assert (b["Invocations"], b["Invocation4XXErrors"], b["Invocation5XXErrors"], b["5XXRate"]) == (
        10,
        0,
        1,
        0.1,
    )
    # Microseconds in CloudWatch, milliseconds here, as locally.
    assert (a["ModelLatencyp50_ms"], a["ModelLatencyp90_ms"], a["ModelLatencyp99_ms"]) == (
        1.5,
        4.0,
        9.877,
    )
    assert (b["OverheadLatencyp50_ms"], b["OverheadLatencyp90_ms"], b["OverheadLatencyp99_ms"]) == (
        0.1,
        0.15,
        0.4,
    )

    # The hour holds the older minute too: moto's Sums over the longer period.
    with MotoPercentiles(PERCENTILES) as cloudwatch:
        assert backend.metrics(ENDPOINT, 3600)["variants"]["A"]["Invocations"] == 1050
    assert {q["MetricStat"]["Period"] for q in cloudwatch.calls[0]["MetricDataQueries"]} == {3600}


def test_an_idle_endpoint_shows_zeros_and_no_percentiles(backend: SageMakerEndpointBackend) -> None:
    # moto answers percentile queries over no datapoints (it fails only with some): no help needed.
    found = backend.metrics(ENDPOINT, 600)
    assert found["variants"] == {"A": metrics.summary({}), "B": metrics.summary({})}
    assert (
        found["variants"]["A"]["Invocations"] == 0
        and found["variants"]["A"]["ModelLatencyp99_ms"] is None
    )
    assert found["notes"] == []
    # Since the endpoint was created (`--window all`): a period from its CreationTime.
    assert backend.metrics(ENDPOINT)["window_seconds"] is None


def test_a_short_window_says_the_metrics_come_a_minute_late(
    backend: SageMakerEndpointBackend,
) -> None:
    (note,) = backend.metrics(ENDPOINT, 60)["notes"]
    assert "about a minute late" in note
    assert backend.metrics(ENDPOINT, 300)["notes"] == []


def test_an_endpoint_gone_from_sagemaker(backend: SageMakerEndpointBackend) -> None:
    with pytest.raises(NotFoundError, match="endpoint nope does not exist on SageMaker"):
        backend.metrics("nope", 300)


def test_access_denied_names_the_permission(backend: SageMakerEndpointBackend) -> None:
    # moto's server enforces no IAM: the Stubber answers GetMetricData as AWS would.
    with OperationStubber(client("cloudwatch"), "GetMetricData") as cloudwatch:
        cloudwatch.add_client_error(
            "get_metric_data",
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/ci "
            "is not authorized to perform: cloudwatch:GetMetricData",
        )
        with pytest.raises(AwsError) as raised:
            backend.metrics(ENDPOINT, 300)
    assert raised.value.code == "AccessDenied"
    assert raised.value.headline.startswith(
        f"endpoint {ENDPOINT}: CloudWatch refused its metrics (AccessDenied: "
    )
    assert raised.value.headline.endswith(
        "(the credentials in use need the permission cloudwatch:GetMetricData)"
    )


# --- the CLI: the same table and --json as for a local endpoint -------------------------------


@pytest.fixture
def project(backend: SageMakerEndpointBackend, tmp_path: Path) -> Path:
    """A project whose state records the SageMaker endpoint, as `mlcicd run` leaves it."""
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
            config_name=f"{ENDPOINT}-v1-ab",
            model_group=None,
            model_version=None,
            model_sha256=None,
            failure_reason=None,
            created_at=now,
            updated_at=now,
        )
    )
    return project


def test_the_cli_prints_the_table_and_json(project: Path, aws_env: AwsClient) -> None:
    traffic(aws_env)
    with MotoPercentiles(PERCENTILES):
        as_json = mlcicd(project, "endpoints", "metrics", ENDPOINT, "--json")
        table = mlcicd(project, "endpoints", "metrics", ENDPOINT)
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout)
    assert set(summary) == {"endpoint", "window_seconds", "variants", "counters", "notes"}
    assert summary["window_seconds"] == 300 and summary["variants"]["A"]["Invocations"] == 50
    assert summary["variants"]["B"]["ModelLatencyp99_ms"] == 20.0

    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == f"{ENDPOINT}, last 5m:"
    assert lines[1].split() == [
        "VARIANT",
        "INVOCATIONS",
        "4XX",
        "5XX",
        "MODEL",
        "P50",
        "MS",
        "P90",
        "MS",
        "P99",
        "MS",
        "OVERHEAD",
        "P99",
        "MS",
    ]
    assert lines[2].split() == ["A", "50", "1", "2", "1.5", "4.0", "9.877", "0.75"]
    assert lines[3].split() == ["B", "10", "0", "1", "2.5", "5.0", "20.0", "0.4"]
    assert len(lines) == 4  # no note for 5 minutes


def test_the_cli_on_an_idle_endpoint_and_a_short_window(project: Path) -> None:
    table = mlcicd(project, "endpoints", "metrics", ENDPOINT, "--window", "1m")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[2].split() == ["A", "0", "0", "0", "-", "-", "-", "-"]
    assert lines[3].split() == ["B", "0", "0", "0", "-", "-", "-", "-"]
    assert lines[4].startswith("  note: SageMaker's metrics reach CloudWatch about a minute late")


def test_the_cli_errors(project: Path) -> None:
    unknown = mlcicd(project, "endpoints", "metrics", "nope")
    assert unknown.exit_code == NotFoundError.exit_code
    assert "endpoint nope does not exist" in unknown.output and "Traceback" not in unknown.output
    with OperationStubber(
        client("cloudwatch"), "GetMetricData"
    ) as cloudwatch:  # moto enforces no IAM
        cloudwatch.add_client_error("get_metric_data", "AccessDenied", "not authorized")
        denied = mlcicd(project, "endpoints", "metrics", ENDPOINT)
    assert denied.exit_code == 1 and "cloudwatch:GetMetricData" in denied.output
    assert len(denied.output.strip().splitlines()) == 1
