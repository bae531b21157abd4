"""A project's recorded endpoints, each reached through the backend that deployed it: what
`mlcicd endpoints` and `mlcicd invoke` ask of an endpoint by name.

The record names the backend (``local``, ``container``, ``sagemaker``), so an endpoint is
described, invoked or deleted where it runs, whatever ``deploy.backend`` says today.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.endpoints import open_backend
from mlcicd.endpoints.base import EndpointBackend, EndpointDescription
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import NotFoundError
from mlcicd.state import EndpointRecord

if TYPE_CHECKING:
    from mlcicd.project import Project


def recorded(project: Project, name: str) -> EndpointRecord:
    """Endpoint ``name``'s record; a name not recorded fails naming those that are."""
    record = project.state.get_endpoint(name)
    if record is None:
        names = ", ".join(e.name for e in project.state.list_endpoints()) or "none yet"
        raise NotFoundError(f"endpoint {name} does not exist", hint=f"endpoints: {names}")
    return record


def backend_of(project: Project, name: str) -> EndpointBackend:
    """The backend of a recorded endpoint (the one that deployed it)."""
    return open_backend(recorded(project, name).backend, project)


def live(project: Project, name: str) -> tuple[EndpointRecord, EndpointDescription]:
    """The recorded endpoint with what its backend reports now (and the record brought up to
    date)."""
    refreshed = refresh(project.state, backend_of(project, name), name)
    assert refreshed is not None  # there is a record: an endpoint the backend lost is "gone"
    return refreshed


def delete(project: Project, name: str) -> None:
    """Stop endpoint ``name`` where it runs and forget it (its models stay in the registry)."""
    record = project.state.get_endpoint(name)
    if record is None:
        raise NotFoundError(f"endpoint {name} does not exist")
    open_backend(record.backend, project).delete(name)
    project.state.delete_endpoint(name)
