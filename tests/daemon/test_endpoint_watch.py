"""`mlcicd up`'s endpoint supervision and staging endpoints: one whose run died is removed,
never restarted (a crashed production endpoint is, as tests/containers shows for podman)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from mlcicd.daemon.endpoint_watch import EndpointWatch
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import NotFoundError
from mlcicd.project import Project
from mlcicd.stages.staging import StagingStage
from mlcicd.state import MinuteMetrics
from tests.endpoints.conftest import endpoint_config
from tests.endpoints.test_updates import ROWS
from tests.helpers import IrisModel, delete_endpoints, record_endpoint, set_yaml, wait_for
from tests.serving.helpers import NO_HANDLERS, request
from tests.stages.conftest import Stages, registered

pytestmark = pytest.mark.integration  # a real staging endpoint

STAGING = "iris-classifier-endpoint-staging"
JSON = {"Content-Type": "application/json"}


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


def test_an_endpoints_metrics_are_kept_per_minute_and_pruned_after_a_week(
    tmp_path: Path, iris_project: Path, iris: IrisModel
) -> None:
    backend = LocalEndpointBackend(iris_project / ".mlcicd" / "endpoints", stop_timeout=20.0)
    try:
        served = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, endpoint="iris-ep"))
        assert served.url is not None
        project = Project(iris_project)
        record_endpoint(project.state, "iris-ep", 1)
        old = MinuteMetrics("iris-ep", int(time.time() - 8 * 86400), "AllTraffic", 1, 0, 0)
        project.state.record_endpoint_minute([old], now=old.minute)
        for _ in range(3):
            assert request(served.url, body=json.dumps(ROWS), headers=JSON).status == 200
        assert request(served.url, body=b"{not json", headers=JSON).status == 400
        watch = EndpointWatch(print)

        def sampled() -> list[MinuteMetrics] | None:
            watch._sampled.clear()  # sample now, whatever SAMPLE_EVERY says
            watch.sample(project)
            rows = project.state.endpoint_metric_history("iris-ep", since=0)
            return rows if sum(r.errors_4xx for r in rows) == 1 else None

        rows = wait_for("the four requests to be counted", sampled, timeout=60)
        assert [(r.variant, r.invocations, r.errors_4xx, r.share) for r in rows] == [
            ("AllTraffic", 4, 1, 1.0)
        ]
        assert rows[0].model_p50_ms is not None and rows[0].model_p99_ms is not None

        # The next minute's first sample writes the minute that ended in full, then its own;
        # the week-old row is pruned.
        watch._sampled.clear()
        watch._sampled[(str(project.state_dir), "iris-ep")] = (0.0, rows[0].minute)
        watch.sample(project, now=rows[0].minute + 61.0)
        minutes = project.state.endpoint_metric_history("iris-ep", since=0)
        assert [r.minute for r in minutes] == [rows[0].minute, rows[0].minute + 60]
        assert minutes[0].invocations == 4
    finally:
        delete_endpoints(backend)
