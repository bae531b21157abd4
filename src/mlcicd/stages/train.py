"""TRAIN: a training job under SageMaker's contract; its model.tar.gz into the model store.

A job's cache key is the build digest, the training settings and the data digest: a rerun
with all three unchanged reuses the finished job's model (verified by its sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.config import Config, TrainConfig
from mlcicd.config.processing import parse_reference
from mlcicd.errors import ArtifactError, TrainingError, reason_of
from mlcicd.fsutil import atomic_write_bytes
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.processing.artifacts import output_directory
from mlcicd.project import Project
from mlcicd.stages.process import path_digest, step_output
from mlcicd.state import TrainingJobRecord
from mlcicd.training import (
    Channel,
    CheckpointConfig,
    MetricDefinition,
    TrainingJobSpec,
    open_backend,
)


def job_name(pipeline: str, run_id: int) -> str:
    """SageMaker's default naming: base name + timestamp (+ the run, so names never clash)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    return f"{pipeline[:32].rstrip('-')}-{stamp}-{run_id}"


def data_digest(
    project: Project,
    commit: str,
    source_dir: Path,
    channels: dict[str, str],
    known: Mapping[str, str] | None = None,
) -> str:
    """A digest of every channel's content: git's tree id when committed, else file hashes;
    ``known`` digests (a processing step's output: its sha256) stand in for a channel's."""
    parts: dict[str, str] = {}
    for name, location in sorted(channels.items()):
        parts[name] = (known or {}).get(name) or path_digest(project, commit, source_dir, location)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def channel_sources(ctx: RunContext) -> dict[str, tuple[Path, str | None]]:
    """Each training channel's directory, with its digest when it is a processing step's
    output (``prepare.train``: extracted from the store, safely, once)."""
    steps = {s.name: s for s in ctx.config.processing}
    source_dir = Path(ctx.outputs["source"]["source_dir"])
    found: dict[str, tuple[Path, str | None]] = {}
    for name, location in ctx.config.train.channels.items():
        ref = parse_reference(location, steps)
        if ref is not None:
            artifact = step_output(ctx.outputs, ref)
            found[name] = (output_directory(ctx.project, artifact), artifact["sha256"])
        else:
            path = Path(location)
            found[name] = (path if path.is_absolute() else source_dir / path, None)
    return found


class TrainStage:
    name: ClassVar[str] = "train"

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-training"

    def run(self, ctx: RunContext) -> StageResult:
        cfg = ctx.config.train
        project = ctx.project
        source = ctx.outputs["source"]
        source_dir = Path(source["source_dir"])
        build_digest = ctx.outputs["build"]["digest"]
        sources = channel_sources(ctx)
        channels = self._channels(cfg, sources)
        known = {n: digest for n, (_, digest) in sources.items() if digest is not None}
        data = data_digest(project, source["commit"], source_dir, cfg.channels, known)
        settings = {
            k: v
            for k, v in ctx.config.to_dict()["train"].items()
            if k
            not in (
                "backend",
                "instance_type",
                "instance_count",
                "use_spot",
                "max_wait",
                "checkpoints",  # where the work is kept, not what is trained
                "role",
                "output_path",
            )
        }
        if cfg.backend == "container":  # a job in another image is another job
            settings["image_id"] = ctx.outputs["build"].get("image_id")
        cache_key = hashlib.sha256(
            json.dumps(
                {"build": build_digest, "data": data, "train": settings},
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()

        if not ctx.options.force:
            previous = project.state.find_completed_training_job(cache_key)
            if (
                previous
                and previous.model_uri
                and previous.model_sha256
                and self._artifact_ok(ctx, previous)
            ):
                ctx.log(f"training job {previous.name} already trained this build on this data")
                return StageResult("Cached", f"job {previous.name}", self._outputs(previous, data))

        backend = open_backend(cfg, project, ctx.log, image=ctx.outputs["build"].get("image"))
        name = job_name(ctx.config.pipeline, ctx.run.id)
        spec = TrainingJobSpec(
            name=name,
            source_dir=source_dir / cfg.source_dir,
            entry_point=cfg.entry_point,
            python=Path(ctx.outputs["build"]["python"]),
            hyperparameters=cfg.hyperparameters,
            channels=channels,
            metric_definitions=tuple(
                MetricDefinition(d.name, d.regex) for d in cfg.metric_definitions
            ),
            max_runtime_seconds=cfg.max_runtime,
            environment=cfg.environment,
            # An attempt of the same training (build, data, settings) resumes from the last
            # one's /opt/ml/checkpoints (the local and container backends; SageMaker's own).
            checkpoints=CheckpointConfig(
                ctx.config.store.models_bucket,
                f"{ctx.config.pipeline}/checkpoints/{cache_key[:16]}",
            )
            if cfg.checkpoints or cfg.use_spot
            else None,
        )
        ctx.log(f"starting training job {name} ({backend.TYPE})")
        sm_log = project.path("logs", "aws", "sagemaker", "TrainingJobs", f"{name}.log")
        record = TrainingJobRecord(
            name=name,
            run_id=ctx.run.id,
            cache_key=cache_key,
            status="InProgress",
            secondary_status="Starting",
            failure_reason=None,
            build_digest=build_digest,
            data_digest=data,
            hyperparameters=dict(cfg.hyperparameters),
            metrics={},
            model_uri=None,
            model_sha256=None,
            log_path=str(sm_log),
            started_at=time.time(),
            ended_at=None,
        )
        project.state.record_training_job(record)
        try:
            result = backend.run(spec, on_log=ctx.log)
            self._copy_log(result.log_path, sm_log)
            if result.status == "Completed" and result.model_artifact is not None:
                key = f"{ctx.config.pipeline}/{name}/output/model.tar.gz"
                ref = project.store.put_file(
                    result.model_artifact, ctx.config.store.models_bucket, key
                )
                if result.model_sha256 and ref.sha256 != result.model_sha256:
                    raise ArtifactError(
                        f"the model artifact changed while it was stored at {ref.uri}"
                    )
                record.model_uri, record.model_sha256 = ref.uri, ref.sha256
        except BaseException as exc:  # the job's record never stays InProgress
            stopped = isinstance(exc, KeyboardInterrupt)
            record.status, record.secondary_status = (
                ("Stopped", "Interrupted") if stopped else ("Failed", "Failed")
            )
            record.failure_reason = reason_of(exc)
            record.ended_at = time.time()
            project.state.record_training_job(record)
            raise
        record.status, record.secondary_status = result.status, result.secondary_status
        record.failure_reason, record.metrics, record.ended_at = (
            result.failure_reason,
            result.metrics,
            time.time(),
        )
        project.state.record_training_job(record)
        if result.status != "Completed":
            raise TrainingError(
                f"training job {name} {result.status.lower()} ({result.secondary_status}): "
                f"{result.failure_reason}",
                hint="the job's log: `mlcicd logs RUN --stage train`",
            )
        shown = ", ".join(f"{k}={v:g}" for k, v in sorted(result.metrics.items()))
        outputs = self._outputs(record, data)
        if cfg.backend == "container":  # lineage: the exact image the model was trained in
            outputs["training_image"] = getattr(backend, "image_id", None)
        return StageResult("Succeeded", f"job {name}: {shown}", outputs)

    @staticmethod
    def _channels(
        cfg: TrainConfig, sources: Mapping[str, tuple[Path, str | None]]
    ) -> tuple[Channel, ...]:
        channels = []
        for name, location in cfg.channels.items():
            path = sources[name][0]
            if not path.exists():
                raise TrainingError(
                    f"channel {name!r}: {location} does not exist in the commit",
                    hint="commit the data, or point train.channels at it",
                )
            channels.append(Channel(name=name, source=path))
        return tuple(channels)

    @staticmethod
    def _artifact_ok(ctx: RunContext, job: TrainingJobRecord) -> bool:
        assert job.model_uri is not None
        return ctx.project.store.exists(job.model_uri)

    @staticmethod
    def _copy_log(source: Path, dest: Path) -> None:
        with contextlib.suppress(OSError):
            atomic_write_bytes(dest, source.read_bytes())  # 0600, as the job's own log

    @staticmethod
    def _outputs(job: TrainingJobRecord, data: str) -> dict[str, Any]:
        return {
            "job": job.name,
            "metrics": job.metrics,
            "model_uri": job.model_uri,
            "model_sha256": job.model_sha256,
            "data_digest": data,
            "hyperparameters": job.hyperparameters,
        }
