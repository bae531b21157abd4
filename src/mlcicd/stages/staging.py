"""STAGING: the new model on a staging endpoint, the project's endpoint tests and a load
check against it — before production sees it (docs/staging.md).

The staging endpoint serves the registered model with production's runtime settings (entry
point, workers, timeouts, environment, payload limit) under its own name, on a port of its
own. The project's ``staging.test`` runs in the build environment, from the exported source
tree, with the endpoint's address in ``MLCICD_ENDPOINT_URL`` and the SageMaker runtime's
variables pointing at it, so a test written against boto3's ``sagemaker-runtime`` runs
unchanged. Then ``staging.load`` sends its requests and checks p99 and the error rate.

A failed test or a missed bound fails the run here: production is not touched, the model
package becomes Rejected with the reason, and what was found is in the stage's outputs and
the model's record (``lineage["staging"]``). Unless ``staging.keep``, the staging endpoint is
deleted after the stage, pass or fail; one left behind by a run that died (kill -9) is found
and deleted by the next run's staging stage and by `mlcicd up` (:func:`remove_orphans`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from mlcicd.config import Config
from mlcicd.config.schema import StagingConfig
from mlcicd.endpoints import EndpointBackend, EndpointConfig, EndpointDescription, open_backend
from mlcicd.endpoints.acceptance import (
    endpoint_test_environment,
    load_check,
    missed_bounds,
    run_endpoint_tests,
    summarize_tests,
    wait_for_ping,
)
from mlcicd.endpoints.base import ProductionVariant
from mlcicd.endpoints.refresh import refresh
from mlcicd.endpoints.sagemaker_runtime import client_environment, invoke_load
from mlcicd.environments import venv_environment
from mlcicd.errors import EndpointError, MlcicdError, NotFoundError, StagingError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.project import Project
from mlcicd.stages.deploy import config_name_for, model_file, record_config

STAGING_REASON = "staging"  # the endpoint config record's reason: this endpoint is a staging one


def staging_endpoints(project: Project, config: Config) -> dict[str, int | None]:
    """Every endpoint that a staging stage deployed, by name, with the run that deployed it
    (from the endpoint config records, whose reason is ``staging``)."""
    names = {record.name for record in project.state.list_endpoints()}
    if config.staging_endpoint_name is not None:
        names.add(config.staging_endpoint_name)
    found: dict[str, int | None] = {}
    for name in sorted(names):
        configs = project.state.endpoint_configs(name)
        if configs and configs[0].reason == STAGING_REASON:
            found[name] = configs[0].run_id
    return found


def orphans(project: Project, config: Config) -> list[str]:
    """The staging endpoints whose run is over and which no one asked to keep: left behind by
    a run that died (kill -9, a power cut) before it could delete them."""
    keep = config.staging is not None and config.staging.keep
    gone = []
    for name, run_id in staging_endpoints(project, config).items():
        if keep and name == config.staging_endpoint_name:
            continue
        try:
            running = run_id is not None and project.state.get_run(run_id).status == "Running"
        except NotFoundError:
            running = False
        if not running:
            gone.append(name)
    return gone


def remove_orphans(project: Project, config: Config, log: Callable[[str], None]) -> list[str]:
    """Delete the staging endpoints :func:`orphans` finds, and their records; their names."""
    removed = []
    for name in orphans(project, config):
        record = project.state.get_endpoint(name)
        backend = open_backend(record.backend if record else config.deploy.backend, project)
        try:
            backend.delete(name)
        except NotFoundError:
            if record is None:  # deleted as it should have been: nothing left behind
                continue
        project.state.delete_endpoint(name)
        log(f"removed staging endpoint {name}: the run that deployed it is over")
        removed.append(name)
    return removed


class StagingStage:
    name: ClassVar[str] = "staging"

    def log_group(self, config: Config) -> str:
        return f"/aws/codebuild/{config.pipeline}-staging"

    def run(self, ctx: RunContext) -> StageResult:
        staging, endpoint = ctx.config.staging, ctx.config.staging_endpoint_name
        assert staging is not None and endpoint is not None  # in the stages only when configured
        project, registered = ctx.project, ctx.outputs["register"]
        ref = f"{registered['group']}/{registered['version']}"
        remove_orphans(project, ctx.config, ctx.log)
        digest = self._digest(ctx, staging)
        previous = project.state.last_outputs(self.name, key="digest", value=digest)
        if previous and not ctx.options.force:
            ctx.log(
                f"model {registered['model_sha256'][:12]}, its endpoint tests and the staging "
                f"settings passed staging in run {previous.get('run_id')}: not run again"
            )
            cached = {**previous, "digest": digest, "model": ref}
            return StageResult("Cached", f"passed staging in run {previous.get('run_id')}", cached)
        backend = open_backend(
            ctx.config.deploy.backend, project, image=ctx.outputs["build"].get("image")
        )
        outputs: dict[str, Any] = {
            "digest": digest,
            "run_id": ctx.run.id,
            "endpoint": endpoint,
            "model": ref,
        }
        try:
            try:
                described = self._deploy(ctx, backend, endpoint)
            except EndpointError as exc:
                self._fail(
                    ctx,
                    outputs,
                    f"the staging endpoint {endpoint} did not serve: {exc.message}",
                    hint="it serves with production's settings: check deploy.entry_point and "
                    f"deploy.startup_timeout ({ctx.config.deploy.startup_timeout:g}s)"
                    + (f"; {exc.hint}" if exc.hint else ""),
                )
            outputs["url"] = described.url
            failures = self._check(ctx, staging, described, outputs)
        finally:
            if not staging.keep:
                self._teardown(ctx, backend, endpoint)
        if failures:
            self._fail(ctx, outputs, "; ".join(failures))
        project.state.record_staging(registered["group"], registered["version"], outputs)
        passed = summarize_tests(outputs.get("test"))
        load = outputs.get("load")
        figures = f", {load['rps']:.0f} req/s, p99 {load['p99_ms']:.1f} ms" if load else ""
        return StageResult("Succeeded", f"model {ref}: {passed}{figures}", outputs)

    # -- steps ----------------------------------------------------------------------------

    def _deploy(
        self, ctx: RunContext, backend: EndpointBackend, endpoint: str
    ) -> EndpointDescription:
        """The staging endpoint serving the registered model, answering /ping."""
        cfg, registered = ctx.config.deploy, ctx.outputs["register"]
        variant = ProductionVariant(
            name="AllTraffic",
            model_data=model_file(ctx.project, registered["model_uri"], registered["model_sha256"]),
            model_sha256=registered["model_sha256"],
            code_dir=Path(ctx.outputs["source"]["source_dir"]) / cfg.source_dir,
            entry_point=cfg.entry_point,
            python=Path(ctx.outputs["build"]["python"]),
            environment=cfg.environment,
        )
        settings = {
            "model": registered["model_sha256"],
            "code": ctx.outputs["source"]["tree"],
            "python": str(variant.python),
            "deploy": _deploy_settings(ctx.config),
            "image": ctx.outputs["build"].get("image_id"),
        }
        config_name = config_name_for(endpoint, registered, settings)
        record_config(ctx, config_name, endpoint, settings, reason=STAGING_REASON)
        ctx.log(f"deploying {endpoint} with {config_name}")
        try:
            described = backend.deploy(
                EndpointConfig(
                    name=config_name,
                    endpoint_name=endpoint,
                    variants=(variant,),
                    port=None,  # any free one: production's deploy.port is production's
                    workers=cfg.workers,
                    startup_timeout=cfg.startup_timeout,
                    max_payload_bytes=int(cfg.max_payload_mb * 1024 * 1024),
                    header_timeout=cfg.header_timeout,
                    body_timeout=cfg.body_timeout,
                    model_timeout=cfg.model_timeout,
                )
            )
        finally:  # recording the endpoint must not hide the deploy's own error
            with contextlib.suppress(MlcicdError, OSError):
                refresh(ctx.project.state, backend, endpoint)
        if described.url is not None:
            wait_for_ping(described.url, cfg.startup_timeout, endpoint)
        ctx.log(f"{endpoint} InService at {described.url or described.arn}")
        return described

    def _check(
        self,
        ctx: RunContext,
        staging: StagingConfig,
        described: EndpointDescription,
        outputs: dict[str, Any],
    ) -> list[str]:
        """The endpoint tests, then the load check: what failed, each as one sentence."""
        url = described.url or _runtime_url(described)
        source_dir = Path(ctx.outputs["source"]["source_dir"])
        if staging.test is not None:
            base = venv_environment(Path(ctx.outputs["build"]["environment"]))
            env = endpoint_test_environment(
                base,
                url=url,
                endpoint_name=described.name,
                runtime_url=described.url,
            )
            if described.url is None and described.arn:  # SageMaker's: signed requests only
                env.update(client_environment(described.arn))
            tested = run_endpoint_tests(
                staging.test, cwd=source_dir, env=env, timeout=staging.timeout, log=ctx.log
            )
            outputs["test"] = tested.summary()
            if tested.timed_out:
                return [
                    f"the endpoint tests (`{staging.test}`) ran longer than "
                    f"staging.timeout ({staging.timeout}s)"
                ]
            if not tested.passed:
                last = next((x for x in reversed(tested.tail) if x.strip()), "")
                return [
                    f"the endpoint tests failed (`{staging.test}` exited {tested.exit_code}): "
                    f"{last.strip('= ')}"
                ]
            ctx.log(f"endpoint tests passed: {summarize_tests(outputs['test'])}")
        load = staging.load
        if load is None:
            return []
        if described.url is None and not described.arn:
            ctx.log("load check skipped: the endpoint has neither an address nor an ARN")
            return []
        body = self._payload(ctx, source_dir)
        ctx.log(f"load check: {load.requests} requests at concurrency {load.concurrency}")
        if described.url is not None:
            result = load_check(
                described.url, body, load.content_type, load.requests, load.concurrency
            )
        else:  # through SageMaker's runtime API, as the pipeline's TestStaging action does
            result = invoke_load(
                described.name,
                body,
                requests=load.requests,
                concurrency=load.concurrency,
                content_type=load.content_type,
            )
        bounds = {"p99_ms": load.p99_ms, "max_error_rate": load.max_error_rate}
        figures = result.figures()
        missed = missed_bounds(figures, bounds)
        outputs["load"] = {**figures, "bounds": bounds, "passed": not missed}
        ctx.log(
            f"load: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.2f} ms, "
            f"p99 {figures['p99_ms']:.2f} ms, {figures['errors']} errors"
        )
        return [f"the load check missed its bounds: {', '.join(missed)}"] if missed else []

    def _payload(self, ctx: RunContext, source_dir: Path) -> bytes:
        load = ctx.config.staging.load if ctx.config.staging else None
        if load is not None and load.payload is not None:
            path = source_dir / load.payload
            try:
                return path.read_bytes()
            except OSError as exc:
                raise StagingError(
                    f"cannot read the load check's payload {load.payload}: {exc.strerror}",
                    hint="staging.load.payload is a file in the repository, committed",
                ) from exc
        if ctx.config.deploy.sample is None:
            raise StagingError(
                "the load check has nothing to send",
                hint="set staging.load.payload (a request body file) or deploy.sample",
            )
        return ctx.config.deploy.sample.encode()

    def _fail(
        self, ctx: RunContext, outputs: dict[str, Any], reason: str, *, hint: str | None = None
    ) -> NoReturn:
        registered = ctx.outputs["register"]
        ref = f"{registered['group']}/{registered['version']}"
        why = f"failed staging in run {ctx.run.id}: {reason}"
        ctx.project.state.record_staging(
            registered["group"], registered["version"], outputs, failure=why
        )
        raise StagingError(
            f"model {ref} {why}",
            hint=(f"{hint}; " if hint else "")
            + f"production keeps serving its model; `mlcicd logs {ctx.run.id} --stage staging` "
            "has the whole output",
            outputs=outputs,
        )

    def _teardown(self, ctx: RunContext, backend: EndpointBackend, endpoint: str) -> None:
        try:
            backend.delete(endpoint)
        except NotFoundError:
            pass
        except MlcicdError as exc:  # left for the next run's orphan sweep; the log says so
            ctx.log(f"could not delete {endpoint}: {exc.headline}")
            return
        ctx.project.state.delete_endpoint(endpoint)
        ctx.log(f"deleted {endpoint}")

    @staticmethod
    def _digest(ctx: RunContext, staging: StagingConfig) -> str:
        """What a staging result stands for: the model, the code that serves it, the endpoint
        tests and the settings of both. The same digest passed before: no need to run again."""
        source_dir = Path(ctx.outputs["source"]["source_dir"])
        served = source_dir / ctx.config.deploy.source_dir
        tests = [
            source_dir / arg
            for arg in shlex.split(staging.test or "")
            if not arg.startswith("-") and (source_dir / arg).exists()
        ]
        payload = (
            [source_dir / staging.load.payload] if staging.load and staging.load.payload else []
        )
        key = {
            "model": ctx.outputs["register"]["model_sha256"],
            "python": ctx.outputs["build"]["python"],
            "environment": ctx.outputs["build"].get("digest"),
            "image": ctx.outputs["build"].get("image_id"),
            "staging": dataclasses.asdict(staging),
            "deploy": _deploy_settings(ctx.config),
            "served": _files_digest([served]),
            # Without a path in the command, any file may be a test: the whole tree counts.
            "tests": _files_digest(tests or [source_dir]),
            "payload": _files_digest(payload),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _deploy_settings(config: Config) -> dict[str, Any]:
    """Production's runtime settings that the staging endpoint takes on."""
    cfg = config.deploy
    return {
        "backend": cfg.backend,
        "entry_point": cfg.entry_point,
        "workers": cfg.workers,
        "environment": cfg.environment,
        "max_payload_mb": cfg.max_payload_mb,
        "timeouts": [cfg.startup_timeout, cfg.header_timeout, cfg.body_timeout, cfg.model_timeout],
        "sample": cfg.sample,
    }


def _files_digest(paths: list[Path]) -> str:
    """The sha256 of the files under ``paths`` (names and bytes; caches left out)."""
    digest = hashlib.sha256()
    for root in sorted(paths):
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if not path.is_file() or {"__pycache__", ".pytest_cache"} & set(path.parts):
                continue
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _runtime_url(described: EndpointDescription) -> str:
    """Where a SageMaker endpoint is invoked (no URL of its own on this machine)."""
    from mlcicd.endpoints.sagemaker import runtime_url

    return runtime_url(described.name, described.arn) if described.arn else ""
