"""GitHub's webhook against a real service: signed pushes run, forged ones don't."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlcicd.service.webhook import signature
from tests.conftest import git
from tests.service.conftest import SECRET, ServiceProcess, fast_project, finished, wait_for

pytestmark = pytest.mark.integration


def deliver(service: ServiceProcess, event: str, payload: dict[str, object], *, secret: str | None = SECRET,
            delivery: str | None = None) -> tuple[int, dict[str, object]]:  # fmt: skip
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4())}  # fmt: skip
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret.encode(), body)
    return service.post("/webhooks/github", body, headers)


def test_signed_push_runs_forged_and_redelivered_do_not(tmp_path: Path, services: list[ServiceProcess]) -> None:
    upstream = fast_project(tmp_path / "upstream")  # stands for the GitHub repository
    served = tmp_path / "served"
    git(tmp_path, "clone", "-q", str(upstream), str(served))
    sha = git(upstream, "rev-parse", "HEAD").strip()
    service = ServiceProcess(served, tmp_path / "service.log").start()
    services.append(service)
    push = {"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": str(upstream), "full_name": "ada/iris"}}

    assert deliver(service, "ping", {"zen": "Keep it logically awesome."})[0] == 200
    assert deliver(service, "push", push, secret=None)[0] == 401
    assert deliver(service, "push", push, secret="not the secret")[0] == 401
    forged_body = deliver(service, "push", {**push, "after": "0" * 40}, secret="guess")
    assert forged_body[0] == 401
    status, answer = deliver(service, "push", {**push, "ref": "refs/heads/feature"})
    assert status == 200 and answer["ignored"]
    assert deliver(service, "issues", {"action": "opened"})[0] == 200
    assert service.get("/api/runs") == []  # nothing ran

    status, answer = deliver(service, "push", push, delivery="delivery-1")
    assert status == 202, answer
    run_id = answer["runs"][0]["run"]  # type: ignore[index]
    status, again = deliver(service, "push", push, delivery="delivery-1")  # GitHub's "redeliver"
    assert status == 200 and again["runs"] == [] and again["ignored"]
    assert [r["id"] for r in service.get("/api/runs")] == [run_id]

    assert wait_for("the run", lambda: finished(served, run_id)) == "Succeeded", (tmp_path / "service.log").read_text()
    run = service.get(f"/api/runs/{run_id}")["run"]
    assert run["commit_sha"] == sha and run["trigger"]["kind"] == "webhook"
