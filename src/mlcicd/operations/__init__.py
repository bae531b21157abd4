"""What a user asks of a project's pipeline — run, approve, reject, retry, roll back — done
in this process or through a running `mlcicd up`, behind one interface (as httpx's transports).

base.py     Operations: the interface, and the plain answers it gives (RunDone, Decision, …)
local.py    LocalOperations: in this process, on the project's state (no service running)
http.py     HttpOperations: over the service's API (:mod:`mlcicd.daemon.client`), so the
            queue's rules hold and the service is the one process that runs pipelines
backend.py  on_backend: the project with a config of its own for one run (`run --backend`)

:func:`open_operations` chooses once per command; the CLI formats the answers and exits.
"""

from __future__ import annotations

from mlcicd.operations.backend import on_backend
from mlcicd.operations.base import (
    Decision,
    Operations,
    Retried,
    RollbackDone,
    RollbackRequest,
    RunDone,
    RunRequest,
    Sample,
)
from mlcicd.project import Project


def open_operations(project: Project, *, through_service: bool = True) -> Operations:
    """Through the `mlcicd up` serving ``project`` when one is running, else in this process.

    ``through_service=False`` keeps it here: a run with a config of its own (:func:`on_backend`)
    cannot go through the service, which always runs the commit's own mlcicd.yaml.
    """
    from mlcicd.daemon.client import find_running_service

    url = find_running_service(project) if through_service else None
    if url is not None:
        from mlcicd.operations.http import HttpOperations

        return HttpOperations(project, url)
    from mlcicd.operations.local import LocalOperations

    return LocalOperations(project)


__all__ = [
    "Decision",
    "Operations",
    "Retried",
    "RollbackDone",
    "RollbackRequest",
    "RunDone",
    "RunRequest",
    "Sample",
    "on_backend",
    "open_operations",
]
