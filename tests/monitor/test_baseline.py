"""A model's baseline: computed by the register stage, stored beside the model, recorded with
its version; `mlcicd monitor baseline` computes it again from the model's commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlcicd.errors import ArtifactError, MonitorError
from mlcicd.monitor.baseline import load_baseline, rebaseline
from mlcicd.pipeline import RunContext, RunOptions, SilentReporter
from mlcicd.project import Project
from mlcicd.stages.register import RegisterStage
from mlcicd.state import ModelBaseline
from tests.conftest import git
from tests.helpers import mlcicd
from tests.monitor.helpers import FEATURES


def register_run(project: Project, source_dir: Path) -> tuple[RunContext, list[str]]:
    """A run at its register stage, with what source, build and train left it."""
    state, config = project.state, project.config
    model = project.store.put_bytes(
        b"model bytes", config.store.models_bucket, "iris/job-1/output/model.tar.gz"
    )
    run = state.create_run(
        pipeline=config.pipeline, project_dir=str(project.root), stages=["register"]
    )
    log: list[str] = []
    commit = git(project.root, "rev-parse", "HEAD").strip()
    tree = git(project.root, "rev-parse", "HEAD^{tree}").strip()
    ctx = RunContext(
        project=project,
        config=config,
        run=run,
        options=RunOptions(),
        reporter=SilentReporter(),
        log=log.append,
        outputs={
            "source": {
                "commit": commit,
                "branch": "main",
                "author": "a",
                "message": "m",
                "tree": tree,
                "dirty": False,
                "source_dir": str(source_dir),
            },
            "build": {"digest": "b" * 64, "environment": "/env", "python": "/env/bin/python"},
            "train": {
                "job": "job-1",
                "metrics": {"accuracy": 0.97},
                "model_uri": model.uri,
                "model_sha256": model.sha256,
                "data_digest": "d" * 64,
                "hyperparameters": {},
            },
        },
    )
    return ctx, log


def test_registering_a_model_computes_and_records_its_baseline(iris_project: Path) -> None:
    project = Project(iris_project)
    ctx, log = register_run(project, iris_project)
    result = RegisterStage().run(ctx)
    assert result.status == "Succeeded"
    baseline = project.state.get_baseline("iris-classifier", 1)
    assert baseline is not None
    assert result.outputs["baseline"] == {
        "statistics": baseline.statistics_uri,
        "constraints": baseline.constraints_uri,
    }
    assert any(
        "150 rows, 4 features from channel training, label species left out" in line for line in log
    )
    # Beside the model, in a folder named by the content's digest.
    models = (
        project.state_dir / "artifacts" / "ml-cicd-pipeline-models" / "iris-classifier" / "job-1"
    )
    stats_path = Path(baseline.statistics_uri.removeprefix("file://"))
    assert stats_path.parent.parent == models / "baseline" and stats_path.name == "statistics.json"
    statistics, constraints = load_baseline(project, baseline)
    assert [f["name"] for f in statistics["features"]] == FEATURES
    assert statistics["dataset"] == {"item_count": 150}
    assert (
        constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    )
    assert baseline.dataset["data_digest"] == "d" * 64 and baseline.dataset["label"] == "species"

    ctx, log = register_run(project, iris_project)  # the same model again: its baseline is kept
    assert RegisterStage().run(ctx).status == "Cached"
    assert any("already computed" in line for line in log)


def test_a_model_whose_data_gives_no_baseline_is_registered_all_the_same(
    iris_project: Path, tmp_path: Path
) -> None:
    project = Project(iris_project)
    source = tmp_path / "export"
    shutil.copytree(iris_project, source, ignore=shutil.ignore_patterns(".git", ".mlcicd"))
    for csv in (source / "data").glob("*.csv"):
        csv.rename(csv.with_suffix(".parquet"))
    ctx, log = register_run(project, source)
    result = RegisterStage().run(ctx)
    assert result.status == "Succeeded" and "baseline" not in result.outputs
    assert any(
        "no data-quality baseline for iris-classifier/1: training channel 'training'" in line
        for line in log
    )
    assert project.state.get_baseline("iris-classifier", 1) is None


def test_monitor_baseline_recomputes_from_the_models_commit(iris_project: Path) -> None:
    project = Project(iris_project)
    ctx, _ = register_run(project, iris_project)
    RegisterStage().run(ctx)
    first = project.state.get_baseline("iris-classifier", 1)
    assert first is not None
    # The working tree changes after the commit; the baseline reads the commit's data.
    (iris_project / "data" / "iris.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
    )
    assert not (project.state_dir / "sources").exists()  # exported again from git
    again = rebaseline(project, 1)
    assert (again.statistics_uri, again.statistics_sha256) == (
        first.statistics_uri,
        first.statistics_sha256,
    )

    result = mlcicd(project, "monitor", "baseline", "--model", "1", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["arn"] == "iris-classifier/1" and shown["dataset"]["item_count"] == 150
    text = mlcicd(project, "monitor", "baseline").output  # the newest Approved model
    assert text.startswith("baseline of iris-classifier/1: 150 rows, 4 features")


def test_a_baseline_changed_after_it_was_written_is_refused(iris_project: Path) -> None:
    project = Project(iris_project)
    ctx, _ = register_run(project, iris_project)
    RegisterStage().run(ctx)
    baseline = project.state.get_baseline("iris-classifier", 1)
    assert baseline is not None
    Path(baseline.constraints_uri.removeprefix("file://")).write_text("{}")
    with pytest.raises(ArtifactError, match="recorded"):
        load_baseline(project, baseline)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"[" * 1_000_000, "is not JSON: maximum recursion depth"),  # deeper than the parser
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"\xff{}", "is not JSON"),
    ],
)
def test_a_baseline_that_is_not_a_json_object_is_a_clear_error(
    iris_project: Path, document: bytes, message: str
) -> None:
    project = Project(iris_project)
    bucket = project.config.store.models_bucket
    good = project.store.put_bytes(b'{"features": []}', bucket, "iris/baseline/constraints.json")
    bad = project.store.put_bytes(document, bucket, "iris/baseline/statistics.json")
    baseline = ModelBaseline("iris-classifier", 3, bad.uri, bad.sha256, good.uri, good.sha256)
    with pytest.raises(MonitorError, match=message) as caught:
        load_baseline(project, baseline)
    assert bad.uri in caught.value.message
    assert caught.value.hint == "compute it again: mlcicd monitor baseline --model 3"
