"""The operations over a running `mlcicd up`'s API (:mod:`mlcicd.daemon.client`): the
service queues and runs; this process asks, then follows the run when told to."""

from __future__ import annotations

from collections.abc import Callable

from mlcicd.daemon import client
from mlcicd.errors import StateError
from mlcicd.operations.base import Continued, Decision, Retried, RollbackDone, RollbackRequest
from mlcicd.pipeline import Reporter
from mlcicd.project import Project


class HttpOperations:
    def __init__(self, project: Project, service_url: str) -> None:
        self.project = project
        self.service_url: str | None = service_url
        self.url = service_url

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
