"""``processing:``: the graph's checks, each failing on the key at fault, and its order."""

from __future__ import annotations

import pytest

from mlcicd.config import parse_config
from mlcicd.config.processing import phase, step_order
from mlcicd.errors import ConfigError

PIPELINE = """
pipeline: p
processing:
  - name: prepare
    entry_point: prepare.py
    inputs: {raw: data/raw}
    outputs: [train, test]
    arguments: ["--test-size", "0.2"]
  - name: evaluate
    after: train
    entry_point: evaluate.py
    inputs: {model: train.model, test: prepare.test}
    outputs: [evaluation]
    report: evaluation/evaluation.json
train:
  channels: {training: prepare.train}
gate:
  evaluation.metrics.accuracy: ">= 0.85"
data_check: fail
"""


def _with(old: str, new: str) -> str:
    assert old in PIPELINE
    return PIPELINE.replace(old, new)


def test_the_issue_s_pipeline_loads_in_its_order_and_phases() -> None:
    config = parse_config(PIPELINE)
    assert [s.name for s in step_order(config)] == ["prepare", "evaluate"]
    assert (phase(config, "prepare"), phase(config, "evaluate")) == ("before", "after")
    prepare = config.processing[0]
    assert prepare.arguments == ("--test-size", "0.2") and prepare.outputs == ("train", "test")
    assert config.data_check == "fail"
    assert [t.metric for t in config.gate.thresholds] == ["evaluation.metrics.accuracy"]


def test_a_step_after_another_runs_after_it_whatever_the_file_s_order() -> None:
    config = parse_config(
        "pipeline: p\nprocessing:\n"
        "  - {name: b, entry_point: b.py, inputs: {x: a.out}}\n"
        "  - {name: a, entry_point: a.py, outputs: [out]}\n"
        "  - {name: c, entry_point: c.py, after: b}\n"
    )
    assert [s.name for s in step_order(config)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("old", "new", "key", "said"),
    [
        ("test: prepare.test", "test: prepare.tset", "processing[1].inputs.test", "no output"),
        ("test: prepare.test", "test: prepar.test", "processing[1].inputs.test", "prepare.test"),
        (
            "{training: prepare.train}",
            "{training: evaluate.evaluation}",
            "train.channels.training",
            "before it exists",
        ),
        ("    after: train\n", "", "processing[1].inputs.model", "after: train"),
        (
            "report: evaluation/evaluation.json",
            "report: test/e.json",
            "processing[1].report",
            "outputs",
        ),
        ("name: prepare", "name: train", "processing[0].name", "stage"),
        ("name: prepare", "name: Prep_are", "processing[0].name", "not a valid step name"),
        (
            "inputs: {raw: data/raw}",
            "inputs: {code: data/raw}",
            "processing[0].inputs.code",
            "not a valid input name",
        ),
        ("after: train", "after: nowhere", "processing[1].after", "neither train"),
        (
            "evaluation.metrics.accuracy",
            "prepare.metrics.accuracy",
            "gate.prepare.metrics.accuracy",
            "no report",
        ),
        ("data_check: fail", "data_check: maybe", "data_check", "expected one of"),
    ],
)
def test_a_bad_graph_fails_naming_the_key(old: str, new: str, key: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_with(old, new))
    assert caught.value.key == key
    assert said in caught.value.headline


def test_a_cycle_fails_naming_the_steps() -> None:
    with pytest.raises(ConfigError, match="a → b → a wait for each other") as caught:
        parse_config(
            "pipeline: p\nprocessing:\n"
            "  - {name: a, entry_point: a.py, inputs: {x: b.out}, outputs: [out]}\n"
            "  - {name: b, entry_point: b.py, inputs: {x: a.out}, outputs: [out]}\n"
        )
    assert caught.value.key == "processing[0]"


def test_a_dotted_file_name_is_a_path_not_a_reference() -> None:
    config = parse_config(
        "pipeline: p\nprocessing:\n  - {name: prepare, entry_point: p.py, "
        "inputs: {raw: data.csv, other: ./prepare.out}}\n"
    )
    assert config.processing[0].inputs == {"raw": "data.csv", "other": "./prepare.out"}


def test_the_data_check_needs_a_training_channel() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("pipeline: p\ndata_check: warn\n")
    assert caught.value.key == "data_check"


def test_a_report_key_is_not_held_to_the_training_metric_definitions() -> None:
    config = parse_config(
        _with(
            "train:\n",
            "train:\n  metric_definitions: [{name: accuracy, regex: 'acc=([0-9.]+)'}]\n",
        )
    )
    assert config.gate.thresholds[0].metric == "evaluation.metrics.accuracy"
