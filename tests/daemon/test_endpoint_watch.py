"""`mlcicd up`'s endpoint supervision and staging endpoints: one whose run died is removed,
never restarted (a crashed production endpoint is, as tests/containers shows for podman)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mlcicd.daemon.endpoint_watch import EndpointWatch
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import NotFoundError
from mlcicd.project import Project
from mlcicd.stages.staging import StagingStage
from tests.helpers import IrisModel, set_yaml, wait_for
from tests.stages.conftest import Stages, registered

pytestmark = pytest.mark.integration  # a real staging endpoint

STAGING = "iris-classifier-endpoint-staging"


def test_a_staging_endpoint_whose_run_died_is_removed_not_restarted(
    iris_project: Path, iris: IrisModel
) -> None:
    set_yaml(iris_project, "  load:", "  keep: true\n  load:")  # left serving, as a kill leaves it
    set_yaml(iris_project, "requests: 200", "requests: 20")
    stages = Stages(iris_project)
    ctx = stages.context(
        {
            "source": stages.source(),
            "build": stages.build(),
            "register": registered(stages.project, iris),
        }
    )
    assert StagingStage().run(ctx).status == "Succeeded"
    backend = LocalEndpointBackend(iris_project / ".mlcicd" / "endpoints")
    server = backend.describe(STAGING)
    assert server.pid is not None
    # The run dies (kill -9), and so does its staging server (a reboot): `mlcicd up` restores
    # the endpoints that were serving — but not this one, whose run is gone.
    stages.project.state.fail_run_in_progress(ctx.run.id, "killed")
    os.kill(server.pid, signal.SIGKILL)
    wait_for("the staging server to die", lambda: backend.describe(STAGING).status != "InService")
    set_yaml(iris_project, "  keep: true\n", "")
    lines: list[str] = []
    EndpointWatch(lines.append).check(Project(iris_project), restoring=True)

    assert lines == [f"removed staging endpoint {STAGING}: the run that deployed it is over"]
    with pytest.raises(NotFoundError):
        backend.describe(STAGING)
    assert stages.project.state.get_endpoint(STAGING) is None
