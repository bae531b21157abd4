"""DEPLOY: create or update the endpoint to serve the registered model.

An endpoint config names exactly what is served (model sha256, code, runtime settings);
when the endpoint already serves that config and is InService, deploy is a no-op.
A failed create or update leaves the endpoint serving what it served before; an update
rolled back by an alarm fails the stage with the alarm's figures.

``deploy.variants`` puts several models behind the endpoint with weights (``model:
latest`` is this run's model, a number is that version of the pipeline's model package
group); ``deploy.shadow`` adds a shadow variant; every variant runs this commit's
inference code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.aws.names import versioned_endpoint_config_name
from mlcicd.config import Config, DeployConfig
from mlcicd.endpoints import (
    DeploymentPolicy,
    EndpointBackend,
    EndpointConfig,
    EndpointDescription,
    ProductionVariant,
    open_backend,
)
from mlcicd.endpoints.base import DEFAULT_MODEL_TIMEOUT, data_capture, deployment_policy
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import NotFoundError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.project import Project
from mlcicd.state import EndpointConfigRecord


class DeployStage:
    name: ClassVar[str] = "deploy"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-deploy"

    def run(self, ctx: RunContext) -> StageResult:
        cfg = ctx.config.deploy
        project = ctx.project
        registered = ctx.outputs["register"]
        code_dir = Path(ctx.outputs["source"]["source_dir"]) / cfg.source_dir
        python = Path(ctx.outputs["build"]["python"])

        def production_variant(name: str, model: int | str, weight: float) -> ProductionVariant:
            uri, sha = registered["model_uri"], registered["model_sha256"]
            if model != "latest":
                package = project.state.get_model_package(registered["group"], int(model))
                uri, sha = package.model_uri, package.model_sha256
            return ProductionVariant(
                name=name,
                model_data=self._model_file(ctx, uri, sha),
                model_sha256=sha,
                code_dir=code_dir,
                entry_point=cfg.entry_point,
                python=python,
                environment=cfg.environment,
                weight=weight,
            )

        variants = tuple(production_variant(v.name, v.model, v.weight) for v in cfg.variants) or (
            production_variant("AllTraffic", "latest", 1.0),
        )
        variant = variants[0]
        shadow = production_variant(cfg.shadow.name, cfg.shadow.model, 1.0) if cfg.shadow else None
        policy = self._policy(cfg)
        capture = (
            data_capture(cfg, self._capture_destination(ctx)) if cfg.data_capture.enabled else None
        )
        settings = {
            "model": registered["model_sha256"],
            "code": ctx.outputs["source"]["tree"],
            "entry_point": cfg.entry_point,
            "python": str(variant.python),
            "workers": cfg.workers,
            "port": cfg.port,
            "environment": cfg.environment,
            "max_payload_mb": cfg.max_payload_mb,
        }
        if cfg.model_timeout != DEFAULT_MODEL_TIMEOUT:  # the default stays out: names stay valid
            settings["model_timeout"] = cfg.model_timeout
        if cfg.variants or cfg.shadow:  # kept out otherwise: existing config names stay valid
            settings["variants"] = [(v.name, v.model_sha256, v.weight) for v in variants]
            settings["shadow"] = (shadow.name, shadow.model_sha256) if shadow else None
        if capture is not None:
            settings["data_capture"] = [
                capture.sampling_percentage,
                capture.capture_input,
                capture.capture_output,
            ]
            if isinstance(capture.destination, str):  # on S3: a new store is a new config
                settings["data_capture"].append(capture.destination)
        explainer = (
            self._explainer(ctx) if ctx.config.explain and ctx.config.explain.online else None
        )
        if explainer is not None:  # kept out otherwise: existing config names stay valid
            settings["explainer"] = explainer
        if cfg.autoscaling is not None and cfg.backend == "local":  # in the workers' config.json
            settings["autoscaling"] = dataclasses.asdict(cfg.autoscaling)
        if cfg.backend == "container":  # another image is another config
            settings["image"] = ctx.outputs["build"].get("image_id")
        elif cfg.backend != "local":  # what else a SageMaker EndpointConfig's name must stand for
            settings.update(
                image=ctx.config.train.image,
                instance_type=cfg.instance_type,
                instance_count=cfg.instance_count,
            )
        endpoint_name = ctx.config.endpoint_name
        config_name = config_name_for(endpoint_name, registered, settings)
        backend = open_backend(cfg.backend, project, image=ctx.outputs["build"].get("image"))

        try:
            current = backend.describe(endpoint_name)
        except NotFoundError:
            current = None
        model_ref = f"{registered['group']}/{registered['version']}"
        if (
            current
            and current.status == "InService"
            and current.config_name == config_name
            and not ctx.options.force
        ):
            ctx.log(f"{endpoint_name} already serves {config_name} {_location(current)}")
            return StageResult(
                "Cached",
                f"{endpoint_name} already serves model {model_ref}",
                {
                    "endpoint": endpoint_name,
                    "url": current.url,
                    "config_name": config_name,
                    "changed": False,
                    **_sagemaker_outputs(current),
                },
            )

        action = "updating" if current and current.status != "Failed" else "creating"
        ctx.log(f"{action} {endpoint_name} with {config_name} (model {model_ref})")
        endpoint_config = EndpointConfig(
            name=config_name,
            endpoint_name=endpoint_name,
            variants=variants,
            port=cfg.port if cfg.port is not None else (current.port if current else None),
            workers=cfg.workers,
            startup_timeout=cfg.startup_timeout,
            max_payload_bytes=int(cfg.max_payload_mb * 1024 * 1024),
            header_timeout=cfg.header_timeout,
            body_timeout=cfg.body_timeout,
            model_timeout=cfg.model_timeout,
            shadow=shadow,
            data_capture=capture,
            deployment=policy,
            explainer=explainer,
            autoscaling=cfg.autoscaling,
        )
        record_config(ctx, config_name, endpoint_name, settings, reason="deploy")
        try:
            described = backend.deploy(endpoint_config)
        finally:
            self._record(ctx, backend, endpoint_name)
        ctx.log(f"{endpoint_name} is {described.status} {_location(described)}")
        return StageResult(
            "Succeeded",
            f"{endpoint_name} {described.status} {_location(described, brief=True)}",
            {
                "endpoint": endpoint_name,
                "url": described.url,
                "config_name": config_name,
                "changed": True,
                **_sagemaker_outputs(described),
            },
        )

    @staticmethod
    def _model_file(ctx: RunContext, uri: str, sha256: str) -> Path:
        return model_file(ctx.project, uri, sha256)

    @staticmethod
    def _capture_destination(ctx: RunContext) -> Path | str:
        """The artifact store's data-capture prefix: a directory, or an S3 URI."""
        store = ctx.project.store
        uri = store.uri(ctx.config.store.artifacts_bucket, "data-capture")
        return store.local_path(uri) or uri

    @staticmethod
    def _explainer(ctx: RunContext) -> dict[str, Any] | None:
        """``explain.online``: the ClarifyExplainerConfig from the served model's report. A
        model without one (its explainer failed at register, or a rollback to a version from
        before ``explain:``, or registered before mlcicd recorded its report's sha256) is
        served without explanations, said in the log — unless ``explain.required``, as at
        register. A report replaced in the store since (its sha256 is not the recorded one)
        fails the stage, required or not, as the stack's deploy Lambda does."""
        from mlcicd.errors import ExplainError
        from mlcicd.explain.online import clarify_explainer_config
        from mlcicd.explain.report import load_report

        registered = ctx.outputs["register"]
        package = ctx.project.state.get_model_package(registered["group"], registered["version"])
        try:
            return clarify_explainer_config(load_report(ctx.project, package), package.arn)
        except ExplainError as exc:
            if ctx.config.explain is not None and ctx.config.explain.required:
                raise
            ctx.log(f"{exc.headline}: the endpoint serves it without explanations")
            return None

    @staticmethod
    def _policy(cfg: DeployConfig) -> DeploymentPolicy:
        return deployment_policy(cfg)  # shared with the stack's deploy Lambda (aws/template)

    @staticmethod
    def _record(ctx: RunContext, backend: EndpointBackend, name: str) -> None:
        """Mirror what the backend reports into the state database (also after a failure)."""
        refresh(ctx.project.state, backend, name)


def config_name_for(endpoint: str, registered: dict[str, Any], settings: dict[str, Any]) -> str:
    """The endpoint config's name: the model's version and a digest of everything that
    makes it another config (``settings``), so the same settings keep the same name."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return versioned_endpoint_config_name(endpoint, registered["version"], digest)


def record_config(
    ctx: RunContext, name: str, endpoint: str, settings: dict[str, Any], *, reason: str
) -> None:
    """Record endpoint config ``name`` of ``endpoint`` for the registered model of this run
    (``settings``: its spec), before a backend deploys it."""
    registered = ctx.outputs["register"]
    ctx.project.state.record_endpoint_config(
        EndpointConfigRecord(
            name=name,
            endpoint_name=endpoint,
            model_group=registered["group"],
            model_version=registered["version"],
            model_sha256=registered["model_sha256"],
            run_id=ctx.run.id,
            reason=reason,
            spec=settings,
            created_at=time.time(),
        )
    )


def model_file(project: Project, uri: str, sha256: str) -> Path:
    """model.tar.gz on this machine: the store's own file, or a verified copy of it."""
    path = project.store.local_path(uri)
    if path is None:  # a remote store (S3): a verified copy here, kept by digest
        path = project.state_dir / "models" / sha256 / "model.tar.gz"
        if not path.is_file():
            project.store.get_file(uri, path, expected_sha256=sha256)
    return path


def _location(described: EndpointDescription, *, brief: bool = False) -> str:
    """Where the endpoint is, as its backend has it: a local URL and process, or an ARN."""
    if described.url is not None:
        pid = f" (pid {described.pid})" if described.pid is not None and not brief else ""
        return f"at {described.url}{pid}"
    if described.arn is not None:
        if brief:
            return f"as {described.arn}"
        from mlcicd.endpoints.sagemaker import runtime_url

        return f"as {described.arn}, invoked at {runtime_url(described.name, described.arn)}"
    return f"with config {described.config_name}"


def _sagemaker_outputs(described: EndpointDescription) -> dict[str, str]:
    if described.arn is None:
        return {}
    from mlcicd.endpoints.sagemaker import runtime_url

    return {"arn": described.arn, "runtime_url": runtime_url(described.name, described.arn)}
