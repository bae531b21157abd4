"""Keep endpoints serving: a crashed endpoint server is restarted (with backoff) and the
restart recorded in the endpoint's history; at `mlcicd up`, endpoints whose server is gone
(a reboot, a kill) come back serving the endpoint config they served.

The restart is the backend's :meth:`~mlcicd.endpoints.base.EndpointBackend.restart`, for
every backend served on this machine (:data:`mlcicd.endpoints.ON_THIS_MACHINE`): a local
endpoint's supervisor is launched again on its own recorded ``config.json`` (variants and
weights, shadow, capture, policy, workers, timeouts), on its old port when that is free; a
container endpoint gets a new container from its recorded ``endpoint.json``, on its
listener's socket — the same address. A staging endpoint left behind by a run that died is
deleted instead (:func:`mlcicd.stages.staging.remove_orphans`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from mlcicd.endpoints import ON_THIS_MACHINE, open_backend
from mlcicd.endpoints.base import FAILED, IN_SERVICE, OUT_OF_SERVICE, UPDATING, EndpointBackend
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import MlcicdError, NotFoundError
from mlcicd.project import Project
from mlcicd.stages.staging import remove_orphans
from mlcicd.state import EndpointRecord

MAX_BACKOFF = 60.0
HEALTHY_RESET = 60.0  # serving this long after a restart forgets earlier crashes


class EndpointWatch:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._crashes: dict[
            tuple[str, str], tuple[int, float, float]
        ] = {}  # attempts, next try, restarted at

    def check(self, project: Project, *, restoring: bool = False) -> None:
        """Restart the project's endpoints served on this machine whose server is gone
        (when their backoff allows)."""
        # A staging endpoint whose run died is removed, never brought back (stages/staging.py).
        with contextlib.suppress(MlcicdError, OSError):
            remove_orphans(project, project.config, self.log)
        backends: dict[str, EndpointBackend] = {}
        for record in project.state.list_endpoints():
            if record.backend not in ON_THIS_MACHINE:
                continue
            if record.backend not in backends:
                backends[record.backend] = open_backend(record.backend, project)
            backend = backends[record.backend]
            key = (str(project.state_dir), record.name)
            try:
                described = backend.describe(record.name)
            except NotFoundError:
                continue
            attempts, next_try, restarted_at = self._crashes.get(key, (0, 0.0, 0.0))
            if described.status == IN_SERVICE:
                if attempts and time.monotonic() - restarted_at > HEALTHY_RESET:
                    self._crashes.pop(key, None)
                continue
            was_serving = record.status in (IN_SERVICE, UPDATING, OUT_OF_SERVICE)
            if not (
                described.status == OUT_OF_SERVICE or (described.status == FAILED and was_serving)
            ):
                continue
            if time.monotonic() < next_try:
                continue
            attempts += 1
            delay = min(MAX_BACKOFF, 2.0 ** (attempts - 1))
            self._crashes[key] = (attempts, time.monotonic() + delay, time.monotonic())
            why = (
                "restored at service start"
                if restoring
                else f"its server had stopped (attempt {attempts})"
            )
            self._restart(project, backend, record, why, described.failure_reason)

    def _restart(
        self,
        project: Project,
        backend: EndpointBackend,
        record: EndpointRecord,
        why: str,
        cause: str | None,
    ) -> None:
        self.log(f"endpoint {record.name}: restarting {record.config_name}: {why}")
        try:
            described = backend.restart(record.name)
        except (MlcicdError, OSError) as exc:
            reason = (
                exc.headline if isinstance(exc, MlcicdError) else f"{type(exc).__name__}: {exc}"
            )
            self.log(f"endpoint {record.name}: restart failed: {reason}")
            project.state.record_endpoint_change(
                record.name,
                reason="restart_failed",
                detail=reason,
                config_name=record.config_name,
                model_group=record.model_group,
                model_version=record.model_version,
                model_sha256=record.model_sha256,
            )
            # The record says Failed (and why) when the backend does.
            with contextlib.suppress(MlcicdError, OSError):
                refresh(project.state, backend, record.name)
            return
        refresh(project.state, backend, record.name, live=described)
        project.state.record_endpoint_change(
            record.name,
            reason="restart",
            detail=f"{why}" + (f"; it had: {cause}" if cause else ""),
            config_name=record.config_name,
            model_group=record.model_group,
            model_version=record.model_version,
            model_sha256=record.model_sha256,
        )
        self.log(
            f"endpoint {record.name}: {described.status} at {described.url} (pid {described.pid})"
        )
