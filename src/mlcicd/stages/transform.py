"""TRANSFORM (``transform:`` in mlcicd.yaml): the new model scores a dataset, before deploy.

A batch transform job (:mod:`mlcicd.transform`) of the model register just recorded, with
this commit's inference code in the build's environment: the same code and answers the
endpoint will give. Its outputs land in ``transform.output``; the job is recorded under a
name that stands for the model, the input's digest and the settings, so a run with the same
model on the same input is Cached (its outputs still there), as the other stages are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.config import Config
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.stages.deploy import model_file
from mlcicd.transform import (
    TransformJobSpec,
    TransformModel,
    TransformSettings,
    open_backend,
    run_job,
)
from mlcicd.transform.base import OUTPUT_SUFFIX
from mlcicd.transform.local import list_inputs


class TransformStage:
    name: ClassVar[str] = "transform"

    def log_group(self, config: Config) -> str:
        return "/aws/sagemaker/TransformJobs"

    def run(self, ctx: RunContext) -> StageResult:
        cfg = ctx.config.transform
        assert cfg is not None  # the stage is in the pipeline only with a transform: section
        project, registered = ctx.project, ctx.outputs["register"]
        source, output = (
            uri if uri.startswith("s3://") else str((project.root / uri).resolve())
            for uri in (cfg.input, cfg.output)
        )
        backend = open_backend(cfg.backend, project, where=lambda f: f"transform.{f}")
        settings = TransformSettings(
            **{k: v for k, v in vars(cfg).items() if k not in ("input", "output", "backend")}
        )
        group, version = registered["group"], registered["version"]
        data = backend.input_digest(source)
        key = _cache_key(registered["model_sha256"], data, settings, output)
        prefix = f"{group[:36]}-{version}-{key[:10]}"
        done = self._completed(ctx, prefix, source, output)
        if done is not None and not ctx.options.force:
            ctx.log(f"{group}/{version} already transformed this input: job {done}")
            return StageResult(
                "Cached",
                f"{group}/{version} already scored {cfg.input} (job {done})",
                {"job": done, "output": output, "changed": False},
            )
        deploy = ctx.config.deploy
        model = TransformModel(
            ref=f"{group}/{version}",
            model_file=model_file(project, registered["model_uri"], registered["model_sha256"]),
            model_sha256=registered["model_sha256"],
            code_dir=Path(ctx.outputs["source"]["source_dir"]) / deploy.source_dir,
            entry_point=deploy.entry_point,
            python=Path(ctx.outputs["build"]["python"]),
            environment=dict(deploy.environment),
        )
        spec = TransformJobSpec(
            f"{prefix}-r{ctx.run.id}", model, source, output, settings, ctx.run.id
        )
        ctx.log(f"transform job {spec.name}: {group}/{version} on {cfg.input} → {cfg.output}")
        job = run_job(
            project.state,
            backend,
            spec,
            model_group=group,
            model_version=int(version),
            log_path=str(backend.log_path(spec.name)),
            on_log=ctx.log,
        )
        ctx.log(f"{job.name} {job.status}: {job.objects} object(s), {job.rows_out} rows out")
        return StageResult(
            "Succeeded",
            f"{job.rows_in} rows of {cfg.input} scored into {cfg.output}",
            {"job": job.name, "output": output, "rows": job.rows_out, "changed": True},
        )

    @staticmethod
    def _completed(ctx: RunContext, prefix: str, source: str, output: str) -> str | None:
        """A Completed job of the same key whose outputs are all still there (on this
        machine; on S3, as its record says)."""
        registered = ctx.outputs["register"]
        for job in ctx.project.state.transform_jobs(registered["group"], registered["version"]):
            if job.status != "Completed" or not job.name.startswith(prefix + "-"):
                continue
            if output.startswith("s3://") or source.startswith("s3://"):
                return job.name
            names = [o.name + OUTPUT_SUFFIX for o in list_inputs(Path(source), "transform.input")]
            if all((Path(output) / name).is_file() for name in names):
                return job.name
        return None


def _cache_key(model: str, data: str, settings: TransformSettings, output: str) -> str:
    described: dict[str, Any] = settings.to_dict()
    described.pop("max_concurrent")  # how fast, not what: the same outputs
    text = json.dumps([model, data, described, output], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
