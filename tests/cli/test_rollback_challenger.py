"""Champion/challenger stops a worse model; rollback restores the previous one while the
endpoint keeps answering; history and lineage say what happened."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mlcicd.endpoints.client import invoke_endpoint
from tests.conftest import commit_all, stop_endpoints
from tests.daemon.conftest import ROWS, fast_project
from tests.helpers import as_json, mlcicd, set_yaml

pytestmark = pytest.mark.integration

GATE = (
    "gate:                              # the model quality gate (reference: accuracy >= 0.85)\n"
    '  accuracy: ">= 0.85"\n'
)
CHALLENGER = (
    "gate:\n  challenger: {metric: accuracy, data: data/iris.csv, min_absolute_change: 0.0}\n"
)


def served_version(project: Path) -> int:
    return int(
        as_json(mlcicd(project, "endpoints", "describe", "iris-classifier-endpoint", "--json"))[
            "endpoint"
        ]["model_version"]
    )


def test_challenger_gate_then_rollback(tmp_path: Path) -> None:
    project = fast_project(tmp_path / "iris")
    try:
        set_yaml(project, GATE, CHALLENGER)
        set_yaml(project, "max_iter: 200", "max_iter: 200\n    min_accuracy: 0")
        commit_all(project, "champion/challenger gate")
        assert mlcicd(project, "run").exit_code == 0  # v1: no champion yet

        set_yaml(project, "C: 1.0", "C: 0.01")
        commit_all(project, "far too much regularisation")
        worse = mlcicd(project, "run")
        assert worse.exit_code != 0
        assert (
            "challenger 0.8800 vs champion 0.9533" in worse.output
        )  # same data, same inference.py
        models = {
            p["version"]: p["status"] for p in as_json(mlcicd(project, "models", "list", "--json"))
        }
        assert models[2] == "Rejected" and served_version(project) == 1

        set_yaml(project, "C: 0.01", "C: 10.0")
        commit_all(project, "less regularisation")
        better = mlcicd(project, "run")
        assert better.exit_code == 0, better.output
        assert served_version(project) == 3
        gate = as_json(mlcicd(project, "runs", "show", "3", "--json"))["stages"][3]
        assert gate["outputs"]["challenger"]["challenger"] == pytest.approx(0.98, abs=1e-3)

        # Roll back while a client keeps calling: every request is answered.
        url = as_json(
            mlcicd(project, "endpoints", "describe", "iris-classifier-endpoint", "--json")
        )["endpoint"]["url"]
        stop, answers = threading.Event(), []

        def client() -> None:
            while not stop.is_set():
                answers.append(
                    invoke_endpoint(url, json.dumps(ROWS).encode(), "application/json").status
                )

        thread = threading.Thread(target=client)
        thread.start()
        try:
            rolled = mlcicd(project, "endpoints", "rollback", "iris-classifier-endpoint")
        finally:
            stop.set()
            thread.join()
        assert rolled.exit_code == 0, rolled.output
        assert served_version(project) == 1
        assert answers and set(answers) == {200}

        history = as_json(
            mlcicd(project, "endpoints", "history", "iris-classifier-endpoint", "--json")
        )
        assert [(h["reason"], h["model_version"]) for h in history] == [
            ("deploy", 1),
            ("deploy", 3),
            ("rollback", 1),
        ]
        assert (
            mlcicd(
                project, "endpoints", "rollback", "iris-classifier-endpoint", "--to", "2"
            ).exit_code
            != 0
        )

        lineage = as_json(mlcicd(project, "lineage", "iris-classifier-endpoint", "--json"))
        model = lineage["model"]
        assert model["model_package"]["arn"] == "iris-classifier/1"
        assert model["commit"]["message"] == "champion/challenger gate"
        assert (
            model["training_job"]["hyperparameters"]["C"] == 1.0
            and model["training_job"]["data_digest"]
        )
        assert model["build"]["digest"] and model["endpoint_configs"]
        shown = mlcicd(project, "lineage", "3")
        assert (
            "less regularisation" in shown.output
            and "model package iris-classifier/3" in shown.output
        )
        kinds = [e["kind"] for e in as_json(mlcicd(project, "events", "--json"))]
        assert "rolled_back" in kinds
    finally:
        stop_endpoints(project)
