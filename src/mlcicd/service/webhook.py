"""GitHub's webhook: ``POST /webhooks/github``.

The signature (``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the secret) is
checked with a constant-time compare before anything in the body is read; unsigned or
forged → 401 and nothing runs. ``ping`` → 200 (or the refusal below, when it names another
repository, so a misdirected hook shows at once). Other events and branches are
acknowledged and ignored.

A signed body is still only a claim: whoever captured one can resend it, and the secret may
be shared by other repositories' hooks. So a ``push`` to a project's branch queues a run of
its ``after`` commit only when

- the push is for the repository of the project's configured remote (``service.remote``,
  ``origin`` by default; 403 naming the expected one otherwise; 409 when the repository has
  no such remote) — the run fetches that remote by name, never a URL from the payload;
- ``after`` is a commit id (400 otherwise) and still the branch's head at that remote
  (else 200 "not the head": an old push must not redeploy its commit or supersede a newer
  queued run);
- neither its delivery id nor its body was received before (a replay under a new
  ``X-GitHub-Delivery``, which the signature does not cover, is known by the body's digest).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlcicd.project import Project
from mlcicd.service.triggers import branch_head, queueing, remote_url, same_repository
from mlcicd.state import Delivery

COMMIT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1, or a SHA-256 repository's


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


def handle(
    targets: Sequence[WebhookTarget], headers: Mapping[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
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
    digest = hashlib.sha256(body).hexdigest()
    delivery = Delivery(
        id=headers.get("x-github-delivery") or digest, event=event or "unknown", body_sha256=digest
    )
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if event == "ping":  # sent when the hook is made: a wrong repository shows in GitHub's UI now
        if isinstance(payload, dict) and isinstance(payload.get("repository"), dict):
            matched, refusal = _match(trusted, payload)
            if not matched:
                return refusal
        return 200, {"ok": True, "event": "ping"}
    if payload is None:
        return 400, {"error": "the body is not JSON"}
    if event != "push" or not isinstance(payload, dict):
        for t in trusted:
            t.project.state.record_delivery(delivery)
        return 200, {"ignored": f"event {event or 'unknown'!r}"}
    matched, refusal = _match(trusted, payload)
    if not matched:
        return refusal
    answer: dict[str, Any] = {"runs": [], "ignored": []}
    unreadable: list[str] = []
    for t, url in matched:
        config = t.project.config
        if payload.get("ref") != f"refs/heads/{config.branch}" or payload.get("deleted"):
            t.project.state.record_delivery(delivery)
            answer["ignored"].append(
                f"{config.pipeline}: {str(payload.get('ref'))[:200]} is not refs/heads/{config.branch}"
            )
            continue
        sha = payload.get("after")
        if not isinstance(sha, str) or not COMMIT_ID.fullmatch(sha):
            return 400, {"error": f"the push's 'after' is not a commit id: {str(sha)[:80]!r}"}
        with queueing:  # the head read and the queueing of it, in the remote's order
            head = branch_head(url, config.branch, t.project.repo)
            if head is None:  # not recorded: a redelivery once the remote answers still runs
                unreadable.append(
                    f"refs/heads/{config.branch} of remote {config.service.remote!r} ({url})"
                )
                continue
            if head != sha:
                t.project.state.record_delivery(delivery)
                answer["ignored"].append(
                    f"{config.pipeline}: {sha[:12]} is not the head of {config.branch} (now {head[:12]}):"
                    " an older push, or a replayed one"
                )
                continue
            run, _ = t.project.state.enqueue_run(
                pipeline=config.pipeline,
                project_dir=str(t.project.root),
                ref=sha,
                commit_sha=sha,
                trigger={
                    "kind": "webhook",
                    "delivery": delivery.id,
                    "fetch": config.service.remote,
                    "branch": config.branch,
                },
                delivery=delivery,
            )
        if run is None:
            answer["ignored"].append(
                f"{config.pipeline}: delivery {delivery.id[:80]} or its body was received before"
            )
        else:
            answer["runs"].append({"pipeline": config.pipeline, "run": run.id, "commit": sha})
    if unreadable and not answer["runs"]:
        return 502, {
            "error": f"cannot read {', '.join(unreadable)}",
            "hint": "check that the service can reach the remote, then redeliver the push from GitHub",
        }
    return (202 if answer["runs"] else 200), answer


def _match(
    trusted: Sequence[WebhookTarget], payload: dict[str, Any]
) -> tuple[list[tuple[WebhookTarget, str]], tuple[int, dict[str, Any]]]:
    """The targets whose configured remote is the push's repository (each with the remote's
    URL), or why none is: 403 for another repository, 409 when the remote is not configured."""
    repository = payload.get("repository")
    fields: dict[str, Any] = repository if isinstance(repository, dict) else {}
    found = (fields.get(k) for k in ("clone_url", "ssh_url", "git_url", "html_url", "url"))
    urls: list[str] = [u for u in found if isinstance(u, str) and u]
    matched: list[tuple[WebhookTarget, str]] = []
    builds: list[str] = []
    missing: list[WebhookTarget] = []
    for t in trusted:
        remote = t.project.config.service.remote
        own = remote_url(t.project, remote)
        if own is None:
            missing.append(t)
        elif any(same_repository(own, u, t.project.repo) for u in urls):
            matched.append((t, own))
        else:
            builds.append(f"{own} (remote {remote!r} of {t.project.repo})")
    if matched:
        return matched, (200, {})
    pushed = repr(urls[0][:200]) if urls else "a repository the payload does not name"
    if builds:
        return [], (
            403,
            {
                "error": f"the push is for {pushed}; this service builds only {', '.join(builds)}",
                "hint": "send this repository's pushes to the service that builds it, or set service.remote"
                " in mlcicd.yaml to the remote whose pushes this service should build",
            },
        )
    t = missing[0]
    remote = t.project.config.service.remote
    return [], (
        409,
        {
            "error": f"{t.project.repo} has no remote {remote!r}: a push is fetched only from the configured"
            f" remote (service.remote), never from a URL in the payload (the push is for {pushed})",
            "hint": f"git -C {t.project.repo} remote add {remote} <URL of the GitHub repository>,"
            " or set service.remote in mlcicd.yaml to an existing remote (`git remote -v`)",
        },
    )


__all__ = ["WebhookTarget", "handle", "signature", "verify"]
