"""``status.json``: what an endpoint's supervisor says of itself.

The supervisor writes it, atomically, whenever something in it changes (nothing else
writes it): its status, where it listens, the serving generation and its config, the
workers, why it failed, and how the last update went (as its
:class:`~mlcicd.serving.rollout.Rollout` recorded it). :mod:`mlcicd.endpoints.local` reads
it to describe the endpoint and to wait for a deploy.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the supervisor imports this module
    from mlcicd.serving.supervisor import Supervisor


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_document(supervisor: Supervisor) -> dict[str, Any]:
    """What ``status.json`` says of ``supervisor`` now."""
    gen = supervisor.current
    config = gen.config if gen else None
    host = "127.0.0.1" if supervisor.host in ("0.0.0.0", "::", "") else supervisor.host
    port, rollout = supervisor.port, supervisor.rollout
    return {
        "status": supervisor.status,
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
            {"name": v.name, "model_sha256": v.model_sha256, "weight": v.weight}
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
            for w in supervisor.workers.values()
        ],
        "worker_restarts": supervisor.worker_restarts,
        "started_at": supervisor.started_at,
        "updated_at": utcnow(),
        "failure_reason": supervisor.failure_reason,
        "failure_kind": supervisor.failure_kind,
        "last_update_failure": rollout.last_update_failure,
        "last_update_digest": rollout.last_update_digest,
        "last_update_at": rollout.last_update_at,
        "last_rollback": rollout.last_rollback,
        "traffic": rollout.traffic,
        "deployment": config.deployment.to_dict() if config else None,
        "log": supervisor.log_hint,
    }
