"""TRAIN on its own: the example's training script as a local job, its model in the store,
its record in the state database, and the cache keyed on build, data and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.errors import TrainingError
from mlcicd.stages.train import TrainStage
from tests.helpers import set_yaml
from tests.stages.conftest import Stages

pytestmark = pytest.mark.integration  # a real training process


def test_a_job_trains_stores_its_model_and_a_rerun_is_cached(iris_repo: Path) -> None:
    stages = Stages(iris_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    first = TrainStage().run(stages.context(outputs))
    assert first.status == "Succeeded"
    trained = first.outputs
    assert trained["metrics"]["accuracy"] >= 0.85 and "f1" in trained["metrics"]
    assert trained["hyperparameters"] == {"C": 1.0, "max_iter": 200}
    store = stages.project.store
    assert store.exists(trained["model_uri"])
    local = store.local_path(trained["model_uri"])
    assert local is not None and local.name == "model.tar.gz"
    job = stages.project.state.get_training_job(trained["job"])
    assert (job.status, job.model_sha256, job.metrics) == (
        "Completed",
        trained["model_sha256"],
        trained["metrics"],
    )
    assert f"starting training job {trained['job']} (local)" in stages.lines

    again = TrainStage().run(stages.context(outputs))
    assert (again.status, again.outputs) == ("Cached", trained)

    forced = TrainStage().run(stages.context(outputs, force=True))
    assert forced.status == "Succeeded" and forced.outputs["job"] != trained["job"]
    # Same script, data and settings: the same model bytes, so the same digest.
    assert forced.outputs["model_sha256"] == trained["model_sha256"]


def test_other_settings_are_another_job(iris_repo: Path) -> None:
    stages = Stages(iris_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    first = TrainStage().run(stages.context(outputs)).outputs
    set_yaml(iris_repo, "C: 1.0", "C: 0.5")
    other = Stages(iris_repo)
    second = TrainStage().run(other.context(outputs))
    assert second.status == "Succeeded" and second.outputs["job"] != first["job"]
    assert second.outputs["hyperparameters"]["C"] == 0.5


def test_a_channel_missing_from_the_commit_is_named(iris_repo: Path) -> None:
    set_yaml(iris_repo, "training: data ", "training: nowhere ")
    stages = Stages(iris_repo)
    with pytest.raises(TrainingError, match="channel 'training': nowhere does not exist"):
        TrainStage().run(stages.context({"source": stages.source(), "build": stages.build()}))


def test_a_failed_job_fails_the_stage_and_its_record(iris_repo: Path) -> None:
    train = iris_repo / "src" / "train.py"
    train.write_text("raise SystemExit('no model today')\n")
    stages = Stages(iris_repo)
    ctx = stages.context({"source": stages.source(), "build": stages.build()})
    with pytest.raises(TrainingError, match=r"training job .* failed") as failed:
        TrainStage().run(ctx)
    assert failed.value.hint is not None and "mlcicd logs" in failed.value.hint
    jobs = stages.project.state.training_jobs(run_id=ctx.run.id)
    assert [(j.status, j.model_uri) for j in jobs] == [("Failed", None)]


# Killed (SIGKILL, as a spot reclaim is) once it has checkpointed half the work; the next
# attempt finds the half in /opt/ml/checkpoints and finishes.
HALF_THEN_KILLED = """\
import os, signal
from pathlib import Path

model = Path(os.environ["SM_MODEL_DIR"])
half = model.parent / "checkpoints" / "half.txt"
if not half.exists():
    half.write_text("the first half")
    os.kill(os.getpid(), signal.SIGKILL)
print("resumed with " + half.read_text())
(model / "model.txt").write_text("trained")
"""


def test_with_checkpoints_the_next_run_of_a_killed_job_resumes(iris_repo: Path) -> None:
    (iris_repo / "src" / "train.py").write_text(HALF_THEN_KILLED)
    set_yaml(iris_repo, "  max_runtime: 600", "  max_runtime: 600\n  checkpoints: true")
    stages = Stages(iris_repo)
    outputs = {"source": stages.source(), "build": stages.build()}
    with pytest.raises(TrainingError, match="killed by signal 9"):
        TrainStage().run(stages.context(outputs))
    again = TrainStage().run(stages.context(outputs))  # the next run: another job, same training
    assert again.status == "Succeeded"
    assert "resumed with the first half" in stages.lines
    assert any("restored into /opt/ml/checkpoints" in line for line in stages.lines)
