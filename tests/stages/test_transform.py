"""TRANSFORM on its own: the registered model scores the configured input with this commit's
inference code; the same model on the same input is Cached, a changed input runs again."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.stages import TransformStage as Stage
from mlcicd.stages import default_stages
from tests.helpers import IrisModel
from tests.stages.conftest import Stages
from tests.stages.test_deploy import registered

pytestmark = pytest.mark.integration  # worker processes

SPECIES = ("setosa", "versicolor", "virginica")
SECTION = """
transform:
  input: batch
  output: scored
  max_concurrent: 2
"""


def test_the_new_model_scores_the_input_and_the_same_input_is_cached(
    iris_repo: Path, iris: IrisModel
) -> None:
    with open(iris_repo / "mlcicd.yaml", "a") as fh:
        fh.write(SECTION)
    (iris_repo / "batch").mkdir()
    source = iris_repo / "batch" / "a.csv"
    source.write_text("".join(",".join(map(str, row)) + "\n" for row in iris.X))
    stages = Stages(iris_repo)
    names = [s.name for s in default_stages(stages.project.config)]
    # last before deploy: after staging (the example has it), so a rejected model scored nothing
    assert names.index("register") < names.index("staging") < names.index("transform")
    assert names.index("transform") + 1 == names.index("deploy")
    outputs = {
        "source": stages.source(),
        "build": stages.build(),
        "register": registered(stages.project, iris),
    }

    first = Stage().run(stages.context(outputs))

    assert first.status == "Succeeded" and first.outputs["rows"] == 150
    scored = (iris_repo / "scored" / "a.csv.out").read_text().splitlines()
    assert scored == [SPECIES[p] for p in iris.model.predict(iris.X)]
    job = stages.project.state.get_transform_job(first.outputs["job"])
    assert (job.status, job.model_version, job.output_uri) == (
        "Completed",
        1,
        str(iris_repo / "scored"),
    )

    again = Stage().run(stages.context(outputs))
    assert again.status == "Cached" and again.outputs["job"] == first.outputs["job"]

    (iris_repo / "scored" / "a.csv.out").unlink()  # an output gone: the job runs again
    assert Stage().run(stages.context(outputs)).status == "Succeeded"

    source.write_text("5.1,3.5,1.4,0.2\n")
    changed = Stage().run(stages.context(outputs))
    assert changed.status == "Succeeded" and changed.outputs["rows"] == 1
    assert (iris_repo / "scored" / "a.csv.out").read_text() == "setosa\n"
