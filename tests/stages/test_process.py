"""PROCESS and EVALUATE: the pipeline template's prepare → train → evaluate → gate, for real
(its scripts as local jobs, outputs in the store), the cache, and a step that fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import GateError, ProcessingError
from mlcicd.stages.gate import GateStage
from mlcicd.stages.process import EvaluateStage, ProcessStage
from mlcicd.stages.train import TrainStage
from tests.conftest import commit_all
from tests.helpers import set_yaml
from tests.stages.conftest import Stages

pytestmark = pytest.mark.integration  # real processing and training jobs


def _through_evaluate(stages: Stages, **kwargs: Any) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {"source": stages.source(), "build": stages.build()}
    for stage in (ProcessStage(), TrainStage(), EvaluateStage()):
        result = stage.run(stages.context(outputs, **kwargs))
        outputs[stage.name] = {**result.outputs, "_status": result.status}
    return outputs


def test_prepare_train_evaluate_then_the_gate_reads_the_report(pipeline_repo: Path) -> None:
    stages = Stages(pipeline_repo)
    outputs = _through_evaluate(stages)
    prepare = outputs["process"]["steps"]["prepare"]
    assert set(prepare["outputs"]) == {"train", "test"}
    store = stages.project.store
    assert all(store.exists(o["uri"]) for o in prepare["outputs"].values())
    evaluate = outputs["evaluate"]["steps"]["evaluate"]
    accuracy = evaluate["report"]["metrics"]["accuracy"]["value"]
    assert accuracy >= 0.85
    # Training read prepare's train output: its digest is in the job's data digest.
    job = stages.project.state.get_processing_job(prepare["job"])
    assert job.status == "Completed" and job.outputs == prepare["outputs"]
    gate = GateStage().run(stages.context(outputs))
    assert gate.outputs["reports"]["evaluation"] == evaluate["report"]
    assert f"check evaluation.metrics.accuracy >= 0.85: {accuracy}" in stages.lines

    again = _through_evaluate(stages)
    assert [again[s]["_status"] for s in ("process", "train", "evaluate")] == ["Cached"] * 3
    assert again["evaluate"]["steps"]["evaluate"]["report"] == evaluate["report"]


def test_a_report_below_the_threshold_fails_the_gate(pipeline_repo: Path) -> None:
    set_yaml(
        pipeline_repo, 'evaluation.metrics.accuracy: ">= 0.85"', 'evaluate.metrics.accuracy: "> 1"'
    )
    commit_all(pipeline_repo)
    stages = Stages(pipeline_repo)
    outputs = _through_evaluate(stages)
    with pytest.raises(GateError, match=r"evaluate.metrics.accuracy = .* does not meet"):
        GateStage().run(stages.context(outputs))


def test_a_failed_step_fails_the_stage_with_its_exit_message(pipeline_repo: Path) -> None:
    (pipeline_repo / "data" / "raw" / "iris.csv").write_text("a,b\n1,2\n")
    commit_all(pipeline_repo)
    stages = Stages(pipeline_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    with pytest.raises(ProcessingError, match="the raw data has no species column"):
        ProcessStage().run(stages.context(outputs))
    (job,) = stages.project.state.processing_jobs(run_id=stages.project.state.list_runs()[0].id)
    assert job.status == "Failed" and job.exit_message == "the raw data has no species column"


def test_independent_steps_run_side_by_side_and_both_are_stored(pipeline_repo: Path) -> None:
    config = (pipeline_repo / "mlcicd.yaml").read_text()
    twin = (
        config.split("  - name: evaluate")[0]
        .split("processing:\n")[1]
        .replace("name: prepare", "name: prepare-b")
    )
    (pipeline_repo / "mlcicd.yaml").write_text(
        config.replace("processing:\n", "processing:\n" + twin)
    )
    commit_all(pipeline_repo)
    stages = Stages(pipeline_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    result = ProcessStage().run(stages.context(outputs))
    steps = result.outputs["steps"]
    assert set(steps) == {"prepare", "prepare-b"}
    # The same script on the same data: the same bytes, stored twice under two jobs.
    assert (
        steps["prepare"]["outputs"]["train"]["sha256"]
        == steps["prepare-b"]["outputs"]["train"]["sha256"]
    )
    assert any(line.startswith("[prepare-b] ") for line in stages.lines)
    assert json.loads(json.dumps(result.outputs)) == result.outputs


# A sibling that goes on after the broken step's job has failed: it waits for the job's
# description to say so (bounded), then writes more log lines.
SIBLING = """
import json, os, sys, time
from pathlib import Path
jobs = Path(os.environ["SAGEMAKER_BASE_DIR"]).parent
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done = [p for p in jobs.glob("*-broken-*/description.json")
            if json.loads(p.read_text()).get("ProcessingJobStatus") == "Failed"]
    if done:
        break
    time.sleep(0.05)
time.sleep(0.5)
print("still working after the other step failed", flush=True)
"""


def test_a_failed_step_lets_its_sibling_finish(pipeline_repo: Path) -> None:
    (pipeline_repo / "src" / "sibling.py").write_text(SIBLING)
    config = (pipeline_repo / "mlcicd.yaml").read_text()
    steps = (
        "  - name: broken\n    entry_point: prepare.py\n"
        '    inputs: {raw: data/raw}\n    arguments: ["--test-size", "oops"]\n'
        "  - name: sibling\n    entry_point: sibling.py\n"
    )
    (pipeline_repo / "mlcicd.yaml").write_text(
        config.replace("processing:\n", "processing:\n" + steps)
    )
    commit_all(pipeline_repo)
    stages = Stages(pipeline_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    with pytest.raises(ProcessingError, match=r"step broken: processing job .* failed"):
        ProcessStage().run(stages.context(outputs))
    run_id = stages.project.state.list_runs()[0].id
    jobs = {j.step: j.status for j in stages.project.state.processing_jobs(run_id=run_id)}
    assert jobs == {"broken": "Failed", "sibling": "Completed", "prepare": "Completed"}
    assert "[sibling] still working after the other step failed" in stages.lines
