"""What a user asks of a project's pipeline — approve, reject, retry, roll back — done in
this process or through a running `mlcicd up`, behind one interface (as httpx's transports).

base.py   Operations: the interface, and the plain answers it gives (Decision, Retried, …)
local.py  LocalOperations: in this process, on the project's state (no service running)
http.py   HttpOperations: over the service's API (:mod:`mlcicd.daemon.client`), so the
          queue's rules hold and the service is the one process that runs pipelines

:func:`open_operations` chooses once per command; the CLI formats the answers and exits.
"""

from __future__ import annotations

from mlcicd.operations.base import Decision, Operations, Retried, RollbackDone, RollbackRequest
from mlcicd.project import Project


def open_operations(project: Project) -> Operations:
    """Through the `mlcicd up` serving ``project`` when one is running, else in this process."""
    from mlcicd.daemon.client import find_running_service

    url = find_running_service(project)
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
    "open_operations",
]
