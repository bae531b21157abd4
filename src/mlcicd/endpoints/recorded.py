"""A project's recorded endpoints, each reached through the backend that deployed it: what
`mlcicd endpoints` and `mlcicd invoke` ask of an endpoint by name.

The record names the backend (``local``, ``container``, ``sagemaker``), so an endpoint is
described, invoked or deleted where it runs, whatever ``deploy.backend`` says today.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcicd.endpoints import open_backend
from mlcicd.endpoints.base import EndpointBackend, EndpointDescription
from mlcicd.endpoints.client import InvocationResponse, invoke_endpoint
from mlcicd.endpoints.refresh import refresh
from mlcicd.errors import EndpointError, NotFoundError
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


def invoke(
    project: Project,
    name: str,
    body: bytes,
    content_type: str,
    *,
    accept: str | None = None,
    enable_explanations: str | None = None,
) -> InvocationResponse:
    """One request to endpoint ``name`` where it runs: over HTTP to a local or container
    endpoint's URL, through the signed runtime API (InvokeEndpoint) to a SageMaker one.
    ``enable_explanations``: Clarify's expression (docs/explain.md)."""
    _, described = live(project, name)
    if described.status not in ("InService", "Updating"):
        raise EndpointError(
            f"endpoint {name} is {described.status}"
            + (f": {described.failure_reason}" if described.failure_reason else ""),
            hint="redeploy it with `mlcicd run --force`",
        )
    if described.url:
        return invoke_endpoint(
            described.url,
            body,
            content_type,
            accept=accept,
            enable_explanations=enable_explanations,
        )
    if described.arn is None:
        raise EndpointError(f"endpoint {name} has neither a URL nor a SageMaker ARN")
    return _invoke_sagemaker(name, body, content_type, accept, enable_explanations)


def _invoke_sagemaker(
    name: str, body: bytes, content_type: str, accept: str | None, explanations: str | None
) -> InvocationResponse:
    from botocore.exceptions import ClientError

    from mlcicd.endpoints.sagemaker_runtime import runtime_client

    params: dict[str, Any] = {"EndpointName": name, "Body": body, "ContentType": content_type}
    if accept:
        params["Accept"] = accept
    if explanations is not None:
        params["EnableExplanations"] = explanations
    try:
        answer = runtime_client().invoke_endpoint(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        message = error.get("Message") or str(exc)
        return InvocationResponse(status, "application/json", message.encode(), {})
    headers = {"x-amzn-invoked-production-variant": answer.get("InvokedProductionVariant", "")}
    return InvocationResponse(200, answer.get("ContentType", ""), answer["Body"].read(), headers)
