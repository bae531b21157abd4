"""DEPLOY: create or update the endpoint to serve the registered model.

An endpoint config names exactly what is served (model sha256, code, runtime settings);
when the endpoint already serves that config and is InService, deploy is a no-op.
A failed create or update leaves the endpoint serving what it served before.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import ClassVar

from mlcicd.config import Config, DeployConfig
from mlcicd.endpoints import EndpointBackend, EndpointConfig, ProductionVariant
from mlcicd.errors import ConfigError, NotFoundError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.project import Project
from mlcicd.state import EndpointConfigRecord, EndpointRecord


def endpoint_backend(config: DeployConfig, project: Project) -> EndpointBackend:
    if config.backend == "local":
        from mlcicd.endpoints.local import LocalEndpointBackend

        return LocalEndpointBackend(project.state_dir / "endpoints")
    raise ConfigError(
        f"deploy backend {config.backend!r} is not available in this version",
        key="deploy.backend",
        hint="use backend: local",
    )


class DeployStage:
    name: ClassVar[str] = "deploy"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-deploy"

    def run(self, ctx: RunContext) -> StageResult:
        cfg = ctx.config.deploy
        project = ctx.project
        registered = ctx.outputs["register"]
        code_dir = Path(ctx.outputs["source"]["source_dir"]) / cfg.source_dir
        model_path = project.store.local_path(registered["model_uri"])
        if model_path is None:
            raise ConfigError("the local endpoint needs a local artifact store", key="store.uri")
        variant = ProductionVariant(
            name="AllTraffic",
            model_data=model_path,
            model_sha256=registered["model_sha256"],
            code_dir=code_dir,
            entry_point=cfg.entry_point,
            python=Path(ctx.outputs["build"]["python"]),
            environment=cfg.environment,
        )
        settings = {
            "model": registered["model_sha256"], "code": ctx.outputs["source"]["tree"],
            "entry_point": cfg.entry_point, "python": str(variant.python), "workers": cfg.workers,
            "port": cfg.port, "environment": cfg.environment, "max_payload_mb": cfg.max_payload_mb,
        }  # fmt: skip
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        endpoint_name = ctx.config.endpoint_name
        config_name = f"{endpoint_name[:40]}-v{registered['version']}-{digest[:8]}"
        backend = endpoint_backend(cfg, project)

        try:
            current = backend.describe(endpoint_name)
        except NotFoundError:
            current = None
        model_ref = f"{registered['group']}/{registered['version']}"
        if current and current.status == "InService" and current.config_name == config_name and not ctx.options.force:
            ctx.log(f"{endpoint_name} already serves {config_name} at {current.url}")
            return StageResult(
                "Cached", f"{endpoint_name} already serves model {model_ref}",
                {"endpoint": endpoint_name, "url": current.url, "config_name": config_name, "changed": False},
            )  # fmt: skip

        action = "updating" if current and current.status != "Failed" else "creating"
        ctx.log(f"{action} {endpoint_name} with {config_name} (model {model_ref})")
        endpoint_config = EndpointConfig(
            name=config_name,
            endpoint_name=endpoint_name,
            variants=(variant,),
            port=cfg.port if cfg.port is not None else (current.port if current else None),
            workers=cfg.workers,
            startup_timeout=cfg.startup_timeout,
            max_payload_bytes=int(cfg.max_payload_mb * 1024 * 1024),
        )
        project.state.record_endpoint_config(
            EndpointConfigRecord(
                name=config_name, endpoint_name=endpoint_name, model_group=registered["group"],
                model_version=registered["version"], model_sha256=registered["model_sha256"],
                run_id=ctx.run.id, reason="deploy", spec=settings, created_at=time.time(),
            )
        )  # fmt: skip
        try:
            described = backend.deploy(endpoint_config)
        finally:
            self._record(ctx, backend, endpoint_name)
        ctx.log(f"{endpoint_name} is {described.status} at {described.url} (pid {described.pid})")
        return StageResult(
            "Succeeded", f"{endpoint_name} InService at {described.url}",
            {"endpoint": endpoint_name, "url": described.url, "config_name": config_name, "changed": True},
        )  # fmt: skip

    @staticmethod
    def _record(ctx: RunContext, backend: EndpointBackend, name: str) -> None:
        """Mirror what the backend reports into the state database (also after a failure)."""
        try:
            described = backend.describe(name)
        except NotFoundError:
            ctx.project.state.delete_endpoint(name)
            return
        state = ctx.project.state
        previous = state.get_endpoint(name)
        config = next((c for c in state.endpoint_configs(name) if c.name == described.config_name), None)
        now = time.time()
        state.upsert_endpoint(
            EndpointRecord(
                name=name, backend=backend.TYPE, status=described.status, url=described.url,
                port=described.port, pid=described.pid, config_name=described.config_name,
                model_group=config.model_group if config else None,
                model_version=config.model_version if config else None,
                model_sha256=described.model_sha256,
                failure_reason=described.failure_reason or described.last_update_failure,
                created_at=previous.created_at if previous else now, updated_at=now,
            )
        )  # fmt: skip
