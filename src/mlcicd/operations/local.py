"""The operations in this process, on the project's state: what the CLI does when no
`mlcicd up` serves the project."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mlcicd.daemon.auth import os_user
from mlcicd.errors import MlcicdError
from mlcicd.operations.base import (
    Continued,
    Decision,
    Retried,
    RollbackDone,
    RollbackRequest,
    RunDone,
    RunRequest,
    Sample,
)
from mlcicd.pipeline import Reporter, RunOptions
from mlcicd.project import Project


class LocalOperations:
    service_url: str | None = None

    def __init__(self, project: Project) -> None:
        self.project = project

    def request_run(self, options: RunOptions) -> RunRequest:
        return RunRequest(options)

    def finish_run(
        self,
        request: RunRequest,
        reporter: Reporter,
        *,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunDone:
        from mlcicd.pipeline import run_pipeline
        from mlcicd.stages import default_stages

        project = self.project
        summary = run_pipeline(project, default_stages(project.config), request.options, reporter)
        run = summary.run
        stages = project.state.stages(run.id)
        done = RunDone(
            run_id=run.id,
            status=run.status,
            elapsed=run.elapsed,
            record={"run": run, "stages": stages},
            error=summary.error,
        )
        if summary.error is not None:
            failed = next((s for s in stages if s.status == "Failed"), None)
            if failed is not None:
                done.failed_stage = failed.stage
                done.failed_log = Path(failed.log_path) if failed.log_path else None
        elif summary.succeeded:
            done.deploy = summary.outputs.get("deploy", {})
            if done.deploy.get("url") and project.config.deploy.sample:
                done.sample = _ask_sample(done.deploy["url"], project.config.deploy.sample)
        return done

    def decide(self, run_id: int, approved: bool, comment: str | None) -> Decision:
        approval, timed_out = self.project.state.decide_approval_unless_expired(
            run_id, approved, by=os_user(), comment=comment
        )
        return Decision(
            run_id=run_id,
            model_group=approval.model_group,
            model_version=approval.model_version,
            status=approval.status,
            decided_by=approval.decided_by,
            timed_out=timed_out,
        )

    def continue_run(self, run_id: int, reporter: Reporter) -> Continued:
        from mlcicd.daemon.info import running_service
        from mlcicd.pipeline import resume_pipeline
        from mlcicd.stages import default_stages

        service = running_service(self.project.state_dir)
        if service is not None:  # it started since this command looked: it resumes the run
            return Continued(status=None, service_url=str(service["url"]))
        project = self.project
        run = project.state.get_run(run_id)
        if run.commit_sha:
            project = project.at_commit(run.commit_sha)
        summary = resume_pipeline(project, default_stages(project.config), run_id, reporter)
        if summary.error is not None:
            raise summary.error
        return Continued(status=summary.run.status)

    def retry(self, run_id: int) -> Retried:
        from mlcicd.daemon.info import running_service
        from mlcicd.daemon.triggers import retry

        run = retry(self.project, run_id)
        return Retried(
            run_id=run.id,
            retry_of=run_id,
            commit=run.commit_sha or run.ref or "",
            service_url=None,
            service_running=running_service(self.project.state_dir) is not None,
        )

    def request_rollback(
        self, endpoint: str, to_version: int | None, reason: str | None
    ) -> RollbackRequest:
        from mlcicd.rollback import rollback_target

        package, current = rollback_target(self.project, endpoint, to_version)
        return RollbackRequest(
            endpoint=endpoint,
            target=package.arn,
            current=current,
            version=package.version,
            reason=reason,
        )

    def finish_rollback(
        self,
        request: RollbackRequest,
        reporter: Reporter,
        *,
        wait: bool,
        on_wait: Callable[[str], None] | None = None,
    ) -> RollbackDone | None:
        from mlcicd.rollback import rollback

        summary = rollback(
            self.project,
            request.endpoint,
            request.version,
            reporter,
            by=os_user(),
            reason=request.reason,
        )
        if summary.error is not None:
            raise summary.error
        deploy = summary.outputs.get("deploy", {})
        return RollbackDone(run_id=summary.run.id, url=deploy.get("url"))


def _ask_sample(url: str, sample: str) -> Sample:
    """The endpoint at ``url``'s answer to ``sample``: the run's proof that it serves."""
    from mlcicd.endpoints.client import invoke_endpoint

    try:
        response = invoke_endpoint(url, sample.encode(), "application/json")
    except MlcicdError as exc:
        return Sample(request=sample, error=exc.headline)
    return Sample(
        request=json.dumps(json.loads(sample)),
        answer=response.body.decode(errors="replace").strip(),
    )
