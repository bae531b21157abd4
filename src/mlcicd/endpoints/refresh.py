"""An endpoint's record brought up to date with what its backend reports now.

The state database records each endpoint (status, where it serves, which config and model);
the backend knows what is true now (a local server may have crashed, a SageMaker update may
have rolled back). Every reader that reconciles the two — the deploy stage after a deploy,
`mlcicd endpoints`/`invoke`, the service restarting a crashed server, the dashboard — does it
here, so they agree on what an endpoint is.
"""

from __future__ import annotations

import dataclasses
import time

from mlcicd.endpoints.base import FAILED, OUT_OF_SERVICE, EndpointBackend, EndpointDescription
from mlcicd.errors import NotFoundError
from mlcicd.state import EndpointRecord, State

GONE = "its files are gone"


def describe(backend: EndpointBackend, name: str, record: EndpointRecord) -> EndpointDescription:
    """What ``backend`` reports of endpoint ``name`` now; one it no longer knows (its files
    removed, the SageMaker endpoint deleted) is OutOfService, with the config it last served."""
    try:
        return backend.describe(name)
    except NotFoundError:
        return EndpointDescription(
            name=name,
            status=OUT_OF_SERVICE,
            url=None,
            port=None,
            pid=None,
            config_name=record.config_name,
            model_sha256=record.model_sha256,
            failure_reason=GONE,
            last_update_failure=None,
        )


def reconciled(
    state: State, backend_type: str, record: EndpointRecord | None, live: EndpointDescription
) -> EndpointRecord:
    """``record`` (None: a new endpoint) as ``live`` has it; ``updated_at`` is left as it was.

    The model is the one of the endpoint config it serves. A failure reason is the live one;
    the recorded one is kept only while the endpoint is down (a crashed server reports none).
    """
    config_name = live.config_name or (record.config_name if record else None)
    served = next((c for c in state.endpoint_configs(live.name) if c.name == config_name), None)
    failure = live.failure_reason or live.last_update_failure
    if failure is None and record is not None and live.status in (FAILED, OUT_OF_SERVICE):
        failure = record.failure_reason
    now = time.time()
    return EndpointRecord(
        name=live.name,
        backend=record.backend if record else backend_type,
        status=live.status,
        url=live.url,
        port=live.port,
        pid=live.pid,
        config_name=config_name,
        model_group=served.model_group if served else (record.model_group if record else None),
        model_version=(
            served.model_version if served else (record.model_version if record else None)
        ),
        model_sha256=live.model_sha256 or (record.model_sha256 if record else None),
        failure_reason=failure,
        created_at=record.created_at if record else now,
        updated_at=record.updated_at if record else now,
    )


def refresh(
    state: State,
    backend: EndpointBackend,
    name: str,
    *,
    live: EndpointDescription | None = None,
    write: bool = True,
) -> tuple[EndpointRecord, EndpointDescription] | None:
    """Endpoint ``name``'s record as its backend reports it now (``live``, when the caller has
    just asked), with that report; None when there is no record and the backend knows none.

    ``write`` records a change (``updated_at`` set to now); without it the answer is only read,
    as the dashboard does.
    """
    record = state.get_endpoint(name)
    if live is None:
        if record is None:
            try:
                live = backend.describe(name)
            except NotFoundError:
                return None
        else:
            live = describe(backend, name, record)
    current = reconciled(state, backend.TYPE, record, live)
    if write and (record is None or current != record):
        current = dataclasses.replace(current, updated_at=time.time())
        state.upsert_endpoint(current)
    return current, live
