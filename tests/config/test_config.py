from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.config import Threshold, load_config, parse_config
from mlcicd.errors import ConfigError
from tests.conftest import IRIS


def test_the_iris_example_is_valid() -> None:
    config = load_config(IRIS)
    assert config.pipeline == "iris-classifier"
    assert config.endpoint_name == "iris-classifier-endpoint"
    assert config.gate.thresholds == (Threshold("accuracy", ">=", 0.85),)
    assert config.train.channels == {"training": "data"}


def test_defaults_fill_what_is_not_said() -> None:
    config = parse_config("pipeline: p")
    assert config.branch == "main"
    assert config.endpoint_name == "p-endpoint"
    assert config.train.backend == "local"
    assert config.gate.thresholds == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pipeline: p\ntrain: {hyperparmeters: {}}",
            "mlcicd.yaml: train.hyperparmeters: unknown key (did you mean 'hyperparameters'?)",
        ),
        (
            "pipeline: p\ntrain: {max_runtime: ten}",
            "mlcicd.yaml: train.max_runtime: expected an integer, got a string ('ten')",
        ),
        (
            "pipeline: p\ntrain: {max_runtime: 0}",
            "mlcicd.yaml: train.max_runtime: must be at least 1, got 0",
        ),
        (
            "pipeline: p\ndeploy: {workers: true}",
            "mlcicd.yaml: deploy.workers: expected an integer, got a boolean (true)",
        ),
        (
            "pipeline: p\ntrain: {backend: docker}",
            "mlcicd.yaml: train.backend: expected one of 'local', 'sagemaker', 'container', "
            "got 'docker'",
        ),
        (
            "pipeline: p\ntrain: {channels: [data]}",
            "mlcicd.yaml: train.channels: expected a mapping, got a list",
        ),
        (
            "pipeline: p\ngate: {accuracy: '~0.8'}",
            "mlcicd.yaml: gate.accuracy: cannot read threshold",
        ),
        ("pipeline: 'not ok'", "mlcicd.yaml: pipeline: 'not ok' is not a valid name"),
        ('pipeline: "iris\\n"', "mlcicd.yaml: pipeline: 'iris\\n' is not a valid name"),
        ("branch: main", "mlcicd.yaml: pipeline: required key is missing"),
        ("- a\n- b", "mlcicd.yaml: expected a mapping of settings at the top level"),
        ("pipeline: p\n  bad: [", "mlcicd.yaml: line 2"),
        (
            "pipeline: p\ntrain:\n  metric_definitions: [{name: acc, regex: 'acc=[0-9.]+'}]",
            "needs one capture group",
        ),
        (
            "pipeline: p\ntrain:\n  metric_definitions: [{name: acc, regex: 'acc=([0-9.]+'}]",
            "invalid regular expression",
        ),
        (
            "pipeline: p\ntrain:\n  metric_definitions: [{name: acc, regex: 'acc=(.+)'}]\n"
            "gate: {f1: 0.5}",
            "gate.f1: the gate checks 'f1'",
        ),
        ("pipeline: p\nstore: {uri: 'ftp://x'}", "store.uri: expected an s3:// URI"),
        ("pipeline: p\ndeploy: {port: 70000}", "deploy.port: not a TCP port"),
        (
            "pipeline: p\ndeploy: {model_timeout: 0}",
            "deploy.model_timeout: must be a positive number of seconds, got 0",
        ),
    ],
)
def test_bad_config_names_file_key_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert expected in str(info.value)
    assert "\n" not in info.value.headline


@pytest.mark.parametrize(
    ("spec", "op", "value"),
    [
        (">= 0.85", ">=", 0.85),
        (0.9, ">=", 0.9),
        ("<0.1", "<", 0.1),
        ("== 1", "==", 1.0),
        ("> 1e-3", ">", 0.001),
    ],
)
def test_gate_thresholds(spec: object, op: str, value: float) -> None:
    config = parse_config(f"pipeline: p\ngate: {{loss: {spec!r}}}".replace("'", '"'))
    assert config.gate.thresholds == (Threshold("loss", op, value),)  # type: ignore[arg-type]


def test_threshold_semantics() -> None:
    assert Threshold("a", ">=", 0.85).passes(0.85)
    assert not Threshold("a", ">", 0.85).passes(0.85)
    assert Threshold("loss", "<", 0.2).passes(0.1)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path)


def test_monitor_settings_and_their_defaults() -> None:
    assert load_config(IRIS).monitor.label == "species"
    monitor = parse_config("pipeline: p").monitor
    assert (monitor.channel, monitor.label, monitor.drift_threshold, monitor.comparison_method) == (
        None,
        None,
        0.1,
        "Robust",
    )
    config = parse_config(
        "pipeline: p\ntrain: {channels: {train: d}}\n"
        "monitor: {channel: train, drift_threshold: 0.25}"
    )
    assert (config.monitor.channel, config.monitor.drift_threshold) == ("train", 0.25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "monitor: {drift_threshold: 0}",
            "monitor.drift_threshold: a distribution distance is between 0 and 1",
        ),
        (
            "monitor: {drift_threshold: 1.5}",
            "monitor.drift_threshold: a distribution distance is between 0 and 1",
        ),
        (
            "monitor: {drift_threshold: high}",
            "monitor.drift_threshold: expected a number, got a string ('high')",
        ),
        (
            "monitor: {comparison_method: KS}",
            "monitor.comparison_method: expected one of 'Robust', 'Simple'",
        ),
        (
            "monitor: {channel: validation}",
            "monitor.channel: 'validation' is not a training channel (channels: training)",
        ),
        ("monitor: {label: ' '}", "monitor.label: expected a column name"),
        ("monitor: {treshold: 0.1}", "monitor.treshold: unknown key"),
    ],
)
def test_bad_monitor_settings_name_their_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pipeline: p\ntrain: {{channels: {{training: data}}}}\n{text}")
    assert expected in caught.value.headline


CAPTURING = "deploy: {data_capture: {enabled: true}}\n"


def test_a_monitoring_schedule_is_off_by_default_and_read_as_a_duration() -> None:
    assert parse_config("pipeline: p").monitor.schedule is None
    assert parse_config("pipeline: p").monitor.schedule_seconds is None
    monitor = parse_config(f"pipeline: p\n{CAPTURING}monitor: {{schedule: 1h30m}}").monitor
    assert (monitor.schedule, monitor.schedule_seconds) == ("1h30m", 5400.0)
    assert (
        parse_config(f"pipeline: p\n{CAPTURING}monitor: {{schedule: 5m}}").monitor.schedule_seconds
        == 300.0
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"{CAPTURING}monitor: {{schedule: hourly}}",
            "monitor.schedule: expected a duration like 1h, 30m or 1h30m, got 'hourly'",
        ),
        (
            f"{CAPTURING}monitor: {{schedule: 3600}}",
            "monitor.schedule: expected a string, got int (3600)",
        ),
        (
            f"{CAPTURING}monitor: {{schedule: 4m59s}}",
            "monitor.schedule: the shortest schedule is 5m, got '4m59s'",
        ),
        (f"{CAPTURING}monitor: {{schedule: 0s}}", "monitor.schedule: the shortest schedule is 5m"),
        (
            "monitor: {schedule: 1h}",
            "monitor.schedule: a scheduled check reads the endpoint's captured requests, "
            "and deploy.data_capture is not enabled",
        ),
        (
            "deploy: {data_capture: {enabled: true, capture: [output]}}\nmonitor: {schedule: 1h}",
            "deploy.data_capture captures responses only (add input to deploy.data_capture.capture",
        ),
    ],
)
def test_bad_schedules_name_their_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pipeline: p\n{text}")
    assert expected in caught.value.headline


def test_the_tests_floor_lowers_the_shortest_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLCICD_MONITOR_MIN_SCHEDULE exists for the tests' services, which check every few seconds.
    monkeypatch.setenv("MLCICD_MONITOR_MIN_SCHEDULE", "1")
    assert (
        parse_config(f"pipeline: p\n{CAPTURING}monitor: {{schedule: 2s}}").monitor.schedule_seconds
        == 2.0
    )
    with pytest.raises(ConfigError, match="the shortest schedule is 1s, got '0s'"):
        parse_config(f"pipeline: p\n{CAPTURING}monitor: {{schedule: 0s}}")


def test_staging_is_off_unless_present_and_names_itself_after_the_endpoint() -> None:
    assert parse_config("pipeline: p").staging is None
    assert parse_config("pipeline: p").staging_endpoint_name is None
    config = parse_config(
        "pipeline: p\nstaging:\n  test: pytest -q tests/endpoint\n"
        "  load: {requests: 50, p99_ms: 40, payload: rows.json}"
    )
    assert config.staging is not None and config.staging.load is not None
    assert config.staging_endpoint_name == "p-endpoint-staging"
    assert config.staging.test == "pytest -q tests/endpoint"
    assert (config.staging.load.requests, config.staging.load.concurrency) == (50, 8)
    assert config.staging.load.p99_ms == 40 and not config.staging.keep
    named = parse_config("pipeline: p\nstaging: {endpoint_name: p-stage}")
    assert named.staging_endpoint_name == "p-stage"
    longest = parse_config("pipeline: p\ndeploy: {endpoint_name: " + "e" * 50 + "}\nstaging: {}")
    assert longest.staging_endpoint_name == "e" * 42 + "-staging"  # cut to fit 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pipeline: p\nstaging: {endpoint_name: p-endpoint}",
            "staging.endpoint_name: the staging endpoint 'p-endpoint' is the production endpoint",
        ),
        (
            "pipeline: p\ndeploy: {endpoint_name: x}\nstaging: {endpoint_name: x}",
            "staging.endpoint_name: the staging endpoint 'x' is the production endpoint",
        ),
        ("pipeline: p\nstaging: {endpoint_name: 'a b'}", "staging.endpoint_name: the staging"),
        ("pipeline: p\nstaging: {test: ' '}", "staging.test: is empty"),
        ("pipeline: p\nstaging: {timeout: 0}", "staging.timeout: must be at least 1"),
        ("pipeline: p\nstaging: {load: {requests: 0}}", "staging.load.requests: must be at"),
        ("pipeline: p\nstaging: {load: {concurrency: 0}}", "staging.load.concurrency: must"),
        ("pipeline: p\nstaging: {load: {p99_ms: -1}}", "staging.load.p99_ms: must be a positive"),
        ("pipeline: p\nstaging: {load: {max_error_rate: 2}}", "staging.load.max_error_rate"),
        ("pipeline: p\nstaging: {lod: {}}", "staging.lod"),
        (
            "pipeline: p\nstaging: {load: {requests: 5}}",
            "staging.load.payload: the load check has nothing to send (give a request body file "
            "here, or set deploy.sample)",
        ),
    ],
)
def test_bad_staging_settings_name_their_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("transform: {input: in, output: out, split_type: line}", "transform.split_type", ""),
        (
            "transform: {input: in, output: out, max_payload_mb: 200}",
            "transform.max_payload_mb",
            "",
        ),
        ("transform: {input: in, output: out, backend: ec2}", "transform.backend", "not available"),
        ("transform: {input: in}", "transform.output", "required key is missing"),
    ],
)
def test_a_bad_transform_section_names_its_key(section: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: .*{message}"):
        parse_config(f"pipeline: iris\n{section}\n")


def test_explain_is_off_unless_present_and_has_defaults() -> None:
    assert parse_config("pipeline: p").explain is None
    explain = parse_config("pipeline: p\nexplain: {}").explain
    assert explain is not None
    assert (explain.baseline, explain.rows, explain.online, explain.required) == (
        "training",
        500,
        False,
        False,
    )
    assert explain.baseline_file is None
    chosen = parse_config("pipeline: p\nexplain: {baseline: data/base.csv, rows: 50}").explain
    assert chosen is not None and (chosen.baseline_file, chosen.rows) == ("data/base.csv", 50)
    # The stack's explain and data check jobs: SageMaker's smallest general instance, an hour.
    config = parse_config("pipeline: p\nexplain: {}")
    for job in (config.explain, config.monitor):
        assert job is not None and (job.instance_type, job.max_runtime) == ("ml.m5.large", 3600)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("explain: {rows: 0}", "explain.rows: expected between 1 and 10000 rows, got 0"),
        ("explain: {rows: 20000}", "explain.rows: expected between 1 and 10000 rows, got 20000"),
        ("explain: {rows: many}", "explain.rows: expected an integer"),
        ("explain: {baseline: ' '}", "explain.baseline: expected 'training' or a CSV file"),
        (
            "deploy: {backend: container}\nexplain: {online: true}",
            "explain.online: a container endpoint does not serve explanations",
        ),
        (
            "explain: {baseline: /etc/data.csv}",
            "explain.baseline: expected a path inside the commit",
        ),
        ("explain: {baseline: ../other/x.csv}", "explain.baseline: expected a path inside the"),
        ("explain: {required: maybe}", "explain.required: expected"),
        ("explain: {row: 5}", "explain.row: unknown key"),
        ("explain: {instance_type: m5.large}", "explain.instance_type: expected a SageMaker"),
        ("explain: {max_runtime: 0}", "explain.max_runtime: must be at least 1 second, got 0"),
        ("monitor: {instance_type: ''}", "monitor.instance_type: expected a SageMaker instance"),
        ("monitor: {max_runtime: -5}", "monitor.max_runtime: must be at least 1 second, got -5"),
    ],
)
def test_bad_explain_settings_name_their_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pipeline: p\n{text}")
    assert expected in caught.value.headline


@pytest.mark.parametrize("number", [".inf", "-.inf", ".nan", ".NaN"])
@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("deploy: {startup_timeout: X}", "deploy.startup_timeout"),
        (
            "deploy: {autoscaling: {max_instances: 2, target_invocations_per_instance: X}}",
            "deploy.autoscaling.target_invocations_per_instance",
        ),
        (
            "deploy: {data_capture: {sampling_percentage: X}}",
            "deploy.data_capture.sampling_percentage",
        ),
        ("staging: {load: {p99_ms: X}}", "staging.load.p99_ms"),
    ],
)
def test_no_number_in_the_config_is_infinite_or_nan(yaml: str, key: str, number: str) -> None:
    """YAML reads .inf and .nan as floats, and every comparison with NaN is false: a bound of
    NaN would pass every check. One rule for every number of the schema, where it is read."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"pipeline: p\n{yaml.replace('X', number)}\n")
    assert info.value.key == key
    assert "expected a finite number, got" in str(info.value)
