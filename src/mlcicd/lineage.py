"""Where did this come from? commit → build → processing steps' outputs → training job →
evaluation report → model package → endpoint configs.

``lineage(state, target)`` answers for a model package (``group/version``, or a version of
the project's group) or for an endpoint (its current model's lineage and its history).
"""

from __future__ import annotations

import re
from typing import Any

from mlcicd.errors import NotFoundError
from mlcicd.state import State


def model_lineage(state: State, group: str, version: int) -> dict[str, Any]:
    package = state.get_model_package(group, version)
    recorded = package.lineage
    job: dict[str, Any] = dict(recorded.get("training_job") or {})
    if package.training_job:
        try:
            record = state.get_training_job(package.training_job)
            job.update(
                name=record.name,
                status=record.status,
                hyperparameters=record.hyperparameters,
                data_digest=record.data_digest,
                metrics=record.metrics,
                started_at=record.started_at,
                ended_at=record.ended_at,
                log_path=record.log_path,
            )
        except NotFoundError:
            pass
    configs = []
    names = {e.name for e in state.list_endpoints()}
    for endpoint in sorted(names):
        for config in state.endpoint_configs(endpoint):
            if config.model_group == group and config.model_version == version:
                configs.append(
                    {
                        "name": config.name,
                        "endpoint": endpoint,
                        "created_at": config.created_at,
                        "run_id": config.run_id,
                    }
                )
    return {
        "commit": recorded.get("commit", {"commit": package.commit_sha}),
        "build": recorded.get("build", {"digest": package.build_digest}),
        "processing": recorded.get("processing", {}),
        "training_job": job,
        "model_package": {
            "arn": package.arn,
            "status": package.status,
            "status_reason": package.status_reason,
            "sha256": package.model_sha256,
            "uri": package.model_uri,
            "metrics": package.metrics,
            "run_id": package.run_id,
            "created_at": package.created_at,
        },
        "endpoint_configs": configs,
        "transform_jobs": [
            {"name": j.name, "status": j.status, "output": j.output_uri, "run_id": j.run_id}
            for j in state.transform_jobs(group, version)
        ],
    }


def lineage(state: State, target: str, default_group: str) -> dict[str, Any]:
    if m := re.fullmatch(r"(?:(.+)/)?(\d+)", target):
        return model_lineage(state, m.group(1) or default_group, int(m.group(2)))
    endpoint = state.get_endpoint(target)
    if endpoint is None:
        raise NotFoundError(
            f"{target!r} is neither a model version (GROUP/VERSION) nor an endpoint"
        )
    model = None
    if endpoint.model_group and endpoint.model_version is not None:
        model = model_lineage(state, endpoint.model_group, endpoint.model_version)
    return {
        "endpoint": {
            "name": endpoint.name,
            "status": endpoint.status,
            "url": endpoint.url,
            "config": endpoint.config_name,
        },
        "model": model,
        "history": state.endpoint_history(target),
    }
