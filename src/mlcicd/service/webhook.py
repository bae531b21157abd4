"""GitHub's webhook: ``POST /webhooks/github``.

The signature (``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the secret) is
checked with a constant-time compare before anything in the body is read; unsigned or
forged → 401 and nothing runs. ``ping`` → 200. A ``push`` to a project's branch queues a run
of its ``after`` commit, fetched from the configured remote (or the payload's clone URL);
other events and branches are acknowledged and ignored. A delivery id is remembered, so a
redelivery starts nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlcicd.project import Project
from mlcicd.service.triggers import remote_url, same_repository


@dataclass(frozen=True)
class WebhookTarget:
    project: Project
    secret: bytes | None
    secret_env: str


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


def handle(targets: Sequence[WebhookTarget], headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one delivery. Header names are case-insensitive."""
    headers = {k.lower(): v for k, v in headers.items()}
    if not any(t.secret for t in targets):
        names = ", ".join(sorted({f"${t.secret_env}" for t in targets}))
        return 401, {"error": f"no webhook secret is configured: set {names} for `mlcicd up`"}
    header = headers.get("x-hub-signature-256")
    trusted = [t for t in targets if t.secret and verify(t.secret, body, header)]
    if not trusted:
        return 401, {"error": "missing or wrong X-Hub-Signature-256"}
    event = headers.get("x-github-event", "")
    delivery = headers.get("x-github-delivery") or hashlib.sha256(body).hexdigest()
    if event == "ping":
        return 200, {"ok": True, "event": "ping"}
    try:
        payload = json.loads(body)
    except ValueError:
        return 400, {"error": "the body is not JSON"}
    if event != "push" or not isinstance(payload, dict):
        for t in trusted:
            t.project.state.record_delivery(delivery, event or "unknown")
        return 200, {"ignored": f"event {event or 'unknown'!r}"}
    repository = payload.get("repository") or {}
    found = (repository.get(k) for k in ("clone_url", "ssh_url", "git_url", "html_url", "url"))
    urls: list[str] = [u for u in found if isinstance(u, str) and u]
    matched = [
        t for t in trusted
        if (own := remote_url(t.project, t.project.config.service.remote))
        and any(same_repository(own, u, t.project.repo) for u in urls)
    ] or (trusted if len(trusted) == 1 else [])  # fmt: skip
    if not matched:
        return 200, {"ignored": f"no project builds {urls[0] if urls else 'this repository'}"}
    answer: dict[str, Any] = {"runs": [], "ignored": []}
    for t in matched:
        config = t.project.config
        if payload.get("ref") != f"refs/heads/{config.branch}" or payload.get("deleted"):
            t.project.state.record_delivery(delivery, event)
            answer["ignored"].append(f"{config.pipeline}: {payload.get('ref')} is not refs/heads/{config.branch}")
            continue
        sha = payload.get("after")
        if not isinstance(sha, str) or not sha:
            return 400, {"error": "the push has no 'after' commit"}
        fetch = config.service.remote if remote_url(t.project, config.service.remote) else urls[0] if urls else None
        run, _ = t.project.state.enqueue_run(
            pipeline=config.pipeline, project_dir=str(t.project.root), ref=sha, commit_sha=sha,
            trigger={"kind": "webhook", "delivery": delivery, "fetch": fetch, "branch": config.branch},
            delivery=(delivery, event),
        )  # fmt: skip
        if run is None:
            answer["ignored"].append(f"{config.pipeline}: delivery {delivery} was received before")
        else:
            answer["runs"].append({"pipeline": config.pipeline, "run": run.id, "commit": sha})
    return (202 if answer["runs"] else 200), answer


__all__ = ["WebhookTarget", "handle", "signature", "verify"]
