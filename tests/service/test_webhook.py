"""GitHub's webhook: signed pushes run, forged ones don't, and a signed body from outside
names nothing the service fetches or runs but the configured remote's branch head.

The first test runs a real service; the others call :func:`webhook.handle` in-process on real
git repositories (a GitHub stand-in and the service's clone) and a real state database, so the
queue can be looked at while nothing claims its runs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlcicd.errors import MlcicdError, ProjectError
from mlcicd.project import Project
from mlcicd.service.runner import prepare_source
from mlcicd.service.webhook import WebhookTarget, handle, signature
from tests.conftest import commit_all, git
from tests.helpers import set_yaml, wait_for
from tests.service.conftest import SECRET, ServiceProcess, fast_project, finished


def deliver(
    service: ServiceProcess,
    event: str,
    payload: dict[str, object],
    *,
    secret: str | None = SECRET,
    delivery: str | None = None,
) -> tuple[int, dict[str, object]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret.encode(), body)
    return service.post("/webhooks/github", body, headers)


@pytest.mark.integration
def test_signed_push_runs_forged_and_redelivered_do_not(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    upstream = fast_project(tmp_path / "upstream")  # stands for the GitHub repository
    served = tmp_path / "served"
    git(tmp_path, "clone", "-q", str(upstream), str(served))
    sha = git(upstream, "rev-parse", "HEAD").strip()
    service = ServiceProcess(served, tmp_path / "service.log").start()
    services.append(service)
    push = {
        "ref": "refs/heads/main",
        "after": sha,
        "repository": {"clone_url": str(upstream), "full_name": "ada/iris"},
    }

    assert deliver(service, "ping", {"zen": "Keep it logically awesome."})[0] == 200
    assert deliver(service, "push", push, secret=None)[0] == 401
    assert deliver(service, "push", push, secret="not the secret")[0] == 401
    forged_body = deliver(service, "push", {**push, "after": "0" * 40}, secret="guess")
    assert forged_body[0] == 401
    status, answer = deliver(service, "push", {**push, "ref": "refs/heads/feature"})
    assert status == 200 and answer["ignored"]
    assert deliver(service, "issues", {"action": "opened"})[0] == 200
    made = tmp_path / "made-by-the-attacker"
    status, answer = deliver(
        service, "push", {**push, "repository": {"clone_url": f"--upload-pack=touch {made}"}}
    )
    assert status == 403 and str(upstream) in str(answer["error"]), (
        answer
    )  # not the repository it builds
    assert service.get("/api/runs") == []  # nothing ran

    status, answer = deliver(service, "push", push, delivery="delivery-1")
    assert status == 202, answer
    run_id = answer["runs"][0]["run"]  # type: ignore[index]
    status, again = deliver(service, "push", push, delivery="delivery-1")  # GitHub's "redeliver"
    assert status == 200 and again["runs"] == [] and again["ignored"]
    assert [r["id"] for r in service.get("/api/runs")] == [run_id]

    assert wait_for("the run", lambda: finished(served, run_id)) == "Succeeded", (
        tmp_path / "service.log"
    ).read_text()
    run = service.get(f"/api/runs/{run_id}")["run"]
    assert (
        run["commit_sha"] == sha
        and run["trigger"]["kind"] == "webhook"
        and run["trigger"]["fetch"] == "origin"
    )
    status, replayed = deliver(
        service, "push", push, delivery="delivery-2"
    )  # captured, resent under a new id
    assert status == 200 and replayed["runs"] == [], replayed
    assert [r["id"] for r in service.get("/api/runs")] == [run_id] and not made.exists()


# --- in-process: what a signed body from outside can make the service do -------------------


def _served(tmp_path: Path) -> tuple[Path, Project, WebhookTarget]:
    """An upstream repository (GitHub's stand-in) and the service's clone of it (remote origin)."""
    upstream = fast_project(tmp_path / "upstream")
    served = tmp_path / "served"
    git(tmp_path, "clone", "-q", str(upstream), str(served))
    project = Project(served)
    return (
        upstream,
        project,
        WebhookTarget(project=project, secret=SECRET.encode(), secret_env="MLCICD_WEBHOOK_SECRET"),
    )


def _push(
    target: WebhookTarget, payload: dict[str, Any], delivery: str | None = None
) -> tuple[int, dict[str, Any]]:
    return _send(target, json.dumps(payload).encode(), delivery)


def _send(
    target: WebhookTarget, body: bytes, delivery: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(SECRET.encode(), body),
    }
    return handle([target], headers, body)


def _push_of(upstream: Path, sha: str, clone_url: str | None = None) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "repository": {"clone_url": clone_url or str(upstream), "full_name": "ada/iris"},
    }


def _queued(project: Project) -> list[tuple[str | None, str]]:
    return [(r.commit_sha, r.status) for r in reversed(project.state.list_runs())]


def test_a_clone_url_that_is_an_option_runs_nothing(tmp_path: Path) -> None:
    upstream, project, target = _served(tmp_path)
    git(
        project.repo, "remote", "remove", "origin"
    )  # no configured remote: the payload's URL was fetched
    sha = git(upstream, "rev-parse", "HEAD").strip()
    made = tmp_path / "made-by-the-attacker"
    status, answer = _push(target, _push_of(upstream, sha, clone_url=f"--upload-pack=touch {made}"))
    assert status == 409, answer
    assert "no remote 'origin'" in answer["error"] and "remote add origin" in answer["hint"]
    for run in project.state.list_runs():  # what the runner would do with anything queued
        with contextlib.suppress(MlcicdError):
            prepare_source(project, run)
    assert project.state.list_runs() == [] and not made.exists()


def test_the_runner_fetches_only_a_configured_remote(tmp_path: Path) -> None:
    """A run queued with an outside URL (a database from before) is refused, not fetched."""
    upstream, project, _ = _served(tmp_path)
    sha = git(upstream, "rev-parse", "HEAD").strip()
    made = tmp_path / "made-by-the-attacker"
    run, _ = project.state.enqueue_run(
        pipeline=project.config.pipeline,
        project_dir=str(project.root),
        ref=sha,
        commit_sha=sha,
        trigger={"kind": "webhook", "fetch": f"--upload-pack=touch {made}", "branch": "main"},
    )
    assert run is not None
    with pytest.raises(ProjectError, match="not a remote of") as info:
        prepare_source(project, run)
    assert "service.remote" in (info.value.hint or "")
    assert not made.exists()


def test_a_push_for_another_repository_is_refused(tmp_path: Path) -> None:
    upstream, project, target = _served(tmp_path)
    sha = git(upstream, "rev-parse", "HEAD").strip()
    status, answer = _push(
        target, _push_of(upstream, sha, clone_url="https://github.com/mallory/iris.git")
    )
    assert status == 403, answer
    assert "github.com/mallory/iris" in answer["error"] and str(upstream) in answer["error"]
    assert project.state.list_runs() == []


def test_a_replayed_body_with_a_new_delivery_id_queues_nothing(tmp_path: Path) -> None:
    upstream, project, target = _served(tmp_path)
    sha = git(upstream, "rev-parse", "HEAD").strip()
    body = json.dumps(_push_of(upstream, sha)).encode()
    status, answer = _send(target, body, "delivery-1")
    assert status == 202, answer
    first = answer["runs"][0]["run"]
    project.state.finish_run(first, "Succeeded")  # it ran; a replay would deploy that commit again
    status, answer = _send(target, body, "delivery-2")
    assert status == 200 and answer["runs"] == [], answer
    assert "received before" in answer["ignored"][0]
    assert _queued(project) == [(sha, "Succeeded")]


def test_an_old_captured_push_neither_runs_nor_supersedes_the_newer_one(tmp_path: Path) -> None:
    upstream, project, target = _served(tmp_path)
    old = git(upstream, "rev-parse", "HEAD").strip()
    set_yaml(upstream, "C: 1.0", "C: 0.5")
    new = commit_all(upstream, "newer")
    status, answer = _push(target, _push_of(upstream, new))
    assert status == 202, answer
    # A push of the old commit this service never received (captured on the way, or while it
    # was down).
    status, answer = _push(target, _push_of(upstream, old))
    assert status == 200 and answer["runs"] == [], answer
    assert "not the head" in answer["ignored"][0]
    assert _queued(project) == [(new, "Queued")]


@pytest.mark.parametrize("after", ["--output=x", "HEAD", "main", "0" * 39 + "g"])
def test_after_must_be_a_commit_id(tmp_path: Path, after: str) -> None:
    upstream, project, target = _served(tmp_path)
    status, answer = _push(target, _push_of(upstream, after))
    assert status == 400 and "'after'" in answer["error"], answer
    assert project.state.list_runs() == []


def test_an_unreachable_remote_is_a_failed_delivery_that_can_be_redelivered(tmp_path: Path) -> None:
    upstream, project, target = _served(tmp_path)
    sha = git(upstream, "rev-parse", "HEAD").strip()
    moved = tmp_path / "moved"  # where origin points, and where the repository is not (yet)
    git(project.repo, "remote", "set-url", "origin", str(moved))
    body = json.dumps(_push_of(upstream, sha, clone_url=str(moved))).encode()
    status, answer = _send(target, body, "delivery-1")
    assert status == 502 and "cannot read refs/heads/main of remote 'origin'" in answer["error"], (
        answer
    )
    assert project.state.list_runs() == []
    upstream.rename(
        moved
    )  # the remote answers again: GitHub's "redeliver" of the same delivery runs
    status, answer = _send(target, body, "delivery-1")
    assert status == 202 and answer["runs"][0]["commit"] == sha, answer


def test_a_ping_from_another_repositorys_hook_says_so_at_once(tmp_path: Path) -> None:
    upstream, _, target = _served(tmp_path)
    ping = {
        "zen": "Design for failure.",
        "hook_id": 1,
        "repository": {"clone_url": "https://github.com/ada/other.git"},
    }
    body = json.dumps(ping).encode()
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "p",
        "X-Hub-Signature-256": signature(SECRET.encode(), body),
    }
    status, answer = handle([target], headers, body)
    assert status == 403 and str(upstream) in answer["error"], answer
    own = json.dumps({**ping, "repository": {"clone_url": str(upstream)}}).encode()
    headers["X-Hub-Signature-256"] = signature(SECRET.encode(), own)
    assert handle([target], headers, own) == (200, {"ok": True, "event": "ping"})
