"""The operations over a running `mlcicd up`'s API (:mod:`mlcicd.daemon.client`): the
service queues and runs; this process asks, then follows the run when told to."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlcicd.daemon import client
from mlcicd.errors import StageError, StateError
from mlcicd.operations.base import (
    Continued,
    Decision,
    Retried,
    RollbackDone,
    RollbackRequest,
    RunDone,
    RunRequest,
)
from mlcicd.pipeline import Reporter, RunOptions
from mlcicd.project import Project


class HttpOperations:
    def __init__(self, project: Project, service_url: str) -> None:
        self.project = project
        self.service_url: str | None = service_url
        self.url = service_url

    def request_run(self, options: RunOptions) -> RunRequest:
        answer = client.submit_run(
            self.url,
            self.project,
            ref=options.ref,
            force=options.force,
            allow_dirty=options.allow_dirty,
        )
        run = answer["run"]
        return RunRequest(
            options,
            service_url=self.url,
            run_id=int(run["id"]),
            commit=str(run.get("commit_sha") or run.get("ref") or ""),
            status=str(run["status"]),
            existing=bool(answer.get("existing")),
            superseded=list(answer.get("superseded") or []),
        )

    def finish_run(
        self,
        request: RunRequest,
        reporter: Reporter,
        *,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunDone:
        assert request.run_id is not None  # request_run queued it
        shown = client.follow_run(self.url, self.project, request.run_id, reporter, on_wait=on_wait)
        run = shown["run"]
        done = RunDone(
            run_id=int(run["id"]),
            status=str(run["status"]),
            elapsed=(run.get("ended_at") or time.time()) - (run.get("started_at") or time.time()),
            record={"run": run, "stages": shown["stages"]},
        )
        if done.status == "Succeeded":
            name = self.project.config.deploy.endpoint_name
            endpoint = next(
                (e for e in client.endpoints(self.url, self.project) if e.get("name") == name),
                None,
            )
            if endpoint and endpoint.get("status") == "InService" and endpoint.get("url"):
                done.deploy = {"endpoint": endpoint["name"], "url": endpoint["url"]}
        elif done.status != "WaitingForApproval":
            failed = next((s for s in shown["stages"] if s["status"] == "Failed"), None)
            done.failed_stage = str(failed["stage"]) if failed else None
            where = f" in {done.failed_stage}" if done.failed_stage else ""
            reason = run.get("failure_reason") or ""
            done.error = StageError(
                f"run {done.run_id} {done.status.lower()}{where}: {reason}".rstrip(": "),
                stage=done.failed_stage,
            )
        return done

    def decide(self, run_id: int, approved: bool, comment: str | None) -> Decision:
        answer = client.decide(self.url, self.project, run_id, approved, comment)
        approval = answer["approval"]
        return Decision(
            run_id=run_id,
            model_group=str(approval["model_group"]),
            model_version=int(approval["model_version"]),
            status=str(approval["status"]),
            decided_by=approval.get("decided_by"),
            timed_out=bool(answer.get("timed_out")),
        )

    def continue_run(self, run_id: int, reporter: Reporter) -> Continued:
        shown = client.follow_run(self.url, self.project, run_id, reporter)
        return Continued(status=str(shown["run"]["status"]), service_url=self.url)

    def retry(self, run_id: int) -> Retried:
        run = client.retry(self.url, self.project, run_id)["run"]
        return Retried(
            run_id=int(run["id"]),
            retry_of=run_id,
            commit=str(run.get("commit_sha") or run.get("ref") or ""),
            service_url=self.url,
            service_running=True,
        )

    def request_rollback(
        self, endpoint: str, to_version: int | None, reason: str | None
    ) -> RollbackRequest:
        answer = client.request_rollback(self.url, self.project, endpoint, to_version, reason)
        return RollbackRequest(
            endpoint=endpoint,
            target=str(answer["target"]),
            current=str(answer["from"]),
            version=to_version,
            reason=reason,
            service_url=self.url,
            run_id=int(answer["run"]["id"]),
            superseded=list(answer.get("superseded") or []),
            behind=list(answer.get("behind") or []),
        )

    def finish_rollback(
        self,
        request: RollbackRequest,
        reporter: Reporter,
        *,
        wait: bool,
        on_wait: Callable[[str], None] | None = None,
    ) -> RollbackDone | None:
        if not wait:
            return None
        assert request.run_id is not None
        run_id = request.run_id
        shown = client.follow_run(self.url, self.project, run_id, reporter, on_wait=on_wait)
        run = shown["run"]
        if run["status"] != "Succeeded":
            why = f"{run['status'].lower()}: {run.get('failure_reason') or ''}".rstrip(": ")
            raise StateError(f"rollback run {run_id} {why}")
        deploy = next(
            (s.get("outputs") or {} for s in shown["stages"] if s["stage"] == "deploy"), {}
        )
        return RollbackDone(run_id=run_id, url=deploy.get("url"))
