"""PROCESS and EVALUATE: the steps of ``processing:``, as SageMaker Pipelines' ProcessingSteps.

``process`` runs the steps that come before training (prepare: split, clean, featurise; their
outputs can be training channels), ``evaluate`` those after it (they get the model, extracted
from its model.tar.gz, and any earlier output; a ``report`` is what the gate reads). Within a
stage the steps run in waves: each wave is every step whose inputs exist, run side by side.

A step's cache key is its script (the tree of its source_dir), its settings (entry point,
arguments, environment, outputs, report), the build's environment and the digest of every input
(a path's git tree, an earlier output's sha256): a rerun with all of them unchanged reuses the
completed job's stored outputs and report. Each output is stored as
``<pipeline>/processing/<job>/output/<name>.tar.gz`` in the artifacts bucket, with its sha256.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from mlcicd import git
from mlcicd.config import Config, ProcessingStepConfig
from mlcicd.config.processing import (
    TRAIN,
    Phase,
    Reference,
    dependencies,
    parse_reference,
    phase,
    report_names,
    step_order,
)
from mlcicd.errors import ArtifactError, ProcessingError, reason_of
from mlcicd.fsutil import sha256_file
from mlcicd.pipeline import RunContext, Stage, StageResult
from mlcicd.processing import ProcessingInput, ProcessingJobResult, ProcessingJobSpec, open_backend
from mlcicd.processing.artifacts import output_directory
from mlcicd.processing.base import MAX_REPORT_BYTES, cache_key, parse_report
from mlcicd.project import Project
from mlcicd.state import ProcessingJobRecord

STAGE_OF_PHASE: dict[Phase, str] = {"before": "process", "after": "evaluate"}


def path_digest(project: Project, commit: str, source_dir: Path, location: str) -> str:
    """The digest of a path in the commit: git's tree (or blob) id when committed, else file
    hashes; an absolute path is hashed as it is."""
    path = Path(location)
    if not path.is_absolute():
        rel = "/".join(p for p in (project.rel, path.as_posix()) if p and p != ".")
        return git.tree_id(project.repo, commit, rel) or _hash_path(source_dir / path)
    return _hash_path(path)


def _hash_path(path: Path) -> str:
    if not path.exists():
        return "missing"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path) if file != path else file.name
        digest.update(f"{name}\0{sha256_file(file)}\0".encode())
    return digest.hexdigest()


def step_output(outputs: Mapping[str, Any], ref: Reference) -> dict[str, str]:
    """``{"uri", "sha256"}`` of what ``ref`` names in this run's outputs."""
    if ref.step == TRAIN:
        train = outputs.get("train") or {}
        if not train.get("model_uri"):
            raise ProcessingError(f"{ref}: training has not produced a model in this run")
        return {"uri": train["model_uri"], "sha256": train["model_sha256"]}
    for stage in STAGE_OF_PHASE.values():
        step = (outputs.get(stage) or {}).get("steps", {}).get(ref.step)
        if step is not None and ref.output in step["outputs"]:
            return dict(step["outputs"][ref.output])
    raise ProcessingError(
        f"{ref} was not produced in this run", hint="run the pipeline again from the start"
    )


def step_reports(config: Config, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The reports the gate may read, by step name and by the output holding each."""
    reports: dict[str, Any] = {}
    for name, step in report_names(config).items():
        for stage in STAGE_OF_PHASE.values():
            found = (outputs.get(stage) or {}).get("steps", {}).get(step.name)
            if found is not None and "report" in found:
                reports[name] = found["report"]
    return reports


def job_name(pipeline: str, step: str, run_id: int) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{pipeline[:16].rstrip('-')}-{step}-{stamp}-{run_id}"


class _StepsStage:
    name: ClassVar[str]
    phase: ClassVar[Phase]

    def log_group(self, config: Config) -> str:
        return f"/aws/lambda/{config.pipeline}-processing"

    def run(self, ctx: RunContext) -> StageResult:
        config = ctx.config
        steps = [s for s in step_order(config) if phase(config, s.name) == self.phase]
        results: dict[str, dict[str, Any]] = {}
        view = {**ctx.outputs, self.name: {"steps": results}}
        lock, stopping = threading.Lock(), threading.Event()

        def logger(step: str) -> Callable[[str], None]:
            def log(line: str) -> None:
                if stopping.is_set():  # Ctrl-C in the run: stop at the job's next line
                    raise KeyboardInterrupt
                with lock:
                    ctx.log(f"[{step}] {line}")

            return log

        mine = {s.name for s in steps}
        pending = list(steps)
        while pending:
            ready = [s for s in pending if dependencies(s, config) & mine <= set(results)]
            assert ready, "a checked config has no cycle"
            pending = [s for s in pending if s not in ready]
            if len(ready) == 1:
                results[ready[0].name] = self._run_step(ctx, ready[0], view, logger(ready[0].name))
                continue
            with ThreadPoolExecutor(len(ready), thread_name_prefix="processing") as pool:
                futures = {
                    s.name: pool.submit(self._run_step, ctx, s, view, logger(s.name)) for s in ready
                }
                try:  # a failed step fails the stage once its siblings have ended
                    for name, future in futures.items():
                        results[name] = future.result()
                except KeyboardInterrupt:
                    stopping.set()  # Ctrl-C: stop the siblings too
                    raise
        cached = all(r["status"] == "Cached" for r in results.values())
        message = "; ".join(f"{n}: job {r['job']} ({r['status']})" for n, r in results.items())
        return StageResult("Cached" if cached else "Succeeded", message, {"steps": results})

    def _run_step(
        self,
        ctx: RunContext,
        step: ProcessingStepConfig,
        view: Mapping[str, Any],
        log: Callable[[str], None],
    ) -> dict[str, Any]:
        project, config = ctx.project, ctx.config
        source, build = ctx.outputs["source"], ctx.outputs["build"]
        source_dir = Path(source["source_dir"])
        steps = {s.name: s for s in config.processing}
        inputs: list[ProcessingInput] = []
        digests: dict[str, str] = {}
        for name, value in step.inputs.items():
            ref = parse_reference(value, steps)
            if ref is not None:
                artifact = step_output(view, ref)
                inputs.append(ProcessingInput(name, output_directory(project, artifact)))
                digests[name] = artifact["sha256"]
                continue
            path = Path(value) if Path(value).is_absolute() else source_dir / value
            if not path.exists():
                raise ProcessingError(
                    f"step {step.name}: input {name!r}: {value} does not exist in the commit",
                    hint="commit the data, or point the input at an earlier step's output",
                )
            inputs.append(ProcessingInput(name, path))
            digests[name] = path_digest(project, source["commit"], source_dir, value)
        code = path_digest(project, source["commit"], source_dir, step.source_dir)
        # The environment, not the build digest: that one changes with every commit.
        key = cache_key(step, code=code, inputs=digests, environment=build["environment"])
        if not ctx.options.force:
            previous = project.state.find_completed_processing_job(key)
            if previous is not None and all(
                project.store.exists(o["uri"]) for o in previous.outputs.values()
            ):
                log(f"processing job {previous.name} already ran this script on these inputs")
                return self._outputs(step, previous, "Cached")
        name = job_name(config.pipeline, step.name, ctx.run.id)
        spec = ProcessingJobSpec(
            name=name,
            source_dir=source_dir / step.source_dir,
            entry_point=step.entry_point,
            python=Path(build["python"]),
            inputs=inputs,
            outputs=step.outputs,
            arguments=step.arguments,
            environment=step.environment,
            max_runtime_seconds=step.max_runtime,
        )
        backend = open_backend(step, project)
        record = ProcessingJobRecord(
            name=name,
            run_id=ctx.run.id,
            step=step.name,
            cache_key=key,
            status="InProgress",
            failure_reason=None,
            exit_message=None,
            inputs=digests,
            outputs={},
            report={},
            log_path=None,
            started_at=time.time(),
            ended_at=None,
        )
        project.state.record_processing_job(record)
        log(f"starting processing job {name} ({backend.TYPE})")
        try:
            result = backend.run(spec, on_log=log)
            record.log_path, record.exit_message = str(result.log_path), result.exit_message
            if result.status == "Completed":
                record.report = self._report(step, result)
                record.outputs = self._store(ctx, result)
        except BaseException as exc:  # the job's record never stays InProgress
            stopped = isinstance(exc, KeyboardInterrupt)
            record.status = "Stopped" if stopped else "Failed"
            record.failure_reason = reason_of(exc)
            record.ended_at = time.time()
            project.state.record_processing_job(record)
            raise
        record.status, record.failure_reason = result.status, result.failure_reason
        record.ended_at = time.time()
        project.state.record_processing_job(record)
        if result.status != "Completed":
            raise ProcessingError(
                f"step {step.name}: processing job {name} {result.status.lower()}: "
                f"{result.failure_reason}",
                hint=f"the job's log: `mlcicd logs RUN --stage {self.name}`",
                stage=self.name,
            )
        return self._outputs(step, record, "Succeeded")

    @staticmethod
    def _report(step: ProcessingStepConfig, result: ProcessingJobResult) -> dict[str, Any]:
        """The step's report (a PropertyFile), read from the output it names."""
        if step.report is None:
            return {}
        output, _, file = step.report.partition("/")
        path = result.outputs[output].directory / file
        where = f"step {step.name}: report {step.report}"
        if not path.is_file() or path.is_symlink():
            raise ProcessingError(
                f"{where}: the job wrote no such file",
                hint=f"write it to /opt/ml/processing/output/{step.report}",
            )
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ProcessingError(f"{where}: larger than {MAX_REPORT_BYTES} bytes, not a report")
        return parse_report(path.read_bytes(), where)

    @staticmethod
    def _store(ctx: RunContext, result: ProcessingJobResult) -> dict[str, Any]:
        stored = {}
        bucket = ctx.config.store.artifacts_bucket
        for name, output in result.outputs.items():
            key = f"{ctx.config.pipeline}/processing/{result.name}/output/{name}.tar.gz"
            ref = ctx.project.store.put_file(output.archive, bucket, key)
            if ref.sha256 != output.sha256:
                raise ArtifactError(f"output {name} changed while it was stored at {ref.uri}")
            stored[name] = {"uri": ref.uri, "sha256": ref.sha256}
        return stored

    @staticmethod
    def _outputs(
        step: ProcessingStepConfig, job: ProcessingJobRecord, status: str
    ) -> dict[str, Any]:
        found: dict[str, Any] = {
            "job": job.name,
            "status": status,
            "inputs": job.inputs,
            "outputs": job.outputs,
        }
        if step.report is not None:
            found["report"] = job.report
        return found


class ProcessStage(_StepsStage):
    """The processing steps that run before training."""

    name: ClassVar[str] = "process"
    phase: ClassVar[Phase] = "before"


class EvaluateStage(_StepsStage):
    """The processing steps that run after training (they may read ``train.model``)."""

    name: ClassVar[str] = "evaluate"
    phase: ClassVar[Phase] = "after"


def processing_stages(config: Config | None) -> tuple[list[Stage], list[Stage]]:
    """The stages ``processing:`` adds: before training, and after it (before the gate)."""
    steps = config.processing if config is not None else ()
    phases = {phase(config, s.name) for s in steps} if config is not None else set()
    return (
        [ProcessStage()] if "before" in phases else [],
        [EvaluateStage()] if "after" in phases else [],
    )


def processing_lineage(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Each step's job, its outputs' digests and its report: the model's lineage."""
    lineage: dict[str, Any] = {}
    for stage in STAGE_OF_PHASE.values():
        for step, found in ((outputs.get(stage) or {}).get("steps") or {}).items():
            lineage[step] = {
                "job": found["job"],
                "inputs": found.get("inputs", {}),
                "outputs": found["outputs"],  # {name: {"uri", "sha256"}}
                **({"report": found["report"]} if "report" in found else {}),
            }
    return lineage
