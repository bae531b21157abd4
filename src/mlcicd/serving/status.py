"""``status.json``: what an endpoint's supervisor says of itself.

The supervisor writes it, atomically, whenever something in it changes (nothing else
writes it): its status, where it listens, the serving generation and its config, the
workers, why it failed, how the last update went (as its
:class:`~mlcicd.serving.rollout.Rollout` recorded it) and, with ``autoscaling``, how many
workers serve and why (its :class:`~mlcicd.serving.autoscale.Autoscaler`'s record).
:mod:`mlcicd.endpoints.local` reads it to describe the endpoint and to wait for a deploy. The
supervisor imports this module and hands itself over as a :class:`StatusSource`; nothing here
imports the supervisor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from mlcicd import __version__
from mlcicd.serving.generation import Generation
from mlcicd.serving.layout import LAYOUT_VERSION
from mlcicd.serving.workers import WorkerPool


class StatusSource(Protocol):
    """What ``status.json`` describes: an endpoint's supervisor
    (:class:`mlcicd.serving.supervisor.Supervisor`)."""

    status: str
    host: str
    port: int | None
    launch_id: str | None
    start_time: int | None
    started_at: str
    current: Generation | None
    workers: WorkerPool
    failure_reason: str | None
    failure_kind: str | None
    log_hint: str


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compiled(supervisor: StatusSource, gen: Generation | None, variant: str) -> list[str] | None:
    """The model methods a ready worker of ``gen`` answers through compiled code for
    ``variant`` (:attr:`mlcicd.serving.handlers.LoadedVariant.compiled`); None before one is
    ready."""
    for worker in supervisor.workers.by_pid.values():
        if worker.generation is gen and worker.compiled is not None:
            methods = worker.compiled.get(variant)
            if isinstance(methods, list):
                return [str(m) for m in methods]
    return None


def status_document(supervisor: StatusSource, updates: Mapping[str, Any]) -> dict[str, Any]:
    """What ``status.json`` says of ``supervisor`` now; ``updates``: how its updates went
    (:meth:`mlcicd.serving.rollout.Rollout.record`) and its scaling (``autoscaling``)."""
    gen = supervisor.current
    config = gen.config if gen else None
    host = "127.0.0.1" if supervisor.host in ("0.0.0.0", "::", "") else supervisor.host
    port = supervisor.port
    return {
        "status": supervisor.status,
        # What a deploy compares with its own, to tell whether this supervisor can start its
        # workers (:mod:`mlcicd.serving.handover`).
        "mlcicd_version": __version__,
        "layout_version": LAYOUT_VERSION,
        "pid": os.getpid(),
        "pid_start_time": supervisor.start_time,
        "launch_id": supervisor.launch_id,
        "host": supervisor.host,
        "port": port,
        "url": f"http://{host}:{port}" if port else None,
        "generation": gen.number if gen else None,
        "config_name": config.name if config else None,
        "config_digest": gen.digest if gen else None,
        "endpoint_name": config.endpoint_name if config else None,
        "model_sha256": config.variants[0].model_sha256 if config else None,
        "variants": [
            {
                "name": v.name,
                "model_sha256": v.model_sha256,
                "weight": v.weight,
                "compiled": _compiled(supervisor, gen, v.name),
            }
            for v in config.variants
        ]
        if config
        else [],
        "workers": [
            {
                "pid": w.pid,
                "start_time": w.start_time,
                "generation": w.generation.number,
                "state": w.state,
            }
            for w in supervisor.workers.by_pid.values()
        ],
        "worker_restarts": supervisor.workers.restarts,
        "started_at": supervisor.started_at,
        "updated_at": utcnow(),
        "failure_reason": supervisor.failure_reason,
        "failure_kind": supervisor.failure_kind,
        **updates,
        "deployment": config.deployment.to_dict() if config else None,
        "log": supervisor.log_hint,
    }
