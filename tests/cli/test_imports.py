"""Every command starts by importing the CLI and `mlcicd run` the stage list: neither may load
the machinery of a command or a stage the run does not use (each module costs its start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IRIS, REPO

pytestmark = pytest.mark.integration  # a fresh interpreter

# Imported only by the commands and stages that use them.
ON_DEMAND = {
    "mlcicd.aws.pipeline_stack",  # mlcicd aws template|deploy
    "mlcicd.aws.template",
    "mlcicd.aws.package",  # mlcicd aws package|deploy
    "mlcicd.aws.stack",  # mlcicd aws deploy|destroy
    "mlcicd.stages.staging",  # staging:
    "mlcicd.endpoints.load",
    "mlcicd.endpoints.acceptance",
    "mlcicd.stages.transform",  # transform:
    "mlcicd.transform.local",
}


def imported(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{code}\nprint(json.dumps(list(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out))


def stages_of(project: Path) -> str:
    return (
        "import mlcicd.cli\n"
        "from pathlib import Path\n"
        "from mlcicd.config import load_config\n"
        "from mlcicd.stages import default_stages\n"
        f"names = [s.name for s in default_stages(load_config(Path({str(project)!r})))]\n"
    )


def test_a_run_without_staging_or_transform_loads_neither_nor_the_aws_stack() -> None:
    loaded = imported(stages_of(REPO / "examples" / "pipeline"))
    assert "mlcicd.cli.aws" in loaded and "mlcicd.stages.deploy" in loaded  # registered, listed
    assert not loaded & ON_DEMAND, sorted(loaded & ON_DEMAND)


def test_a_run_with_staging_loads_its_stage() -> None:
    loaded = imported(stages_of(IRIS) + "assert 'staging' in names")
    assert {"mlcicd.stages.staging", "mlcicd.endpoints.load"} <= loaded


def test_the_stages_are_still_importable_from_the_package() -> None:
    from mlcicd.stages import StagingStage, TransformStage

    assert StagingStage.name == "staging" and TransformStage.name == "transform"
