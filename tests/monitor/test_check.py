"""`mlcicd monitor check` on capture files as the writers leave them: which model's baseline
each record meets, exit codes, and the errors that say what to enable."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from mlcicd.monitor.check import parse_since
from mlcicd.store import LocalArtifactStore
from tests.aws.conftest import AwsClient, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.helpers import mlcicd
from tests.monitor.helpers import (
    SHA1,
    SHA2,
    baseline,
    capture_key,
    capture_line,
    capturing_project,
    iris_rows,
    make_project,
    record_endpoint,
    register,
    shifted,
    write_serving_config,
)

ROWS = iris_rows()


def put(
    store: LocalArtifactStore,
    lines: bytes,
    *,
    variant: str = "AllTraffic",
    name: str = "00-00-000-w1",
) -> None:
    key = capture_key("iris", variant, name=name).removeprefix("iris/")
    store.put_bytes(lines, "iris", key)


def test_data_like_the_training_data_passes(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    sample = random.Random(5).sample(ROWS, 60)
    put(store, b"".join(capture_line([row]) for row in sample[:30]))
    put(store, capture_line(sample[30:], content_type="application/json"), name="00-01-000-w2")
    result = mlcicd(project, "monitor", "check", "iris")
    assert result.exit_code == 0, result.output
    assert "iris: 31 captured requests (60 rows)" in result.output
    assert "variant AllTraffic, model iris/1: 31 requests, 60 rows" in result.output
    assert "no violations (drift threshold 0.1, Robust)" in result.output
    assert "sepal_length  Fractional  60" in result.output


def test_shifted_features_are_violations_and_exit_3(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    put(
        store,
        capture_line(shifted(random.Random(5).sample(ROWS, 40)), content_type="application/json"),
    )
    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["violation_count"] == 2
    (variant,) = report["variants"]
    assert {(v["feature_name"], v["constraint_check_type"]) for v in variant["violations"]} == {
        ("petal_length", "baseline_drift_check"),
        ("petal_width", "baseline_drift_check"),
    }
    drift = {f["name"]: f["drift"] for f in variant["features"]}
    assert drift["petal_length"] > 0.5 and drift["sepal_length"] == 0.0
    # SageMaker's monitoring outputs, in the artifact store.
    written = json.loads(Path(variant["violations_uri"].removeprefix("file://")).read_text())
    assert written == {"violations": variant["violations"]}
    assert "/ml-cicd-pipeline-artifacts/monitoring/iris/AllTraffic/" in variant["violations_uri"]
    current = json.loads(Path(variant["statistics_uri"].removeprefix("file://")).read_text())
    assert current["dataset"] == {"item_count": 40} and len(current["features"]) == 4
    text = mlcicd(project, "monitor", "check", "iris")
    assert text.exit_code == 3
    assert "2 violations (drift threshold 0.1, Robust)" in text.output
    assert "petal_length: baseline_drift_check: Baseline drift distance" in text.output


def test_each_variant_meets_the_baseline_of_the_model_it_served(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    baseline(project, register(project, SHA2, job="iris-job-2"))
    # Before: one model (config v1). Now: A/B, B serving model 2, whose baseline is of other data.
    record_endpoint(
        project,
        "iris",
        "iris-v2-bbbb",
        SHA1,
        spec={"model": SHA1, "variants": [["A", SHA1, 1.0], ["B", SHA2, 1.0]], "shadow": None},
    )
    sample = random.Random(9).sample(ROWS, 40)
    put(store, capture_line(sample, variant="A"), variant="A")
    put(store, capture_line(shifted(sample), variant="B"), variant="B")
    report = json.loads(mlcicd(project, "monitor", "check", "iris", "--json").stdout)
    assert [(v["variant"], v["model"], len(v["violations"])) for v in report["variants"]] == [
        ("A", "iris/1", 0),
        ("B", "iris/2", 2),
    ]


def test_a_variant_captured_before_its_config_was_recorded_still_finds_its_model(
    tmp_path: Path,
) -> None:
    project, store = capturing_project(tmp_path)
    written = time.time()  # the new generation answers before the deploy stage records the change
    time.sleep(0.05)
    record_endpoint(
        project, "iris", "iris-v2-bbbb", SHA1, spec={"model": SHA1, "variants": [["A", SHA1, 1.0]]}
    )
    put(store, capture_line(ROWS[::5], variant="A", at=written), variant="A")
    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 0, result.output
    assert [(v["variant"], v["model"]) for v in json.loads(result.stdout)["variants"]] == [
        ("A", "iris/1")
    ]
    put(store, capture_line(ROWS[::5], variant="C"), variant="C", name="00-03-000-w1")
    result = mlcicd(project, "monitor", "check", "iris")
    assert result.exit_code == 1
    assert "error: cannot tell which model variant C of endpoint iris served at" in result.output


def test_records_before_a_deploy_meet_the_model_served_then(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    before = time.time()
    time.sleep(0.05)
    register(project, SHA2, job="iris-job-2")  # model 2 has no baseline
    record_endpoint(project, "iris", "iris-v2-cccc", SHA2, version=2)
    put(store, capture_line(ROWS[::5], at=before))
    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 0, result.output
    assert [v["model"] for v in json.loads(result.stdout)["variants"]] == ["iris/1"]
    put(store, capture_line(ROWS[::5]), name="00-02-000-w1")
    result = mlcicd(project, "monitor", "check", "iris")
    assert result.exit_code == 1
    assert (
        "error: no data-quality baseline for model iris/2, which served the captured requests "
        "(compute it: mlcicd monitor baseline --model 2)"
    ) in result.output


def test_unreadable_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    project, store = capturing_project(tmp_path)
    put(
        store,
        b"garbage\n{}\n" + capture_line(ROWS[::3]) + capture_line(b"x", content_type="image/png"),
    )
    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["skipped"] == {
        "not a JSON line": 1,
        "not a capture record": 1,
        "content type image/png is not read (CSV, JSON, JSON Lines and NPY are)": 1,
    }
    assert report["records"] == 1 and report["lines"] == 4


@pytest.mark.parametrize(
    ("capture", "message"),
    [
        (
            None,
            "endpoint iris does not capture its requests (set deploy.data_capture: {enabled: true}",
        ),
        (
            {"destination": "/tmp/x", "capture_input": False},
            "endpoint iris captures its responses only (add input",
        ),
    ],
)
def test_an_endpoint_that_captures_no_request_says_what_to_enable(
    tmp_path: Path, capture: dict | None, message: str
) -> None:
    project, _ = capturing_project(tmp_path)
    write_serving_config(project, "iris", capture)
    result = mlcicd(project, "monitor", "check", "iris")
    assert result.exit_code == 1 and message in result.output


def test_nothing_captured_and_no_such_endpoint_are_errors_not_violations(tmp_path: Path) -> None:
    project, _ = capturing_project(tmp_path)
    result = mlcicd(project, "monitor", "check", "iris", "--since", "10m")
    assert result.exit_code == 1
    assert "endpoint iris captured no readable request since" in result.output
    assert "nothing is captured in" in result.output and "widen --since" in result.output
    result = mlcicd(project, "monitor", "check", "nope")
    assert (
        result.exit_code == 1
        and "error: endpoint nope does not exist (endpoints: iris)" in result.output
    )
    result = mlcicd(project, "monitor", "check", "iris", "--since", "yesterday")
    assert result.exit_code == 2 and "neither a duration" in result.output


@pytest.mark.integration
def test_with_the_store_on_s3_baselines_capture_and_reports_are_objects(
    tmp_path: Path,
    aws_env: AwsClient,  # noqa: F811
) -> None:
    s3 = aws_env("s3")
    s3.create_bucket(Bucket="monitor-bucket")
    project = make_project(tmp_path / "project", store="s3://monitor-bucket/runs")
    found = baseline(project, register(project, SHA1))
    assert found.statistics_uri.startswith(
        "s3://monitor-bucket/runs/ml-cicd-pipeline-models/iris/iris-job-1/baseline/"
    )
    record_endpoint(project, "iris", "iris-v1-aaaa", SHA1)
    capture = "s3://monitor-bucket/runs/ml-cicd-pipeline-artifacts/data-capture"
    write_serving_config(project, "iris", {"destination": capture, "capture_input": True})
    key = f"runs/ml-cicd-pipeline-artifacts/data-capture/{capture_key('iris')}"
    s3.put_object(
        Bucket="monitor-bucket", Key=key, Body=b"torn line\n" + capture_line(shifted(ROWS[::4]))
    )
    result = mlcicd(project, "monitor", "check", "iris", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["destination"] == capture and report["skipped"] == {"not a JSON line": 1}
    (variant,) = report["variants"]
    assert {v["feature_name"] for v in variant["violations"]} == {"petal_length", "petal_width"}
    assert variant["violations_uri"].startswith(
        "s3://monitor-bucket/runs/ml-cicd-pipeline-artifacts/monitoring/iris/"
    )
    bucket, _, report_key = variant["violations_uri"].removeprefix("s3://").partition("/")
    written = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert written == {"violations": variant["violations"]}


def test_since_takes_durations_and_times() -> None:
    now = 1_700_000_000.0
    assert parse_since("1h", now) == now - 3600
    assert parse_since("1h30m", now) == now - 5400
    assert parse_since("2d", now) == now - 172800
    assert parse_since("90s", now) == now - 90
    assert parse_since("2023-11-14T22:13:20Z", now) == now
    with pytest.raises(ValueError):
        parse_since("1x", now)
