"""A run: the ordered stages, their state transitions, logs and caching.

Each stage is one object with a ``name`` and a ``run(ctx)`` that returns a ``StageResult``
(``Succeeded`` or ``Cached``, a one-line message, and outputs the later stages read) or
raises a ``StageError``. A stage may also return ``WaitingForApproval``: the run stops there,
and ``resume_pipeline`` continues it later, from that stage, with the earlier outputs. The
engine records every transition in the state database, writes
each stage's log under a name shaped like the reference architecture's log groups, and
tells a ``Reporter`` what happens so a terminal (or the service) can show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from mlcicd.config import Config
from mlcicd.errors import MlcicdError, NotFoundError, StageError
from mlcicd.fsutil import open_private_log
from mlcicd.project import Project
from mlcicd.state import Run, State


@dataclass(frozen=True)
class RunOptions:
    force: bool = False
    allow_dirty: bool = False
    ref: str | None = None  # a commit-ish; default: the configured branch


WAITING = "WaitingForApproval"


@dataclass
class StageResult:
    status: str = "Succeeded"  # or "Cached", or WAITING (the run stops until a decision)
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    def stage_started(self, stage: str) -> None: ...
    def log(self, stage: str, line: str) -> None: ...
    def stage_finished(self, stage: str, status: str, elapsed: float, message: str) -> None: ...


class SilentReporter:
    def stage_started(self, stage: str) -> None:
        pass

    def log(self, stage: str, line: str) -> None:
        pass

    def stage_finished(self, stage: str, status: str, elapsed: float, message: str) -> None:
        pass


class StageLog:
    """A stage's log: appended to its file, line by line, and shown by the reporter."""

    def __init__(self, path: Path, stage: str, reporter: Reporter) -> None:
        self.path = path
        self.stage = stage
        self.reporter = reporter
        self._fh: IO[str] = open_private_log(path)

    def __call__(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._fh.write(f"{stamp} {line}\n")
        self.reporter.log(self.stage, line)

    def close(self) -> None:
        self._fh.close()


@dataclass
class RunContext:
    project: Project
    config: Config
    run: Run
    options: RunOptions
    reporter: Reporter
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: Callable[[str], None] = print


class Stage(Protocol):
    name: ClassVar[str]

    def log_group(self, config: Config) -> str:
        """The log group this stage writes to, named like the reference's CloudWatch groups."""
        ...

    def run(self, ctx: RunContext) -> StageResult: ...


def log_path(project: Project, group: str, stream: str) -> Path:
    return project.state_dir / "logs" / group.strip("/") / f"{stream}.log"


@dataclass(frozen=True)
class RunLog:
    """One log of a run: a stage's, or a training job's (listed after the train stage)."""

    title: str  # "train (Succeeded)", "training job iris-… (Completed)"
    path: Path

    def read(self) -> str | None:
        """The whole log, undecodable bytes replaced; None if it was never written."""
        return self.path.read_text(errors="replace") if self.path.is_file() else None


def run_logs(state: State, run_id: int, stage: str | None = None) -> list[RunLog]:
    """A run's logs in stage order (only ``stage``'s if given): `mlcicd logs`."""
    state.get_run(run_id)  # NotFoundError for a run that does not exist
    stages = state.stages(run_id)
    if stage is not None:
        stages = [s for s in stages if s.stage == stage]
        if not stages:
            names = ", ".join(s.stage for s in state.stages(run_id))
            raise NotFoundError(f"run {run_id} has no stage {stage!r}", hint=f"stages: {names}")
    found: list[RunLog] = []
    for execution in stages:
        if not execution.log_path:
            continue
        found.append(RunLog(f"{execution.stage} ({execution.status})", Path(execution.log_path)))
        if execution.stage == "train":
            # The training job's own log (the SageMaker TrainingJobs group) follows its stage.
            found += [
                RunLog(f"training job {job.name} ({job.status})", Path(job.log_path))
                for job in state.training_jobs(run_id=run_id)
                if job.log_path and Path(job.log_path).is_file()
            ]
    return found


@dataclass
class RunSummary:
    run: Run
    outputs: dict[str, dict[str, Any]]
    error: MlcicdError | None = None

    @property
    def succeeded(self) -> bool:
        return self.run.status == "Succeeded"

    @property
    def waiting(self) -> bool:
        return self.run.status == WAITING


def run_pipeline(
    project: Project,
    stages: Sequence[Stage],
    options: RunOptions,
    reporter: Reporter | None = None,
    *,
    run_id: int | None = None,
    outputs: Mapping[str, dict[str, Any]] | None = None,
) -> RunSummary:
    """Run ``stages`` in order; stop at the first failure. Ctrl-C is recorded, then re-raised.

    ``run_id`` starts a queued run instead of creating one; ``outputs`` stand in for stages
    that are not run (a rollback deploys with the outputs rebuilt from a model's lineage).
    """
    reporter = reporter or SilentReporter()
    config = project.config
    project.keep_state_out_of_git()
    state = project.state
    names = [s.name for s in stages]
    if run_id is None:
        run = state.create_run(
            pipeline=config.pipeline,
            project_dir=str(project.root),
            stages=names,
            forced=options.force,
        )
    else:
        run = state.start_queued_run(run_id, names)
    ctx = RunContext(project=project, config=config, run=run, options=options, reporter=reporter)
    ctx.outputs.update(outputs or {})
    return _execute(ctx, stages)


def resume_pipeline(
    project: Project, stages: Sequence[Stage], run_id: int, reporter: Reporter | None = None
) -> RunSummary:
    """Continue a run that waited for approval, from the stage it waited at, in this process."""
    state = project.state
    run = state.resume_run(run_id)
    done = {s.stage: s for s in state.stages(run_id)}
    ctx = RunContext(
        project=project,
        config=project.config,
        run=run,
        options=RunOptions(force=run.forced, allow_dirty=True, ref=run.commit_sha),
        reporter=reporter or SilentReporter(),
        outputs={n: s.outputs for n, s in done.items() if s.status in ("Succeeded", "Cached")},
    )
    remaining = [s for s in stages if s.name not in ctx.outputs]
    return _execute(ctx, remaining)


def _execute(ctx: RunContext, stages: Sequence[Stage]) -> RunSummary:
    project, config, run, reporter = ctx.project, ctx.config, ctx.run, ctx.reporter
    state = project.state
    error: MlcicdError | None = None
    failed_stage: str | None = None
    for stage in stages:
        path = log_path(project, stage.log_group(config), f"run-{run.id}")
        state.start_stage(run.id, stage.name, log_path=str(path))
        reporter.stage_started(stage.name)
        stage_log = StageLog(path, stage.name, reporter)
        ctx.log = stage_log
        started = time.monotonic()
        try:
            result = stage.run(ctx)
        except KeyboardInterrupt:
            reason = "interrupted by the user (Ctrl-C)"
            stage_log(reason)
            state.finish_stage(run.id, stage.name, "Stopped", message=reason)
            state.finish_run(run.id, "Stopped", failed_stage=stage.name, failure_reason=reason)
            reporter.stage_finished(stage.name, "Stopped", time.monotonic() - started, reason)
            raise
        except MlcicdError as exc:
            error, failed_stage = exc, stage.name
            stage_log(f"FAILED: {exc.headline}")
            outputs = exc.outputs if isinstance(exc, StageError) else None
            state.finish_stage(run.id, stage.name, "Failed", message=exc.headline, outputs=outputs)
            reporter.stage_finished(stage.name, "Failed", time.monotonic() - started, exc.headline)
            break
        except Exception as exc:  # a bug: record it, then let the traceback show
            reason = f"internal error: {type(exc).__name__}: {exc}"
            stage_log(reason)
            state.finish_stage(run.id, stage.name, "Failed", message=reason)
            state.finish_run(run.id, "Failed", failed_stage=stage.name, failure_reason=reason)
            raise
        finally:
            stage_log.close()
        state.finish_stage(
            run.id, stage.name, result.status, message=result.message, outputs=result.outputs
        )
        reporter.stage_finished(
            stage.name, result.status, time.monotonic() - started, result.message
        )
        if result.status == WAITING:
            state.wait_for_approval(run.id)
            return RunSummary(run=state.get_run(run.id), outputs=ctx.outputs)
        ctx.outputs[stage.name] = result.outputs
    if error is None:
        state.finish_run(run.id, "Succeeded")
    else:
        state.finish_run(run.id, "Failed", failed_stage=failed_stage, failure_reason=error.headline)
    return RunSummary(run=state.get_run(run.id), outputs=ctx.outputs, error=error)
