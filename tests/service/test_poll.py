"""The polling fallback: a remote that cannot call back (a bare repository without hooks)
is checked every ``service.poll_interval`` seconds, and a push to it starts a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import commit_all, git
from tests.helpers import set_yaml, wait_for
from tests.service.conftest import ServiceProcess, fast_project, finished

pytestmark = pytest.mark.integration


def test_a_push_to_a_polled_remote_starts_a_run(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    seed = fast_project(tmp_path / "seed")
    set_yaml(seed, "branch: main ", "service:\n  poll_interval: 1\nbranch: main ")
    first = commit_all(seed, "poll the remote every second")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    assert not (origin / "hooks" / "post-receive").exists()
    served = tmp_path / "served"
    git(tmp_path, "clone", "-q", str(origin), str(served))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(origin), str(dev))

    service = ServiceProcess(served, tmp_path / "service.log").start()
    services.append(service)
    # The first poll finds origin's main never built: it is queued (and built) like any push.
    runs = wait_for("the first poll", lambda: service.get("/api/runs"))
    assert runs[0]["commit_sha"] == first and runs[0]["trigger"]["kind"] == "poll"

    set_yaml(dev, "C: 1.0", "C: 0.5")
    pushed = commit_all(dev, "pushed where nothing calls back")
    git(dev, "push", "-q", "origin", "main")

    def run_of_push() -> dict[str, object] | None:
        return next((r for r in service.get("/api/runs") if r["commit_sha"] == pushed), None)

    run = wait_for("a poll to see the push", run_of_push)
    assert run["trigger"] == {"kind": "poll", "fetch": "origin", "branch": "main"}
    status = wait_for("the run of the push", lambda: finished(served, int(str(run["id"]))))
    assert status == "Succeeded", (tmp_path / "service.log").read_text()
    shown = service.get(f"/api/runs/{run['id']}")
    assert shown["run"]["commit_sha"] == pushed
    # Later polls see the same head: nothing more is queued.
    assert [r["commit_sha"] for r in service.get("/api/runs")].count(pushed) == 1
