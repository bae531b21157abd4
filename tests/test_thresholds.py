"""The gate's rule on a processing step's report: a JSON path to a number (a PropertyFile)."""

from __future__ import annotations

from mlcicd.config import parse_config
from mlcicd.thresholds import evaluate_thresholds, report_value

GATE = "pipeline: p\ngate: {evaluation.metrics.accuracy: '>= 0.85', accuracy: '>= 0.5'}\n"


def test_a_report_s_number_is_read_by_its_path_beside_training_metrics() -> None:
    thresholds = parse_config(GATE).gate.thresholds
    report = {"metrics": {"accuracy": {"value": 0.9}}}
    assert evaluate_thresholds(thresholds, {"accuracy": 0.6}, {"evaluation": report}) == []
    report["metrics"]["accuracy"]["value"] = 0.8
    assert evaluate_thresholds(thresholds, {"accuracy": 0.6}, {"evaluation": report}) == [
        "evaluation.metrics.accuracy = 0.8 does not meet evaluation.metrics.accuracy >= 0.85"
    ]


def test_a_path_the_report_lacks_fails_the_gate_saying_where_it_stops() -> None:
    thresholds = parse_config(GATE).gate.thresholds
    (failure,) = evaluate_thresholds(thresholds, {"accuracy": 0.6}, {"evaluation": {"metrics": {}}})
    assert "no 'accuracy' at metrics" in failure and ">= 0.85" in failure


def test_report_value_walks_lists_and_refuses_what_is_not_a_number() -> None:
    assert report_value({"folds": [{"f1": 0.5}, {"f1": 0.7}]}, "folds.1.f1") == 0.7
    for bad in ({"a": "0.9"}, {"a": True}, {"a": float("nan")}):
        try:
            report_value(bad, "a")
        except ValueError as exc:
            assert "not a number" in str(exc)
        else:
            raise AssertionError(f"{bad} read as a number")
